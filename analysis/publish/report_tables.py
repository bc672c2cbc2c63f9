"""Every published table in words and units: the one place that says what each column is measured in.

:data:`SPECS` gives, per controlled table, the unit of each numeric column: a unit code of
:data:`analysis.publish.labels.UNITS`, or a token resolved per row: ``"effect"``/``"level"`` (the row's
outcome's effect or level unit: percentage points and per cent for shares), ``"cov"`` (a balance
covariate: its outcome's level unit, years for age, per cent for 0/1 indicators) and ``"cmp"`` (a row of
the matched/unmatched comparison). The HTML tables (:func:`format_cell`) and the exports
(:func:`export_frame`, :func:`workbook`) read it, so a number has one format everywhere.

Exports are the controlled frames with codes replaced by labels (codes kept beside them in ``*_code``
columns), numbers scaled to their unit (a share's effect in percentage points) and, where units differ by
row, a ``unit`` column in words and a ``unit_code`` column for machines. Suppressed cells are empty and
named in each row's ``suppressed`` column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import polars as pl

from analysis.publish.disclosure import Controlled
from analysis.publish.labels import UNITS, Labels, format_number, quarter_label, window_label
from analysis.publish.workbook import workbook_bytes

_EFFECT = {c: "effect" for c in ("estimate", "se", "ci_lower", "ci_upper", "mde")}
_COUNTS = {c: "count" for c in ("n", "n_treated", "n_controls")}
_MON_STOCK = {"active": "count", "open_at_end": "count"}

#: Table -> column -> unit code or per-row token (see the module docstring).
SPECS: dict[str, dict[str, str]] = {
    "estimates": {**_EFFECT, **_COUNTS, "pretrend_p": "p_value"},
    "event_study": {**_EFFECT, **_COUNTS},
    "matched_means": {"mean": "level", **_COUNTS},
    "before_after": {"mean": "level", "se": "level", "ci_lower": "level", "ci_upper": "level", **_COUNTS},
    "balance": {
        "mean_treated": "cov",
        "mean_control_before": "cov",
        "mean_control_after": "cov",
        "smd_before": "ratio",
        "smd_after": "ratio",
        "var_ratio_before": "ratio",
        "var_ratio_after": "ratio",
        **_COUNTS,
    },
    "group_time": {"att": "effect", "se": "effect", "ci_lower": "effect", "ci_upper": "effect", **_COUNTS},
    "aggregates": {"att": "effect", "se": "effect", "ci_lower": "effect", "ci_upper": "effect", **_COUNTS},
    "pretrend_tests": {"chi2": "ratio", "p_value": "p_value", "df": "count", **_COUNTS},
    "phase_effects": {**_EFFECT, **_COUNTS},
    "placebo": {**_EFFECT, **_COUNTS},
    "honest_did": {
        "m_bar": "ratio",
        "estimate": "effect",
        "id_lower": "effect",
        "id_upper": "effect",
        "ci_lower": "effect",
        "ci_upper": "effect",
        "breakdown_m_bar": "ratio",
        "max_pre_step": "effect",
        **_COUNTS,
    },
    "sample_flow": {"n": "count", "excluded": "count", "n_controls": "count"},
    "flow_comparison": {
        "matched_n": "count",
        "unmatched_n": "count",
        "matched_value": "cmp",
        "unmatched_value": "cmp",
    },
    "som_budget": {
        "estimate": "dkk",
        "se": "dkk",
        "ci_lower": "dkk",
        "ci_upper": "dkk",
        "discount_rate": "percent",
    },
    "som_effects": {"effect": "ratio", "ci_lower": "ratio", "ci_upper": "ratio"},
    "som_sensitivity": {
        "estimate": "dkk",
        "se": "dkk",
        "ci_lower": "dkk",
        "ci_upper": "dkk",
        "retention": "percent",
    },
    "som_prices": {"dkk_per_unit": "dkk"},
    "monitoring_stock": _MON_STOCK,
    "monitoring_open_by_phase": {"open_courses": "count"},
    "monitoring_targets": {"citizens": "count", "min": "count", "max": "count"},
    "monitoring_delivery": {
        "rows_in": "count",
        "participants": "count",
        "quarantine_rate": "percent",
        "link_rate": "percent",
        "days_after_quarter": "count",
        "deadline_days": "count",
        "resubmissions": "count",
        "versions": "count",
    },
    "disclosure_control": {
        "cells": "count",
        "suppressed": "count",
        "primary": "count",
        "share_suppressed": "percent",
    },
}
#: Two-way count tables (every column but the first is a count).
WIDE_COUNTS = (
    "rows_by_quarter",
    "rows_by_year",
    "rows_by_status",
    "monitoring_new_starts",
    "monitoring_ended_completed",
    "monitoring_ended_early",
    "monitoring_ended_unknown",
    "monitoring_endings_by_phase",
    "monitoring_mix",
    "monitoring_slipping",
)

#: Words for code columns the Labels do not know.
TESTS = {
    "pre_dip": "months before the dip, each month",
    "pre_dip_binned": "months before the dip, yearly means",
    "dip": "the dip, each month",
    "dip_binned": "the dip, half-year means",
}
PHASES = {
    "phase_1": "Phase 1: planning and initiation (months 1–3)",
    "phase_2": "Phase 2: trial and adjustment (months 4–6)",
    "phase_3": "Phase 3: handover and anchoring (months 7–9)",
    "after": "After the course (months 10–24)",
    "beyond_plan": "beyond the planned 9 months",
}
_BINARY_COVARIATES = ("greenlandic", "immigrant", "capital", "large city")


def spec(name: str, frame: pl.DataFrame, /) -> dict[str, str]:
    """Return the unit of every numeric column of table ``name`` (counts for the two-way tables)."""
    if name in WIDE_COUNTS:
        return {c: "count" for c, t in frame.schema.items() if t.is_numeric()}
    return {c: u for c, u in SPECS.get(name, {}).items() if c in frame.columns}


def row_unit(token: str, row: Mapping, labels: Labels, /) -> str:
    """Resolve a unit token for one row (see the module docstring)."""
    if token == "effect":
        return labels.effect_unit(row["outcome"]) if row.get("outcome") else "ratio"
    if token == "level":
        return labels.level_unit(row["outcome"]) if row.get("outcome") else "ratio"
    if token == "cov":
        name = str(row.get("covariate") or "")
        outcome, _, window = name.partition(" ")
        if outcome in labels.units and window:
            return labels.level_unit(outcome)
        if name.startswith("age"):
            return "years" if name == "age" else "ratio"
        if name in _BINARY_COVARIATES:
            return "percent"
        return "ratio"
    if token == "cmp":
        if row.get("outcome"):
            return labels.level_unit(row["outcome"])
        return "years" if str(row.get("attribute") or "").startswith("Age") else "ratio"
    return token


def format_cell(
    value: object, token: str | None, row: Mapping, labels: Labels, /, *, suppressed: bool = False
) -> str:
    """One cell as the HTML shows it: "x" when suppressed, "–" when missing, else the unit's format."""
    if suppressed:
        return "x"
    if value is None:
        return "–"
    if token is None or not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    return format_number(value, row_unit(token, row, labels))


