"""The publication layer: every number researchers get is a published cell after joint disclosure control.

A report is a :class:`Publication`: a few declared :class:`Table` objects plus the linear
:class:`Identity` relations that tie their cells together within and across tables. :func:`control`
applies the :class:`Rules` to all of them at once and returns a :class:`Controlled` publication whose
frames are the only source of the HTML tables, the plots, the CSV/parquet exports and the asset metadata;
:func:`audit` then attacks the published frames as an output checker would.

The model
---------
Every table declares the role of its columns:

* :class:`Count` columns hold person counts (or rows that are persons). Each cell names the quantity it
  counts with a *key* (a polars string expression): the same key in two places is the same number (an
  overall n repeated for every outcome, the matched participants' n in the event study and in the raw
  means), so suppressing it anywhere suppresses it everywhere and a secondary "x" is never reprinted.
* :class:`Mean` columns are shares or means over the persons of a count column. A 0/1, share or
  event-count mean names its numerator (mean x n x ``per``: persons with the outcome, events), which is a
  quantity of its own that the threshold applies to, with a complement (n x ``per`` - numerator: persons
  without the outcome) for 0/1 and share outcomes. Weighted means (matched comparisons) and magnitudes name
  no numerator; magnitudes pass the (n, k) dominance rule on their contributors. A mean is published only
  together with its n (so mean x n is the only thing it adds) and its companions (standard error, CI,
  SMD) go with it.
* :class:`Estimate` columns are model estimates; they need ``min_estimate_persons`` on every persons
  column and ``min_dof`` residual degrees of freedom.

:class:`Hidden` quantities are never published but must be protected: the unmatched participants per event
month (naive n(t) minus matched n(t)), the starters of one month (n(t) minus n(t+1)), the inner cells of a
provenance table. :class:`Identity` relations are sums: margins, ``rows_in = clean + quarantined +
duplicates``, the overall n = the sum of its sub-group n's, nested samples, and a window mean's numerator =
the sum of its months' numerators. Every identity is checked against the true values when the publication
is controlled (a wrong declaration is a ``ValueError``, never a silent weaker audit).

Adding a table (issues #21/#24: sample flow, CTI phases, sensitivity, monitoring)
--------------------------------------------------------------------------------
1. Build the frame of true values in ``analysis/`` (polars, one row per published row).
2. Declare it in :mod:`analysis.publish.cti_tables`: ``Table(name, title, frame, counts=(Count(column,
   key),), means=(Mean(column, n=..., kind=..., numerator=...),), estimates=(Estimate(...),))``. Reuse
   the keys of quantities already published elsewhere (``cti_tables.KEYS``), so the layer knows that a
   sample-flow box "matched participants" is the same number as the event study's n.
3. Add the identities the new cells take part in (a flow's boxes sum to their parent; a phase's n is
   nested in the overall n; a monitoring count of active courses is the sum over sites) and any hidden
   differences that must stay protected (``Hidden``; its value is computed from the true frames).
4. Render from ``Controlled.frames[name]`` only, and add a regression test that the audit fails when the
   new identity is left out of the declaration or the new table is published uncontrolled.

Secondary suppression
---------------------
The joint problem is solved as Statistics Norway's ``GaussSuppression`` orders it (suppress the least
valuable candidate first: small counts before large ones, counts carrying few means before counts
carrying many, zeros never) but with the attacker's linear programme as the judge, as ``sdcTable``'s
``PROTECT_LINKED_TABLES`` does: after primary suppression, every small quantity that is not published (a
primary cell, a hidden difference, a numerator) must keep an upper bound of at least the threshold in the
LP (and the integer programme for integer quantities) over everything published; while one fails, the
published count whose fixed value binds that bound (its LP dual is not zero) and that is cheapest to lose is
suppressed too, and the affected components are solved again. Suppressing everything always passes, so
the loop ends.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

# --- rules ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rules:
    """Disclosure rules (defaults: the Danish ones, see ``pipelines/config/disclosure_rules.csv``)."""

    min_persons: int = 5
    min_numerator: float = 5
    extreme_share_min_n: int = 20
    dominance_n: int = 2
    dominance_k: float = 0.85
    min_estimate_persons: int = 5
    min_dof: int = 10

    def __post_init__(self) -> None:
        if (
            self.min_persons < 1
            or self.min_numerator <= 0
            or self.min_estimate_persons < 1
            or self.min_dof < 0
        ):
            raise ValueError("disclosure thresholds must be positive (min_persons >= 1, min_numerator > 0)")
        if self.dominance_n != 2:
            raise ValueError("dominance_n: the estimators record the two largest contributions; use 2")
        if not 0 < self.dominance_k <= 1:
            raise ValueError("dominance_k is a share of the cell total: give a number in (0, 1]")

    @classmethod
    def from_table(cls, table: pl.DataFrame, /) -> Rules:
        """Rules from a ``rule,value`` table (the packaged config); unknown rules are an error."""
        if not {"rule", "value"} <= set(table.columns):
            raise ValueError("the disclosure rules table needs columns 'rule' and 'value'")
        names = set(cls.__dataclass_fields__)
        values: dict[str, float | int] = {}
        for rule, value in table.select("rule", "value").iter_rows():
            if rule not in names:
                raise ValueError(f"unknown disclosure rule {rule!r}; known: {sorted(names)}")
            kind = type(getattr(cls(), rule))
            try:
                values[rule] = kind(float(value)) if kind is int else float(value)
            except (TypeError, ValueError):
                raise ValueError(f"disclosure rule {rule!r} needs a number, got {value!r}") from None
        return cls(**values)

    def describe(self) -> str:
        """One sentence for the report's methods section."""
        return (
            f"counts of 1..{self.min_persons - 1} persons, numerators (persons with the outcome, events) and "
            f"complements below {self.min_numerator:g}, 0 %/100 % shares of groups under "
            f"{self.extreme_share_min_n}, magnitudes whose {self.dominance_n} largest contributors hold more "
            f"than {self.dominance_k:.0%}, and estimates on fewer than {self.min_estimate_persons} persons "
            f"per side or {self.min_dof} residual degrees of freedom"
        )


