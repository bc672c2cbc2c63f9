"""Operating ``cti`` as an analyst (and an attacker) would: keys, locks, signals, rotation, exit codes.

They run on the session's small mock world (``conftest.small_world``: 1,000 persons, three 2025Q1
partitions, made with the demo key); a test that changes data works on its own copy.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from analysis.ingest import pseudonym
from pipelines.audit import cpr_like

KEY_B = "operation-key-b-" + "fedcba9876543210" * 2
ID_B = pseudonym.key_id(KEY_B.encode())
UNFINISHED = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)


def _env(data: Path, key: str | None, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data.parent), "CTI_DATA_DIR": str(data),
           "GX_ANALYTICS_ENABLED": "False", "DAGSTER_DISABLE_TELEMETRY": "1", "CTI_WORKERS": "2", **extra}
    if key is not None:
        env["CTI_PSEUDONYM_KEY"] = key
    return env


def _cti(data: Path, *args: str, key: str | None, timeout: int = 900, **extra: str):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          env=_env(data, key, **extra), timeout=timeout)


def _instance(data: Path) -> dg.DagsterInstance:
    from pipelines.instance import get_instance
    from pipelines.layout import Layout

    return get_instance(Layout.at(data))


def _files(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def world(small_world: Path) -> Path:
    return small_world


@pytest.fixture(scope="module")
def key_a(small_world: Path) -> str:
    """The world's key (the demo key ``cti run --demo-key`` made), given through CTI_PSEUDONYM_KEY."""
    return (small_world / "restricted" / "demo_pseudonym.key").read_text()


@pytest.fixture
def id_a(key_a: str) -> str:
    return pseudonym.key_id(key_a.encode())