#: Words for the comparison table's statistics and the public budget's purses.
STATISTICS = {"count": "number of persons", "share": "share of the persons", "mean": "mean over the persons"}
PURSES = {"all": "all purses", "municipality": "municipality", "region": "region", "state": "state"}
#: Columns renamed in the exports (a count of days is not a period).
RENAMED = {"monitoring_delivery": {"days_after_quarter": "days_to_first_file"}}


def _label_special(name: str, frame: pl.DataFrame, labels: Labels, titles: Mapping[str, str]) -> pl.DataFrame:
    """Words for the code columns the Labels do not know (tests, phases, statistics, purses, tables)."""
    out = frame.rename({k: v for k, v in RENAMED.get(name, {}).items() if k in frame.columns})
    specials = {"test": TESTS, "phase": PHASES, "statistic": STATISTICS, "purse": PURSES}
    for column, words_ in specials.items():
        if column in out.columns and out.schema[column] == pl.String:
            out = out.with_columns(pl.col(column).alias(f"{column}_code"), pl.col(column).replace(words_))
    if name == "disclosure_control" and "table" in out.columns:
        out = out.with_columns(table_code=pl.col("table"), table=pl.col("table").replace(dict(titles)))
    if "window" in out.columns and out.schema["window"] == pl.String:  # "12..24" -> "months 12–24"
        said = [None if v is None else window_words(v) for v in out["window"]]
        out = out.with_columns(window_code=pl.col("window"), window=pl.Series(said, dtype=pl.String))
    for column in ("outcomes_valued", "not_valued"):  # "code, code" or "code: why it is missing; ..."
        if column in out.columns:
            separator = ";" if column == "not_valued" else ","
            said = [_outcome_list(v, labels, separator=separator) for v in out[column]]
            out = out.with_columns(pl.Series(column, said, dtype=pl.String))
    return out


