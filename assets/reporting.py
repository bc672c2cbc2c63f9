"""Reports: the researchers' effect report and the data stewards' view (HTML plus machine-readable tables)."""

import json
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from analysis.publish import effect_report, feedback, report_tables, steward_view
from analysis.publish import monitoring_page as monitoring_pages
from analysis.publish.disclosure import Controlled, Rules
from analysis.publish.labels import Labels
from analysis.publish.monitoring import Monitoring, Targets
from analysis.publish.monitoring_tables import public_tables
from analysis.publish.output_check import output_bundle
from analysis.publish.provenance import provenance
from analysis.publish.safe_export import csv_bytes, xlsx_bytes
from analysis.publish.sample_flow import FlowInputs, sample_flow
from analysis.publish.workbook import published_csv_bytes
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
from pipelines.storage import write_bytes, write_parquet, write_table, write_text


def _by_outcome(frame: pl.DataFrame | None) -> pl.DataFrame:
    """Every outcome partition's rows (outcomes in name order, rows as estimated); no partition: empty."""
    return pl.DataFrame() if frame is None else frame.sort("outcome", maintain_order=True)


#: Blocking check on the report: the attacker's audit of every published table together (issue #19).
DISCLOSURE_AUDIT = "disclosure_audit"


def disclosure_rules(code_lists: CodeLists) -> Rules:
    """Read the disclosure rules from configuration table ``disclosure_rules`` (read here only)."""
    return Rules.from_table(code_lists.table("disclosure_rules"))


def report_labels(code_lists: CodeLists) -> Labels:
    """Words, units and number formats of the published tables (``report_labels``, code lists, sites)."""
    return Labels.from_config(code_lists)


