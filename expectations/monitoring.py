"""Checks of the programme monitoring: its counts reconcile with ``courses``; its targets table is complete.

These are plain checks on the monitoring's own invariants (:func:`analysis.publish.monitoring.reconcile`,
:func:`analysis.publish.monitoring.target_problems`), not Great Expectations suites: what they test is an
identity between two assets and the completeness of a configuration table.
"""

from __future__ import annotations

import dagster as dg

from expectations import names

ASSET = dg.AssetKey("programme_monitoring")

RECONCILES_SPEC = dg.AssetCheckSpec(
    name=names.MONITORING_RECONCILES,
    asset=ASSET,
    blocking=False,
    description="Every monitoring count (starts, ended, open, by phase and delmålgruppe, programme = sum of "
    "sites) reconciles exactly with the courses asset.",
)
TARGETS_SPEC = dg.AssetCheckSpec(
    name=names.MONITORING_TARGETS_COMPLETE,
    asset=ASSET,
    blocking=False,
    description="monitoring_targets.csv is complete: the course plan, the delivery deadline and the quality "
    "thresholds are all there, each with a source.",
)
SPECS = [RECONCILES_SPEC, TARGETS_SPEC]


def _result(name: str, problems: list[str], **metadata: object) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=ASSET,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "problems": len(problems),
            "first_problems": "; ".join(problems[:10]) or "none",
            **metadata,
        },
    )


def reconciles(problems: list[str], /, *, courses: int) -> dg.AssetCheckResult:
    """Fail (ERROR) when any monitoring count disagrees with the courses asset."""
    return _result(names.MONITORING_RECONCILES, problems, courses=courses)


def targets_complete(problems: list[str], /, *, rows: int) -> dg.AssetCheckResult:
    """Fail (ERROR) when the targets table is incomplete (the monitoring is then not computed)."""
    return _result(names.MONITORING_TARGETS_COMPLETE, problems, rows=rows)