def _outcome_list(value: str | None, labels: Labels, /, *, separator: str) -> str:
    """Return outcome codes in words.

    ``"employed, bed_days"`` (``separator=","``) or ``"code: why; code: why"`` (``separator=";"``: the
    outcomes ``som_report`` could not value, each with its reason, which is kept).
    """
    items = []
    for item in (value or "").split(separator):
        code, sep, why = item.strip().partition(":")
        if code.strip():
            items.append(labels.outcome(code.strip()) + (f":{why}" if sep else ""))
    return f"{separator} ".join(items)


def export_frame(name: str, published: Controlled, labels: Labels, /) -> pl.DataFrame:
    """Table ``name`` as exported: labels (codes beside them), numbers scaled to their unit, units named."""
    frame = published.export(name)
    units = spec(name, frame)
    rows = frame.to_dicts()
    scaled: dict[str, list] = {}
    per_row: dict[str, list[str]] = {}
    for column, token in units.items():
        codes = [row_unit(token, r, labels) for r in rows]
        if token in ("effect", "level", "cov", "cmp"):
            per_row[column] = codes
        values = []
        for r, code in zip(rows, codes, strict=True):
            v = r[column]
            if v is None or isinstance(v, bool) or not isinstance(v, int | float):
                values.append(v)
                continue
            s = v * UNITS[code].scale
            values.append(0.0 if s == 0 and isinstance(s, float) else s)
        integer = frame.schema[column].is_integer() and all(UNITS[c].scale == 1 for c in codes)
        scaled[column] = pl.Series(column, values, dtype=pl.Int64 if integer else pl.Float64, strict=False)
    out = frame.with_columns(scaled.values()) if scaled else frame
    if per_row:
        first = next(iter(per_row.values()))
        if all(v == first for v in per_row.values()):  # one unit per row for all of them
            out = out.with_columns(
                unit_code=pl.Series(first, dtype=pl.String),
                unit=pl.Series([UNITS[u].label for u in first], dtype=pl.String),
            )
    out = labels.label_codes(_label_special(name, out, labels, published.titles), keep_codes=True)
    if per_row and "unit_code" in out.columns:  # label_codes names the effect unit; a level table's rows
        out = out.with_columns(
            unit=pl.col("unit_code").replace_strict(  # say theirs
                {k: u.label for k, u in UNITS.items()}, default=pl.col("unit"), return_dtype=pl.String
            )
        )
    return _order(out)


def _order(frame: pl.DataFrame) -> pl.DataFrame:
    """Labels first, numbers after, machine columns (``*_code``, ``suppressed``) last."""
    codes = [c for c in frame.columns if c.endswith("_code")]
    tail = [*codes, *[c for c in ("suppressed",) if c in frame.columns]]
    return frame.select([c for c in frame.columns if c not in tail] + tail)


def export_tables(published: Controlled, labels: Labels, /) -> dict[str, pl.DataFrame]:
    """Every published table as exported, plus ``disclosure_control`` (cells suppressed per table)."""
    out = {name: export_frame(name, published, labels) for name in published.frames}
    loss = published.to_frame().with_columns(share_suppressed=pl.col("share_suppressed") * 100)
    out["disclosure_control"] = _order(_label_special("disclosure_control", loss, labels, published.titles))
    return out


def workbook(tables: Mapping[str, pl.DataFrame], published: Controlled, /) -> bytes:
    """Return the exported tables as one ``.xlsx``.

    Numeric cells, one number format per unit, an About sheet.
    """
    units: dict[str, dict[str, str]] = {}
    for name, frame in tables.items():
        columns = {}
        for column, token in spec(name, frame).items():
            if token in ("effect", "level", "cov", "cmp"):
                if "unit_code" in frame.columns:
                    columns[column] = "@unit_code"
            else:
                columns[column] = token
        units[name] = columns
    descriptions = {name: published.titles.get(name, name) for name in tables}
    descriptions["disclosure_control"] = "Cells published and suppressed per table (disclosure control)"
    return workbook_bytes(
        tables, units=units, descriptions=descriptions, title="CTI effect report: every published table"
    )


def window_words(window: str, /) -> str:
    """Say a window in words: ``"12..24"`` -> ``"months 12–24"``.

    ``"quarters 4..8 (note)"`` -> ``"quarters 4–8 (months 12–26) (note)"``.
    """
    base, _, note = window.partition(" (")
    return window_label(base) + (f" ({note}" if note else "")


def quarter_or_text(value: object) -> str:
    """Return a staggered cohort/period index as ``2024Q1`` (text stays as it is)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return quarter_label(value)
    return str(value)


def words(text: str, /) -> str:
    """``snake_case`` -> ``snake case`` (for codes without a configured label, e.g. a site's flag)."""
    return re.sub(r"_", " ", text)
