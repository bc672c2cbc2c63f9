"""Programme monitoring: quarterly counts per site against targets, and its page in two variants."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from analysis.publish import monitoring as mon
from analysis.publish import monitoring_page as page
from analysis.publish.safe_export import csv_bytes
from expectations import monitoring as checks
from pipelines.partitions import MONITORING_GROUP
from pipelines.resources import CodeLists, LayoutResource
from pipelines.run_status import ingest_failures
from pipelines.storage import OPTIONAL_KEY, write_table, write_text

_OUTS = {
    "programme_monitoring": "Per site (and ALL) and quarter: new starts, active, ended completed/early, "
    "open by phase.",
    "monitoring_mix": "New starts and open courses by site, quarter and delmålgruppe.",
    "monitoring_endings": "Ended courses by site, quarter, the phase they ended in and completion.",
    "monitoring_targets": "Distinct citizens started per target scope and quarter, against "
    "monitoring_targets.csv.",
    "monitoring_delivery": "Per site and expected quarter: file on time/late/missing, resubmissions, "
    "quarantine and "
    "link rates, flags.",
    "monitoring_status": "What stopped or spoils the monitoring (an incomplete targets table, counts that "
    "do not "
    "reconcile with courses); empty when all is well.",
}
STATUS = pl.Schema({"kind": pl.String, "message": pl.String})


@dg.multi_asset(
    group_name=MONITORING_GROUP,
    # OPTIONAL: the effect report reads these when they exist and says "not available" when they do not
    outs={name: dg.AssetOut(description=text, metadata={OPTIONAL_KEY: True}) for name, text in _OUTS.items()},
    check_specs=checks.SPECS,
)
def programme_monitoring(
    context: dg.AssetExecutionContext,
    code_lists: CodeLists,
    courses: pl.DataFrame,
    submission_log: pl.DataFrame,
    submission_stats: pl.DataFrame,
    link_rate: pl.DataFrame,
):
    """Monitor the programme by quarter; an incomplete targets table is a failed check, not a crash."""
    sites = code_lists.table("sites")
    table = code_lists.table("monitoring_targets")
    problems = mon.target_problems(table, sites=tuple(sites["site"]))
    if problems:  # the reports still run and say why the monitoring is missing
        context.log.error("monitoring_targets.csv is not usable: " + "; ".join(problems))
        for name in list(_OUTS)[:-1]:
            yield dg.Output(pl.DataFrame(), output_name=name)
        yield dg.Output(
            pl.DataFrame({"kind": ["targets"] * len(problems), "message": problems}, schema=STATUS),
            output_name="monitoring_status",
        )
        yield checks.targets_complete(problems, rows=table.height)
        yield checks.reconciles(["not computed: the targets table is incomplete"], courses=courses.height)
        return
    result = mon.monitor(
        courses,
        submissions=submission_log,
        stats=submission_stats,
        link_rate=link_rate,
        sites=sites,
        targets=mon.Targets.from_table(table, sites=tuple(sites["site"])),
        failures=ingest_failures(context.instance),
    )
    mismatches = mon.reconcile(result, courses)
    latest = result.flows.filter((pl.col("site") == mon.PROGRAMME) & (pl.col("quarter") == result.through))
    yield dg.Output(
        result.flows,
        output_name="programme_monitoring",
        metadata={
            "through": result.through,
            "courses": courses.height,
            "open_now": int(latest["open_at_end"].item()),
        },
    )
    yield dg.Output(result.mix, output_name="monitoring_mix")
    yield dg.Output(result.endings, output_name="monitoring_endings")
    yield dg.Output(result.targets, output_name="monitoring_targets")
    slipping = mon.slipping_sites(result).filter(pl.col("slipping"))["site"].to_list()
    yield dg.Output(
        result.delivery,
        output_name="monitoring_delivery",
        metadata={"slipping": ", ".join(slipping) or "none"},
    )
    yield dg.Output(
        pl.DataFrame({"kind": ["reconciliation"] * len(mismatches), "message": mismatches}, schema=STATUS),
        output_name="monitoring_status",
    )
    yield checks.targets_complete([], rows=table.height)
    yield checks.reconciles(mismatches, courses=courses.height)


def rebuild(code_lists: CodeLists, frames: dict[str, pl.DataFrame | None]) -> mon.Monitoring | None:
    """Rebuild the monitoring from its tables (None when it was not computed: see monitoring_status)."""
    if any(frame is None for frame in frames.values()) or not frames["programme_monitoring"].height:
        return None
    sites = code_lists.table("sites")
    return mon.Monitoring.from_frames(
        flows=frames["programme_monitoring"],
        mix=frames["monitoring_mix"],
        endings=frames["monitoring_endings"],
        targets=frames["monitoring_targets"],
        delivery=frames["monitoring_delivery"],
        sites=tuple(sites["site"]),
        plan=mon.Targets.from_table(code_lists.table("monitoring_targets"), sites=tuple(sites["site"])),
    )


@dg.asset(
    group_name=MONITORING_GROUP,
    description="The internal programme-monitoring page (exact counts) and its tables under "
    "restricted/reports/. The public page is written by effect_report_html, from the tables it controls "
    "jointly with the report's, and only when its disclosure audit passes.",
    kinds={"html"},
)
def monitoring_html(
    layout: LayoutResource,
    code_lists: CodeLists,
    programme_monitoring: pl.DataFrame | None,
    monitoring_mix: pl.DataFrame | None,
    monitoring_endings: pl.DataFrame | None,
    monitoring_targets: pl.DataFrame | None,
    monitoring_delivery: pl.DataFrame | None,
    monitoring_status: pl.DataFrame | None,
) -> dg.MaterializeResult:
    """Write the internal page and its tables (a monitoring that could not be computed says why)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    m = rebuild(
        code_lists,
        {
            "programme_monitoring": programme_monitoring,
            "monitoring_mix": monitoring_mix,
            "monitoring_endings": monitoring_endings,
            "monitoring_targets": monitoring_targets,
            "monitoring_delivery": monitoring_delivery,
        },
    )
    problems = [] if monitoring_status is None else monitoring_status["message"].to_list()
    folder = layout.monitoring_tables(restricted=True)
    if m is None:
        html = page.render_unavailable(problems, generated_at=stamp, internal=True)
    else:
        tables = page.internal_tables(m)
        sites = code_lists.table("sites")
        html = page.render_monitoring_page(
            m,
            tables,
            generated_at=stamp,
            reconciliation=problems,
            site_names=dict(zip(sites["site"], sites["name"], strict=True)),
        )
        for name, frame in page.export_tables(tables).items():
            write_table(folder, name, frame, csv=csv_bytes(frame))
    path = layout.monitoring_page(restricted=True)
    write_text(path, html)
    return dg.MaterializeResult(
        metadata={"internal_path": dg.MetadataValue.path(str(path)), "problems": len(problems)}
    )


assets = [programme_monitoring, monitoring_html]
