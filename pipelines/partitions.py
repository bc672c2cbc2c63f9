"""Partitions, asset group names and other names used in more than one place."""

from __future__ import annotations

import re
from datetime import date

import dagster as dg

from analysis.schema import OUTCOMES

# Asset groups (group name = module name under assets/).
REGISTERS_GROUP = "registers"
INGEST_GROUP = "ingest"
LINKAGE_GROUP = "linkage"
EFFECTS_GROUP = "effects"
REPORTING_GROUP = "reporting"
MONITORING_GROUP = "monitoring"
SOM_GROUP = "som"

# Jobs (defined in pipelines/jobs.py; names here so reports and run-status readers need no job import).
MOCK_WORLD_JOB = "mock_world_job"
INGEST_JOB = "ingest_submission_job"
ANALYSIS_JOB = "linkage_job"
EFFECTS_JOB = "effects_job"
OUTCOME_EFFECTS_JOB = "outcome_effects_job"
REPORT_JOB = "report_job"

FIRST_QUARTER_START = "2024-01-01"

#: Quarterly windows from 2024Q1; keys are the quarter's first day ("2024-01-01" is 2024Q1).
#: ``end_offset=1`` lets a site deliver the running quarter's file before the quarter closes.
QUARTERS = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1,4,7,10 *", start=FIRST_QUARTER_START, fmt="%Y-%m-%d", end_offset=1
)

#: Sites are dynamic partitions: their keys live in the instance and follow ``sites.csv`` of the configuration
#: directory (:func:`sync_sites`, called by ``cti run`` and the inbox sensor), so a new site needs a
#: configuration row, not a code change or a reload of the definitions.
SITES = dg.DynamicPartitionsDefinition(name="sites")

QUARTER_DIM = "quarter"
SITE_DIM = "site"
SUBMISSIONS = dg.MultiPartitionsDefinition({QUARTER_DIM: QUARTERS, SITE_DIM: SITES})

OUTCOME_PARTITIONS = dg.StaticPartitionsDefinition(list(OUTCOMES))

_QUARTER_RE = re.compile(r"^(\d{4})Q([1-4])$")


def sync_sites(instance: dg.DagsterInstance, site_ids: tuple[str, ...], /) -> list[str]:
    """Add configured sites the instance does not know yet (sites are never removed: their history stays)."""
    known = set(instance.get_dynamic_partitions(SITES.name))
    new = [s for s in site_ids if s not in known]
    if new:
        instance.add_dynamic_partitions(SITES.name, new)
    return new


def quarter_labels() -> tuple[str, ...]:
    """Every quarter that is a partition today, as inbox folder names (``2024Q1`` .. the next quarter)."""
    return tuple(quarter_label(key) for key in QUARTERS.get_partition_keys())


def quarter_label(partition_key: str) -> str:
    """``"2024-04-01"`` -> ``"2024Q2"`` (the inbox folder name)."""
    day = date.fromisoformat(partition_key)
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def quarter_key(label: str) -> str:
    """``"2024Q2"`` -> ``"2024-04-01"`` (the partition key); raises ValueError for other text."""
    match = _QUARTER_RE.match(label)
    if match is None:
        raise ValueError(f"{label!r} is not a quarter folder name like 2024Q1")
    year, quarter = int(match.group(1)), int(match.group(2))
    return date(year, 3 * (quarter - 1) + 1, 1).isoformat()


def submission_key(quarter: str, site: str) -> dg.MultiPartitionKey:
    """Partition key of one site's submission for quarter label ``quarter`` (e.g. ``"2024Q1"``)."""
    return dg.MultiPartitionKey({QUARTER_DIM: quarter_key(quarter), SITE_DIM: site})