@dg.asset(
    group_name=REPORTING_GROUP,
    description="Self-contained HTML effect report for researchers (disclosure-controlled) and every table "
    "it publishes as CSV (';' fields, ',' decimals), parquet and one xlsx workbook.",
    kinds={"html"},
    check_specs=[
        dg.AssetCheckSpec(
            DISCLOSURE_AUDIT,
            asset="effect_report_html",
            blocking=True,
            description="No count below 5 persons can be derived from all published tables "
            "together (LP/MILP attack); nothing is written when it fails.",
        )
    ],
)
def effect_report_html(
    context: dg.AssetExecutionContext,
    layout: LayoutResource,
    code_lists: CodeLists,
    register_source: RegisterSource,
    balance: pl.DataFrame,
    before_after: pl.DataFrame,
    submission_stats: pl.DataFrame,
    received_files: pl.DataFrame,
    courses: pl.DataFrame,
    linked_courses: pl.DataFrame,
    unlinked_participants: pl.DataFrame,
    matched_units: pl.DataFrame,
    unmatched_participants: pl.DataFrame,
    quarantine: pl.DataFrame,
    outcome_panel: pl.LazyFrame,
    effect_estimates: pl.DataFrame | None,
    event_study: pl.DataFrame | None,
    matched_means: pl.DataFrame | None,
    group_time_att: pl.DataFrame | None,
    staggered_aggregates: pl.DataFrame | None,
    pretrend_tests: pl.DataFrame | None,
    phase_effects: pl.DataFrame | None,
    placebo_effects: pl.DataFrame | None,
    honest_did: pl.DataFrame | None,
    public_budget: pl.DataFrame | None,
    som_effects: pl.DataFrame | None,
    som_sensitivity: pl.DataFrame | None,
    som_prices_used: pl.DataFrame | None,
    som_status: pl.DataFrame | None,
    programme_monitoring: pl.DataFrame | None,
    monitoring_mix: pl.DataFrame | None,
    monitoring_endings: pl.DataFrame | None,
    monitoring_targets: pl.DataFrame | None,
    monitoring_delivery: pl.DataFrame | None,
    monitoring_status: pl.DataFrame | None,
) -> dg.MaterializeResult:
    """Every outcome partition that exists (a failed outcome is reported missing, not fatal)."""
    labels = report_labels(code_lists)
    estimates = _by_outcome(effect_estimates)
    flow = sample_flow(
        FlowInputs(
            submission_stats,
            courses,
            linked_courses,
            unlinked_participants,
            matched_units,
            unmatched_participants,
            estimates,
            panel=outcome_panel,
            quarantine=quarantine.select(
                [c for c in ("reasons", "reason", "superseded") if c in quarantine.columns]
            ),
        ),
        labels=labels,
    )
    names = (
        "programme_monitoring",
        "monitoring_mix",
        "monitoring_endings",
        "monitoring_targets",
        "monitoring_delivery",
    )
    monitoring = rebuild(
        code_lists,
        dict(
            zip(
                names,
                (
                    programme_monitoring,
                    monitoring_mix,
                    monitoring_endings,
                    monitoring_targets,
                    monitoring_delivery,
                ),
                strict=True,
            )
        ),
    )
    budget_ok = public_budget is not None and public_budget.height > 0
    som_problem = (
        "; ".join(som_status["message"])
        if som_status is not None and som_status.height and not budget_ok
        else ""
    )
    inputs = effect_report.ReportInputs(
        estimates=estimates,
        event_study=_by_outcome(event_study),
        matched_means=_by_outcome(matched_means),
        balance=balance,
        group_time=_by_outcome(group_time_att),
        aggregates=_by_outcome(staggered_aggregates),
        before_after=before_after,
        provenance=provenance(
            submission_stats,
            received_files,
            code_lists.table("sites"),
            failures=ingest_failures(context.instance),
        ),
        run_info={
            "run_id": context.run_id,
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "code_version": code_version(),
            "register_source": register_source.describe(),
            "key_id": ", ".join(sorted(courses["key_id"].unique().drop_nulls().to_list())),
        },
        truth=register_source.truth(layout.truth),
        headline_outcomes=HEADLINE_OUTCOMES,
        outcome_status=outcome_status(context.instance, estimates),
        pretrend_tests=_by_outcome(pretrend_tests),
        phase_effects=_by_outcome(phase_effects),
        placebo=_by_outcome(placebo_effects),
        honest=_by_outcome(honest_did),
        sample_flow=flow.table,
        flow_comparison=flow.comparison,
        som_budget=public_budget if budget_ok else pl.DataFrame(),
        som_effects=som_effects if budget_ok and som_effects is not None else pl.DataFrame(),
        som_sensitivity=som_sensitivity if budget_ok and som_sensitivity is not None else pl.DataFrame(),
        som_prices=som_prices_used if budget_ok and som_prices_used is not None else pl.DataFrame(),
        som_problem=som_problem,
        monitoring=monitoring,
        monitoring_problems=tuple(monitoring_status["message"]) if monitoring_status is not None else (),
        labels=labels,
    )
    if inputs.outcome_status.height:
        context.log.warning(
            "outcomes without current estimates: " + ", ".join(inputs.outcome_status["outcome"])
        )
    published = effect_report.publish(inputs, rules=disclosure_rules(code_lists))
    audit, tables = published.audit, layout.report_tables
    meta = {
        "disclosure_audit": audit.summary(),
        "cells_published": audit.cells_checked,
        "cells_suppressed": audit.cells_suppressed,
        "outcomes_not_current": ", ".join(inputs.outcome_status["outcome"]) or "none",
    }
    check = dg.AssetCheckResult(
        check_name=DISCLOSURE_AUDIT,
        passed=audit.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"summary": audit.summary(), "problems": "; ".join(audit.problems[:20]) or "none"},
    )
    if not audit.passed:  # nothing leaves: the previous report (if any) stays as it was
        context.log.error("disclosure audit failed, report not written: " + "; ".join(audit.problems[:5]))
        return dg.MaterializeResult(metadata=meta, check_results=[check])
    page = effect_report.render_effect_report(inputs, published=published)
    write_text(layout.effect_report, page)
    write_text(layout.dated_effect_report(datetime.now(UTC).strftime("%Y-%m-%d")), page)
    files = {layout.effect_report.name: (None, page.encode())}
    exported = effect_report.export_tables(published, labels)
    for name, frame in exported.items():
        written = write_table(tables, name, frame, csv=published_csv_bytes(frame))
        files |= {f"{tables.name}/{name}.{ext}": (name, content) for ext, content in written.items()}
    write_bytes(layout.report_workbook, report_tables.workbook(exported, published))
    files[layout.report_workbook.name] = (None, layout.report_workbook.read_bytes())
    if "som_effects" in exported:  # SØM's own input form, from the controlled tables
        write_bytes(
            layout.som_workbook,
            xlsx_bytes(
                {
                    "SØM effekter": exported["som_effects"],
                    "Priser": exported.get("som_prices", pl.DataFrame()),
                }
            ),
        )
        files[layout.som_workbook.name] = ("som_effects", layout.som_workbook.read_bytes())
    files |= _public_monitoring(
        layout, inputs.monitoring, published, inputs.monitoring_problems, site_names=labels.site
    )
    for folder in (tables, layout.monitoring_tables(restricted=False)):
        for stale in folder.glob("*"):  # a table no longer published must not linger beside the new ones
            if stale.is_file() and f"{folder.name}/{stale.name}" not in files:
                stale.unlink()
    bundle = output_bundle(published, files)
    write_text(layout.output_checking, json.dumps(bundle, indent=1, ensure_ascii=False))
    headline = published.frames["estimates"].filter(
        (pl.col("dimension") == "all") & pl.col("outcome").is_in(HEADLINE_OUTCOMES)
    )
    meta |= {
        f"{r['design']}/{r['outcome']}": f"{r['estimate']:.4f}"
        for r in headline.iter_rows(named=True)
        if r["estimate"] is not None
    }
    path = dg.MetadataValue.path(str(layout.effect_report))
    return dg.MaterializeResult(metadata={"path": path, **meta}, check_results=[check])


