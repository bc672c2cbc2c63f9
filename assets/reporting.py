"""Reports: the researchers' effect report and the data stewards' view (HTML plus machine-readable tables)."""

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from analysis.publish import effect_report, steward_view
from analysis.publish.disclosure import Rules
from analysis.publish.output_check import output_bundle
from analysis.publish.safe_export import write_csv, write_xlsx
from analysis.schema import HEADLINE_OUTCOMES, OUTCOMES
from pipelines.checks_log import latest_check_evaluations
from pipelines.partitions import INGEST_JOB, REPORTING_GROUP, SITE_IDS, quarter_label
from pipelines.resources import ProjectPaths, read_config
from pipelines.run_status import failed_partitions
from pipelines.storage import write_parquet, write_text


def _code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent.parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(stats: pl.DataFrame, received: pl.DataFrame, failures: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per current submission, plus a 'missing' row for each active site without a file in a quarter.

    ``failures`` (quarter, site, message: see :func:`ingest_failures`) marks partitions whose latest file could
    not be ingested: the row says "failed" with the reason, and any numbers shown are from the last good file.
    """
    files = received.filter(~pl.col("superseded")).join(
        stats.select("sha256", "quarter", "site", "version", "rows_in", "clean", "quarantined", "duplicates"),
        on=["sha256", "quarter", "site", "version"], how="left", validate="1:1",
    ).select(
        "site", "quarter", file_name="filename", received_at="received", rows_in="rows_in", rows_clean="clean",
        rows_quarantined="quarantined", rows_duplicate="duplicates",
        status=pl.when(pl.col("readable")).then(pl.lit("ok")).otherwise(pl.lit("failed")), reason="note",
    )
    sites = read_config("sites").select("site", joined=pl.col("joined").cast(pl.String))
    quarters = files.select("quarter").unique()
    expected = sites.join(quarters, how="cross").filter(
        pl.col("quarter") >= pl.col("joined").str.slice(0, 4) + pl.lit("Q") + ((pl.col("joined").str.slice(5, 2).cast(pl.Int32) - 1) // 3 + 1).cast(pl.String)
    )
    missing = expected.join(files, on=["site", "quarter"], how="anti").select(
        "site", "quarter", status=pl.lit("missing"), reason=pl.lit("no file received"))
    out = pl.concat([files, missing], how="diagonal_relaxed")
    if failures is not None and failures.height:
        failed = failures.select("site", "quarter", failure=pl.col("message"))
        out = out.join(failed, on=["site", "quarter"], how="full", coalesce=True, validate="1:1").with_columns(
            status=pl.when(pl.col("failure").is_not_null()).then(pl.lit("failed")).otherwise(pl.col("status")),
            reason=pl.when(pl.col("failure").is_null()).then(pl.col("reason"))
            .when(pl.col("file_name").is_null()).then(pl.col("failure"))
            .otherwise(pl.lit("latest file could not be ingested: ") + pl.col("failure")
                       + pl.lit(" (rows shown are from the last good file)")),
        ).drop("failure")
    return out.sort("site", "quarter")


def outcome_status(instance: dg.DagsterInstance, estimates: pl.DataFrame) -> pl.DataFrame:
    """Planned outcomes whose estimates are not current: the latest run of their partition failed, or none exist.

    A failed outcome partition does not stop the report; this table makes the gap visible in it by name.
    """
    present = set(estimates["outcome"].unique().to_list()) if "outcome" in estimates.columns else set()
    failures = failed_partitions(instance)
    rows = []
    for outcome in OUTCOMES:
        if outcome in failures:
            stale = "; the estimates shown are from an earlier successful run" if outcome in present else ""
            failure = failures[outcome]
            rows.append((outcome, "failed", f"run {failure.run_id[:8]}: {failure.message[:200]}{stale}"))
        elif outcome not in present:
            rows.append((outcome, "missing", "never materialised (no estimates)"))
    return pl.DataFrame(rows, schema={"outcome": pl.String, "status": pl.String, "reason": pl.String}, orient="row")


def ingest_failures(instance: dg.DagsterInstance) -> pl.DataFrame:
    """Submission partitions whose latest ingest run failed: quarter label, site, run id and the reason."""
    rows = []
    for key, failure in failed_partitions(instance, job_name=INGEST_JOB).items():
        quarter, _, site = key.partition("|")
        try:
            label = quarter_label(quarter)
        except ValueError:
            continue
        rows.append((label, site, failure.run_id, failure.message))
    return pl.DataFrame(rows, schema={"quarter": pl.String, "site": pl.String, "run_id": pl.String, "message": pl.String},
                        orient="row")


#: Blocking check on the report: the attacker's audit of every published table together (issue #19).
DISCLOSURE_AUDIT = "disclosure_audit"


def disclosure_rules() -> Rules:
    """The disclosure rules from the packaged config table (the one place they are read)."""
    return Rules.from_table(read_config("disclosure_rules"))


@dg.asset(
    group_name=REPORTING_GROUP,
    deps=["effect_estimates", "event_study", "matched_means", "group_time_att", "staggered_aggregates"],
    description="Self-contained HTML effect report for researchers (disclosure-controlled) and its tables as CSV/parquet.",
    kinds={"html"},
    check_specs=[dg.AssetCheckSpec(DISCLOSURE_AUDIT, asset="effect_report_html", blocking=True,
                                   description="No count below 5 persons can be derived from all published tables together "
                                               "(LP/MILP attack); nothing is written when it fails.")],
)
def effect_report_html(
    context: dg.AssetExecutionContext, balance: pl.DataFrame, before_after: pl.DataFrame, submission_stats: pl.DataFrame,
    received_files: pl.DataFrame, courses: pl.DataFrame, paths: ProjectPaths,
) -> dg.MaterializeResult:
    """Read every outcome partition that exists (a failed outcome is reported missing, not fatal)."""
    def table(name: str) -> pl.DataFrame:
        files = sorted((paths.root / "assets" / name).glob("*.parquet"))
        return pl.read_parquet(files) if files else pl.DataFrame()

    truth_file = paths.world / "truth.json"
    truth = json.loads(truth_file.read_text())["effects"] if truth_file.exists() else None
    estimates = table("effect_estimates")
    inputs = effect_report.ReportInputs(
        estimates=estimates, event_study=table("event_study"), matched_means=table("matched_means"),
        balance=balance, group_time=table("group_time_att"), aggregates=table("staggered_aggregates"), before_after=before_after,
        provenance=provenance(submission_stats, received_files, ingest_failures(context.instance)),
        run_info={"run_id": context.run_id, "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  "code_version": _code_version(), "key_id": ", ".join(sorted(courses["key_id"].unique().drop_nulls().to_list())),
                  "register_source": os.environ.get("CTI_REGISTER_SOURCE", "mock"),
                  "register_extracts": os.environ.get("CTI_EXTRACTS_DIR") or "mock world (generated by the project)"},
        truth=truth, headline_outcomes=HEADLINE_OUTCOMES, outcome_status=outcome_status(context.instance, estimates),
    )
    if inputs.outcome_status.height:
        context.log.warning("outcomes without current estimates: " + ", ".join(inputs.outcome_status["outcome"]))
    published = effect_report.publish(inputs, rules=disclosure_rules())
    audit, out = published.audit, paths.reports
    meta = {"disclosure_audit": audit.summary(), "cells_published": audit.cells_checked,
            "cells_suppressed": audit.cells_suppressed,
            "outcomes_not_current": ", ".join(inputs.outcome_status["outcome"]) or "none"}
    check = dg.AssetCheckResult(check_name=DISCLOSURE_AUDIT, passed=audit.passed, severity=dg.AssetCheckSeverity.ERROR,
                                metadata={"summary": audit.summary(), "problems": "; ".join(audit.problems[:20]) or "none"})
    if not audit.passed:  # nothing leaves: the previous report (if any) stays as it was
        context.log.error("disclosure audit failed, report not written: " + "; ".join(audit.problems[:5]))
        return dg.MaterializeResult(metadata=meta, check_results=[check])
    page = effect_report.render_effect_report(inputs, published=published)
    write_text(out / "effect_report.html", page)
    write_text(out / f"effect_report_{datetime.now(UTC).strftime('%Y-%m-%d')}.html", page)
    files = {"effect_report.html": (None, page.encode())}
    for name, frame in effect_report.export_tables(published).items():
        write_parquet(out / "tables" / f"{name}.parquet", frame)
        write_csv(frame, out / "tables" / f"{name}.csv")
        files |= {f"tables/{name}.{ext}": (name, (out / "tables" / f"{name}.{ext}").read_bytes()) for ext in ("csv", "parquet")}
    for stale in (out / "tables").glob("*"):  # a table no longer published must not linger beside the new ones
        if stale.is_file() and f"tables/{stale.name}" not in files:
            stale.unlink()
    write_text(out / "output_checking.json", json.dumps(output_bundle(published, files), indent=1, ensure_ascii=False))
    headline = published.frames["estimates"].filter((pl.col("dimension") == "all") & pl.col("outcome").is_in(HEADLINE_OUTCOMES))
    meta |= {f"{r['design']}/{r['outcome']}": f"{r['estimate']:.4f}" for r in headline.iter_rows(named=True) if r["estimate"] is not None}
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(out / "effect_report.html")), **meta},
                                check_results=[check])


@dg.asset(
    group_name=REPORTING_GROUP,
    description="Expectation failures and quarantined rows per site and quarter, with per-site feedback files.",
    kinds={"html"},
)
def steward_view_html(context: dg.AssetExecutionContext, quarantine: pl.DataFrame, submission_stats: pl.DataFrame,
                      paths: ProjectPaths) -> dg.MaterializeResult:
    """General page (no CPR) under reports/, restricted page and feedback with CPR under restricted/reports/."""
    checks = latest_check_evaluations(context.instance)
    unreadable = ingest_failures(context.instance)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for restricted, base in ((False, paths.reports), (True, paths.restricted / "reports")):
        tables = steward_view.steward_tables(quarantine, submission_stats, checks, restricted=restricted, unreadable=unreadable)
        write_text(base / "steward_view.html", steward_view.render_steward_page(tables, restricted=restricted, generated_at=stamp))
        for site in SITE_IDS:
            sheets = steward_view.feedback_sheets(tables, site)
            if any(frame.height for frame in sheets.values()):
                write_xlsx(sheets, base / "feedback" / f"{site}.xlsx")
                write_csv(sheets["Rækker"], base / "feedback" / f"{site}_rows.csv")
    general = steward_view.steward_tables(quarantine, submission_stats, checks, restricted=False, unreadable=unreadable)
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(paths.reports / "steward_view.html")),
                                          "quarantined_rows": general.rows.height, "failed_checks": general.check_failures.height,
                                          "unreadable_files": general.unreadable.height})


assets = [effect_report_html, steward_view_html]
