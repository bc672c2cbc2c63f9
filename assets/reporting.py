"""Reports: the researchers' effect report and the data stewards' view (HTML plus machine-readable tables)."""

import html
import json
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from analysis.publish import effect_report, feedback, monitoring_page, som_report, steward_view
from analysis.publish.disclosure import Rules
from analysis.publish.monitoring import Targets
from analysis.publish.output_check import output_bundle
from analysis.publish.provenance import provenance
from analysis.publish.safe_export import csv_bytes, xlsx_bytes
from analysis.schema import HEADLINE_OUTCOMES
from assets import ingest, linkage
from assets.monitoring import rebuild
from expectations import steward as steward_checks_da
from pipelines import inbox
from pipelines.checks_log import latest_check_evaluations
from pipelines.partitions import REPORTING_GROUP
from pipelines.resources import CodeLists, LayoutResource, PseudonymKey
from pipelines.run_status import code_version, ingest_failures, outcome_status
from pipelines.sources import RegisterSource
from pipelines.storage import write_bytes, write_parquet, write_text


def _by_outcome(frame: pl.DataFrame | None) -> pl.DataFrame:
    """Every outcome partition's rows (outcomes in name order, rows as estimated); no partition: empty."""
    return pl.DataFrame() if frame is None else frame.sort("outcome", maintain_order=True)


#: Blocking check on the report: the attacker's audit of every published table together (issue #19).
DISCLOSURE_AUDIT = "disclosure_audit"


def disclosure_rules(code_lists: CodeLists) -> Rules:
    """Read the disclosure rules from configuration table ``disclosure_rules`` (read here only)."""
    return Rules.from_table(code_lists.table("disclosure_rules"))