def _public_monitoring(
    layout: LayoutResource,
    m: Monitoring | None,
    published: Controlled,
    problems: tuple[str, ...],
    *,
    site_names: Callable[[str], str] = str,
) -> dict[str, tuple[str | None, bytes]]:
    """Write the public monitoring page and its tables from the report's jointly controlled tables.

    Written here, after the audit passed, and not by ``monitoring_html``: a page controlled table by table
    beside the report would let a reader combine the two (shared margins, the stock identities). Returns the
    files for the output-checking bundle.
    """
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    folder, path = layout.monitoring_tables(restricted=False), layout.monitoring_page(restricted=False)
    files: dict[str, tuple[str | None, bytes]] = {}
    if m is None or "monitoring_stock" not in published.frames:
        html = monitoring_pages.render_unavailable(list(problems), generated_at=stamp, internal=False)
    else:
        shown = public_tables(m, published)
        html = monitoring_pages.render_monitoring_page(
            m,
            shown,
            generated_at=stamp,
            reconciliation=problems,
            site_names={site: site_names(site) for site in m.sites},
        )
        for name, frame in monitoring_pages.export_tables(shown).items():
            written = write_table(folder, name, frame, csv=csv_bytes(frame))
            source = {"monitoring_programme_stock": "monitoring_stock"}.get(name, name)
            table = source if source in published.frames else None
            files |= {f"{folder.name}/{name}.{ext}": (table, content) for ext, content in written.items()}
    write_text(path, html)
    return files | {path.name: (None, html.encode())}


#: Assets whose checks a steward can act on: the ingest and linkage groups (the methods checks, such as
#: balance after matching, are the analysts' and stay out of the steward view).
STEWARD_ASSETS = frozenset(
    key.to_user_string() for group in (ingest.assets, linkage.assets) for a in group for key in a.keys
)

