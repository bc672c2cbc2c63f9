"""Partitions, asset group names and other names used in more than one place."""

from __future__ import annotations

import re
from datetime import date

import dagster as dg

from analysis.schema import OUTCOMES
from pipelines.resources import read_config

# Asset groups (group name = module name under assets/).
REGISTERS_GROUP = "registers"
INGEST_GROUP = "ingest"
LINKAGE_GROUP = "linkage"
EFFECTS_GROUP = "effects"
REPORTING_GROUP = "reporting"

#: The ingest job's name (reports look up its failed partitions in the run storage).
INGEST_JOB = "ingest_submission_job"

FIRST_QUARTER_START = "2024-01-01"

#: Quarterly windows from 2024Q1; keys are the quarter's first day ("2024-01-01" is 2024Q1).
#: ``end_offset=1`` lets a site deliver the running quarter's file before the quarter closes.
QUARTERS = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1,4,7,10 *", start=FIRST_QUARTER_START, fmt="%Y-%m-%d", end_offset=1
)

#: Sites (municipalities/social services) from ``pipelines/config/sites.csv``; adding a site is a config edit.
SITE_IDS: tuple[str, ...] = tuple(read_config("sites")["site"].to_list())
SITES = dg.StaticPartitionsDefinition(list(SITE_IDS))

QUARTER_DIM = "quarter"
SITE_DIM = "site"
SUBMISSIONS = dg.MultiPartitionsDefinition({QUARTER_DIM: QUARTERS, SITE_DIM: SITES})

OUTCOME_PARTITIONS = dg.StaticPartitionsDefinition(list(OUTCOMES))

_QUARTER_RE = re.compile(r"^(\d{4})Q([1-4])$")


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