# --- declarations --------------------------------------------------------------------------------------


class Kind(enum.StrEnum):
    """What a mean is a mean of (decides its numerator and rules)."""

    BINARY = "binary"  # 0/1 per person: numerator = persons with the outcome (integer, <= n)
    SHARE = "share"  # a share in [0, 1] per person (weeks self-supporting): numerator <= n, not integer
    EVENTS = "events"  # an event count per person: numerator = events (integer)
    MAGNITUDE = "magnitude"  # an amount (earnings, bed days): (n, k) dominance on its contributors
    LEVEL = "level"  # a characteristic every person has (age, education level): persons threshold only
    WEIGHTED = "weighted"  # a weighted mean (matched comparisons): contributor rules, no numerator identity


@dataclass(frozen=True, slots=True)
class Count:
    """A column of person counts; ``key`` names the quantity (same key = same number everywhere)."""

    column: str
    key: pl.Expr
    #: Higher = kept published longer (headline n's).
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Mean:
    """A column of means over the persons counted in column ``n`` (see the module docstring)."""

    column: str
    n: str
    #: A Kind for the whole column, or the name of a column holding each row's kind (its value).
    kind: Kind | str
    numerator: pl.Expr | None = None
    #: Observations per person behind the mean (a 12-month window mean: 12), or a column name.
    per: int | str = 1
    companions: tuple[str, ...] = ()
    #: Columns (n_positive, n_full, top2_share) from :func:`analysis.estimate.did.contributor_stats`.
    contributors: tuple[str, str, str] | None = None
    #: Higher = kept published longer when a mean must go to protect another cell.
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Estimate:
    """Estimate columns with the persons behind them (count columns or internal columns) and their dof."""

    columns: tuple[str, ...]
    persons: tuple[str, ...]
    dof: pl.Expr | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """One published table: true values in ``frame`` and the roles of its columns."""

    name: str
    title: str
    frame: pl.DataFrame
    counts: tuple[Count, ...] = ()
    means: tuple[Mean, ...] = ()
    estimates: tuple[Estimate, ...] = ()
    #: Columns used by the rules but never published (e.g. the persons behind an aggregate).
    internal: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hidden:
    """A quantity that is never published but must not be derivable when small."""

    key: str
    value: float
    integer: bool = True
    numerator: bool = False


@dataclass(frozen=True, slots=True)
class Identity:
    """``sum(coefficient * quantity) == 0`` over quantity keys."""

    terms: tuple[tuple[str, float], ...]
    label: str

    @classmethod
    def total(cls, total: str, parts: Iterable[str], label: str) -> Identity:
        """``total = sum(parts)``."""
        return cls(((total, 1.0), *((p, -1.0) for p in parts)), label)


@dataclass(frozen=True, slots=True)
class Publication:
    """Everything that leaves for researchers, declared (see the module docstring)."""

    tables: tuple[Table, ...]
    identities: tuple[Identity, ...] = ()
    hidden: tuple[Hidden, ...] = ()
    #: Less lossy choices taken when the tables were declared (said in the report).
    choices: tuple[str, ...] = ()


# --- the quantities ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Var:
    key: str
    value: float
    integer: bool
    role: str  # "count" (publishable), "hidden", "numerator", "complement"
    threshold: float
    cells: list[tuple[str, int, str]] = field(default_factory=list)


@dataclass(slots=True)
class _MeanCell:
    table: str
    row: int
    column: str
    numerator: int | None  # var index
    n: int | None  # var index of the denominator count
    primary: bool  # suppressed by a rule of its own


