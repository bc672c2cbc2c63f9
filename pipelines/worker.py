"""Start-up of ``cti run``'s worker processes: thread pools sized before polars or BLAS are imported.

This module imports nothing heavy on purpose: a spawned worker runs :func:`init` first, before the task
that imports polars, numpy and Dagster, so the sizes below take effect in that process only.
"""

from __future__ import annotations

import os

#: Thread-pool sizes a process reads at start-up (polars, OpenBLAS/MKL/OpenMP under numpy and scipy).
THREAD_VARIABLES = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads_per_worker(workers: int, /, *, cpus: int | None = None) -> int:
    """Each of ``workers`` processes gets an equal share of the cores (at least one thread)."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, workers))


def init(threads: int) -> None:
    """Give this (fresh) worker process ``threads`` threads per pool, unless a size was set explicitly."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
