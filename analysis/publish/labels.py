"""Labels, units and number formats for everything the effect report publishes.

A researcher reads words, not identifiers: outcomes with their unit ("Share of months self-supporting",
percentage points), designs in words, sub-target groups from the delmålgruppe code list, sites by name,
quarters as ``2024Q1`` and event time in months. The words live in configuration
(``pipelines/config/report_labels.csv``, with ``delmaalgrupper.csv`` and ``sites.csv``); :class:`Labels` is
built from those frames (``analysis/`` reads no files).

One number format per unit (:data:`UNITS`), the same in HTML, CSV and the workbook:

========== =================================== ========= ========================================
unit       what                                 scale     shown as
========== =================================== ========= ========================================
``pp``     difference of two shares             x 100     one decimal: ``4.3``, ``−0.7``
``percent`` a share                             x 100     one decimal: ``41.5``
``dkk``    kroner per month                     x 1       whole kroner, thin-space thousands: ``1 021``
``rate``   events per person-month              x 1       three decimals: ``0.181``
``level``  ISCED-like education level           x 1       two decimals: ``2.31``
``count``  persons, courses, rows               x 1       whole number, thin-space thousands: ``1 239``
``p_value`` a p-value                           x 1       three decimals, ``<0.001`` below that
``ratio``  SMD, variance ratio, M̄              x 1       two decimals: ``0.08``
``years``  an age                               x 1       one decimal: ``41.3``
========== =================================== ========= ========================================

Negative numbers carry a true minus sign (U+2212); a value that rounds to zero is printed without a sign,
so "-0.0" never appears. Thousands are grouped with a narrow no-break space (U+202F), which neither an
English nor a Danish reader mistakes for a decimal mark. An outcome's *effects* use its configured unit
(``pp`` for shares) and its *levels* the matching level unit (``percent`` for shares).

Quarter indices (``period = year * 4 + quarter - 1``, as the staggered tables use: 8096 is 2024Q1) and month
indices (``year * 12 + month - 1``, as the matching uses) become ``2024Q1`` and ``2024-01``.

:func:`check_labelled` is the guard the report's tests use: it raises when a published table still carries an
encoded period, a code identifier where a label belongs, or an unformatted float.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from analysis.schema import OUTCOMES

MINUS = "\u2212"
THOUSANDS = "\u202f"


@dataclass(frozen=True, slots=True)
class Unit:
    """How the numbers of one unit are scaled, rounded, named and formatted in a spreadsheet."""

    code: str
    label: str  # said in a header or sentence: "percentage points"
    symbol: str  # after a number in a sentence: "pp"
    scale: float
    decimals: int
    thousands: bool
    excel_format: str  # the workbook's number format for values already scaled


UNITS: dict[str, Unit] = {
    u.code: u
    for u in (
        Unit("pp", "percentage points", "pp", 100.0, 1, False, "0.0"),
        Unit("percent", "per cent", "%", 100.0, 1, False, "0.0"),
        Unit("dkk", "DKK per month", "DKK", 1.0, 0, True, "#,##0"),
        Unit("rate", "per person-month", "", 1.0, 3, False, "0.000"),
        Unit("level", "ISCED-like level", "", 1.0, 2, False, "0.00"),
        Unit("count", "persons", "", 1.0, 0, True, "#,##0"),
        Unit("p_value", "p-value", "", 1.0, 3, False, "0.000"),
        Unit("ratio", "ratio", "", 1.0, 2, False, "0.00"),
        Unit("years", "years", "years", 1.0, 1, False, "0.0"),
    )
}

#: Effect unit of an outcome -> the unit of its levels (means).
LEVEL_UNIT = {"pp": "percent", "dkk": "dkk", "rate": "rate", "level": "level"}

#: Kinds of rows in ``report_labels.csv``.
KINDS = ("outcome", "design", "dimension", "level", "aggregation", "group", "covariate", "column")


# --- numbers ------------------------------------------------------------------------------------------------


def _unit(code: str) -> Unit:
    if code not in UNITS:
        raise ValueError(f"unknown unit {code!r}; use one of {', '.join(UNITS)}")
    return UNITS[code]


def to_unit(value: float | None, unit: str, /) -> float | None:
    """``value`` scaled to ``unit`` and rounded to its published precision (-0.0 becomes 0.0; None stays)."""
    u = _unit(unit)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    scaled = round(float(value) * u.scale, u.decimals)
    return 0.0 if scaled == 0 else scaled


def format_number(value: float | None, unit: str, /, *, with_unit: bool = False) -> str:
    """Format ``value`` (in the outcome's own scale: a share as 0.043) in the one format of ``unit``.

    ``None`` and NaN give ``""`` (the disclosure layer decides how a suppressed cell is marked).
    ``with_unit`` appends the unit's symbol for sentences ("4.3 pp", "1 021 DKK").
    """
    u = _unit(unit)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    scaled = float(to_unit(value, unit) or 0.0)
    if u.code == "p_value" and 0 <= value < 0.001:
        text = "<0.001"
    else:
        body = f"{abs(scaled):,.{u.decimals}f}"
        body = body.replace(",", THOUSANDS) if u.thousands else body.replace(",", "")
        text = (MINUS if scaled < 0 else "") + body
    return f"{text} {u.symbol}" if with_unit and u.symbol else text


def format_interval(lower: float | None, upper: float | None, unit: str, /) -> str:
    """``"−1.2 to 4.3"`` (empty when either end is missing)."""
    if lower is None or upper is None:
        return ""
    low, high = format_number(lower, unit), format_number(upper, unit)
    return f"{low} to {high}" if low and high else ""


# --- periods ------------------------------------------------------------------------------------------------


def quarter_label(index: int, /) -> str:
    """``8096`` -> ``"2024Q1"`` (index = year * 4 + quarter - 1)."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"a quarter index is an integer (year * 4 + quarter - 1), not {index!r}")
    return f"{index // 4}Q{index % 4 + 1}"


def month_label(index: int, /) -> str:
    """``24288`` -> ``"2024-01"`` (index = year * 12 + month - 1)."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"a month index is an integer (year * 12 + month - 1), not {index!r}")
    return f"{index // 12}-{index % 12 + 1:02d}"


def quarter_expr(column: str, /) -> pl.Expr:
    """Polars expression turning a quarter-index column into ``2024Q1`` labels (null stays null)."""
    c = pl.col(column).cast(pl.Int64)
    return pl.format("{}Q{}", c // 4, c % 4 + 1)


def period_label(index: int, /) -> str:
    """Return a quarter or month index as a calendar label: ``8096`` -> "2024Q1", ``24288`` -> "2024-01".

    The two encodings do not overlap for the years 1999..2050 (quarter indices 7996..8203, month indices
    23988..24611), so the index says which it is.
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"a period index is an integer, not {index!r}")
    if 1999 * 12 <= index < 2051 * 12:
        return month_label(index)
    return quarter_label(index)