class _Model:
    """Quantities, identities and means of a publication, indexed."""

    def __init__(self, publication: Publication, rules: Rules) -> None:
        self.rules = rules
        self.vars: list[_Var] = []
        self.index: dict[str, int] = {}
        self.means: list[_MeanCell] = []
        self.rows: list[dict[int, float]] = []  # identities
        self.labels: list[str] = []
        self.primary_reasons: dict[tuple[str, int, str], str] = {}
        self.estimate_cells: dict[tuple[str, int, str], bool] = {}
        for table in publication.tables:
            self._table(table)
        for hidden in publication.hidden:
            self._var(
                hidden.key,
                hidden.value,
                integer=hidden.integer,
                role="numerator" if hidden.numerator else "hidden",
            )
        for identity in publication.identities:
            self._identity(identity)
        self.means_by_n: dict[int, list[_MeanCell]] = {}
        self.means_by_numerator: dict[int, list[_MeanCell]] = {}
        for mc in self.means:
            if mc.n is not None:
                self.means_by_n.setdefault(mc.n, []).append(mc)
            if mc.numerator is not None:
                self.means_by_numerator.setdefault(mc.numerator, []).append(mc)

    def _var(
        self, key: str, value: float, *, integer: bool, role: str, cell: tuple[str, int, str] | None = None,
        scale: float = 1.0,
    ) -> int:
        value = float(value)
        if integer:
            if abs(value - round(value)) > 1e-6 * max(1.0, abs(value)):
                raise ValueError(f"quantity {key!r} must be a whole number, got {value}")
            value = float(round(value))
        # a numerator over ``scale`` observations per person (a window of months) is small below scale x
        # threshold
        count = role in ("count", "hidden")
        threshold = self.rules.min_persons if count else self.rules.min_numerator * scale
        if key in self.index:
            var = self.vars[self.index[key]]
            if abs(var.value - value) > 1e-6 * max(1.0, abs(value)):
                raise ValueError(
                    f"quantity {key!r} has two values ({var.value:g} and {value:g}); "
                    "give the two populations different keys"
                )
            if role == "count" and var.role != "count":
                var.role = "count"
                var.threshold = self.rules.min_persons
        else:
            self.index[key] = len(self.vars)
            self.vars.append(_Var(key, value, integer, role, threshold))
            var = self.vars[-1]
        if cell is not None:
            var.cells.append(cell)
        return self.index[key]

    def _identity(self, identity: Identity) -> None:
        row: dict[int, float] = {}
        for key, coefficient in identity.terms:
            if key not in self.index:
                raise ValueError(
                    f"identity {identity.label!r} names {key!r}, which no table or hidden quantity declares"
                )
            i = self.index[key]
            row[i] = row.get(i, 0.0) + float(coefficient)
        residual = sum(c * self.vars[i].value for i, c in row.items())
        scale = max([1.0] + [abs(c * self.vars[i].value) for i, c in row.items()])
        if abs(residual) > 1e-6 * scale:
            raise ValueError(
                f"identity {identity.label!r} does not hold on the true values (residual {residual:g}); "
                "fix the declaration"
            )
        self.rows.append({i: c for i, c in row.items() if c != 0.0})
        self.labels.append(identity.label)

    def _table(self, table: Table) -> None:
        frame = table.frame
        declared = (
            [c.column for c in table.counts]
            + [m.column for m in table.means]
            + [col for e in table.estimates for col in e.columns]
        )
        missing = sorted({c for c in declared if c not in frame.columns})
        if missing:
            raise ValueError(f"table {table.name!r} declares columns it does not have: {missing}")
        count_vars: dict[str, list[int | None]] = {}
        for count in table.counts:
            keys = frame.select(count.key.alias("k"))["k"].to_list()
            values = frame[count.column].to_list()
            ids: list[int | None] = []
            for row, (key, value) in enumerate(zip(keys, values, strict=True)):
                if value is None:
                    ids.append(None)
                    continue
                if key is None:
                    raise ValueError(f"table {table.name!r}: count {count.column!r} has no key in row {row}")
                ids.append(
                    self._var(key, value, integer=True, role="count", cell=(table.name, row, count.column))
                )
            count_vars[count.column] = ids
        for mean in table.means:
            if mean.n not in count_vars:
                raise ValueError(
                    f"table {table.name!r}: mean {mean.column!r} needs its n column {mean.n!r} as a Count"
                )
            self._means(table, mean, count_vars[mean.n])
        for estimate in table.estimates:
            self._estimates(table, estimate)

    def _means(self, table: Table, mean: Mean, n_vars: list[int | None]) -> None:
        rules, frame = self.rules, table.frame
        height = frame.height
        keys = (
            frame.select(mean.numerator.alias("k"))["k"].to_list()
            if mean.numerator is not None
            else [None] * height
        )
        kinds = (
            [Kind(k) for k in frame[mean.kind].to_list()]
            if not isinstance(mean.kind, Kind)
            else [mean.kind] * height
        )
        pers = frame[mean.per].to_list() if isinstance(mean.per, str) else [mean.per] * height
        contrib = (
            frame.select(*mean.contributors).rows()
            if mean.contributors is not None
            else [(None, None, None)] * height
        )
        for row, (value, n, key, n_var, (n_pos, n_full, top2), kind, per) in enumerate(
            zip(
                frame[mean.column].to_list(),
                frame[mean.n].to_list(),
                keys,
                n_vars,
                contrib,
                kinds,
                pers,
                strict=True,
            )
        ):
            if value is None:
                continue
            bounded = kind in (Kind.BINARY, Kind.SHARE)
            if key is not None and kind not in (Kind.BINARY, Kind.SHARE, Kind.EVENTS):
                raise ValueError(
                    f"mean {mean.column!r}: only binary, share and event-count means have a numerator"
                )
            cell = (table.name, row, mean.column)
            reason = ""
            total = None if n is None else value * n * per
            # thresholds on persons: a window mean's mean x n (not x per) bounds the persons with the outcome
            persons = None if n is None else value * n
            if n is None or n < rules.min_persons:
                reason = f"fewer than {rules.min_persons} persons"
            elif kind in (Kind.BINARY, Kind.SHARE, Kind.EVENTS):
                if 0 < persons < rules.min_numerator - 1e-9:
                    reason = f"numerator below {rules.min_numerator:g}"
                elif bounded and 0 < n - persons < rules.min_numerator - 1e-9:
                    reason = f"complement below {rules.min_numerator:g}"
                elif bounded and (persons <= 1e-9 or n - persons <= 1e-9) and n < rules.extreme_share_min_n:
                    reason = f"0 % or 100 % of fewer than {rules.extreme_share_min_n} persons"
            if not reason and n_pos is not None and 0 < n_pos < rules.min_numerator:
                reason = f"fewer than {rules.min_numerator:g} persons contribute"
            if (
                not reason
                and bounded
                and n_full is not None
                and 0 < n - n_full < rules.min_numerator
                and per == 1
            ):
                reason = f"fewer than {rules.min_numerator:g} persons without the outcome"
            if not reason and kind in (Kind.MAGNITUDE, Kind.WEIGHTED) and value != 0:
                if top2 is None and kind is Kind.MAGNITUDE:
                    reason = "no contributor information for the dominance rule"
                elif top2 is not None and top2 > rules.dominance_k + 1e-12:
                    reason = f"dominance: the {rules.dominance_n} largest contributors hold {top2:.0%}"
            numerator = None
            if key is not None and n is not None and n_var is not None:
                integer = kind in (Kind.BINARY, Kind.EVENTS)
                numerator = self._var(key, total, integer=integer, role="numerator", scale=per)
                if bounded:
                    complement = self._var(
                        f"{key}~", n * per - self.vars[numerator].value, integer=integer, role="numerator",
                        scale=per,
                    )
                    self._identity_rows(
                        {numerator: 1.0, complement: 1.0, n_var: -float(per)},
                        f"{key}: numerator + complement = n x {per}",
                    )
            if reason:
                self.primary_reasons[cell] = reason
            self.means.append(_MeanCell(table.name, row, mean.column, numerator, n_var, bool(reason)))

    def _identity_rows(self, row: dict[int, float], label: str) -> None:
        key = tuple(sorted(row.items()))
        if not hasattr(self, "_seen"):
            self._seen: set = set()
        if key not in self._seen:
            self._seen.add(key)
            self.rows.append(row)
            self.labels.append(label)

    def _estimates(self, table: Table, estimate: Estimate) -> None:
        rules, frame = self.rules, table.frame
        persons = frame.select(pl.min_horizontal([pl.col(c) for c in estimate.persons]).alias("p"))[
            "p"
        ].to_list()
        dof = (
            frame.select(estimate.dof.alias("d"))["d"].to_list()
            if estimate.dof is not None
            else [None] * frame.height
        )
        for row, (p, d) in enumerate(zip(persons, dof, strict=True)):
            reason = ""
            if p is None or p < rules.min_estimate_persons:
                reason = f"fewer than {rules.min_estimate_persons} persons behind the estimate"
            elif d is not None and d < rules.min_dof:
                reason = f"fewer than {rules.min_dof} residual degrees of freedom"
            for column in estimate.columns:
                self.estimate_cells[(table.name, row, column)] = bool(reason)
                if reason and frame[column][row] is not None:
                    self.primary_reasons[(table.name, row, column)] = reason