@pytest.fixture
def copy(world: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(world, target)
    return target


def test_ingest_only_consolidates_the_courses_and_says_so(copy: Path, key_a: str) -> None:
    courses = copy / "assets" / "courses.parquet"
    assert courses.exists()
    proc = _cti(copy, "run", "--ingest-only", "--quarter", "2025Q1", "--site", "aarhus", key=key_a)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ingest: 1/1 submission partitions ok" in proc.stdout
    assert "courses: consolidated (" in proc.stdout and "were not run" in proc.stdout
    assert "see the steward view" not in proc.stdout
    assert "report:" not in proc.stdout  # nothing this run did not rebuild is advertised
    assert f"courses: {courses}" in proc.stdout


@pytest.mark.parametrize("key", ["short", " " * 40, "x" * 40, "operation-key-c-0123456789abcdef0123 "])
def test_a_weak_key_stops_the_run_before_any_file_is_touched(tmp_path: Path, key: str) -> None:
    data = tmp_path / "data"
    delivered = data / "inbox" / "2024Q1" / "aarhus.csv"
    delivered.parent.mkdir(parents=True)
    delivered.write_bytes(b"CPR;Startdato;Delmaalgruppe\r\n6101901238;01-02-2024;GRL\r\n")
    before = _files(data)
    proc = _cti(data, "run", "--persons", "1000", key=key)
    assert proc.returncode == 2 and "is refused" in proc.stderr and "Traceback" not in proc.stderr
    assert key.strip() not in proc.stderr + proc.stdout or not key.strip()
    assert _files(data) == before  # nothing read into restricted/, archived, generated or written


def test_another_key_stops_before_writing_and_names_both_ids(world: Path, id_a: str) -> None:
    before = _files(world / "assets") | _files(world / "restricted")
    proc = _cti(world, "run", "--ingest-only", "--quarter", "2025Q1", "--site", "aarhus", key=KEY_B)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert id_a in proc.stderr and ID_B in proc.stderr and "cti rotate-key" in proc.stderr
    assert _files(world / "assets") | _files(world / "restricted") == before


def test_the_missing_key_message_does_not_invite_a_new_key(copy: Path, id_a: str) -> None:
    (copy / "restricted" / "demo_pseudonym.key").unlink()  # e.g. a clean-up removed the demo key
    for args in (("run",), ("run", "--demo-key")):
        proc = _cti(copy, *args, key=None)
        assert proc.returncode == 2 and id_a in proc.stderr, proc.stderr
        assert "token_hex" not in proc.stderr and "Do not generate a new one" in proc.stderr
    assert not (copy / "restricted" / "demo_pseudonym.key").exists()  # no new key was made


def test_the_key_can_be_rotated_in_one_command(copy: Path, key_a: str, id_a: str) -> None:
    import polars as pl

    (copy / "reports").mkdir(exist_ok=True)
    (copy / "reports" / "effect_report.html").write_text("made with the old key")
    wrong = _cti(copy, "rotate-key", "--old-key-id", "000000000000", "--ingest-only", key=KEY_B)
    assert wrong.returncode == 2 and id_a in wrong.stderr
    proc = _cti(copy, "rotate-key", "--old-key-id", id_a, "--ingest-only", key=KEY_B)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"key id {id_a} -> {ID_B}" in proc.stdout
    assert not (copy / "reports" / "effect_report.html").exists()  # derived outputs invalidated
    partitions = sorted((copy / "assets" / "pseudonymised_courses").rglob("*.parquet"))
    assert len(partitions) == 3  # the whole history again
    ids = pl.concat([pl.read_parquet(p, columns=["key_id"]) for p in partitions])["key_id"].unique()
    assert ids.to_list() == [ID_B]
    assert pl.read_parquet(copy / "assets" / "courses.parquet")["key_id"].unique().to_list() == [ID_B]
    old = _cti(copy, "run", "--ingest-only", "--quarter", "2025Q1", "--site", "aarhus", key=key_a)
    assert old.returncode == 2 and ID_B in old.stderr


def _descendants(session: int) -> list[int]:
    """Live (not zombie) processes of the session ``session``: the killed cti run and all it started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # fields[3]: session id
            found.append(int(stat.parent.name))
    return found


def _start_run(data: Path, key: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--ingest-only"],
                            env=_env(data, key), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    instance = _instance(data)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # wait until a worker is executing a Dagster run
        started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        if any(r.tags.get("cti/pid") not in (None, str(proc.pid)) for r in started):
            return proc
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("no worker started a run")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_stopped_run_leaves_no_worker_and_no_started_run(copy: Path, key_a: str,
                                                           sig: signal.Signals) -> None:
    proc = _start_run(copy, key_a)
    workers = [p for p in _descendants(proc.pid) if p != proc.pid]
    assert workers, "the run has worker processes"
    if sig == signal.SIGTERM:  # while it runs, a second command on the same data directory is refused
        second = _cti(copy, "run", "--ingest-only", key=key_a)
        assert second.returncode == 4 and f"pid {proc.pid}" in second.stderr, second.stderr
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while _descendants(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _descendants(proc.pid) == [], "workers outlived their parent"
    instance = _instance(copy)
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM
        assert "STOPPED by SIGTERM" in out and "Not finished: ingest_submission_job" in out, out
        assert "Traceback" not in err, err
        assert not instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED)))
    # the lock is free, runs left STARTED are marked failed at the start, and the next run works
    again = _cti(copy, "run", "--ingest-only", "--quarter", "2025Q1", "--site", "aarhus", key=key_a)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert not instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED)))
    stopped = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    assert stopped, "the interrupted runs are marked failed"
    from pipelines.run_status import failure_message

    reasons = [failure_message(instance, r.run_id) for r in stopped]
    assert all(("stopped" in r or "interrupted" in r or "ended before the run finished" in r)
               for r in reasons), reasons
    assert cpr_like(out + err + again.stdout + again.stderr) == []


def test_the_exit_codes_are_documented_in_the_help_and_the_readme() -> None:
    from pipelines import runner

    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True,
                         env={"COLUMNS": "200", "PATH": ""}, check=True).stdout
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code in (runner.EXIT_OK, runner.EXIT_PARTLY_FAILED, runner.EXIT_USAGE, runner.EXIT_STAGE_FAILED,
                 runner.EXIT_BUSY):
        assert f"| {code} |" in readme and f"{code} " in out
    assert "130 / 143" in out and "| 130 / 143 |" in readme


def test_cti_run_never_generates_a_mock_world_over_real_deliveries(tmp_path: Path) -> None:
    data = tmp_path / "data"
    delivered = data / "inbox" / "2024Q1" / "aarhus.csv"
    delivered.parent.mkdir(parents=True)
    content = b"CPR;Startdato;Delmaalgruppe\r\n6101901238;01-02-2024;GRL\r\n"
    delivered.write_bytes(content)
    proc = _cti(data, "run", "--persons", "1000", key=KEY_B)
    assert proc.returncode == 2, proc.stderr
    assert "the mock world did not write (2024Q1/aarhus.csv)" in proc.stderr, proc.stderr
    assert delivered.read_bytes() == content and not (data / "registers").exists()
    assert not (data / "restricted" / "received").exists()
