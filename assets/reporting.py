"""Reports: the researchers' effect report and the data stewards' view (HTML plus machine-readable tables)."""

import html
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from analysis.publish import effect_report, monitoring_page, som_report, steward_view
from analysis.publish.provenance import provenance
from analysis.publish.safe_export import csv_bytes, xlsx_bytes
from analysis.schema import HEADLINE_OUTCOMES
from assets.monitoring import rebuild
from pipelines import inbox
from pipelines.checks_log import latest_check_evaluations
from pipelines.partitions import REPORTING_GROUP
from pipelines.resources import CodeLists, LayoutResource
from pipelines.run_status import code_version, ingest_failures, outcome_status
from pipelines.sources import RegisterSource
from pipelines.storage import write_bytes, write_parquet, write_text


def _by_outcome(frame: pl.DataFrame | None) -> pl.DataFrame:
    """Every outcome partition's rows (outcomes in name order, rows as estimated); no partition: empty."""
    return pl.DataFrame() if frame is None else frame.sort("outcome", maintain_order=True)


@dg.asset(
    group_name=REPORTING_GROUP,
    description="Self-contained HTML effect report for researchers (disclosure-controlled) and its tables "
                "as CSV/parquet.",
    kinds={"html"},
)
def effect_report_html(
    context: dg.AssetExecutionContext, layout: LayoutResource, code_lists: CodeLists, register_source: RegisterSource,
    balance: pl.DataFrame, before_after: pl.DataFrame, submission_stats: pl.DataFrame, received_files: pl.DataFrame,
    courses: pl.DataFrame, effect_estimates: pl.DataFrame | None, event_study: pl.DataFrame | None,
    matched_means: pl.DataFrame | None, group_time_att: pl.DataFrame | None, staggered_aggregates: pl.DataFrame | None,
    public_budget: pl.DataFrame | None, som_effects: pl.DataFrame | None,
    som_sensitivity: pl.DataFrame | None,
    som_prices_used: pl.DataFrame | None, som_status: pl.DataFrame | None,
    programme_monitoring: pl.DataFrame | None, monitoring_mix: pl.DataFrame | None,
    monitoring_endings: pl.DataFrame | None, monitoring_targets: pl.DataFrame | None,
    monitoring_delivery: pl.DataFrame | None, monitoring_status: pl.DataFrame | None,
) -> dg.MaterializeResult:
    """Every outcome partition that exists (a failed outcome is reported missing, not fatal)."""
    budget, budget_tables = _public_budget_section(public_budget, som_effects, som_sensitivity,
                                                   som_prices_used, som_status)
    monitoring = _monitoring_section(code_lists, monitoring_status, programme_monitoring, monitoring_mix,
                                     monitoring_endings, monitoring_targets, monitoring_delivery)
    estimates = _by_outcome(effect_estimates)
    inputs = effect_report.ReportInputs(
        estimates=estimates, event_study=_by_outcome(event_study), matched_means=_by_outcome(matched_means),
        balance=balance, group_time=_by_outcome(group_time_att), aggregates=_by_outcome(staggered_aggregates),
        before_after=before_after,
        provenance=provenance(submission_stats, received_files, code_lists.table("sites"),
                              failures=ingest_failures(context.instance)),
        run_info={"run_id": context.run_id, "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  "code_version": code_version(), "register_source": register_source.describe(),
                  "key_id": ", ".join(sorted(courses["key_id"].unique().drop_nulls().to_list()))},
        truth=register_source.truth(layout.truth), headline_outcomes=HEADLINE_OUTCOMES,
        outcome_status=outcome_status(context.instance, estimates),
        public_budget_section=budget, monitoring_section=monitoring,
    )
    if inputs.outcome_status.height:
        context.log.warning("outcomes without current estimates: " + ", ".join(inputs.outcome_status["outcome"]))
    page = effect_report.render_effect_report(inputs)
    write_text(layout.reports / "effect_report.html", page)
    write_text(layout.reports / f"effect_report_{datetime.now(UTC).strftime('%Y-%m-%d')}.html", page)
    for name, frame in {**effect_report.export_tables(inputs), **budget_tables}.items():
        write_parquet(layout.report_tables / f"{name}.parquet", frame)
        write_bytes(layout.report_tables / f"{name}.csv", csv_bytes(frame))
    if "som_effects" in budget_tables:
        write_bytes(layout.som_workbook, xlsx_bytes({"SØM effekter": budget_tables["som_effects"],
                                                     "Priser": budget_tables["som_prices"]}))
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(layout.reports / "effect_report.html")),
                                          "estimates": inputs.estimates.height,
                                          "outcomes_not_current": ", ".join(inputs.outcome_status["outcome"]) or "none"})


