"""Read the latest asset-check evaluations from the Dagster event log (for the data stewards' view)."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
import polars as pl
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

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


#: Executions that ended in an evaluation (a planned check whose run failed first has none).
_EVALUATED = frozenset({AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED})
#: Extra rows read with a check's newest evaluations (cheap; spares a lookup when a partition was re-run).
PAGE_SLACK = 16


def _number(metadata: dict, key: str) -> int | None:
    value = metadata.get(key)
    raw = getattr(value, "value", value)
    return int(raw) if isinstance(raw, int | float) else None


def _row(key: dg.AssetCheckKey, partition: str | None, record) -> dict:  # noqa: ANN001
    evaluation = record.event.dagster_event.event_specific_data
    metadata = dict(evaluation.metadata or {})
    return {
        "asset": key.asset_key.to_user_string(),
        "check": key.name,
        "partition": partition or "",
        "passed": evaluation.passed,
        "severity": evaluation.severity.value,
        "blocking": bool(evaluation.blocking),
        "description": evaluation.description,
        "unexpected_count": _number(metadata, "unexpected_count"),
        "element_count": _number(metadata, "element_count"),
        "run_id": record.run_id,
    }


def latest_check_evaluations(instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey], /,
                             ) -> pl.DataFrame:
    """One row per (asset, check, partition) of ``check_keys``: its most recent evaluation, counts only.

    Read from the instance's index of check executions, so the cost does not grow with the instance's
    history: per check, the partitions it has run on, then one page of its newest evaluations (one per
    partition when every partition was evaluated in its latest run, the usual case), then one indexed
    lookup for each partition whose newest execution never got evaluated (its run failed first), where
    the last evaluation it did get is older.
    """
    storage = instance.event_log_storage
    rows = []
    for key in dict.fromkeys(check_keys):
        partitions = {info.partition_key for info in storage.get_asset_check_partition_info([key])}
        if not partitions:
            continue
        found: dict[str | None, object] = {}
        for record in storage.get_asset_check_execution_history(key, limit=len(partitions) + PAGE_SLACK,
                                                                status=_EVALUATED):
            found.setdefault(record.partition, record)
        for partition in partitions - found.keys():
            older = storage.get_asset_check_execution_history(
                key, limit=1, status=_EVALUATED, partition_filter=PartitionKeyFilter(key=partition))
            if older:
                found[partition] = older[0]
        rows.extend(_row(key, partition, record) for partition, record in found.items()
                    if record.event is not None and record.event.dagster_event is not None)
    return pl.DataFrame(rows, schema=CHECK_COLUMNS).sort("asset", "check", "partition")