# --- the attacker's programme ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Range:
    """The feasible range of one unpublished small quantity, given everything published."""

    key: str
    value: float
    low: float
    high: float
    method: str  # "lp" or "milp"

    @property
    def disclosed(self) -> bool:
        """True when the published tables prove the quantity is below the threshold (or pin it)."""
        return self.high < self._threshold - 1e-6 or self.high - self.low < 1e-6

    _threshold: float = 5.0


def _solve_ranges(
    model: _Model,
    known: np.ndarray,
    targets: Sequence[int],
    *,
    with_low: bool,
    cache: dict | None = None,
    roots: dict[int, int] | None = None,
    integer: bool = True,
) -> tuple[dict[int, Range], dict[int, set[int]]]:
    """Feasible range of each target (unknown) quantity and the known quantities that bind its maximum.

    ``roots``, when given, receives each target's component (targets in one component share a programme).
    """
    nvar = len(model.vars)
    lower = np.zeros(nvar)
    for i, var in enumerate(model.vars):
        if var.role == "count" and not known[i] and var.value >= 1:
            lower[i] = 1.0  # zeros are always published, so a suppressed count is at least 1
    # components of unknown quantities linked by identities
    parent = list(range(nvar))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    rows_of: dict[int, list[int]] = {}
    for r, row in enumerate(model.rows):
        unknown = [i for i in row if not known[i]]
        for i in unknown[1:]:
            ra, rb = find(unknown[0]), find(i)
            if ra != rb:
                parent[rb] = ra
        for i in unknown[:1]:
            rows_of.setdefault(i, []).append(r)
    comp_rows: dict[int, set[int]] = {}
    for i, rs in rows_of.items():
        comp_rows.setdefault(find(i), set()).update(rs)
    members: dict[int, list[int]] = {}
    for i in range(nvar):
        if not known[i]:
            members.setdefault(find(i), []).append(i)
    ranges: dict[int, Range] = {}
    binding: dict[int, set[int]] = {}
    by_comp: dict[int, list[int]] = {}
    for t in targets:
        by_comp.setdefault(find(t), []).append(t)
        if roots is not None:
            roots[t] = find(t)
    for root, ts in by_comp.items():
        rs = sorted(comp_rows.get(root, ()))
        unknown = members[root]
        adjacent = sorted({i for r in rs for i in model.rows[r] if known[i]})
        cols = unknown + adjacent
        key = (tuple(unknown), tuple(adjacent), tuple(rs), with_low, integer)
        if cache is not None and key in cache:
            got_ranges, got_binding = cache[key]
            ranges.update({t: got_ranges[t] for t in ts if t in got_ranges})
            binding.update({t: got_binding.get(t, (set(), frozenset())) for t in ts})
            missing = [t for t in ts if t not in got_ranges]
            if not missing:
                continue
            ts = missing
        result_r, result_b = _component(
            model, cols, len(unknown), rs, lower, ts, with_low=with_low, integer=integer
        )
        for t in ts:
            result_b[t] = (result_b[t], frozenset(adjacent))
        ranges.update(result_r)
        binding.update(result_b)
        if cache is not None:
            old = cache.get(key, ({}, {}))
            cache[key] = ({**old[0], **result_r}, {**old[1], **result_b})
    return ranges, binding