def _public_budget_section(budget: pl.DataFrame | None, effects: pl.DataFrame | None,
                           sensitivity: pl.DataFrame | None, prices: pl.DataFrame | None,
                           status: pl.DataFrame | None) -> tuple[str, dict[str, pl.DataFrame]]:
    """Return the SØM section's HTML and published tables (none when absent or unpublishable)."""
    problem = "; ".join(status["message"]) if status is not None and status.height and not (
        budget is not None and budget.height) else ""
    if budget is None or not budget.height:
        return som_report.render_public_budget_section(None, problem=problem), {}
    tables = som_report.SomTables(budget, effects, sensitivity, prices)
    return som_report.render_public_budget_section(tables), som_report.export_tables(tables)


def _monitoring_section(code_lists: CodeLists, status: pl.DataFrame | None,
                        *frames: pl.DataFrame | None) -> str:
    """Return the monitoring section's HTML (public variant), or a warning when it is absent."""
    problems = [] if status is None else status["message"].to_list()
    warning = ('<p class="warn">The monitoring has problems in this run (details on the monitoring page): '
               + html.escape("; ".join(problems[:5])) + "</p>") if problems else ""
    if any(f is None for f in frames):
        return warning
    names = ("programme_monitoring", "monitoring_mix", "monitoring_endings", "monitoring_targets",
             "monitoring_delivery")
    monitoring = rebuild(code_lists, dict(zip(names, frames, strict=True)))
    if monitoring is None:
        return warning
    return warning + monitoring_page.render_monitoring_section(monitoring,
                                                               monitoring_page.publication_tables(monitoring))


@dg.asset(
    group_name=REPORTING_GROUP,
    description="Expectation failures and quarantined rows per site and quarter, with per-site feedback "
                "files.",
    kinds={"html"},
)
def steward_view_html(context: dg.AssetExecutionContext, layout: LayoutResource, code_lists: CodeLists,
                      quarantine: pl.DataFrame, submission_stats: pl.DataFrame) -> dg.MaterializeResult:
    """General page (no CPR) under reports/, restricted page and feedback with CPR under restricted/reports/."""
    checks = latest_check_evaluations(context.instance)
    unreadable = ingest_failures(context.instance)
    entries = inbox.account(layout.inbox, code_lists.site_ids()).to_frame()  # what the inbox holds besides files
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for restricted in (False, True):
        tables = steward_view.steward_tables(quarantine, submission_stats, checks, restricted=restricted,
                                             unreadable=unreadable, inbox=entries)
        page = steward_view.render_steward_page(tables, restricted=restricted, generated_at=stamp)
        write_text(layout.steward_reports(restricted=restricted) / "steward_view.html", page)
        feedback = layout.feedback_dir(restricted=restricted)
        for site in code_lists.site_ids():
            sheets = steward_view.feedback_sheets(tables, site)
            if any(frame.height for frame in sheets.values()):
                write_bytes(feedback / f"{site}.xlsx", xlsx_bytes(sheets))
                write_bytes(feedback / f"{site}_rows.csv", csv_bytes(sheets["Rækker"]))
    general = steward_view.steward_tables(quarantine, submission_stats, checks, restricted=False, unreadable=unreadable,
                                          inbox=entries)
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(layout.reports / "steward_view.html")),
                                          "quarantined_rows": general.rows.height, "failed_checks": general.check_failures.height,
                                          "unreadable_files": general.unreadable.height,
                                          "inbox_entries_to_check": general.inbox.height})


assets = [effect_report_html, steward_view_html]
