"""The steward view's check rows: each partition's latest evaluation, read without scanning the history."""

from pathlib import Path

import dagster as dg
import pytest

from pipelines.checks_log import latest_check_evaluations

PARTS = dg.StaticPartitionsDefinition(["a", "b", "c"])
CHECK = dg.AssetCheckKey(dg.AssetKey("thing"), "thing_ok")
#: What each partition does in the next run: "pass", "fail" (the check fails) or "raise" (the asset fails).
PLAN: dict[str, str] = {}


@dg.asset(partitions_def=PARTS,
          check_specs=[dg.AssetCheckSpec("thing_ok", asset="thing", partitions_def=PARTS)])
def thing(context: dg.AssetExecutionContext):
    what = PLAN.get(context.partition_key, "pass")
    if what == "raise":
        raise RuntimeError("unreadable file")
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        passed=what == "pass", metadata={"unexpected_count": 0 if what == "pass" else 3, "element_count": 9},
        description=f"run {PLAN['run']}")])


def _run(instance: dg.DagsterInstance, run: int, plan: dict[str, str]) -> None:
    """Materialise the partitions ``plan`` names (each as it says), every partition when it is empty."""
    PLAN.clear()
    PLAN.update(plan, run=str(run))
    for key in plan or PARTS.get_partition_keys():
        dg.materialize([thing], instance=instance, partition_key=key, raise_on_error=False)


@pytest.fixture
def instance(tmp_path: Path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def test_each_partition_shows_its_latest_evaluation_and_an_older_one_when_its_last_run_failed_first(
        instance: dg.DagsterInstance) -> None:
    _run(instance, 1, {})
    _run(instance, 2, {"a": "fail"})
    _run(instance, 3, {"b": "raise", "c": "pass"})  # b's check is planned in run 3 but never evaluated
    rows = {r["partition"]: r for r in latest_check_evaluations(instance, [CHECK]).iter_rows(named=True)}
    assert set(rows) == {"a", "b", "c"}
    assert rows["a"]["passed"] is False and rows["a"]["description"] == "run 2"
    assert rows["b"]["passed"] is True and rows["b"]["description"] == "run 1"  # the last one b got
    assert rows["c"]["description"] == "run 3" and rows["c"]["element_count"] == 9
    _run(instance, 4, {"c": "fail"})
    rows = {r["partition"]: r for r in latest_check_evaluations(instance, [CHECK]).iter_rows(named=True)}
    assert rows["c"]["passed"] is False and rows["c"]["unexpected_count"] == 3
    assert {(r["asset"], r["check"]) for r in rows.values()} == {("thing", "thing_ok")}


def test_the_reader_never_scans_the_event_history(instance: dg.DagsterInstance,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _run(instance, 1, {"a": "pass", "b": "raise", "c": "pass"})
    _run(instance, 2, {"b": "raise"})  # b never evaluated at all: no row, and no scan to find that out

    def scan(*args, **kwargs):  # the run-sharded scan whose cost grows with every run ever made
        raise AssertionError("the event history was scanned")

    monkeypatch.setattr(instance.event_log_storage, "get_event_records", scan)
    frame = latest_check_evaluations(instance, [CHECK, dg.AssetCheckKey(dg.AssetKey("other"), "never_run")])
    assert frame["partition"].to_list() == ["a", "c"]
