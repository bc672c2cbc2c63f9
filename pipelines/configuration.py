"""Configuration tables: sites, code lists and other tables that change without a code change.

The packaged defaults live in ``pipelines/config/``. A deployment points ``CTI_CONFIG_DIR`` (or
``cti --config-dir``) at a directory of its own: a table found there replaces the packaged one, a table not
found there falls back to the default. Tables are read when a run (or a sensor tick) starts, never at import,
so a new site or code is picked up without reloading the code location. ``cti config check`` validates every
table with :func:`check` and explains the validity columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

PACKAGED = Path(__file__).parent / "config"

#: What ``valid_from``/``valid_to`` mean, for ``cti config check`` and the README.
VALIDITY = (
    "A delmålgruppe code is valid for courses that START on or after its valid_from and on or before its "
    "valid_to (an empty valid_to: still valid). A course that starts before a code's valid_from, or after "
    "its valid_to, is quarantined as 'unknown_delmaalgruppe', and the site is asked to use a code valid on "
    "the start date. Retire a code by setting valid_to; never delete its row (older courses still use it)."
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration table (``row`` is the 1-based data row, None for the table)."""

    table: str
    row: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.table}.csv" + (f" row {self.row}" if self.row is not None else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ConfigDir:
    """A deployment's configuration directory in front of the packaged defaults."""

    path: Path | None = None

    def source(self, name: str, /) -> Path:
        """Return the file table ``name`` is read from (the deployment's, else the packaged default)."""
        if name not in TABLES:
            raise ValueError(f"unknown configuration table {name!r}; known: {', '.join(sorted(TABLES))}")
        if self.path is not None and (self.path / f"{name}.csv").exists():
            return self.path / f"{name}.csv"
        return PACKAGED / f"{name}.csv"

    def table(self, name: str, /) -> pl.DataFrame:
        """Return configuration table ``name``, every column as text."""
        return pl.read_csv(self.source(name), infer_schema=False)

    def site_ids(self) -> tuple[str, ...]:
        """Return the configured sites, in the order of ``sites.csv``."""
        return tuple(self.table("sites")["site"].to_list())

    def check(self) -> list[Problem]:
        """Every problem in every table (empty: the configuration is usable)."""
        problems: list[Problem] = []
        if self.path is not None and not self.path.is_dir():
            return [Problem("(directory)", None, f"{self.path} is not a directory")]
        for name, spec in TABLES.items():
            try:
                frame = self.table(name)
            except (OSError, pl.exceptions.PolarsError) as error:
                problems.append(Problem(name, None, f"cannot be read as CSV ({type(error).__name__})"))
                continue
            missing = [c for c in spec.columns if c not in frame.columns]
            if missing:
                problems.append(Problem(name, None, f"lacks column(s) {', '.join(missing)} "
                                                    f"(expected {', '.join(spec.columns)})"))
                continue
            if not frame.height:
                problems.append(Problem(name, None, "has no rows"))
            for column in spec.unique:
                values = frame[column].to_list()
                for number, value in enumerate(values, start=1):
                    if values.index(value) != number - 1:
                        problems.append(Problem(name, number, f"{column} {value!r} appears twice"))
            for number, row in enumerate(frame.iter_rows(named=True), start=1):
                problems += [Problem(name, number, m) for m in spec.row_check(row)]
            if spec.table_check is not None:
                problems += [Problem(name, row, m) for row, m in spec.table_check(frame)]
        return problems


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _site_row(row: dict) -> list[str]:
    out = []
    if not re.fullmatch(r"[a-z][a-z0-9_]*", row["site"] or ""):
        out.append(f"site id {row['site']!r} must be lower-case letters, digits and _ "
                   "(it starts the file names)")
    if not (row["name"] or "").strip():
        out.append("name is empty")
    if not re.fullmatch(r"\d{3}", (row["kom"] or "").strip()):
        out.append(f"kom {row['kom']!r} is not a 3-digit municipality code")
    if _date(row["joined"]) is None:
        out.append(f"joined {row['joined']!r} is not a date (YYYY-MM-DD)")
    return out


def _code_row(row: dict) -> list[str]:
    out = []
    code = (row["code"] or "").strip()
    if not code or code != code.upper():
        out.append(f"code {row['code']!r} must be non-empty upper-case "
                   "(sites' codes are compared upper-cased)")
    start, end = _date(row["valid_from"]), _date(row["valid_to"])
    if start is None:
        out.append(f"valid_from {row['valid_from']!r} is not a date (YYYY-MM-DD)")
    if row["valid_to"] and end is None:
        out.append(f"valid_to {row['valid_to']!r} is not a date (YYYY-MM-DD) or empty")
    if start and end and end < start:
        out.append(f"valid_to {end} is before valid_from {start}: the code would never be valid")
    return out


_FAMILIES = ("unemployment_insurance", "social_assistance", "sickness_benefit", "disability_pension")


def _dream_row(row: dict) -> list[str]:
    out = []
    if not re.fullmatch(r"\d{3}", row["code"] or ""):
        out.append(f"code {row['code']!r} is not a 3-digit DREAM code")
    if row["family"] not in _FAMILIES:
        out.append(f"family {row['family']!r} is not one of {', '.join(_FAMILIES)}")
    return out


def _hfaudd_row(row: dict) -> list[str]:
    out = []
    if not re.fullmatch(r"\d{4}", row["hfaudd"] or ""):
        out.append(f"hfaudd {row['hfaudd']!r} is not a 4-digit education code")
    if not re.fullmatch(r"[0-8]", row["level"] or ""):
        out.append(f"level {row['level']!r} is not an ISCED-like level 0-8")
    return out