#: Their asset checks, whose latest evaluation per partition the steward view shows (all are declared on
#: the assets themselves: ``tests/assets/test_reporting.py`` checks that no other check targets them).
STEWARD_CHECKS = tuple(
    key for group in (ingest.assets, linkage.assets) for a in group for key in a.check_keys
)


@dg.asset(
    group_name=REPORTING_GROUP,
    description="Per site and quarter: what is new, outstanding since when and corrected, with per-site "
    "feedback workbooks in Danish; only the checks a steward can act on (ingest, linkage).",
    kinds={"html", "xlsx"},
)
def steward_view_html(
    context: dg.AssetExecutionContext,
    layout: LayoutResource,
    code_lists: CodeLists,
    pseudonym_key: PseudonymKey,
    quarantine: pl.DataFrame,
    submission_stats: pl.DataFrame,
    received_files: pl.DataFrame,
    pseudonymised_courses: pl.DataFrame,
    course_conflicts: pl.DataFrame,
    unlinked_participants: pl.DataFrame,
    person_index: pl.LazyFrame,
) -> dg.MaterializeResult:
    """General page and workbooks (CPR masked) under reports/, restricted ones under restricted/reports/.

    The feedback memory (``layout.feedback_state``) is read, brought up to date and written back.
    """
    sites = code_lists.site_ids()
    try:  # the deadline is monitoring's delivery_days; a broken targets table must not stop the feedback
        targets = Targets.from_table(code_lists.table("monitoring_targets"), sites=sites)
    except ValueError as error:
        context.log.warning(f"no delivery deadline on the feedback: {error}")
        targets = None
    settings = feedback.FeedbackSettings.from_tables(
        code_lists.table("feedback"), targets=targets, sites=sites
    )
    checks = steward_view.steward_checks(
        latest_check_evaluations(context.instance, STEWARD_CHECKS), assets=STEWARD_ASSETS,
        danish=steward_checks_da.DANISH
    )
    pseudonyms = pseudonymised_courses["pseudonym"].unique().implode()
    registered = person_index.select("pseudonym").filter(pl.col("pseudonym").is_in(pseudonyms)).collect()
    inputs = feedback.FeedbackInputs(
        quarantine,
        received_files,
        submission_stats,
        pseudonymised_courses,
        registered,
        course_conflicts,
        unlinked_participants,
        code_lists.table("sites"),
        code_lists.table("delmaalgrupper"),
        ingest_failures(context.instance),
    )
    previous = pl.read_parquet(layout.feedback_state) if layout.feedback_state.exists() else None
    result = feedback.build_feedback(inputs, key=pseudonym_key.secret(), previous_state=previous)
    entries = inbox.account(layout.inbox, sites).to_frame()  # what the inbox holds besides ingested files
    outputs = steward_view.steward_outputs(
        result, checks, settings=settings, now=datetime.now(UTC), sites=sites, strays=entries
    )
    for restricted, page in outputs.pages.items():
        write_text(layout.steward_reports(restricted=restricted) / "steward_view.html", page)
    for book in outputs.workbooks:
        folder = layout.feedback_dir(restricted=book.restricted, language=book.language)
        write_bytes(folder / f"{book.site}.xlsx", book.xlsx)
        write_bytes(folder / book.csv_name, book.rows_csv)
    write_parquet(layout.feedback_state, result.state)
    counts = result.overview.select(pl.col("new", "outstanding", "resolved").sum()).row(0, named=True)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(layout.reports / "steward_view.html")),
            "workbooks": len(outputs.workbooks),
            "new_items": int(counts["new"]),
            "outstanding_items": int(counts["outstanding"]),
            "resolved_items": int(counts["resolved"]),
            "failed_steward_checks": checks.height,
            "unreadable_files": result.unreadable.height,
            "inbox_entries_to_check": entries.height,
        }
    )


assets = [effect_report_html, steward_view_html]