class _Programme:
    """One component's attacker programme in HiGHS, kept between targets (warm start from the last basis).

    The feasible set is the same for every target of a component; only the objective changes, so each
    solve after the first is a few primal-simplex iterations from the last basis (which stays primal
    feasible) instead of a fresh model: the audit of a publication solves thousands of these. The first solve
    is cold (presolve, dual simplex); the later ones run without presolve, which would discard the basis.
    """

    def __init__(self, a: sparse.csr_array, lb: np.ndarray, ub: np.ndarray) -> None:
        # the compiled class under highspy.Highs: the wrapper's callback set-up prints a banner on stdout
        from highspy import _core

        csc = sparse.csc_array(a)
        lp = _core.HighsLp()
        lp.num_col_, lp.num_row_ = csc.shape[1], csc.shape[0]
        lp.col_cost_ = np.zeros(csc.shape[1])
        lp.col_lower_ = lb.astype(float)
        lp.col_upper_ = np.where(np.isinf(ub), _core.kHighsInf, ub).astype(float)
        lp.row_lower_ = lp.row_upper_ = np.zeros(csc.shape[0])
        lp.a_matrix_.format_ = _core.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = csc.indptr, csc.indices, csc.data
        self._core, self._h = _core, _core._Highs()
        # the first solve is cold: presolve and dual simplex are fastest there
        for option, value in (("output_flag", False), ("threads", 1), ("random_seed", 0)):
            self._h.setOptionValue(option, value)
        self._h.passModel(lp)
        self._cost: int | None = None
        self._warm = False
        #: The last optimal solution's values (columns in the order of the model).
        self.values = np.empty(0)

    def solve(self, k: int, sign: float) -> tuple[str, float, np.ndarray | None]:
        """Minimise ``sign * x_k``.

        Returns ("optimal", objective, column duals), ("unbounded", -inf, None) or (HiGHS's name of the
        failure, nan, None).
        """
        if self._cost is not None and self._cost != k:
            self._h.changeColCost(self._cost, 0.0)
        self._h.changeColCost(k, sign)
        self._cost = k
        self._h.run()
        if not self._warm:  # from now on only the objective changes: primal simplex from the last basis
            self._h.setOptionValue("presolve", "off")
            self._h.setOptionValue("simplex_strategy", 4)
            self._warm = True
        status = self._h.getModelStatus()
        codes = self._core.HighsModelStatus
        if status == codes.kUnboundedOrInfeasible:  # presolve cannot tell which: the simplex can
            self._h.setOptionValue("presolve", "off")
            self._h.run()
            status = self._h.getModelStatus()
        if status == codes.kOptimal:
            solution = self._h.getSolution()
            self.values = np.asarray(solution.col_value)
            return "optimal", float(self._h.getInfo().objective_function_value), np.asarray(solution.col_dual)
        if status == codes.kUnbounded:
            return "unbounded", -math.inf, None
        return str(self._h.modelStatusToString(status)), math.nan, None


def _component(
    model: _Model,
    cols: list[int],
    n_unknown: int,
    rs: list[int],
    lower: np.ndarray,
    targets: Sequence[int],
    *,
    with_low: bool,
    integer: bool = True,
) -> tuple[dict[int, Range], dict[int, set[int]]]:
    position = {v: k for k, v in enumerate(cols)}
    data, ri, ci = [], [], []
    for k, r in enumerate(rs):
        for i, c in model.rows[r].items():
            ri.append(k)
            ci.append(position[i])
            data.append(c)
    a = sparse.csr_array((data, (ri, ci)), shape=(len(rs), len(cols))) if rs else None
    lb = np.array([lower[v] for v in cols[:n_unknown]] + [model.vars[v].value for v in cols[n_unknown:]])
    ub = np.array([np.inf] * n_unknown + [model.vars[v].value for v in cols[n_unknown:]])
    integrality = np.array([1 if model.vars[v].integer else 0 for v in cols])
    ranges: dict[int, Range] = {}
    binding: dict[int, set[int]] = {}
    programme = _Programme(a, lb, ub) if a is not None else None
    is_int = integrality.astype(bool)
    for t in targets:
        k = position[t]
        var = model.vars[t]
        if programme is None:
            ranges[t] = Range(var.key, var.value, float(lb[k]), math.inf, "lp", var.threshold)
            binding[t] = set()
            continue
        status, value, duals = programme.solve(k, -1.0)
        if status == "unbounded":
            high, method = math.inf, "lp"
            binding[t] = set()
        elif status != "optimal":
            raise ValueError(
                f"the attacker's programme for {var.key!r} failed ({status}); "
                "the declared identities are inconsistent"
            )
        else:
            high, method = round(-value, 9), "lp"  # the solver's last ulps are noise, not a bound
            # a published quantity binds the maximum when its reduced cost is not zero
            binding[t] = {cols[j] for j in range(n_unknown, len(cols)) if abs(duals[j]) > 1e-9}
            if integer and var.integer and high < 2 * var.threshold:
                whole = programme.values[is_int]
                if not np.any(np.abs(whole - np.round(whole)) > 1e-7):
                    method = "milp"  # an integral LP optimum is the integer optimum too: no MILP needed
                else:
                    c = np.zeros(len(cols))
                    c[k] = -1.0
                    m = milp(c, constraints=LinearConstraint(a, 0, 0), integrality=integrality,
                             bounds=Bounds(lb, ub))
                    if m.status == 0:
                        high, method = -m.fun, "milp"
        low = float(lb[k])
        if with_low:
            status, value, _ = programme.solve(k, 1.0)
            if status == "optimal":
                low = math.ceil(value - 1e-9) if var.integer else round(value, 9)
        ranges[t] = Range(var.key, var.value, float(low), float(high), method, var.threshold)
    return ranges, binding


