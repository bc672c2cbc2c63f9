"""Workers never outlive their parent, however the parent ends (no Dagster needed to show it)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

HELPER = """
from pipelines import worker


def init(threads, parent):
    worker.die_with_parent = lambda parent: False  # no death signal: the watchdog alone must be enough
    worker.init(threads, parent)
"""

PARENT = """
import multiprocessing, os, signal, sys, time
from concurrent.futures import ProcessPoolExecutor
from pipelines import runner, worker
pool = runner._Pool(1)
if sys.argv[2] == "watchdog-only":
    sys.path.insert(0, sys.argv[3])
    import helper_watchdog
    pool.executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=helper_watchdog.init, initargs=(1, os.getpid()))
future = pool.executor.submit(time.sleep, 120)
while not getattr(pool.executor, "_processes", None):
    time.sleep(0.05)
[child] = pool.executor._processes.values()
time.sleep(1.0)  # the worker is inside its task
print(child.pid, flush=True)
how = sys.argv[1]
if how == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
if how == "exit":
    os._exit(3)  # a crash that skips every clean-up
with pool:
    raise RuntimeError("crash")  # an unhandled error: the pool is stopped on the way out
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(("how", "mode"), [("sigkill", "both"), ("exit", "both"), ("raise", "both"),
                                           ("sigkill", "watchdog-only")])
def test_a_worker_ends_with_its_parent(how: str, mode: str, tmp_path: Path) -> None:
    (tmp_path / "helper_watchdog.py").write_text(HELPER)
    proc = subprocess.run([sys.executable, "-c", PARENT, how, mode, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, start_new_session=True)
    worker_pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 15
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker_pid), f"worker {worker_pid} outlived its parent ({how}, {mode})"


def test_the_death_signal_is_armed_on_linux() -> None:
    code = "import os; from pipelines import worker; print(worker.die_with_parent(os.getppid()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "True"
