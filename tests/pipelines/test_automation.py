import os
import time
from pathlib import Path

import dagster as dg

from pipelines.automation import inbox_requests, quarterly_refresh
from pipelines.configuration import ConfigDir
from pipelines.partitions import submission_key

SITES = ConfigDir().site_ids()


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
    requests, cursor = inbox_requests(inbox, None, SITES)
    assert sorted(str(r.partition_key) for r in requests) == sorted(
        [str(submission_key("2024Q1", "aarhus")), str(submission_key("2024Q1", "odense"))]
    )
    # Nothing changed: nothing requested.
    again, cursor = inbox_requests(inbox, cursor, SITES)
    assert again == []
    # A resubmission (file replaced) and a new quarter are requested, nothing else.
    path = _drop(inbox, "2024Q1", "aarhus.csv", b"CPR;Startdato;Slutdato\n")
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))
    _drop(inbox, "2024Q2", "aarhus.xlsx", b"PK")
    changed, cursor = inbox_requests(inbox, cursor, SITES)
    assert sorted(str(r.partition_key) for r in changed) == sorted(
        [str(submission_key("2024Q1", "aarhus")), str(submission_key("2024Q2", "aarhus"))]
    )
    assert len({r.run_key for r in changed}) == 2


def test_sensor_runs_against_the_definitions(tmp_path: Path) -> None:
    from support import settings_for

    from pipelines.definitions import build_definitions
    from pipelines.resources import CodeLists, LayoutResource

    settings = settings_for(tmp_path / "data")
    _drop(settings.layout.inbox, "2024Q3", "randers.csv", b"CPR;Startdato\n")
    sensor = build_definitions(settings).resolve_sensor_def("inbox_sensor")
    instance = dg.DagsterInstance.ephemeral()
    resources = {"layout": LayoutResource(data_dir=str(settings.layout.root)), "code_lists": CodeLists()}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = sensor(context)
    assert [str(r.partition_key) for r in result.run_requests] == [str(submission_key("2024Q3", "randers"))]
    # the configured sites become dynamic partitions, so a new site needs only a row in sites.csv
    [added] = result.dynamic_partitions_requests
    assert list(added.partition_keys) == list(SITES)


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


def _order(outcomes: tuple[str, ...]):
    """The flow's stages, with a small outcome fan-out."""
    from pipelines import flow
    from pipelines.definitions import defs
    from pipelines.partitions import OUTCOME_EFFECTS_JOB

    return tuple(flow.Stage(s.job, fan_out=dg.StaticPartitionsDefinition(list(outcomes)),
                            own_process=s.own_process)
                 if s.job == OUTCOME_EFFECTS_JOB else s
                 for s in flow.stage_order(defs().get_repository_def()))


def test_downstream_chain_carries_a_refresh_through_to_the_report() -> None:
    from pipelines.automation import chain_requests
    from pipelines.partitions import ANALYSIS_JOB, EFFECTS_JOB, OUTCOME_EFFECTS_JOB, REPORT_JOB

    outcomes = ("employed", "self_support", "bed_days")
    order = _order(outcomes)
    instance = dg.DagsterInstance.ephemeral()
    linkage = _stand_in(ANALYSIS_JOB).execute_in_process(instance=instance,
                                                         tags={"cti/trigger": "quarterly_refresh"})
    requests, cursor = chain_requests(instance, None, order)
    assert [(r.job_name, r.run_key) for r in requests] == [(EFFECTS_JOB, f"{EFFECTS_JOB}:{linkage.run_id}")]
    chain = {"cti/chain": linkage.run_id}

    # Nothing new finished: nothing requested (the cursor moved on).
    assert chain_requests(instance, cursor, order)[0] == []

    _stand_in(EFFECTS_JOB).execute_in_process(instance=instance, tags=chain)
    requests, cursor = chain_requests(instance, cursor, order)
    assert sorted(r.partition_key for r in requests) == sorted(outcomes)
    assert {r.job_name for r in requests} == {OUTCOME_EFFECTS_JOB}
    assert all(r.tags == {**chain, "cti/trigger": "downstream_chain"} for r in requests)

    ok, bad = _stand_in(OUTCOME_EFFECTS_JOB), _stand_in(OUTCOME_EFFECTS_JOB, fail=True)
    ok.execute_in_process(instance=instance, tags={**chain, "dagster/partition": "employed"})
    bad.execute_in_process(instance=instance, raise_on_error=False,
                           tags={**chain, "dagster/partition": "bed_days"})
    requests, cursor = chain_requests(instance, cursor, order)
    assert requests == []  # self_support is still outstanding: the report waits
    ok.execute_in_process(instance=instance, tags={**chain, "dagster/partition": "self_support"})
    requests, cursor = chain_requests(instance, cursor, order)
    # despite bed_days
    assert [(r.job_name, r.run_key) for r in requests] == [(REPORT_JOB, f"{REPORT_JOB}:{linkage.run_id}")]


