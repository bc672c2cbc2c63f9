"""The report learns which outcome partitions failed from the instance, not from a side channel."""

import dagster as dg
import polars as pl

from analysis.schema import OUTCOMES
from pipelines.run_status import outcome_status


@dg.op
def _boom() -> None:
    raise RuntimeError("singular design matrix")


@dg.op
def _fine() -> None:
    return None


@dg.job
def _fail_job() -> None:
    _boom()


@dg.job
def _ok_job() -> None:
    _fine()


def test_failed_and_missing_outcomes_are_named() -> None:
    instance = dg.DagsterInstance.ephemeral()
    fail, ok = _fail_job, _ok_job
    fail.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/partition": "employed"})
    ok.execute_in_process(instance=instance, tags={"dagster/partition": "self_support"})
    # bed_days: succeeded earlier, failed last -> its old estimates are flagged as stale.
    ok.execute_in_process(instance=instance, tags={"dagster/partition": "bed_days"})
    fail.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/partition": "bed_days"})
    estimates = pl.DataFrame({"outcome": [o for o in OUTCOMES if o != "employed"]})
    status = {row["outcome"]: row for row in outcome_status(instance, estimates).iter_rows(named=True)}
    assert set(status) == {"employed", "bed_days"}
    assert status["employed"]["status"] == "failed" and "earlier" not in status["employed"]["reason"]
    assert status["bed_days"]["status"] == "failed"
    assert "earlier successful run" in status["bed_days"]["reason"]
    everything = pl.DataFrame({"outcome": list(OUTCOMES)})
    assert outcome_status(dg.DagsterInstance.ephemeral(), pl.DataFrame()).height == len(OUTCOMES)
    assert outcome_status(dg.DagsterInstance.ephemeral(), everything).height == 0


@dg.op
def _stopped_inside_user_code() -> None:
    try:  # a stop signal landing in a library call, re-raised by the code around it
        raise KeyboardInterrupt
    except KeyboardInterrupt as stop:
        raise RuntimeError("while reading the file") from stop


@dg.job
def _stopped_job() -> None:
    _stopped_inside_user_code()


def test_a_stop_inside_user_code_reads_as_interrupted_not_as_its_wrapper() -> None:
    from pipelines.run_status import INTERRUPTED, failure_message

    instance = dg.DagsterInstance.ephemeral()
    result = _stopped_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    assert failure_message(instance, result.run_id) == INTERRUPTED
    failed = _fail_job.execute_in_process(instance=instance, raise_on_error=False)
    assert "singular design matrix" in failure_message(instance, failed.run_id)


def test_a_run_that_failed_after_the_stop_reads_as_interrupted_whatever_its_error() -> None:
    import time

    from pipelines import runlock
    from pipelines.run_status import INTERRUPTED, failure_message
    from pipelines.runner import _mark_unfinished

    instance = dg.DagsterInstance.ephemeral()
    tags = {runlock.INVOCATION_TAG: "inv-1"}
    before = _fail_job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    stop = time.time()
    after = _fail_job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    _mark_unfinished(instance, "inv-1", "stopped: test", stop)
    assert failure_message(instance, after.run_id) == INTERRUPTED  # its error came from the stop
    assert "singular design matrix" in failure_message(instance, before.run_id)  # a failure of its own