def _no_row_check(row: dict) -> list[str]:
    return []


def _targets_table(frame: pl.DataFrame) -> list[tuple[int | None, str]]:
    from analysis.publish.monitoring import target_problems

    out = []
    for text in target_problems(frame, sites=_ANY_SITE):
        match = re.match(r"row (\d+): (.*)", text)
        out.append((int(match.group(1)), match.group(2)) if match else (None, text))
    return out


def _labels_table(frame: pl.DataFrame) -> list[tuple[int | None, str]]:
    from analysis.publish.labels import check_label_table

    out = []
    for text in check_label_table(frame):
        match = re.match(r"row (\d+): (.*)", text)
        out.append((int(match.group(1)), match.group(2)) if match else (None, text))
    return out


def _prices_table(frame: pl.DataFrame) -> list[tuple[int | None, str]]:
    from analysis.estimate.som import price_problems
    from analysis.schema import OUTCOMES

    out = []
    for text in price_problems(frame, outcomes=OUTCOMES):
        match = re.match(r"row (\d+) \([^)]*\): (.*)", text)
        out.append((int(match.group(1)), match.group(2)) if match else (None, text))
    return out


def _targets_and_course_rule(frame: pl.DataFrame) -> list[tuple[int | None, str]]:
    """Check the targets table, and that its course plan is the one the quarantine rule uses."""
    from analysis.ingest import rules
    from analysis.publish.monitoring import Targets

    out = _targets_table(frame)
    if out:
        return out
    plan = Targets.from_table(frame, sites=_ANY_SITE)
    if (plan.planned_months, plan.phase_months) != (rules.COURSE_MONTHS, rules.COURSE_TOLERANCE_MONTHS):
        out.append((None, f"planned_months {plan.planned_months} and phase_months {plan.phase_months} differ "
                          f"from the quarantine rule (courses of {rules.COURSE_MONTHS} months accepted up "
                          f"to {rules.MAX_COURSE_MONTHS}: one more phase, analysis/ingest/rules.py); change "
                          "both together, or monitoring and the feedback to sites disagree on a course's "
                          "length"))
    return out


class _AnySite(tuple):
    """Any well-formed site id (the table check cannot see sites.csv; the monitoring asset checks it)."""

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9_]*", value) is not None


_ANY_SITE = _AnySite()


def _rule_row(row: dict) -> list[str]:
    try:
        value = float(row["value"] or "")
    except ValueError:
        return [f"value {row['value']!r} of rule {row['rule']!r} is not a number"]
    return [] if value >= 0 else [f"value {value} of rule {row['rule']!r} is negative"]


_FEEDBACK_SETTINGS = ("contact", "staff_language")


def _feedback_row(row: dict) -> list[str]:
    setting, value = (row["setting"] or "").strip(), (row["value"] or "").strip()
    if setting not in _FEEDBACK_SETTINGS:
        return [f"unknown setting {setting!r}; known: {', '.join(_FEEDBACK_SETTINGS)} "
                "(the delivery deadline is delivery_days in monitoring_targets.csv)"]
    if setting == "contact" and not value:
        return ["contact is empty: the cover sheet of every feedback file shows it"]
    if setting == "staff_language" and value not in ("da", "en"):
        return [f"staff_language {value!r} must be da or en (the file sent to a site is Danish either way)"]
    return []


@dataclass(frozen=True, slots=True)
class TableSpec:
    """What a configuration table must look like."""

    columns: tuple[str, ...]
    unique: tuple[str, ...]
    row_check: Callable[[dict], list[str]]
    description: str
    #: Problems only the whole table shows (a required row missing, a row repeated): (row or None, message).
    table_check: Callable[[pl.DataFrame], list[tuple[int | None, str]]] | None = None


TABLES: dict[str, TableSpec] = {
    "sites": TableSpec(("site", "name", "kom", "joined"), ("site",), _site_row,
                       "the municipalities and social services in the programme (a new site is a new row)"),
    "delmaalgrupper": TableSpec(("code", "label", "valid_from", "valid_to"), ("code",), _code_row,
                                "the sub-target-group code list, with validity dates"),
    "dream_codes": TableSpec(("code", "family", "label"), ("code",), _dream_row,
                             "DREAM benefit codes and the outcome family each counts towards"),
    "hfaudd_levels": TableSpec(("hfaudd", "level", "label"), ("hfaudd",), _hfaudd_row,
                               "education codes and their ISCED-like level"),
    "monitoring_targets": TableSpec(
        ("measure", "scope", "delmaalgruppe", "min", "max", "unit", "source"), (), _no_row_check,
        "programme monitoring: the course plan, targets and thresholds, each with its source",
        _targets_and_course_rule,
    ),
    "som_prices": TableSpec(
        ("item", "outcome", "direction", "purse", "dkk_per_unit", "unit", "price_year", "status", "source",
         "basis"), (), _no_row_check,
        "public-budget (SØM) prices: DKK per unit of each outcome, by purse, dated and sourced (the packaged "
        "table is ILLUSTRATIVE: put SBST's current SØM prices here)", _prices_table,
    ),
    "report_labels": TableSpec(("kind", "key", "label", "unit"), (), _no_row_check,
                               "the effect report's words: labels and units of outcomes, designs, sub-groups "
                               "and column headers", _labels_table),
    "disclosure_rules": TableSpec(("rule", "value", "description"), ("rule",), _rule_row,
                                  "disclosure-control thresholds (analysis.publish.disclosure.Rules)"),
    "feedback": TableSpec(("setting", "value"), ("setting",), _feedback_row,
                          "the sites' feedback: the contact line and the staff language of the steward view "
                          "(da/en); the deadline is delivery_days in monitoring_targets"),
}