def test_a_successful_ingest_starts_a_chain_at_linkage() -> None:
    from pipelines.automation import chain_requests
    from pipelines.partitions import ANALYSIS_JOB, INGEST_JOB

    instance = dg.DagsterInstance.ephemeral()
    ingest = _stand_in(INGEST_JOB).execute_in_process(instance=instance, tags={"cti/trigger": "inbox_sensor"})
    _stand_in(INGEST_JOB, fail=True).execute_in_process(instance=instance, raise_on_error=False)
    requests, _ = chain_requests(instance, None, _order(("employed",)))
    assert [(r.job_name, r.tags["cti/chain"]) for r in requests] == [(ANALYSIS_JOB, ingest.run_id)]


def test_downstream_chain_leaves_cti_run_and_failed_linkage_alone() -> None:
    from pipelines.automation import chain_requests
    from pipelines.partitions import ANALYSIS_JOB

    instance = dg.DagsterInstance.ephemeral()
    _stand_in(ANALYSIS_JOB).execute_in_process(instance=instance, tags={"cti/trigger": "cti run"})
    _stand_in(ANALYSIS_JOB, fail=True).execute_in_process(instance=instance, raise_on_error=False)
    assert chain_requests(instance, None, _order(("employed",)))[0] == []


def test_the_flow_order_comes_from_the_asset_graph() -> None:
    from pipelines import flow
    from pipelines.definitions import defs

    order = [s.job for s in flow.stage_order(defs().get_repository_def(), reversed(flow.STAGES))]
    assert order == ["ingest_submission_job", "linkage_job", "effects_job", "outcome_effects_job",
                     "report_job"]


def test_every_sensor_and_schedule_is_defined() -> None:
    from pipelines.definitions import defs

    definitions = defs()
    assert {s.name for s in definitions.sensors} == {"inbox_sensor", "downstream_chain"}
    assert [s.name for s in definitions.schedules] == ["quarterly_refresh"]


def test_downstream_chain_sensor_evaluates_against_the_definitions() -> None:
    from pipelines.definitions import defs
    from pipelines.partitions import EFFECTS_JOB

    definitions = defs()
    instance = dg.DagsterInstance.ephemeral()
    _stand_in("linkage_job").execute_in_process(instance=instance, tags={"cti/trigger": "quarterly_refresh"})
    sensor = definitions.resolve_sensor_def("downstream_chain")
    with dg.build_sensor_context(instance=instance, definitions=definitions) as context:
        result = sensor(context)
    assert [r.job_name for r in result.run_requests] == [EFFECTS_JOB] and result.cursor


def test_the_sensor_knows_what_cti_run_already_ingested(tmp_path: Path) -> None:
    """Switching the inbox sensor on after `make run` requests only files that were not ingested."""
    from support import settings_for

    from pipelines import runner
    from pipelines.automation import ingested_check
    from pipelines.instance import get_instance
    from pipelines.partitions import INGEST_JOB, sync_sites

    settings = settings_for(tmp_path / "data", persons=1_000)
    inbox_dir, archive = settings.layout.inbox, settings.layout.received
    good = b"CPR;Startdato;Delmaalgruppe\r\n6101901238;01-02-2024;GRL\r\n"
    _drop(inbox_dir, "2024Q1", "aarhus.csv", good)
    _drop(inbox_dir, "2024Q1", "odense.csv", good)
    instance = get_instance(settings.layout)
    sync_sites(instance, SITES)
    _, outcome = runner.execute(settings, INGEST_JOB, str(submission_key("2024Q1", "aarhus")), {})
    assert outcome.success, outcome.message
    requests, cursor = inbox_requests(inbox_dir, None, SITES, ingested=ingested_check(instance, archive))
    assert [str(r.partition_key) for r in requests] == [str(submission_key("2024Q1", "odense"))]
    # a corrected file for the ingested partition is new again
    path = _drop(inbox_dir, "2024Q1", "aarhus.csv", good + b"7102851236;01-03-2024;GRL\r\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    again, _ = inbox_requests(inbox_dir, cursor, SITES, ingested=ingested_check(instance, archive))
    assert [str(r.partition_key) for r in again] == [str(submission_key("2024Q1", "aarhus"))]
    # the run cti made is a run of the cti code location (the UI lists it under its job) naming its process
    [run] = instance.get_runs(filters=dg.RunsFilter(job_name=INGEST_JOB,
                                                    tags={".dagster/repository": "__repository__@cti"}))
    assert run.remote_job_origin.location_name == "cti" and run.tags["cti/pid"] == str(os.getpid())
