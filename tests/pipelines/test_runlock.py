"""One cti command per data directory; a lock or run left behind by a dead process is cleaned up, not kept."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines import runlock
from pipelines.layout import Layout

HOLD = """
import sys, time
from pipelines import runlock
from pipelines.layout import Layout
with runlock.RunLock(Layout.at(sys.argv[1]), command="cti run --test"):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(root: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_command_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        with pytest.raises(runlock.Busy) as busy, runlock.RunLock(Layout.at(tmp_path), command="cti run"):
            pass
        assert busy.value.holder.pid == holder.pid and "cti run --test" in str(busy.value)
        assert f"kill -TERM {holder.pid}" in str(busy.value)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_lock_held_by_a_killed_process_is_released_and_reported(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    with runlock.RunLock(Layout.at(tmp_path), command="cti run") as lock:  # no one has to delete anything
        assert lock.previous is not None and lock.previous.pid == holder.pid
    with runlock.RunLock(Layout.at(tmp_path), command="cti run") as lock:  # released cleanly this time
        assert lock.previous is None


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_of_a_process_that_is_gone_are_marked_failed_with_the_reason() -> None:
    instance = dg.DagsterInstance.ephemeral()

    @dg.op
    def noop() -> None:
        return None

    @dg.job
    def stand_in() -> None:
        noop()

    def started(tags: dict[str, str]) -> dg.DagsterRun:
        run = instance.create_run_for_job(stand_in, tags=tags)
        instance.handle_run_event(run.run_id, dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name=stand_in.name))
        return instance.get_run_by_id(run.run_id)

    dead = started(runlock.process_tags(_dead_pid()))
    alive = started(runlock.process_tags())
    reused = started({**runlock.process_tags(), runlock.PID_START_TAG: "1"})  # same pid, another process
    foreign = started({})  # launched by the UI's run launcher: not ours to judge
    assert {instance.get_run_by_id(r.run_id).status for r in (dead, alive, reused, foreign)} == {
        dg.DagsterRunStatus.STARTED}
    marked = runlock.mark_stale_runs(instance)
    assert len(marked) == 2 and all("stand_in" in m for m in marked)
    status = {r.run_id: instance.get_run_by_id(r.run_id).status for r in (dead, alive, reused, foreign)}
    assert status == {dead.run_id: dg.DagsterRunStatus.FAILURE, alive.run_id: dg.DagsterRunStatus.STARTED,
                      reused.run_id: dg.DagsterRunStatus.FAILURE, foreign.run_id: dg.DagsterRunStatus.STARTED}
    from pipelines.run_status import failure_message

    assert "ended before the run finished" in failure_message(instance, dead.run_id)


def test_process_identity() -> None:
    assert runlock.alive(os.getpid(), runlock.process_start(os.getpid()))
    assert not runlock.alive(_dead_pid(), None)
    assert not runlock.alive(os.getpid(), "1")  # the same pid with another start time is another process