def _at_risk(model: _Model, known: np.ndarray) -> list[int]:
    return [i for i, v in enumerate(model.vars) if not known[i] and 0 < v.value < v.threshold - 1e-9]


# --- control -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableLoss:
    """Published cells of one table and how many were suppressed (primary = by a rule of their own)."""

    table: str
    cells: int
    suppressed: int
    primary: int


@dataclass(frozen=True, slots=True)
class AuditResult:
    """What the attacker's audit of the published frames found (empty ``problems`` = publishable)."""

    cells_checked: int
    cells_suppressed: int
    quantities_checked: int
    narrowest: Range | None
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when nothing can be derived below the threshold and no small cell is printed."""
        return not self.problems

    def summary(self) -> str:
        """One line for the methods section and the asset metadata."""
        narrow = (
            "none suppressed"
            if self.narrowest is None
            else f"narrowest range of a small unpublished quantity {self.narrowest.low:g}.."
            f"{self.narrowest.high:g}"
        )
        verdict = "passed" if self.passed else f"FAILED ({len(self.problems)} problems)"
        return (
            f"audit {verdict}: {self.cells_checked} published cells checked, "
            f"{self.cells_suppressed} suppressed, "
            f"{self.quantities_checked} small unpublished quantities bounded ({narrow})"
        )

    def to_frame(self) -> pl.DataFrame:
        """One row per problem (empty when the audit passed)."""
        return pl.DataFrame({"problem": list(self.problems)}, schema={"problem": pl.String})


@dataclass(frozen=True, slots=True)
class Controlled:
    """The published cells after control: the only source of everything researchers get."""

    frames: dict[str, pl.DataFrame]  # suppressed cells are null; internal columns dropped
    masks: dict[str, pl.DataFrame]  # True where a cell was suppressed (same columns as ``frames``)
    titles: dict[str, str]
    loss: tuple[TableLoss, ...]
    audit: AuditResult
    choices: tuple[str, ...]
    rules: Rules

    def to_frame(self) -> pl.DataFrame:
        """Information loss per table."""
        return pl.DataFrame(
            [
                {
                    "table": t.table,
                    "cells": t.cells,
                    "suppressed": t.suppressed,
                    "primary": t.primary,
                    "share_suppressed": t.suppressed / t.cells if t.cells else 0.0,
                }
                for t in self.loss
            ],
            schema={
                "table": pl.String,
                "cells": pl.Int64,
                "suppressed": pl.Int64,
                "primary": pl.Int64,
                "share_suppressed": pl.Float64,
            },
        )

    def export(self, name: str) -> pl.DataFrame:
        """Return the table as exported (CSV/parquet).

        Published values plus a ``suppressed`` column naming the suppressed cells of each row.
        """
        frame, mask = self.frames[name], self.masks[name]
        if not mask.width:
            return frame
        names = pl.concat_str(
            [pl.when(pl.col(c)).then(pl.lit(c + ";")).otherwise(pl.lit("")) for c in mask.columns]
        )
        return frame.with_columns(suppressed=mask.select(names.str.strip_suffix(";").alias("s"))["s"])


def control(
    publication: Publication, /, *, rules: Rules = Rules(), trace: list[str] | None = None
) -> Controlled:
    """Apply primary and joint secondary suppression to every table; audit the result.

    Raises ``ValueError`` for a wrong declaration (an identity that does not hold, a quantity with two
    values). The returned publication may still fail its audit only if the declaration is wrong in a way the
    checks cannot see; :func:`audit` is run on the published frames and its result is attached.
    """
    model = _Model(publication, rules)
    nvar = len(model.vars)
    # cost of suppressing a count: the published cells lost with it (its own cells, and the means on it
    # with their companions), as the loss is measured; GaussSuppression's order (small values first) breaks
    # ties
    width = {(t.name, m.column): 1 + len(m.companions) for t in publication.tables for m in t.means}
    lost: dict[int, int] = {i: len(v.cells) for i, v in enumerate(model.vars)}
    for mc in model.means:
        if mc.n is not None and not mc.primary:
            lost[mc.n] += width[(mc.table, mc.column)]
    column_priority = {(t.name, c.column): c.priority for t in publication.tables for c in t.counts}
    priority = {
        i: max((column_priority.get((t, c), 0) for t, _, c in var.cells), default=0)
        for i, var in enumerate(model.vars)
    }
    published = np.array(
        [v.role == "count" and not (0 < v.value < v.threshold) for v in model.vars], dtype=bool
    )

    mean_priority = {(t.name, m.column): m.priority for t in publication.tables for m in t.means}
    for mc in model.means:
        if mc.numerator is not None and not mc.primary:
            lost[mc.numerator] += width[(mc.table, mc.column)]
            priority[mc.numerator] = max(priority.get(mc.numerator, 0), mean_priority[(mc.table, mc.column)])
    withdrawn = np.zeros(nvar, dtype=bool)  # numerators whose means are suppressed (secondary)

    def knowledge() -> np.ndarray:
        known = published.copy()
        for mc in model.means:
            if (
                not mc.primary
                and mc.numerator is not None
                and mc.n is not None
                and published[mc.n]
                and not withdrawn[mc.numerator]
            ):
                known[mc.numerator] = True
        return known  # a complement follows from its numerator and n through its identity

    cache: dict = {}

    def cost(i: int) -> tuple:
        return (priority.get(i, 0), lost[i], model.vars[i].value, i)

    integer = False  # the LP first (fast); once it passes, the integer programme, and on if that fails
    # withdrawing a published cell only widens the attacker's feasible set, so a quantity whose bound passed
    # stays protected: only the failing ones are solved again
    passed: set[int] = set()
    for _ in range(2 * nvar + 2):
        known = knowledge()
        targets = [t for t in _at_risk(model, known) if t not in passed]
        ranges, binding = _solve_ranges(model, known, targets, with_low=False, cache=cache, integer=integer)
        failing = [t for t in targets if ranges[t].disclosed]
        passed.update(t for t in targets if not ranges[t].disclosed)
        if not failing:
            if integer:
                break
            integer, passed = True, set()
            continue
        # one target after another, each against what the previous withdrawals already left
        for number, t in enumerate(failing):
            if number:
                known = knowledge()
                ranges_t, binding_t = _solve_ranges(
                    model, known, [t], with_low=False, cache=cache, integer=integer
                )
                if not ranges_t[t].disclosed:
                    passed.add(t)
                    continue
                ranges[t], binding[t] = ranges_t[t], binding_t[t]
            duals, adjacent = binding.get(t, (set(), frozenset()))
            candidates = sorted((i for i in adjacent if known[i] and model.vars[i].value > 0), key=cost)
            if not candidates:
                candidates = sorted(_adjacent_known(model, t, known), key=cost)
            fallback = min(
                (i for i in duals if known[i] and model.vars[i].value > 0),
                key=cost,
                default=candidates[0] if candidates else None,
            )
            if fallback is None:
                raise ValueError(
                    f"cannot protect {model.vars[t].key!r}: nothing published binds it; check the declaration"
                )
            # the cheapest candidate whose withdrawal widens the target's range: the LP duals certify the
            # binding one, but a degenerate optimum may name a known quantity that an equal one replaces
            best = fallback
            cheaper = [i for i in candidates if cost(i) < cost(fallback)]
            for i in cheaper[:_TRIALS]:
                got, _ = _solve_ranges(
                    model,
                    _withdraw(known, i, published, model),
                    [t],
                    with_low=False,
                    cache=cache,
                    integer=integer,
                )
                if got[t].high > ranges[t].high + 1e-9:
                    best = i
                    break
            if published[best]:
                published[best] = False
            else:
                withdrawn[best] = True
            if trace is not None:
                r = ranges[t]
                trace.append(
                    f"{model.vars[best].key} suppressed to protect {r.key} "
                    f"({r.value:g}, was at most {r.high:g})"
                )
    return _finish(publication, model, published, withdrawn, rules)


#: Quantities whose lower bound the audit computes too (those with the lowest upper bounds).
_EXPOSED = 25
#: Candidates tried (cheapest first) before the cheapest binding one is taken anyway.
_TRIALS = 4


def _withdraw(known: np.ndarray, i: int, published: np.ndarray, model: _Model) -> np.ndarray:
    """``known`` after withdrawing quantity ``i``: a count takes the numerators of its means with it."""
    out = known.copy()
    out[i] = False
    if published[i]:
        for mc in model.means_by_n.get(i, ()):
            if mc.numerator is None or mc.primary:
                continue
            # a numerator still known through another published mean on another published n stays known
            out[mc.numerator] = any(
                o.n is not None and o.n != i and known[o.n] and not o.primary
                for o in model.means_by_numerator.get(mc.numerator, ())
            )
    return out


def _adjacent_known(model: _Model, target: int, known: np.ndarray) -> list[int]:
    """Known quantities linked to ``target`` through identities over unknown quantities (breadth first)."""
    rows_by_var: dict[int, list[int]] = {}
    for r, row in enumerate(model.rows):
        for i in row:
            rows_by_var.setdefault(i, []).append(r)
    seen, frontier, found = {target}, [target], set()
    while frontier and not found:
        nxt = []
        for v in frontier:
            for i in {i for r in rows_by_var.get(v, ()) for i in model.rows[r]} - seen:
                seen.add(i)
                if known[i]:
                    if model.vars[i].value > 0:
                        found.add(i)
                else:
                    nxt.append(i)
        frontier = nxt
    return sorted(found)


def _finish(
    publication: Publication, model: _Model, published: np.ndarray, withdrawn: np.ndarray, rules: Rules
) -> Controlled:
    frames, masks, titles, losses = {}, {}, {}, []
    mean_cells = {(mc.table, mc.row, mc.column): mc for mc in model.means}
    mean_specs = {(t.name, m.column): m for t in publication.tables for m in t.means}
    for table in publication.tables:
        frame = table.frame
        hide: dict[str, np.ndarray] = {c: np.zeros(frame.height, dtype=bool) for c in frame.columns}
        primary: dict[str, np.ndarray] = {c: np.zeros(frame.height, dtype=bool) for c in frame.columns}
        count_cols = {c.column for c in table.counts}
        for var_index, var in enumerate(model.vars):
            if not published[var_index]:
                for t, row, column in var.cells:
                    if t == table.name:
                        hide[column][row] = True
                        primary[column][row] = 0 < var.value < var.threshold
        for mean in table.means:
            n_hidden = hide[mean.n]
            for row in range(frame.height):
                mc = mean_cells.get((table.name, row, mean.column))
                if mc is None:
                    continue
                if mc.primary or n_hidden[row] or (mc.numerator is not None and withdrawn[mc.numerator]):
                    for column in (mean.column, *mean.companions):
                        hide[column][row] = True
                        primary[column][row] |= mc.primary
        for estimate in table.estimates:
            for row in range(frame.height):
                if model.estimate_cells.get((table.name, row, estimate.columns[0])):
                    for column in estimate.columns:
                        hide[column][row] = True
                        primary[column][row] = True
        published_cols = [c for c in frame.columns if c not in table.internal]
        value_cols = [
            c
            for c in published_cols
            if c in count_cols
            or (table.name, c) in mean_specs
            or any(c in e.columns for e in table.estimates)
            or any(c in m.companions for m in table.means)
        ]
        out = frame.select(published_cols).with_columns(
            [pl.when(pl.Series(hide[c])).then(None).otherwise(pl.col(c)).alias(c) for c in value_cols]
        )
        mask = pl.DataFrame({c: hide[c] & frame[c].is_not_null().to_numpy() for c in value_cols})
        frames[table.name], masks[table.name], titles[table.name] = out, mask, table.title
        cells = int(sum(frame[c].is_not_null().sum() for c in value_cols))
        suppressed = int(sum(mask[c].sum() for c in value_cols)) if value_cols else 0
        first = int(sum((primary[c] & frame[c].is_not_null().to_numpy()).sum() for c in value_cols))
        losses.append(TableLoss(table.name, cells, suppressed, first))
    draft = Controlled(
        frames, masks, titles, tuple(losses), AuditResult(0, 0, 0, None, ()), publication.choices, rules
    )
    result = audit(publication, draft, rules=rules)
    return Controlled(frames, masks, titles, tuple(losses), result, publication.choices, rules)


# --- the attacker's audit ------------------------------------------------------------------------------


def audit(
    publication: Publication, published: Controlled | Mapping[str, pl.DataFrame], /, *, rules: Rules = Rules()
) -> AuditResult:
    """Attack the published frames with everything declared about them, as an output checker would.

    Reads the values an attacker sees from ``published`` (the frames as they leave; a ``Controlled`` or a
    mapping of table name to frame), takes the declared identities as known structure, and computes for
    every small quantity that is not published its feasible range over non-negative quantities (linear
    programme; integer programme for integer quantities whose LP bound is not far above the threshold).
    Problems: a small count, numerator or estimate printed; a mean printed without its n; any small
    unpublished quantity whose range lies below the threshold or is a single value.
    """
    frames = published.frames if isinstance(published, Controlled) else dict(published)
    model = _Model(publication, rules)
    problems: list[str] = []
    known = np.zeros(len(model.vars), dtype=bool)
    cells = suppressed = 0
    specs = {t.name: t for t in publication.tables}
    for name, table in specs.items():
        if name not in frames:
            continue
        out = frames[name]
        columns = dict.fromkeys(
            [c.column for c in table.counts]
            + [m.column for m in table.means]
            + [c for m in table.means for c in m.companions]
            + [c for e in table.estimates for c in e.columns]
        )
        for column in columns:
            if column in out.columns:
                truth = table.frame[column].is_not_null()
                cells += int(truth.sum())
                suppressed += int((truth & out[column].is_null()).sum())
    for i, var in enumerate(model.vars):
        for name, row, column in var.cells:
            out = frames.get(name)
            if out is None or column not in out.columns or out[column][row] is None:
                continue
            shown = float(out[column][row])
            if abs(shown - var.value) > 1e-6 * max(1.0, abs(var.value)):
                problems.append(f"{name}.{column}[{row}] shows {shown:g}, not the declared {var.value:g}")
            known[i] = True
            if 0 < var.value < var.threshold:
                problems.append(f"small count printed: {var.key} = {var.value:g} ({name}.{column})")
    for mc in model.means:
        out = frames.get(mc.table)
        if out is None or out[mc.column][mc.row] is None:
            continue
        if mc.primary:
            problems.append(
                f"{mc.table}.{mc.column}[{mc.row}] is printed although "
                f"{model.primary_reasons.get((mc.table, mc.row, mc.column))}"
            )
        if mc.n is None or not known[mc.n]:
            problems.append(f"{mc.table}.{mc.column}[{mc.row}] is printed without its n")
        elif mc.numerator is not None:
            known[mc.numerator] = True
    for (name, row, column), small in model.estimate_cells.items():
        out = frames.get(name)
        if small and out is not None and column in out.columns and out[column][row] is not None:
            problems.append(
                f"{name}.{column}[{row}] is printed although {model.primary_reasons.get((name, row, column))}"
            )
    targets = _at_risk(model, known)
    ranges, _ = _solve_ranges(model, known, targets, with_low=False)
    # the lower ends only for the most exposed quantities (the narrowest range is reported)
    exposed = sorted(targets, key=lambda t: ranges[t].high)[:_EXPOSED]
    ranges |= _solve_ranges(model, known, exposed, with_low=True)[0]
    for t in targets:
        r = ranges[t]
        if r.disclosed:
            problems.append(
                f"{r.key} (true {r.value:g}) can be derived to lie in {r.low:g}..{r.high:g} ({r.method})"
            )
    narrowest = min(ranges.values(), key=lambda r: (r.high, r.high - r.low)) if ranges else None
    return AuditResult(cells, suppressed, len(targets), narrowest, tuple(problems))
