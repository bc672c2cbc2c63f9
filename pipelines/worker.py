"""Start-up of ``cti run``'s worker processes: thread pools sized first, and tied to the life of the parent.

This module imports nothing heavy on purpose: a spawned worker runs :func:`init` first, before the task
that imports polars, numpy and Dagster, so the sizes below take effect in that process only.

A worker never outlives the ``cti run`` that started it, however the parent ends (SIGTERM, SIGINT, SIGKILL,
a crash):

* on Linux the kernel sends the worker SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
* a watchdog thread checks the parent pid every half second (the portable net, and the fallback when the
  signal cannot be delivered), and ends the worker when the parent is gone;
* SIGTERM or SIGINT while a Dagster run executes is Dagster's interrupt (the run is marked failed); the
  watchdog then ends the process after :data:`GRACE_SECONDS` even if a step is stuck in native code. An
  idle worker ends at once, quietly.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

#: Thread-pool sizes a process reads at start-up (polars, OpenBLAS/MKL/OpenMP under numpy and scipy).
THREAD_VARIABLES = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: How long a worker whose parent is gone may take to record its run as failed before it is ended.
GRACE_SECONDS = 2.5
#: How often the watchdog looks at the parent.
POLL_SECONDS = 0.5
#: Exit status of a worker ended because its parent is gone.
ORPHANED = 75

_PR_SET_PDEATHSIG = 1
_state = {"parent": None, "busy": False}


def threads_per_worker(workers: int, /, *, cpus: int | None = None) -> int:
    """Each of ``workers`` processes gets an equal share of the cores (at least one thread)."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, workers))


def die_with_parent(parent: int, /) -> bool:
    """Ask the kernel to send this process SIGTERM when ``parent`` dies (Linux); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        ok = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    return ok


def _end(status: int) -> None:
    os._exit(status)


def _on_stop(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT outside a Dagster run (Dagster handles both while a run executes): end quietly."""
    if _state["busy"]:
        raise KeyboardInterrupt
    _end(128 + signum)


def _watch(parent: int) -> None:
    while True:
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent:
            break
    try:  # let a running Dagster run record the interrupt, then end whatever it is doing
        os.kill(os.getpid(), signal.SIGINT)
    except OSError:
        pass
    time.sleep(GRACE_SECONDS)
    _end(ORPHANED)


def _quiet_interrupts(unraisable) -> None:  # noqa: ANN001 - sys.UnraisableHookArgs
    """Drop the interrupt a stop raises inside a garbage-collection callback; print any other as Python does.

    Dagster's handler raises the interrupt wherever the signal lands.
    """
    error = unraisable.exc_value
    if isinstance(error, KeyboardInterrupt) or type(error).__name__ == "DagsterExecutionInterruptedError":
        return
    sys.__unraisablehook__(unraisable)


def busy(flag: bool, /) -> None:
    """Mark whether the worker is executing a task (a stop signal then interrupts instead of ending it)."""
    _state["busy"] = flag


def init(threads: int, parent: int | None = None) -> None:
    """Prepare a (fresh) worker: ``threads`` per pool unless set explicitly, and no life beyond ``parent``."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    if parent is None:
        return
    _state["parent"] = parent
    die_with_parent(parent)
    signal.signal(signal.SIGTERM, _on_stop)
    signal.signal(signal.SIGINT, _on_stop)
    sys.unraisablehook = _quiet_interrupts
    if os.getppid() != parent:  # the parent died before the death signal was armed
        _end(ORPHANED)
    threading.Thread(target=_watch, args=(parent,), name="cti-parent-watchdog", daemon=True).start()