def period_expr(column: str, /) -> pl.Expr:
    """Polars expression turning a quarter- or month-index column into ``2024Q1`` / ``2024-01`` labels."""
    c = pl.col(column).cast(pl.Int64)
    month = pl.format("{}-{}", c // 12, (c % 12 + 1).cast(pl.String).str.zfill(2))
    return pl.when(c >= 1999 * 12).then(month).otherwise(pl.format("{}Q{}", c // 4, c % 4 + 1))


def event_month_label(month: int, /) -> str:
    """Label an event month: ``-3`` -> ``"month −3"``, ``0`` -> ``"month 0 (start)"``."""
    if month == 0:
        return "month 0 (start)"
    return f"month {MINUS if month < 0 else ''}{abs(month)}"


def _signed(number: int | str) -> str:
    number = int(number)
    return f"{MINUS if number < 0 else ''}{abs(number)}"


def span(first: int | str, last: int | str, /) -> str:
    """Write a range: ``12–24`` with an en dash, ``−3 to −1`` when an end is negative (never "−3–−1")."""
    low, high = int(first), int(last)
    return f"{_signed(low)} to {_signed(high)}" if min(low, high) < 0 else f"{low}\u2013{high}"


def event_quarter_label(quarter: int, /) -> str:
    """Say an event quarter in months: ``4`` -> ``"quarter 4 (months 12–14)"``."""
    return f"quarter {_signed(quarter)} (months {span(3 * quarter, 3 * quarter + 2)})"


def window_label(window: str, /) -> str:
    """Say a window in months: ``"12..24"`` -> ``"months 12–24"``.

    ``"quarters 4..8"`` -> ``"quarters 4–8 (months 12–26)"``, ``"12..24 vs -3..-1"`` ->
    ``"months 12–24 vs months −3 to −1"``; other text is returned as it is.
    """
    text = window.strip()
    pair = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", text)
    quarters = re.fullmatch(r"quarters (-?\d+)\.\.(-?\d+)", text)
    versus = re.fullmatch(r"(-?\d+)\.\.(-?\d+) vs (-?\d+)\.\.(-?\d+)", text)
    if pair:
        return f"months {span(pair[1], pair[2])}"
    if quarters:
        q1, q2 = int(quarters[1]), int(quarters[2])
        return f"quarters {span(q1, q2)} (months {span(3 * q1, 3 * q2 + 2)})"
    if versus:
        return f"months {span(versus[1], versus[2])} vs months {span(versus[3], versus[4])}"
    return text


# --- the configuration table --------------------------------------------------------------------------------


def check_label_table(table: pl.DataFrame, /) -> list[str]:
    """Problems of a ``report_labels`` table (empty: usable), for ``cti config check``.

    Every outcome in :data:`analysis.schema.OUTCOMES` needs an ``outcome`` row with a unit of
    :data:`LEVEL_UNIT`; ``(kind, key)`` pairs are unique.
    """
    problems = []
    missing = [c for c in ("kind", "key", "label", "unit") if c not in table.columns]
    if missing:
        return [f"lacks column(s) {', '.join(missing)}"]
    seen: set[tuple[str, str]] = set()
    for number, row in enumerate(table.iter_rows(named=True), start=1):
        kind, key = (row["kind"] or "").strip(), (row["key"] or "").strip()
        if kind not in KINDS:
            problems.append(f"row {number}: kind {row['kind']!r} is not one of {', '.join(KINDS)}")
        if not key:
            problems.append(f"row {number}: key is empty")
        if not (row["label"] or "").strip():
            problems.append(f"row {number}: label is empty")
        if kind == "outcome" and (row["unit"] or "") not in LEVEL_UNIT:
            problems.append(f"row {number}: outcome {key!r} needs a unit, one of {', '.join(LEVEL_UNIT)}")
        if kind == "level" and ":" not in key:
            problems.append(f"row {number}: a level key is 'dimension:code' (e.g. 'completed:ongoing')")
        if (kind, key) in seen:
            problems.append(f"row {number}: {kind} {key!r} appears twice")
        seen.add((kind, key))
    labelled = {k for kind, k in seen if kind == "outcome"}
    problems += [f"outcome {o!r} (analysis.schema.OUTCOMES) has no label row"
                 for o in OUTCOMES if o not in labelled]
    return problems


@dataclass(frozen=True, slots=True)
class Labels:
    """Words for every code the report shows; build with :meth:`from_tables`."""

    entries: Mapping[tuple[str, str], str]  # (kind, key) -> label
    units: Mapping[str, str]  # outcome -> effect unit
    subgroups: Mapping[str, str]  # delmålgruppe code -> label
    sites: Mapping[str, str]  # site id -> name
    #: (kind, key) -> Danish label, from the optional ``label_da`` column (the summary for SBST)
    danish: Mapping[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Any, /) -> Labels:
        """Build from a configuration with ``table(name)`` (``ConfigDir``, the ``CodeLists`` resource)."""
        return cls.from_tables(config.table("report_labels"), delmaalgrupper=config.table("delmaalgrupper"),
                               sites=config.table("sites"))

    @classmethod
    def from_tables(cls, report_labels: pl.DataFrame, /, *, delmaalgrupper: pl.DataFrame | None = None,
                    sites: pl.DataFrame | None = None) -> Labels:
        """Build from the configuration frames.

        Parameters
        ----------
        report_labels
            ``pipelines/config/report_labels.csv``: kind, key, label, unit.
        delmaalgrupper
            The delmålgruppe code list: code, label.
        sites
            ``sites.csv``: site, name.
        """
        problems = check_label_table(report_labels)
        if problems:
            raise ValueError("report_labels.csv: " + "; ".join(problems) + " (run `cti config check`)")
        entries, units, danish = {}, {}, {}
        for row in report_labels.iter_rows(named=True):
            kind, key = row["kind"].strip(), row["key"].strip()
            entries[(kind, key)] = row["label"].strip()
            if (row.get("label_da") or "").strip():
                danish[(kind, key)] = row["label_da"].strip()
            if kind == "outcome":
                units[key] = row["unit"].strip()
        groups = {} if delmaalgrupper is None else dict(
            zip(delmaalgrupper["code"].to_list(), delmaalgrupper["label"].to_list(), strict=True))
        names = {} if sites is None else dict(
            zip(sites["site"].to_list(), sites["name"].to_list(), strict=True))
        return cls(entries, units, groups, names, danish)

    def _get(self, kind: str, key: str) -> str:
        try:
            return self.entries[(kind, key)]
        except KeyError:
            raise ValueError(f"no label for {kind} {key!r}: add a row '{kind},{key},<label>,' to "
                             "report_labels.csv") from None

    def outcome(self, code: str, /, *, with_unit: bool = False) -> str:
        """``"Share of months self-supporting"`` (``with_unit``: ``"…, percentage points"``)."""
        label = self._get("outcome", code)
        return f"{label}, {UNITS[self.effect_unit(code)].label}" if with_unit else label

    def danish_label(self, kind: str, key: str, /) -> str:
        """Return the Danish label of an outcome or design (``label_da``), else the English one."""
        return self.danish.get((kind, key)) or self._get(kind, key)

    def effect_unit(self, outcome: str, /) -> str:
        """Return the unit of differences in ``outcome`` (``pp`` for shares)."""
        self._get("outcome", outcome)
        return self.units[outcome]

    def level_unit(self, outcome: str, /) -> str:
        """Return the unit of means of ``outcome`` (``percent`` for shares)."""
        return LEVEL_UNIT[self.effect_unit(outcome)]

    def design(self, code: str, /) -> str:
        """Say the design in words."""
        return self._get("design", code)

    def dimension(self, code: str, /) -> str:
        """Say the sub-group dimension in words."""
        return self._get("dimension", code)

    def subgroup(self, code: str, /) -> str:
        """Label a delmålgruppe from the code list (an unknown code is said to be one)."""
        return self.subgroups.get(code, f"{code} (code not in the delmålgruppe list)")

    def site(self, site: str, /) -> str:
        """Name a site as sites.csv does."""
        return self.sites.get(site, f"{site} (site not in sites.csv)")

    def level(self, dimension: str, code: str, /) -> str:
        """Label a sub-group level: a site's name, a delmålgruppe label, a completion status, a year."""
        if dimension == "site":
            return self.site(code)
        if dimension == "delmaalgruppe":
            return self.subgroup(code)
        if ("level", f"{dimension}:{code}") in self.entries:
            return self.entries[("level", f"{dimension}:{code}")]
        if re.fullmatch(r"\d{4}", code):
            return code  # a year is its own label
        return self._get("level", f"{dimension}:{code}")

    def aggregation(self, code: str, /) -> str:
        """Say a staggered aggregation in words."""
        return self._get("aggregation", code)

    def aggregation_key(self, aggregation: str, key: int | None, /, *, monthly: bool = True) -> str:
        """Label an aggregation key: event month (or quarter, ``monthly=False``), start or calendar period.

        Start groups and calendar periods are month or quarter indices (``2024-01`` / ``2024Q1``, see
        :func:`period_label`); ``None`` (the simple aggregation's one row) is "overall".
        """
        if key is None:
            return "overall"
        if aggregation == "dynamic":
            return event_month_label(int(key)) if monthly else event_quarter_label(int(key))
        if aggregation == "group":
            return f"starting {period_label(int(key))}"
        if aggregation == "calendar":
            return period_label(int(key))
        raise ValueError(f"unknown aggregation {aggregation!r}")

    def group(self, code: str, /) -> str:
        """Say a comparison group ("participants", "comparisons") in words."""
        return self._get("group", code)

    def covariate(self, name: str, /) -> str:
        """Label a balance covariate (``"self_support -36..-25"``: the outcome's label and the months)."""
        if ("covariate", name) in self.entries:
            return self.entries[("covariate", name)]
        outcome, _, window = name.partition(" ")
        if ("outcome", outcome) in self.entries and re.fullmatch(r"-?\d+(\.\.-?\d+)?", window):
            lo, _, hi = window.partition("..")
            months = window_label(f"{lo}..{hi}") if hi else event_month_label(int(lo))
            return f"{self.outcome(outcome)}, {months}"
        return self._get("covariate", name)

    def column(self, name: str, /) -> str:
        """Say a column header in words (``n_treated`` -> ``Participants``)."""
        return self._get("column", name)

    def codes(self) -> frozenset[str]:
        """Return every identifier a label replaces (for check_labelled), except keys also used as labels."""
        keys = {k.split(":", 1)[-1] if kind == "level" else k for kind, k in self.entries}
        keys |= set(self.subgroups) | set(self.sites) | set(OUTCOMES)
        words = set(self.entries.values()) | set(self.subgroups.values()) | set(self.sites.values())
        return frozenset(keys - words)

    def label_codes(self, frame: pl.DataFrame, /, *, keep_codes: bool = False) -> pl.DataFrame:
        """Replace the code columns a report table uses by their labels.

        ``outcome``, ``design``, ``dimension`` (+ ``level``), ``aggregation`` (+ ``key``), ``group``,
        ``covariate``, ``site``, ``delmaalgruppe`` become words; integer ``cohort``/``period`` quarter
        indices become ``2024Q1``. ``keep_codes`` keeps each replaced column as ``<name>_code`` (machine-
        readable exports). An ``outcome`` column also brings a ``unit`` column (the unit of its effects).
        """
        out = frame
        simple = {"outcome": self.outcome, "design": self.design, "aggregation": self.aggregation,
                  "group": self.group, "covariate": self.covariate, "site": self.site,
                  "delmaalgruppe": self.subgroup}
        replaced: dict[str, pl.Series] = {}
        if "dimension" in out.columns and "level" in out.columns:
            pairs = zip(out["dimension"], out["level"], strict=True)
            levels = [None if d is None or v is None else self.level(d, v) for d, v in pairs]
            replaced["level"] = pl.Series("level", levels, dtype=pl.String)
        if "aggregation" in out.columns and "key" in out.columns:
            keys = [self.aggregation_key(a, k) for a, k in zip(out["aggregation"], out["key"], strict=True)]
            replaced["key"] = pl.Series("key", keys, dtype=pl.String)
        if "outcome" in out.columns:
            units = [None if o is None else UNITS[self.effect_unit(o)].label for o in out["outcome"]]
            replaced["unit"] = pl.Series("unit", units, dtype=pl.String)
        if "dimension" in out.columns:
            dimensions = [None if d is None else self.dimension(d) for d in out["dimension"]]
            replaced["dimension"] = pl.Series("dimension", dimensions, dtype=pl.String)
        for name, function in simple.items():
            if name in out.columns:
                replaced[name] = pl.Series(name, [None if v is None else function(v) for v in out[name]],
                                           dtype=pl.String)
        for name in ("cohort", "period"):
            if name in out.columns and out.schema[name].is_integer():
                replaced[name] = out.select(period_expr(name).alias(name)).to_series()
        if keep_codes:
            out = out.with_columns(pl.col(c).alias(f"{c}_code") for c in replaced if c in frame.columns)
        return out.with_columns(replaced.values())

    def format_table(self, frame: pl.DataFrame, /, *, units: Mapping[str, str]) -> pl.DataFrame:
        """Format numeric columns as text, one unit each (``"effect"``/``"level"``: the row's outcome's unit).

        Needs the ``outcome`` column still as codes when ``effect``/``level`` are used (format, then label).
        """
        columns = []
        for name, unit in units.items():
            if name not in frame.columns:
                continue
            if unit in ("effect", "level"):
                if "outcome" not in frame.columns:
                    raise ValueError(f"column {name!r} is in the outcome's {unit} unit: the table needs an "
                                     "'outcome' column of codes (format before labelling)")
                pick = self.effect_unit if unit == "effect" else self.level_unit
                pairs = zip(frame[name], frame["outcome"], strict=True)
                values = [format_number(v, pick(o)) for v, o in pairs]
            else:
                values = [format_number(v, unit) for v in frame[name]]
            columns.append(pl.Series(name, values, dtype=pl.String))
        return frame.with_columns(columns)

    def headers(self, frame: pl.DataFrame, /) -> pl.DataFrame:
        """Rename every column to its header label (``_code`` columns keep their names)."""
        return frame.rename({c: self.column(c) for c in frame.columns if not c.endswith("_code")})


# --- the guard ---------------------------------------------------------------------------------------------

_QUARTER_INDEX = range(1999 * 4, 2051 * 4)
_MONTH_INDEX = range(1999 * 12, 2051 * 12)
_PERIOD_NAMES = ("period", "cohort", "quarter", "calendar", "start_quarter", "month_index", "start_month")
_COUNT_NAME = re.compile(r"^(n|n_.*|.*_n|excluded|count.*|.*_count|rows.*|persons.*|participants.*|courses.*|"
                         r"treated|controls|comparisons|suppressed_cells)$")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")
#: Four or more decimals; three on a number of 100 or more (no unit prints that: only rates and p-values have
#: three decimals, and they are small); an exponent.
_RAW_FLOAT = re.compile(
    r"^[-\u2212]?\d*\.\d{4,}$|^[-\u2212]?\d{3,}\.\d{3,}$|^[-\u2212]?\d+(\.\d+)?[eE][-+]?\d+$")
_NEGATIVE_ZERO = re.compile(r"^[-\u2212]0([.,]0+)?( .*)?$")


def check_labelled(frame: pl.DataFrame, /, *, labels: Labels | None = None, exported: bool = False,
                   allow: Iterable[str] = ()) -> None:
    """Raise ``ValueError`` when a published table still speaks in codes.

    Checked:

    * **encoded periods**: an integer column named like a period (``period``, ``cohort``, ``quarter``...)
      or holding quarter indices (``year * 4 + q - 1``) or month indices (``year * 12 + m - 1``) outside a
      count column; a text cell that is such an index;
    * **identifiers where a label belongs**: a text cell equal to a code ``labels`` knows (outcomes,
      designs, sites, delmålgruppe codes, ...) or shaped like one (``snake_case``); in a display table also
      a header that is an identifier (``n_treated``);
    * **unformatted floats**: in a display table any float column, a text cell with four or more decimals
      (three on a number of 100 or more: ``1021.388``) or an exponent, and "-0.0"-style negative zeros;
      in an ``exported`` table (numbers stay numbers) a negative zero.

    Columns named ``*_code`` (codes kept next to their labels for machines) and the names in ``allow`` are
    not checked.
    """
    codes = labels.codes() if labels is not None else frozenset(OUTCOMES)
    skip = set(allow)
    problems: list[str] = []
    for name, dtype in frame.schema.items():
        if name.endswith("_code") or name in skip:
            continue
        if not exported and (_IDENTIFIER.fullmatch(name) or name in codes):
            problems.append(f"header {name!r} is an identifier: rename it (Labels.headers)")
        values = frame[name].drop_nulls()
        if dtype.is_integer():
            base = name.lower()
            if any(base == p or base.endswith(f"_{p}") or base.startswith(f"{p}_") for p in _PERIOD_NAMES):
                problems.append(f"column {name!r} holds encoded periods: label them (quarter_label)")
            elif not _COUNT_NAME.match(base) and values.len():
                inside_q = values.is_between(_QUARTER_INDEX.start, _QUARTER_INDEX.stop - 1).any()
                inside_m = values.is_between(_MONTH_INDEX.start, _MONTH_INDEX.stop - 1).any()
                if inside_q or inside_m:
                    kind = "quarter" if inside_q else "month"
                    problems.append(f"column {name!r} looks like {kind} indices "
                                    f"({values[0]}): label them as periods")
        elif dtype.is_float():
            if not exported:
                problems.append(f"column {name!r} is an unformatted float: format it (format_number)")
            elif np.signbit(values.cast(pl.Float64).to_numpy()[values.to_numpy() == 0]).any():
                problems.append(f"column {name!r} has a negative zero: write 0.0 (to_unit)")
        elif dtype == pl.String:
            for value in values.unique(maintain_order=True).to_list():
                text = value.strip()
                if text in codes or _IDENTIFIER.fullmatch(text):
                    problems.append(f"column {name!r} has the identifier {text!r} where a label belongs")
                elif text.isdigit() and (int(text) in _QUARTER_INDEX or int(text) in _MONTH_INDEX):
                    problems.append(f"column {name!r} has {text!r}, an encoded period: label it")
                elif not exported and _NEGATIVE_ZERO.match(text):
                    problems.append(f"column {name!r} has {text!r}: a value that rounds to zero has no sign")
                elif not exported and _RAW_FLOAT.match(text.split(" ")[0]):
                    problems.append(f"column {name!r} has {text!r}, an unformatted float: use format_number")
    if problems:
        raise ValueError("the table is not labelled for publication:\n  " + "\n  ".join(problems))
