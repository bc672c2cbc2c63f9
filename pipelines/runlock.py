"""One ``cti`` command per data directory at a time; no Dagster run left STARTED by a process that is gone.

* :class:`RunLock` is an exclusive ``flock`` on ``Layout.run_lock``, held for the life of the command. The
  kernel drops it the moment the holding process ends, however it ends (``kill -9`` included), so a lock is
  never left for an analyst to delete. The file says who holds it (pid, host, command, since when); a file
  that still names a holder when the lock is free means that holder died without cleaning up, and the next
  command says so.
* Every run a ``cti`` process executes carries :func:`process_tags` (pid, the pid's start time, host).
  :func:`mark_stale_runs` marks runs whose process is gone as failed, with the reason, at the next start:
  a killed run never stays STARTED in the UI.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.layout import Layout

PID_TAG = "cti/pid"
PID_START_TAG = "cti/pid_start"
HOST_TAG = "cti/host"
#: The ``cti`` command that created a run (one id per invocation): what a stopped command must clean up.
INVOCATION_TAG = "cti/invocation"


def process_start(pid: int, /) -> str | None:
    """Return when process ``pid`` started (clock ticks since boot, from /proc); None when there is none.

    Together with the pid this names one process: a pid reused by a later process has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""  # no /proc (not Linux): the pid exists, its start time is unknown
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in parentheses may contain spaces


def alive(pid: int, start: str | None, /) -> bool:
    """Whether the process ``pid`` that started at ``start`` still runs (a zombie counts as gone)."""
    now = process_start(pid)
    if now is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = "?"
    return state != "Z" and (not start or not now or now == start)


def process_tags(pid: int | None = None, /) -> dict[str, str]:
    """Tags naming the process that executes a run, for :func:`mark_stale_runs`."""
    pid = os.getpid() if pid is None else pid
    return {PID_TAG: str(pid), PID_START_TAG: process_start(pid) or "", HOST_TAG: socket.gethostname()}


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or last held) a data directory's run lock."""

    pid: int
    host: str
    command: str
    since: str
    pid_start: str = ""

    def describe(self) -> str:
        """One line for the operator."""
        return f"`{self.command}` (pid {self.pid} on {self.host}, since {self.since})"


class Busy(RuntimeError):
    """Another ``cti`` command holds the data directory's run lock."""

    def __init__(self, root: Path, holder: Holder | None) -> None:
        who = holder.describe() if holder else "another cti command"
        stop = (f" or stop it with `kill -TERM {holder.pid}`"
                if holder and holder.host == socket.gethostname() else "")
        super().__init__(f"{who} is using {root}; wait for it to finish{stop}. Two runs on one data "
                         "directory would overwrite each other's outputs.")
        self.holder = holder


def _holder(text: str) -> Holder | None:
    try:
        data = json.loads(text)
        return Holder(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]),
                      str(data.get("pid_start", "")))
    except (ValueError, KeyError, TypeError):
        return None


class RunLock:
    """Exclusive use of a data directory by one ``cti`` command (a context manager).

    Entering raises :class:`Busy` when another live command holds the lock; :attr:`previous` is the holder
    that ended without releasing it (killed or crashed), if any, so the caller can say so.
    """

    def __init__(self, layout: Layout, /, *, command: str) -> None:
        self.path = layout.run_lock
        self.root = layout.root
        self.command = command
        self.previous: Holder | None = None
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise Busy(self.root, _holder(text)) from None
            raise
        # a holder that died holding it
        self.previous = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
              "since": datetime.now(UTC).isoformat(timespec="seconds"),
              "pid_start": process_start(os.getpid()) or ""}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty file: released cleanly
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def mark_stale_runs(instance, /) -> list[str]:  # noqa: ANN001 - a dg.DagsterInstance (imported lazily)
    """Mark runs whose executing ``cti`` process is gone as failed; return one line per run marked.

    Only runs with :func:`process_tags` on this host are judged (runs the UI launched are the daemon's).
    """
    import dagster as dg

    unfinished = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                  dg.DagsterRunStatus.CANCELING]
    host = socket.gethostname()
    marked = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=unfinished)):
        run = record.dagster_run
        pid = run.tags.get(PID_TAG)
        if not pid or not pid.isdigit() or run.tags.get(HOST_TAG) != host:
            continue
        if alive(int(pid), run.tags.get(PID_START_TAG)):
            continue
        partition = run.tags.get("dagster/partition")
        what = f"{run.job_name}" + (f" [{partition}]" if partition else "")
        instance.report_run_failed(
            run, message=f"the process that ran it (pid {pid}) ended before the run finished (stopped or "
                         "crashed); marked failed by the next cti command. Rerun the partition or `cti run`.")
        marked.append(f"{what}, run {run.run_id[:8]}")
    return marked
