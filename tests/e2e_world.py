"""The end-to-end world: a small mock world with hostile deliveries planted, run through the real CLI.

Two such runs (the module's shared run and the determinism test's second one) take most of the end-to-end
test's time, so the session starts them in the background as soon as it has collected a test that uses
them (``conftest.pytest_collection_finish``): they run while the unit tests use the other core.
``result`` waits for one; ``stop_all`` ends what is left (by process group).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

CANARY_KEY = "canary-key-7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e"
HEADER = "CPR;Startdato;Slutdato;Delmålgruppe;Gennemført"
#: Hostile deliveries planted beside the mock world's files (synthetic CPR numbers: day + 60).
HEADERLESS = ("2024Q1", "randers.csv")  # a new partition whose only file has no header row
CPR_NAMED = ("2024Q1", "esbjerg_6701901236.csv")  # a CPR in the file name; rows with spaced and partial CPRs
CONTROL = ("2024Q2", "aalborg.csv")  # control bytes after the first 4 KB
#: Inbox entries that are not submissions: each must be listed for stewards, none may crash the run.
ODD_ENTRIES = ("misc/aarhus.csv", "2025Q5/aarhus.csv", "backup_2025Q1/aarhus.csv", "2023Q4/aarhus.csv",
               "2024Q1/aarhus .csv", "2024Q1/nowhere.csv")
#: Rows whose messages quote a CPR written with a space, cut short or one digit too long (all quarantined).
HOSTILE_ROWS = (
    "610190 12381;01-02-2024;;GRL;",
    "690489-33;01-02-2024;;GRL;",
    "710285-2346;01-02-2024;;610190 1238;",
)
#: What none of the general outputs may show (a general output shows them masked to their shape).
RAW_VALUES = ("610190 12381", "690489-33", "610190 1238", "6701901236")
#: Quarantined rows the hostile files add to the mock world's bad rows.
HOSTILE_BAD_ROWS = len(HOSTILE_ROWS)


def _rows(first_day: int, n: int, note: str | None = None) -> list[str]:
    extra = "" if note is None else f";{note}"  # a sixth column (Bemærkning) the pipeline does not read
    return [
        f"{first_day + i % 28:02d}0{1 + i % 9}85-{(3 * i) % 10_000:04d};01-02-2024;;GRL;{extra}"
        for i in range(n)
    ]


def plant_hostile_inbox(inbox: Path) -> None:
    """The hostile deliveries of the issue, with fixed modification times (reruns are comparable)."""
    files = {
        HEADERLESS: "\r\n".join(_rows(61, 5)).encode("utf-8"),
        CPR_NAMED: "\r\n".join([HEADER, *_rows(62, 3), *HOSTILE_ROWS]).encode("utf-8"),
        CONTROL: "\r\n".join([HEADER + ";Bemærkning", *_rows(63, 40, "x" * 120)]).encode("utf-8"),
    }
    control = bytearray(files[CONTROL])
    control[5_000:5_000] = b"\x00\x01\x1b"
    files[CONTROL] = bytes(control)
    for (quarter, name), content in files.items():
        path = inbox / quarter / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, (1_735_000_000, 1_735_000_000))
    for relative in ODD_ENTRIES:
        path = inbox / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"CPR;Startdato;Delmaalgruppe\r\n6101901238;01-02-2024;GRL\r\n")


def run_with_hostile_inbox(data: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data.parent), "CTI_DATA_DIR": str(data),
           "CTI_PSEUDONYM_KEY": CANARY_KEY, "GX_ANALYTICS_ENABLED": "False"}
    made = _run([sys.executable, "-m", "pipelines.cli", "mock-world", "--persons", "8000", "--seed", "3"],
                env, 1200)
    assert made.returncode == 0, made.stderr[-3000:]
    plant_hostile_inbox(data / "inbox")
    return _run([sys.executable, "-m", "pipelines.cli", "run"], env, 1800)


#: The background runs of this session: name -> future of (data directory, the finished process).
_RUNS: dict[str, Future] = {}
_GROUPS: set[int] = set()
_LOCK = threading.Lock()


def _run(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run in its own process group, so that ``stop_all`` can end it and its workers."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as proc:
        with _LOCK:
            _GROUPS.add(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        finally:
            with _LOCK:
                _GROUPS.discard(proc.pid)
        return subprocess.CompletedProcess(command, proc.returncode, out, err)


def start(name: str, data: Path) -> None:
    """Start the hostile-inbox run ``name`` into ``data`` in a background thread (once per name)."""
    if name in _RUNS:
        return
    future: Future = Future()
    _RUNS[name] = future
    data.parent.mkdir(parents=True, exist_ok=True)

    def work() -> None:
        try:
            future.set_result((data, run_with_hostile_inbox(data)))
        except BaseException as error:  # noqa: BLE001 - handed to the waiting test
            future.set_exception(error)

    threading.Thread(target=work, name=f"e2e-{name}", daemon=True).start()


def result(name: str, base: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """Wait for run ``name`` (starting it under ``base`` first when the session did not)."""
    start(name, base / "data")
    return _RUNS[name].result()


def stop_all() -> None:
    """End every background run still going (its whole process group)."""
    with _LOCK:
        groups = list(_GROUPS)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
