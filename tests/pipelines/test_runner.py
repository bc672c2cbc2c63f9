"""``cti run``'s worker settings: how many partitions run side by side and with how many threads each."""

import os

import pytest

from pipelines import runner


def test_workers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTI_WORKERS", raising=False)
    monkeypatch.delenv("CTI_OUTCOME_WORKERS", raising=False)
    assert runner.partition_workers() == max(1, min(2, os.cpu_count() or 1))
    monkeypatch.setenv("CTI_OUTCOME_WORKERS", "3")  # the old name still works
    assert runner.partition_workers() == 3
    monkeypatch.setenv("CTI_WORKERS", "0")  # the new name wins; at least one worker
    assert runner.partition_workers() == 1
    monkeypatch.setenv("CTI_WORKERS", "two")
    with pytest.raises(ValueError, match="CTI_WORKERS must be a whole number"):
        runner.partition_workers()


def test_each_worker_gets_its_share_of_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in runner._THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # an explicit setting is left alone
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    with runner._thread_budget(4):
        assert os.environ["POLARS_MAX_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"] == "2"
        assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "POLARS_MAX_THREADS" not in os.environ and os.environ["OMP_NUM_THREADS"] == "7"


def test_a_partition_whose_worker_fails_is_reported_by_name(tmp_path) -> None:
    # a job the definitions do not have: each spawned worker raises, and the runner names the partition
    messages: list[str] = []
    got = list(runner._run_partitions(tmp_path, "no_such_job", ["employed", "bed_days"], {}, 2, messages.append))
    assert got == [("employed", False), ("bed_days", False)]
    assert any("no_such_job [employed] stopped" in m for m in messages)
    assert any("no_such_job [bed_days] stopped" in m for m in messages)
