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


def _stand_in(name: str, fail: bool = False) -> dg.JobDefinition:
    """A job with one of the pipeline's job names, so the chain logic sees real run records."""

    @dg.op(name=f"{name}_op")
    def _op() -> None:
        if fail:
            raise RuntimeError("stand-in failure")

    @dg.job(name=name)
    def _job() -> None:
        _op()

    return _job


def test_downstream_chain_carries_a_refresh_through_to_the_report() -> None:
    from pipelines.automation import chain_requests
    from pipelines.jobs import ANALYSIS_JOB, EFFECTS_JOB, OUTCOME_EFFECTS_JOB, REPORT_JOB

    outcomes = ("employed", "self_support", "bed_days")
    instance = dg.DagsterInstance.ephemeral()
    linkage = _stand_in(ANALYSIS_JOB).execute_in_process(instance=instance, tags={"cti/trigger": "quarterly_refresh"})
    requests, cursor = chain_requests(instance, None, outcomes=outcomes)
    assert [(r.job_name, r.run_key) for r in requests] == [(EFFECTS_JOB, f"{EFFECTS_JOB}:{linkage.run_id}")]
    chain = {"cti/chain": linkage.run_id}

    # Nothing new finished: nothing requested (the cursor moved on).
    assert chain_requests(instance, cursor, outcomes=outcomes)[0] == []

    _stand_in(EFFECTS_JOB).execute_in_process(instance=instance, tags=chain)
    requests, cursor = chain_requests(instance, cursor, outcomes=outcomes)
    assert sorted(r.partition_key for r in requests) == sorted(outcomes)
    assert {r.job_name for r in requests} == {OUTCOME_EFFECTS_JOB} and all(r.tags == {**chain, "cti/trigger": "downstream_chain"} for r in requests)

    ok, bad = _stand_in(OUTCOME_EFFECTS_JOB), _stand_in(OUTCOME_EFFECTS_JOB, fail=True)
    ok.execute_in_process(instance=instance, tags={**chain, "dagster/partition": "employed"})
    bad.execute_in_process(instance=instance, raise_on_error=False, tags={**chain, "dagster/partition": "bed_days"})
    requests, cursor = chain_requests(instance, cursor, outcomes=outcomes)
    assert requests == []  # self_support is still outstanding: the report waits
    ok.execute_in_process(instance=instance, tags={**chain, "dagster/partition": "self_support"})
    requests, cursor = chain_requests(instance, cursor, outcomes=outcomes)
    assert [(r.job_name, r.run_key) for r in requests] == [(REPORT_JOB, f"{REPORT_JOB}:{linkage.run_id}")]  # despite bed_days


def test_downstream_chain_leaves_cti_run_and_failed_linkage_alone() -> None:
    from pipelines.automation import chain_requests
    from pipelines.jobs import ANALYSIS_JOB

    instance = dg.DagsterInstance.ephemeral()
    _stand_in(ANALYSIS_JOB).execute_in_process(instance=instance, tags={"cti/trigger": "cti run"})
    _stand_in(ANALYSIS_JOB, fail=True).execute_in_process(instance=instance, raise_on_error=False)
    assert chain_requests(instance, None, outcomes=("employed",))[0] == []


def test_every_sensor_and_schedule_is_defined() -> None:
    from pipelines.definitions import defs

    assert {s.name for s in defs.sensors} == {"inbox_sensor", "analysis_after_ingest", "downstream_chain"}
    assert [s.name for s in defs.schedules] == ["quarterly_refresh"]


def test_downstream_chain_sensor_evaluates_against_the_definitions() -> None:
    from pipelines.definitions import defs
    from pipelines.jobs import EFFECTS_JOB

    instance = dg.DagsterInstance.ephemeral()
    _stand_in("linkage_job").execute_in_process(instance=instance, tags={"cti/trigger": "quarterly_refresh"})
    sensor = defs.resolve_sensor_def("downstream_chain")
    with dg.build_sensor_context(instance=instance) as context:
        result = sensor(context)
    assert [r.job_name for r in result.run_requests] == [EFFECTS_JOB] and result.cursor
