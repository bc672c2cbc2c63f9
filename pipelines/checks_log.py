"""Read the latest asset-check evaluations from the Dagster event log (for the data stewards' view)."""

from __future__ import annotations

import dagster as dg
import polars as pl
from dagster._core.events import DagsterEventType

CHECK_COLUMNS = {
    "asset": pl.String,
    "check": pl.String,
    "partition": pl.String,
    "passed": pl.Boolean,
    "severity": pl.String,
    "blocking": pl.Boolean,
    "description": pl.String,
    "unexpected_count": pl.Int64,
    "element_count": pl.Int64,
    "run_id": pl.String,
}


def _number(metadata: dict, key: str) -> int | None:
    value = metadata.get(key)
    raw = getattr(value, "value", value)
    return int(raw) if isinstance(raw, int | float) else None


def latest_check_evaluations(instance: dg.DagsterInstance) -> pl.DataFrame:
    """One row per (asset, check, partition): its most recent evaluation, counts only (never values)."""
    # the storage's own reader: DagsterInstance.get_event_records is deprecated (and warns) in Dagster 1.13
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION), ascending=True
    )
    latest: dict[tuple[str, str, str], dict] = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        metadata = dict(evaluation.metadata or {})
        key = (evaluation.asset_key.to_user_string(), evaluation.check_name, evaluation.partition or "")
        latest[key] = {
            "asset": key[0],
            "check": key[1],
            "partition": key[2],
            "passed": evaluation.passed,
            "severity": evaluation.severity.value,
            "blocking": bool(evaluation.blocking),
            "description": evaluation.description,
            "unexpected_count": _number(metadata, "unexpected_count"),
            "element_count": _number(metadata, "element_count"),
            "run_id": record.event_log_entry.run_id,
        }
    return pl.DataFrame(list(latest.values()), schema=CHECK_COLUMNS).sort("asset", "check", "partition")
