import os
import time
from pathlib import Path

import dagster as dg

from pipelines.automation import inbox_requests, quarterly_refresh
from pipelines.partitions import submission_key


def _drop(inbox: Path, quarter: str, name: str, content: bytes) -> Path:
    path = inbox / quarter / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_sensor_requests_only_new_or_changed_partitions(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, "2024Q1", "aarhus.csv", b"CPR;Startdato\n")
    _drop(inbox, "2024Q1", "odense.csv", b"CPR;Startdato\n")
    _drop(inbox, "2024Q1", "unknown_site.csv", b"x")  # no configured site: not a partition
    requests, cursor = inbox_requests(inbox, None)
    assert sorted(str(r.partition_key) for r in requests) == sorted(
        [str(submission_key("2024Q1", "aarhus")), str(submission_key("2024Q1", "odense"))]
    )
    # Nothing changed: nothing requested.
    again, cursor = inbox_requests(inbox, cursor)
    assert again == []
    # A resubmission (file replaced) and a new quarter are requested, nothing else.
    path = _drop(inbox, "2024Q1", "aarhus.csv", b"CPR;Startdato;Slutdato\n")
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))
    _drop(inbox, "2024Q2", "aarhus.xlsx", b"PK")
    changed, cursor = inbox_requests(inbox, cursor)
    assert sorted(str(r.partition_key) for r in changed) == sorted(
        [str(submission_key("2024Q1", "aarhus")), str(submission_key("2024Q2", "aarhus"))]
    )
    assert len({r.run_key for r in changed}) == 2


def test_sensor_runs_against_the_definitions(cti_env: Path) -> None:
    from pipelines.definitions import defs
    from pipelines.resources import ProjectPaths

    _drop(cti_env / "inbox", "2024Q3", "randers.csv", b"CPR;Startdato\n")
    sensor = defs.resolve_sensor_def("inbox_sensor")
    with dg.build_sensor_context(resources={"paths": ProjectPaths(data_dir=str(cti_env))}) as context:
        result = sensor(context)
    assert [str(r.partition_key) for r in result.run_requests] == [str(submission_key("2024Q3", "randers"))]


def test_quarterly_schedule_is_defined() -> None:
    assert quarterly_refresh.cron_schedule == "0 6 15 2,5,8,11 *"
