"""``cti run``'s worker settings: how many partitions run side by side and with how many threads each."""

import os
import subprocess
import sys

import pytest

from pipelines import runner, worker
from pipelines.settings import Settings


def test_workers_come_from_the_settings() -> None:
    assert Settings.from_env({}).partition_workers() == max(1, min(2, os.cpu_count() or 1))
    # the old name still works
    assert Settings.from_env({"CTI_OUTCOME_WORKERS": "3"}).partition_workers() == 3
    # at least one
    assert Settings.from_env({"CTI_WORKERS": "0", "CTI_OUTCOME_WORKERS": "3"}).partition_workers() == 1
    with pytest.raises(ValueError, match="CTI_WORKERS must be a whole number"):
        Settings.from_env({"CTI_WORKERS": "two"})


def test_each_worker_gets_its_share_of_the_threads() -> None:
    assert worker.threads_per_worker(4, cpus=8) == 2 and worker.threads_per_worker(3, cpus=2) == 1
    # in a fresh process, init sizes every pool that was not set explicitly, before polars is imported
    code = ("import os; from pipelines import worker; worker.init(2); import polars; "
            "print(os.environ['POLARS_MAX_THREADS'], os.environ['OMP_NUM_THREADS'], "
            "polars.thread_pool_size())")
    env = {k: v for k, v in os.environ.items() if k not in worker.THREAD_VARIABLES} | {"OMP_NUM_THREADS": "7"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out == ["2", "7", "2"]


def test_a_partition_whose_worker_fails_is_reported_by_name(tmp_path) -> None:
    # a job the definitions do not have: each spawned worker raises, and the runner names the partition
    messages: list[str] = []
    settings = Settings.from_env({}, data_dir=tmp_path)
    got = list(runner._run_partitions(settings, "no_such_job", ["employed", "bed_days"], {}, 2,
                                      messages.append))
    assert [(r.key, r.ok) for r in got] == [("employed", False), ("bed_days", False)]
    assert any("no_such_job [employed] stopped" in m for m in messages)
    assert any("no_such_job [bed_days] stopped" in m for m in messages)
