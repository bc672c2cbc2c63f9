"""The flow of the pipeline: which jobs are stages, and (from the asset graph) in which order they run.

``STAGES`` says only what the asset graph cannot: how each stage's job runs (once, or once per partition of
its fan-out) and where ``cti run`` executes it. The order is never written down: :func:`stage_order`
derives it from the asset graph (a stage follows every stage whose assets its assets read). Both drivers of
the flow read it from here:

* ``cti run`` (``pipelines.runner``) walks the stages in order;
* the ``downstream_chain`` sensor (``pipelines.automation``) asks :func:`next_requests` what follows each
  finished run, so a refresh started anywhere (the inbox sensor, the quarterly schedule, a launch in the UI)
  is carried through to the reports.

A stage that fans out tolerates failed partitions (an unreadable file, a failed outcome): the next stage
runs on what succeeded and the report names what is missing. A failed unpartitioned stage stops the flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from pipelines.partitions import (
    ANALYSIS_JOB,
    EFFECTS_JOB,
    INGEST_JOB,
    OUTCOME_EFFECTS_JOB,
    OUTCOME_PARTITIONS,
    REPORT_JOB,
    SUBMISSIONS,
)

#: Runs that belong to one pass through the flow share this tag (the id of the run that started it).
CHAIN_TAG = "cti/chain"
#: Who drives a run's chain: ``cti run`` drives its own runs in order, so the chain sensor leaves them alone.
DRIVER_TAG = "cti/trigger"
CLI_DRIVER = "cti run"
PARTITION_TAG = "dagster/partition"
FINISHED = frozenset({dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of the flow: a job, run once or once per partition of ``fan_out``."""

    job: str
    #: The job runs once per partition of this definition (None: once).
    fan_out: dg.PartitionsDefinition | None = None
    #: ``cti run`` executes the stage in a fresh process, so its memory is returned when it ends.
    own_process: bool = True


#: The stages (in no particular order: see :func:`stage_order`).
STAGES: tuple[Stage, ...] = (
    Stage(INGEST_JOB, fan_out=SUBMISSIONS),  # one run per site and quarter: one bad file fails only itself
    Stage(ANALYSIS_JOB),
    Stage(EFFECTS_JOB),
    Stage(OUTCOME_EFFECTS_JOB, fan_out=OUTCOME_PARTITIONS),  # one run per outcome
    Stage(REPORT_JOB, own_process=False),  # small tables: a process start would cost more than it saves
)


def stage_order(
    repository: dg.RepositoryDefinition, stages: Iterable[Stage] = STAGES, /
) -> tuple[Stage, ...]:
    """``stages`` in the order the asset graph of ``repository`` implies (ties keep the declaration order).

    Stage B follows stage A when an asset of B's job reads an asset of A's job, directly or through assets
    no stage materialises. Stages whose job the repository lacks are left out. Raises ValueError when the
    stages' jobs form a cycle.
    """
    stages = tuple(s for s in stages if repository.has_job(s.job))
    graph = repository.asset_graph
    owner = {key: s.job for s in stages for key in repository.get_job(s.job).asset_layer.selected_asset_keys}

    def upstream_stages(job: str) -> set[str]:
        found, seen = set(), set()
        todo = [p for key, j in owner.items() if j == job for p in graph.get(key).parent_keys]
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            if key in owner and owner[key] != job:
                found.add(owner[key])
            elif key not in owner and graph.has(key):
                todo.extend(graph.get(key).parent_keys)
        return found

    after = {s.job: upstream_stages(s.job) for s in stages}
    ordered: list[Stage] = []
    while len(ordered) < len(stages):
        ready = [s for s in stages if s not in ordered and after[s.job] <= {o.job for o in ordered}]
        if not ready:
            raise ValueError(
                f"the stages' jobs form a cycle: {', '.join(s.job for s in stages if s not in ordered)}"
            )
        ordered.append(ready[0])
    return tuple(ordered)


def stage_of(job: str, stages: Iterable[Stage] = STAGES, /) -> Stage | None:
    """Return the stage whose job is ``job`` (None for jobs that are not stages, e.g. the mock world)."""
    return next((s for s in stages if s.job == job), None)


def _requests_for(
    instance: dg.DagsterInstance, stage: Stage, chain: str, trigger: str
) -> list[dg.RunRequest]:
    tags = {DRIVER_TAG: trigger, CHAIN_TAG: chain}
    if stage.fan_out is None:
        return [dg.RunRequest(job_name=stage.job, run_key=f"{stage.job}:{chain}", tags=tags)]
    return [
        dg.RunRequest(job_name=stage.job, partition_key=key, run_key=f"{stage.job}:{key}:{chain}", tags=tags)
        for key in stage.fan_out.get_partition_keys(dynamic_partitions_store=instance)
    ]


def next_requests(instance: dg.DagsterInstance, run: dg.DagsterRun, order: tuple[Stage, ...], /, *,
                  trigger: str) -> list[dg.RunRequest]:
    """Return what the flow runs after the finished ``run`` (empty when nothing follows yet).

    * A run outside a chain (started by the inbox sensor, the schedule or by hand) that succeeded starts a
      chain of its own: the next stage is requested with the chain tag set to this run's id.
    * In a chain, a finished run of a fan-out stage waits until every partition of that stage in the chain
      has finished, successfully or not; then the next stage is requested.
    * In a chain, a successful run of an unpartitioned stage requests the next stage; a failed one ends it.

    ``run_key`` makes every request idempotent, so a sensor may see the same finished run twice.
    """
    jobs = [s.job for s in order]
    if run.job_name not in jobs or run.tags.get(DRIVER_TAG) == CLI_DRIVER:
        return []
    stage = order[jobs.index(run.job_name)]
    following = order[jobs.index(run.job_name) + 1:]
    if not following:
        return []
    ok = run.status == dg.DagsterRunStatus.SUCCESS
    chain = run.tags.get(CHAIN_TAG)
    if chain is None:
        return _requests_for(instance, following[0], run.run_id, trigger) if ok else []
    if stage.fan_out is not None:
        siblings = instance.get_runs(filters=dg.RunsFilter(job_name=stage.job, tags={CHAIN_TAG: chain}))
        done = {s.tags.get(PARTITION_TAG) for s in siblings if s.status in FINISHED}
        expected = set(stage.fan_out.get_partition_keys(dynamic_partitions_store=instance))
        return _requests_for(instance, following[0], chain, trigger) if done >= expected else []
    return _requests_for(instance, following[0], chain, trigger) if ok else []
