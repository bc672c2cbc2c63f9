"""How Dagster 1.13 treats check results yielded from an asset body (verified in-process).

Finding: a failed check whose spec is ``blocking=True`` and whose result has ``severity=ERROR`` makes the
step fail with ``DagsterAssetCheckFailedError`` *after* the asset's output was stored and its
materialisation recorded; downstream assets in the same run are skipped. A WARN failure does not block.
"""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from expectations.adapter import Gx, Suite, check_results, check_specs
from expectations.ingest import conservation_check, conservation_spec

NOT_NULL = Gx("ExpectColumnValuesToNotBeNull", column="x")
BLOCKING = Suite("x_not_null", [NOT_NULL], blocking=True, description="x is never null")
WARNING = Suite("x_not_null_warn", [NOT_NULL], blocking=False)

BAD = pl.DataFrame({"x": [1, None, 3]})
GOOD = pl.DataFrame({"x": [1, 2, 3]})


def _pair(frame: pl.DataFrame, suites: list[Suite], **asset_kwargs):
    specs = check_specs("upstream", suites, partitions_def=asset_kwargs.get("partitions_def"))

    @dg.asset(check_specs=specs, io_manager_key="mem", **asset_kwargs)
    def upstream():
        yield dg.Output(frame)
        yield from check_results(frame, suites)

    @dg.asset(io_manager_key="mem", **asset_kwargs)
    def downstream(upstream: pl.DataFrame) -> pl.DataFrame:
        return upstream

    return [upstream, downstream]


RESOURCES = {"mem": dg.InMemoryIOManager()}


def _materialised(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def _evaluations(result: dg.ExecuteInProcessResult) -> list:
    return list(result.get_asset_check_evaluations())


def test_failing_blocking_check_skips_downstream() -> None:
    result = dg.materialize(_pair(BAD, [BLOCKING]), resources=RESOURCES, raise_on_error=False)

    assert not result.success
    assert _materialised(result) == {"upstream"}  # the output is stored, then the step fails
    (evaluation,) = _evaluations(result)
    assert (evaluation.check_name, evaluation.passed, evaluation.blocking) == ("x_not_null", False, True)
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    started = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START}
    assert started == {"upstream"}  # downstream is abandoned: "Dependencies for step ... failed"
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "blocking asset check" in failure.event_specific_data.error.message


def test_failing_blocking_check_raises_by_default() -> None:
    with pytest.raises(dg.DagsterError, match="blocking asset check failed"):
        dg.materialize(_pair(BAD, [BLOCKING]), resources=RESOURCES)


def test_failing_warning_check_does_not_block() -> None:
    result = dg.materialize(_pair(BAD, [WARNING]), resources=RESOURCES)

    assert result.success
    assert _materialised(result) == {"upstream", "downstream"}
    (evaluation,) = _evaluations(result)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN


def test_passing_blocking_check_lets_downstream_run() -> None:
    result = dg.materialize(_pair(GOOD, [BLOCKING]), resources=RESOURCES)

    assert result.success
    assert _materialised(result) == {"upstream", "downstream"}


QUARTERS = dg.StaticPartitionsDefinition(["2024-01-01", "2024-04-01"])
SITES = dg.StaticPartitionsDefinition(["aarhus", "odense"])
SUBMISSIONS = dg.MultiPartitionsDefinition({"quarter": QUARTERS, "site": SITES})
KEY = dg.MultiPartitionKey({"quarter": "2024-01-01", "site": "aarhus"})


@pytest.mark.parametrize(("frame", "blocks"), [(BAD, True), (GOOD, False)])
def test_blocking_works_for_multi_partitioned_assets(frame: pl.DataFrame, blocks: bool) -> None:
    assets = _pair(frame, [BLOCKING], partitions_def=SUBMISSIONS)
    result = dg.materialize(assets, resources=RESOURCES, partition_key=KEY, raise_on_error=False)

    assert result.success is not blocks
    expected = {"upstream"} if blocks else {"upstream", "downstream"}
    assert _materialised(result) == expected
    (evaluation,) = _evaluations(result)
    assert evaluation.partition == str(KEY)  # only because the spec carries the partitions_def


def test_without_partitions_def_the_evaluation_loses_its_partition() -> None:
    @dg.asset(
        check_specs=check_specs("upstream", [BLOCKING]), partitions_def=SUBMISSIONS, io_manager_key="mem"
    )
    def upstream():
        yield dg.Output(GOOD)
        yield from check_results(GOOD, [BLOCKING])

    result = dg.materialize([upstream], resources=RESOURCES, partition_key=KEY)

    (evaluation,) = _evaluations(result)
    assert evaluation.partition is None


def test_conservation_check_blocks_a_multi_asset() -> None:
    @dg.multi_asset(
        outs={
            "validated_rows": dg.AssetOut(io_manager_key="mem"),
            "quarantine": dg.AssetOut(io_manager_key="mem"),
        },
        check_specs=[*check_specs("validated_rows", [WARNING]), conservation_spec("validated_rows")],
    )
    def validate():
        yield dg.Output(GOOD, output_name="validated_rows")
        yield dg.Output(GOOD.head(0), output_name="quarantine")
        yield from check_results(GOOD, [WARNING], asset_key="validated_rows")
        yield conservation_check(rows_in=5, clean=3, quarantined=1, duplicates=0, asset_key="validated_rows")

    @dg.asset(io_manager_key="mem")
    def pseudonymised(validated_rows: pl.DataFrame) -> pl.DataFrame:
        return validated_rows

    result = dg.materialize([validate, pseudonymised], resources=RESOURCES, raise_on_error=False)

    assert not result.success
    assert "pseudonymised" not in _materialised(result)
    checks = {e.check_name: e for e in _evaluations(result)}
    assert checks["row_conservation"].passed is False
    assert checks["row_conservation"].metadata["unexpected_count"].value == 1
    assert checks["x_not_null_warn"].passed is True