@dg.asset(
    group_name=REPORTING_GROUP,
    description="Self-contained HTML effect report for researchers (disclosure-controlled) and its tables "
                "as CSV/parquet.",
    kinds={"html"},
    check_specs=[dg.AssetCheckSpec(DISCLOSURE_AUDIT, asset="effect_report_html", blocking=True,
                                   description="No count below 5 persons can be derived from all published tables "
                                               "together (LP/MILP attack); nothing is written when it fails.")],
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
    published = effect_report.publish(inputs, rules=disclosure_rules(code_lists))
    audit, out, tables = published.audit, layout.reports, layout.report_tables
    meta = {"disclosure_audit": audit.summary(), "cells_published": audit.cells_checked,
            "cells_suppressed": audit.cells_suppressed,
            "outcomes_not_current": ", ".join(inputs.outcome_status["outcome"]) or "none"}
    check = dg.AssetCheckResult(check_name=DISCLOSURE_AUDIT, passed=audit.passed,
                                severity=dg.AssetCheckSeverity.ERROR,
                                metadata={"summary": audit.summary(),
                                          "problems": "; ".join(audit.problems[:20]) or "none"})
    if not audit.passed:  # nothing leaves: the previous report (if any) stays as it was
        context.log.error("disclosure audit failed, report not written: " + "; ".join(audit.problems[:5]))
        return dg.MaterializeResult(metadata=meta, check_results=[check])
    page = effect_report.render_effect_report(inputs, published=published)
    write_text(out / "effect_report.html", page)
    write_text(out / f"effect_report_{datetime.now(UTC).strftime('%Y-%m-%d')}.html", page)
    files = {"effect_report.html": (None, page.encode())}
    for name, frame in {**effect_report.export_tables(published), **budget_tables}.items():
        write_parquet(tables / f"{name}.parquet", frame)
        write_bytes(tables / f"{name}.csv", csv_bytes(frame))
        files |= {f"tables/{name}.{ext}": (name, (tables / f"{name}.{ext}").read_bytes())
                  for ext in ("csv", "parquet")}
    if "som_effects" in budget_tables:
        write_bytes(layout.som_workbook, xlsx_bytes({"SØM effekter": budget_tables["som_effects"],
                                                     "Priser": budget_tables["som_prices"]}))
    for stale in tables.glob("*"):  # a table no longer published must not linger beside the new ones
        if stale.is_file() and f"tables/{stale.name}" not in files:
            stale.unlink()
    bundle = output_bundle(published, files)
    write_text(out / "output_checking.json", json.dumps(bundle, indent=1, ensure_ascii=False))
    headline = published.frames["estimates"].filter((pl.col("dimension") == "all")
                                                    & pl.col("outcome").is_in(HEADLINE_OUTCOMES))
    meta |= {f"{r['design']}/{r['outcome']}": f"{r['estimate']:.4f}" for r in headline.iter_rows(named=True)
             if r["estimate"] is not None}
    path = dg.MetadataValue.path(str(out / "effect_report.html"))
    return dg.MaterializeResult(metadata={"path": path, **meta}, check_results=[check])


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


#: Assets whose checks a steward can act on: the ingest and linkage groups (the methods checks, such as
#: balance after matching, are the analysts' and stay out of the steward view).
STEWARD_ASSETS = frozenset(key.to_user_string() for group in (ingest.assets, linkage.assets) for a in group
                           for key in a.keys)


@dg.asset(
    group_name=REPORTING_GROUP,
    description="Per site and quarter: what is new, outstanding since when and corrected, with per-site "
                "feedback workbooks in Danish; only the checks a steward can act on (ingest, linkage).",
    kinds={"html", "xlsx"},
)
def steward_view_html(context: dg.AssetExecutionContext, layout: LayoutResource, code_lists: CodeLists,
                      pseudonym_key: PseudonymKey, quarantine: pl.DataFrame, submission_stats: pl.DataFrame,
                      received_files: pl.DataFrame, pseudonymised_courses: pl.DataFrame,
                      course_conflicts: pl.DataFrame, unlinked_participants: pl.DataFrame,
                      person_index: pl.LazyFrame) -> dg.MaterializeResult:
    """General page and workbooks (CPR masked) under reports/, restricted ones under restricted/reports/.

    The feedback memory (``layout.feedback_state``) is read, brought up to date and written back.
    """
    sites = code_lists.site_ids()
    try:  # the deadline is monitoring's delivery_days; a broken targets table must not stop the feedback
        targets = Targets.from_table(code_lists.table("monitoring_targets"), sites=sites)
    except ValueError as error:
        context.log.warning(f"no delivery deadline on the feedback: {error}")
        targets = None
    settings = feedback.FeedbackSettings.from_tables(code_lists.table("feedback"), targets=targets,
                                                     sites=sites)
    checks = steward_view.steward_checks(latest_check_evaluations(context.instance), assets=STEWARD_ASSETS,
                                         danish=steward_checks_da.DANISH)
    pseudonyms = pseudonymised_courses["pseudonym"].unique().implode()
    registered = person_index.select("pseudonym").filter(pl.col("pseudonym").is_in(pseudonyms)).collect()
    inputs = feedback.FeedbackInputs(
        quarantine, received_files, submission_stats, pseudonymised_courses, registered, course_conflicts,
        unlinked_participants, code_lists.table("sites"), code_lists.table("delmaalgrupper"),
        ingest_failures(context.instance))
    previous = pl.read_parquet(layout.feedback_state) if layout.feedback_state.exists() else None
    result = feedback.build_feedback(inputs, key=pseudonym_key.secret(), previous_state=previous)
    entries = inbox.account(layout.inbox, sites).to_frame()  # what the inbox holds besides ingested files
    outputs = steward_view.steward_outputs(result, checks, settings=settings, now=datetime.now(UTC),
                                           sites=sites, strays=entries)
    for restricted, page in outputs.pages.items():
        write_text(layout.steward_reports(restricted=restricted) / "steward_view.html", page)
    for book in outputs.workbooks:
        folder = layout.feedback_dir(restricted=book.restricted, language=book.language)
        write_bytes(folder / f"{book.site}.xlsx", book.xlsx)
        write_bytes(folder / book.csv_name, book.rows_csv)
    write_parquet(layout.feedback_state, result.state)
    counts = result.overview.select(pl.col("new", "outstanding", "resolved").sum()).row(0, named=True)
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(layout.reports / "steward_view.html")),
        "workbooks": len(outputs.workbooks),
        "new_items": int(counts["new"]), "outstanding_items": int(counts["outstanding"]),
        "resolved_items": int(counts["resolved"]), "failed_steward_checks": checks.height,
        "unreadable_files": result.unreadable.height, "inbox_entries_to_check": entries.height,
    })


assets = [effect_report_html, steward_view_html]
