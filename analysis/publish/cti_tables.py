"""The CTI effect report's published tables, declared for the publication layer (analysis.publish.disclosure).

Every table the researchers get is declared here with the roles of its cells, and every relation between
them that an attacker can know from the design: the quantity keys below name the populations (one key,
one number, wherever it is printed), and :func:`declare` adds the identities and the hidden differences
that must stay protected. How to add a table is described in :mod:`analysis.publish.disclosure`.

Keys (``{o}`` = the outcome where the population depends on it, dropped where every outcome agrees):

* ``M.n@{e}`` matched participants observed at event month e (event study n_treated, participants' raw
  means), ``C.n@{e}`` matched comparisons (n_controls, comparisons' raw means), ``P.n@{e}`` all linked
  participants (naive before/after); hidden ``U.n@{e}`` = P - M (unmatched participants) and the month
  differences ``d.X@{e}`` = X.n@e - X.n@(e+1) (persons whose follow-up ends at e: the starters of one month).
* ``M.g{q}`` matched participants starting in quarter q (group-time ATT n), ``did.M.{dim}={level}`` and
  ``did.C.{dim}={level}`` the pooled DiD's sub-groups, ``stag.M``/``stag.C`` the staggered sample.
* ``{o}|X.S@{e}`` numerators (persons with the outcome, events) of the raw means, and ``{o}|U.S@{e}`` the
  unmatched participants' numerator (hidden).
* ``rows|{site}|{period}``, ``clean|…``, ``quar|…``, ``dup|…`` rows of the provenance tables.

Less lossy choices taken here (said in the report): the per-submission row counts are not published (they
are the stewards' detail, exact in the steward view); provenance counts go out by site and year when more
than a third of the site x quarter cells would be suppressed on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from analysis.publish.disclosure import Count, Estimate, Hidden, Identity, Kind, Mean, Publication, Table

#: What each outcome of the panel is, for the rules (analysis.schema.OUTCOMES).
OUTCOME_KINDS: dict[str, Kind] = {
    "self_support": Kind.SHARE,
    "unemployment_insurance": Kind.SHARE,
    "social_assistance": Kind.SHARE,
    "sickness_benefit": Kind.SHARE,
    "disability_pension": Kind.SHARE,
    "employed": Kind.BINARY,
    "enrolled": Kind.BINARY,
    "earnings": Kind.MAGNITUDE,
    "edu_level": Kind.LEVEL,
    "emergency_contacts": Kind.EVENTS,
    "psych_admissions": Kind.EVENTS,
    "bed_days": Kind.MAGNITUDE,
}
#: Balance covariates that are not outcome histories: 0/1 indicators or levels.
BALANCE_KINDS: dict[str, Kind] = {
    "sex": Kind.BINARY,
    "greenlandic": Kind.BINARY,
    "immigrant": Kind.BINARY,
    "capital": Kind.BINARY,
    "large city": Kind.BINARY,
    "age": Kind.LEVEL,
    "age squared": Kind.LEVEL,
}
_NUMERATOR_KINDS = (Kind.BINARY, Kind.SHARE, Kind.EVENTS)
_EST = ("estimate", "se", "ci_lower", "ci_upper")
_ATT = ("att", "se", "ci_lower", "ci_upper")
#: Above this share of small site x quarter cells the provenance counts are published by year.
COARSEN_PROVENANCE = 1 / 3


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """Tables of one run (analysis.schema effect contracts); any may be empty."""

    estimates: pl.DataFrame
    event_study: pl.DataFrame
    matched_means: pl.DataFrame
    balance: pl.DataFrame
    group_time: pl.DataFrame
    aggregates: pl.DataFrame
    before_after: pl.DataFrame
    #: site, quarter, file_name, received_at, rows_in, rows_clean, rows_quarantined, rows_duplicate, status,
    #: reason
    provenance: pl.DataFrame
    run_info: dict[str, str] = field(default_factory=dict)
    truth: dict | None = None
    #: One row per planned outcome that is not current: outcome, status ("failed"/"missing"), reason.
    outcome_status: pl.DataFrame = field(default_factory=pl.DataFrame)
    headline_outcomes: tuple[str, ...] = ("self_support", "employed", "emergency_contacts")
    #: analysis.estimate.sensitivity tables, every outcome's rows (``PRETREND_TESTS``, ``PHASE_EFFECTS``,
    #: ``PLACEBO_EFFECTS``, ``HONEST_DID``).
    pretrend_tests: pl.DataFrame = field(default_factory=pl.DataFrame)
    phase_effects: pl.DataFrame = field(default_factory=pl.DataFrame)
    placebo: pl.DataFrame = field(default_factory=pl.DataFrame)
    honest: pl.DataFrame = field(default_factory=pl.DataFrame)
    #: analysis.publish.sample_flow.SampleFlow: the flow table and the matched/unmatched comparison.
    sample_flow: pl.DataFrame = field(default_factory=pl.DataFrame)
    flow_comparison: pl.DataFrame = field(default_factory=pl.DataFrame)
    #: The public-budget (SØM) frames the ``public_budget`` asset persists (analysis.publish.som_report);
    #: ``som_problem`` says why there are none (a failed price check).
    som_budget: pl.DataFrame = field(default_factory=pl.DataFrame)
    som_effects: pl.DataFrame = field(default_factory=pl.DataFrame)
    som_sensitivity: pl.DataFrame = field(default_factory=pl.DataFrame)
    som_prices: pl.DataFrame = field(default_factory=pl.DataFrame)
    som_problem: str = ""
    #: Programme monitoring (analysis.publish.monitoring.Monitoring), None when not computed, and the
    #: problems its status table reports.
    monitoring: object | None = None
    monitoring_problems: tuple[str, ...] = ()
    #: Words, units and number formats (analysis.publish.labels.Labels): required to render.
    labels: object | None = None
    #: The preferred design of each headline outcome (default: the matched DiD for every outcome).
    preferred: dict[str, str] = field(default_factory=dict)


class _Book:
    """Collects true values per key, the identities that hold, and hidden differences."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.identities: list[Identity] = []
        self.hidden: list[Hidden] = []
        self._seen: set[tuple] = set()

    def note(self, keys: list[str | None], values: list[float | None]) -> None:
        for k, v in zip(keys, values, strict=True):
            if k is not None and v is not None:
                self.values.setdefault(k, float(v))

    def has(self, *keys: str) -> bool:
        return all(k in self.values for k in keys)

    def identity(self, terms: dict[str, float], label: str) -> None:
        """Declare ``sum(c * key) == 0`` when every key exists and it holds.

        An attacker can use only true relations; one that does not hold on this run is not one of this run.
        """
        if not terms or not self.has(*terms):
            return
        residual = sum(c * self.values[k] for k, c in terms.items())
        if abs(residual) > 1e-6 * max(1.0, *(abs(self.values[k]) for k in terms)):
            return
        key = tuple(sorted(terms.items()))
        if key not in self._seen:
            self._seen.add(key)
            self.identities.append(Identity(tuple(terms.items()), label))

    def difference(
        self, hidden: str, a: str, b: str, *, numerator: bool = False, integer: bool = True
    ) -> None:
        """Hidden ``hidden = a - b`` (non-negative), when both exist and a >= b."""
        if not self.has(a, b) or hidden in self.values:
            return
        value = self.values[a] - self.values[b]
        if value < -1e-9:
            return
        self.values[hidden] = value
        self.hidden.append(Hidden(hidden, value, integer=integer, numerator=numerator))
        self.identity({a: 1.0, b: -1.0, hidden: -1.0}, f"{hidden} = {a} - {b}")


def _shared(frame: pl.DataFrame, base: pl.Expr, value: str) -> pl.Expr:
    """Key on ``base`` where every outcome agrees on the value, else on ``base`` + "|" + outcome."""
    if not frame.height or "outcome" not in frame.columns:
        return base
    keyed = frame.select(k=base, v=pl.col(value), o=pl.col("outcome"))
    split = (
        keyed.drop_nulls("v")
        .group_by("k")
        .agg(pl.col("v").n_unique().alias("u"))
        .filter(pl.col("u") > 1)["k"]
    )
    return (
        pl.when(base.is_in(split.implode()))
        .then(pl.concat_str([base, pl.lit("|"), pl.col("outcome")]))
        .otherwise(base)
    )


def _or_empty(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Return ``frame`` in its contract's types (a missing table becomes an empty frame of the contract)."""
    if not frame.width:
        return pl.DataFrame(schema=schema)
    return frame.with_columns(
        [
            pl.col(c).cast(t, strict=False) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
            for c, t in schema.items()
        ]
    )


def _kind_column(outcome: pl.Expr) -> pl.Expr:
    return outcome.replace_strict({k: str(v) for k, v in OUTCOME_KINDS.items()}, default=str(Kind.MAGNITUDE))


def _keys(frame: pl.DataFrame, expr: pl.Expr) -> list[str | None]:
    return frame.select(expr.alias("k"))["k"].to_list() if frame.height else []


def declare(inputs: ReportInputs, /) -> Publication:
    """Declare the run's publication: every researcher-facing table, its roles, identities, hidden cells."""
    from analysis.schema import (
        BALANCE,
        EFFECT_ESTIMATES,
        EVENT_STUDY,
        GROUP_TIME_ATT,
        MATCHED_MEANS,
        STAGGERED_AGGREGATES,
    )

    book = _Book()
    tables: list[Table] = []
    choices: list[str] = []
    contributors = ("n_positive", "n_full", "top2_share")
    ba_schema = pl.Schema(
        {
            "outcome": pl.String,
            "event_time": pl.Int32,
            "mean": pl.Float64,
            "se": pl.Float64,
            "ci_lower": pl.Float64,
            "ci_upper": pl.Float64,
            "n": pl.Int64,
            "n_positive": pl.Int64,
            "n_full": pl.Int64,
            "top2_share": pl.Float64,
        }
    )

    # --- event-time series: matched participants / comparisons, naive participants ---------------------
    es = _or_empty(inputs.event_study, EVENT_STUDY).sort("outcome", "event_time")
    mm = _or_empty(inputs.matched_means, MATCHED_MEANS).sort("outcome", "group", "event_time")
    ba = _or_empty(inputs.before_after, ba_schema).sort("outcome", "event_time")
    series = pl.concat(
        [
            es.select("outcome", "event_time", s=pl.lit("M"), v="n_treated", src=pl.lit("es")),
            es.select("outcome", "event_time", s=pl.lit("C"), v="n_controls", src=pl.lit("es")),
            mm.select(
                "outcome",
                "event_time",
                s=pl.when(pl.col("group") == "participants").then(pl.lit("M")).otherwise(pl.lit("C")),
                v="n",
                src=pl.lit("mm"),
            ),
            ba.select("outcome", "event_time", s=pl.lit("P"), v="n", src=pl.lit("ba")),
        ]
    ).drop_nulls("v")
    # the event study and the raw means count the same persons; where a run's tables disagree they are not
    # the same population and get a series of their own
    clash = pl.col("v").n_unique().over("outcome", "s", "event_time") > 1
    series = series.with_columns(
        s=pl.when(clash).then(pl.concat_str([pl.col("s"), pl.lit("."), pl.col("src")])).otherwise(pl.col("s"))
    )
    series = series.unique(["outcome", "s", "event_time"], keep="first").sort("outcome", "s", "event_time")
    # persons observed at e and at e + 1 are nested sets (all observed before the start; fewer after it):
    # equal counts on consecutive months are the same persons, so they are one quantity
    run = (pl.col("v") != pl.col("v").shift(1)).fill_null(True).cum_sum().over("outcome", "s")
    series = series.with_columns(e0=pl.col("event_time").min().over("outcome", "s", run))
    base_n = pl.format("{}.n@{}", pl.col("s"), pl.col("e0"))
    series = series.with_columns(key=_shared(series, base_n, "v"))
    book.note(series["key"].to_list(), series["v"].to_list())
    key_of = {(o, s, e): k for o, s, e, k in series.select("outcome", "s", "event_time", "key").iter_rows()}

    def n_key(outcome: str, s: str, e: int) -> str | None:
        return key_of.get((outcome, s, e))

    lookup = {f"{o}|{s}|{e}": k for (o, s, e), k in key_of.items()}

    def n_expr(s: str | pl.Expr, src: str) -> pl.Expr:
        s_expr = pl.lit(s) if isinstance(s, str) else s
        e = pl.col("event_time").cast(pl.String)
        own = pl.concat_str([pl.col("outcome"), pl.concat_str([s_expr, pl.lit("." + src)]), e], separator="|")
        common = pl.concat_str([pl.col("outcome"), s_expr, e], separator="|")
        return pl.coalesce(
            own.replace_strict(lookup, default=None, return_dtype=pl.String),
            common.replace_strict(lookup, default=None, return_dtype=pl.String),
        )

    outcomes = sorted(set(series["outcome"].to_list()))
    unmatched: dict[tuple[str, int], str] = {}
    for o in outcomes:
        times = sorted({e for (oo, _, e) in key_of if oo == o})
        for e in times:
            m, p = n_key(o, "M", e), n_key(o, "P", e)
            if m and p:
                name = f"U.n[{p}-{m}]"
                book.difference(name, p, m)
                if name in book.values:
                    unmatched[(o, e)] = name
        for s in ("M", "C", "P", "U"):
            chain = [(e, n_key(o, s, e) if s != "U" else unmatched.get((o, e))) for e in times]
            chain = [(e, k) for e, k in chain if k]
            for (e0, k0), (e1, k1) in zip(chain, chain[1:], strict=False):
                if e1 == e0 + 1 and k0 != k1:
                    book.difference(f"d.{k0}", k0, k1)

    # numerators of the raw means (participants: matched and naive) and the unmatched difference
    # the comparisons' means are weighted (no person-count numerator identity), but the same rules apply to
    # mean x n as if it were one: conservative, and what an output checker computes first
    mm = mm.with_columns(
        _kind=_kind_column(pl.col("outcome")),
        _s=pl.when(pl.col("group") == "participants").then(pl.lit("M")).otherwise(pl.lit("C")),
    )
    numer = pl.when(pl.col("_kind").is_in([str(k) for k in _NUMERATOR_KINDS]) & (pl.col("_s") != "C")).then(
        pl.format("{}|{}.S@{}", pl.col("outcome"), pl.col("_s"), pl.col("event_time"))
    )
    mm = mm.with_columns(_numerator=numer)
    ba = ba.with_columns(_kind=_kind_column(pl.col("outcome")), _s=pl.lit("P")).with_columns(_numerator=numer)
    for frame in (mm, ba):
        keys = frame["_numerator"].to_list()
        totals = frame.select(pl.col("mean") * pl.col("n"))["mean"].to_list()
        book.note(keys, totals)
    for o in outcomes:
        if OUTCOME_KINDS.get(o) not in _NUMERATOR_KINDS:
            continue
        integer = OUTCOME_KINDS[o] is not Kind.SHARE
        for e in sorted({e for (oo, _, e) in key_of if oo == o}):
            p, m = f"{o}|P.S@{e}", f"{o}|M.S@{e}"
            if book.has(p, m):
                book.difference(f"{o}|U.S@{e}", p, m, numerator=True, integer=integer)
                u = unmatched.get((o, e))
                if u and OUTCOME_KINDS[o] is not Kind.EVENTS:
                    book.difference(f"{o}|U.S@{e}~", u, f"{o}|U.S@{e}", numerator=True, integer=integer)

    # --- pooled estimates ---------------------------------------------------------------------------------
    est = _or_empty(inputs.estimates, EFFECT_ESTIMATES)
    est = est.with_columns(
        _t=pl.when(pl.col("design") == "matched_did")
        .then(pl.format("did.M.{}={}", pl.col("dimension"), pl.col("level")))
        .when(pl.col("design") == "staggered_att")
        .then(pl.lit("stag.M"))
        .otherwise(pl.format("{}.P", pl.col("design"))),
        _c=pl.when(pl.col("design") == "matched_did")
        .then(pl.format("did.C.{}={}", pl.col("dimension"), pl.col("level")))
        .when(pl.col("design") == "staggered_att")
        .then(pl.lit("stag.C"))
        .otherwise(pl.format("{}.C", pl.col("design"))),
    )
    est = est.with_columns(
        _t=_shared(est, pl.col("_t"), "n_treated"), _c=_shared(est, pl.col("_c"), "n_controls")
    )
    book.note(est["_t"].to_list(), est["n_treated"].to_list())
    book.note(est["_c"].to_list(), est["n_controls"].to_list())
    for o in sorted(set(est["outcome"].to_list())):

        def k(base: str, o: str = o) -> str:
            return base if base in book.values else f"{base}|{o}"

        m12, c12 = n_key(o, "M", 12), n_key(o, "C", 12)
        if m12:
            book.identity(
                {k("did.M.all=all"): 1.0, m12: -1.0}, "pooled DiD n = matched participants observed at 12"
            )
        if c12:
            book.identity(
                {k("did.C.all=all"): 1.0, c12: -1.0}, "pooled DiD controls = comparisons observed at 12"
            )
        p12 = n_key(o, "P", 12)
        if p12:
            book.identity(
                {k("naive_before_after.P"): 1.0, p12: -1.0}, "naive n = participants observed at 12"
            )
        m0, c0 = n_key(o, "M", 0), n_key(o, "C", 0)
        if m0:
            book.identity({k("stag.M"): 1.0, m0: -1.0}, "staggered n = all matched participants")
        if c0:
            book.identity({k("stag.C"): 1.0, c0: -1.0}, "staggered controls = all matched comparisons")
        rows = est.filter(
            (pl.col("design") == "matched_did") & (pl.col("dimension") != "all") & (pl.col("outcome") == o)
        )
        for dim in sorted(set(rows["dimension"].to_list())):
            parts = sorted(set(rows.filter(pl.col("dimension") == dim)["_t"].to_list()))
            terms = {k("did.M.all=all"): 1.0}
            for part in parts:
                terms[part] = terms.get(part, 0.0) - 1.0
            book.identity(terms, f"pooled DiD n = sum of its {dim} sub-groups")
    tables.append(
        Table(
            "estimates",
            "Pooled effects by design and sub-group",
            est,
            counts=(
                Count("n_treated", pl.col("_t"), priority=1),
                Count("n_controls", pl.col("_c"), priority=1),
            ),
            estimates=(
                Estimate(
                    (*_EST, "mde", "pretrend_p"),
                    ("n_treated", "n_controls"),
                    dof=pl.col("n_treated") + pl.col("n_controls").fill_null(0) - 2,
                ),
            ),
            internal=("_t", "_c"),
        )
    )

    tables.append(
        Table(
            "event_study",
            "Event study on the matched sample",
            es,
            counts=(
                Count("n_treated", n_expr("M", "es"), priority=1),
                Count("n_controls", n_expr("C", "es"), priority=1),
            ),
            estimates=(
                Estimate(
                    _EST, ("n_treated", "n_controls"), dof=pl.col("n_treated") + pl.col("n_controls") - 2
                ),
            ),
        )
    )
    tables.append(
        Table(
            "matched_means",
            "Raw means: participants and matched comparisons",
            mm,
            counts=(Count("n", n_expr(pl.col("_s"), "mm")),),
            means=(
                Mean(
                    "mean",
                    "n",
                    "_kind",
                    numerator=pl.col("_numerator"),
                    contributors=contributors,
                    priority=1,
                ),
            ),
            internal=("_kind", "_s", "_numerator", *contributors),
        )
    )
    tables.append(
        Table(
            "before_after",
            "Naive before/after: all linked participants",
            ba,
            counts=(Count("n", n_expr("P", "ba")),),
            means=(
                Mean(
                    "mean",
                    "n",
                    "_kind",
                    numerator=pl.col("_numerator"),
                    companions=("se", "ci_lower", "ci_upper"),
                    contributors=contributors,
                ),
            ),
            internal=("_kind", "_s", "_numerator", *contributors),
        )
    )

    # --- staggered adoption ------------------------------------------------------------------------------
    gt = _or_empty(inputs.group_time, GROUP_TIME_ATT).sort("outcome", "cohort", "period")
    gt = gt.with_columns(_g=_shared(gt, pl.format("M.g{}", pl.col("cohort")), "n_treated"))
    book.note(gt["_g"].to_list(), gt["n_treated"].to_list())
    agg = _or_empty(inputs.aggregates, STAGGERED_AGGREGATES)
    persons = []
    for row in agg.iter_rows(named=True):
        cohorts = (
            gt.filter(pl.col("outcome") == row["outcome"]).select("cohort", "period", "n_treated").unique()
        )
        sizes = dict(cohorts.select("cohort", "n_treated").unique("cohort").iter_rows())
        kind, key = row["aggregation"], row["key"]
        if kind == "group":
            behind = sizes.get(key)
        elif kind == "calendar":
            behind = sum(v for g, v in sizes.items() if key is not None and g <= key)
        elif kind == "dynamic":
            hit = cohorts.filter(pl.col("period") - pl.col("cohort") == key)["cohort"].unique().to_list()
            behind = sum(sizes[g] for g in hit)
        else:
            behind = sum(sizes.values())
        persons.append(behind)
    agg = agg.with_columns(
        _persons=pl.Series(persons, dtype=pl.Int64) if agg.height else pl.lit(None, pl.Int64),
        _t=pl.lit("stag.M"),
    )
    agg = agg.with_columns(_t=_shared(agg, pl.col("_t"), "n_treated"))
    for o in outcomes:
        sizes = gt.filter(pl.col("outcome") == o).select("cohort", "_g").unique("cohort").sort("cohort")
        if not sizes.height:
            continue
        stag = "stag.M" if "stag.M" in book.values else f"stag.M|{o}"
        book.identity(
            {stag: 1.0, **{g: -1.0 for g in sizes["_g"].to_list()}}, "staggered n = sum of its start quarters"
        )
        last = int(gt.filter(pl.col("outcome") == o)["period"].max())
        for cohort, g in sizes.iter_rows():
            k = last - int(cohort)
            a, b = n_key(o, "M", 3 * k), n_key(o, "M", 3 * k + 3)
            if a and b:
                book.identity(
                    {g: 1.0, a: -1.0, b: 1.0}, "a start quarter's n = n(3k) - n(3k + 3) of the event study"
                )
        for level in (
            est.filter((pl.col("outcome") == o) & (pl.col("dimension") == "start_cohort"))["_t"]
            .unique()
            .to_list()
        ):
            year = (
                int(level.split("=")[1].split("|")[0])
                if level.split("=")[1].split("|")[0].isdigit()
                else None
            )
            if year is None:
                continue
            full = [g for c, g in sizes.iter_rows() if int(c) // 4 == year and int(c) <= last - 4]
            book.identity(
                {level: 1.0, **{g: -1.0 for g in full}},
                "a start year's DiD n = its start quarters observed at 12",
            )
    tables.append(
        Table(
            "group_time",
            "Group-time ATT by start quarter and quarter",
            gt,
            counts=(Count("n_treated", pl.col("_g"), priority=1),),
            estimates=(Estimate(_ATT, ("n_treated",)),),
            internal=("_g",),
        )
    )
    tables.append(
        Table(
            "aggregates",
            "Aggregations of the group-time ATTs",
            agg,
            counts=(Count("n_treated", pl.col("_t"), priority=1),),
            estimates=(Estimate(_ATT, ("_persons",)),),
            internal=("_persons", "_t"),
        )
    )

    # --- balance ------------------------------------------------------------------------------------------
    bal = _or_empty(inputs.balance, BALANCE)
    if bal.height:
        first = outcomes[0] if outcomes else ""
        m_all = n_key(first, "M", 0) or n_key(first, "M.es", 0)
        c_all = n_key(first, "C", 0) or n_key(first, "C.es", 0)
        if m_all and "|" in m_all or c_all and "|" in c_all:  # the outcomes disagree: no common key
            m_all = c_all = None
        n_t = book.values.get(m_all) if m_all else None
        n_c = book.values.get(c_all) if c_all else None
        rows = []
        for cov in bal["covariate"].to_list():
            outcome, _, window = cov.rpartition(" ")
            if outcome in OUTCOME_KINDS and window:
                lo, _, hi = window.partition("..")
                lo, hi = int(lo), int(hi or lo)
                kind = OUTCOME_KINDS[outcome]
                numerator = (
                    (f"{outcome}|M.S@{lo}" if lo == hi else f"{outcome}|M.S@{lo}..{hi}")
                    if kind in _NUMERATOR_KINDS
                    else None
                )
                rows.append((str(kind), hi - lo + 1, numerator, outcome, lo, hi))
            else:
                kind = BALANCE_KINDS.get(cov, Kind.LEVEL)
                rows.append(
                    (str(kind), 1, f"balance|{cov}" if kind in _NUMERATOR_KINDS else None, None, 0, 0)
                )
        bal = bal.with_columns(
            n_treated=pl.lit(n_t, pl.Int64),
            n_controls=pl.lit(n_c, pl.Int64),
            _kind=pl.Series([r[0] for r in rows]),
            _per=pl.Series([r[1] for r in rows], dtype=pl.Int64),
            _numerator=pl.Series([r[2] for r in rows], dtype=pl.String),
            _t=pl.lit(m_all or "balance.M"),
            _c=pl.lit(c_all or "balance.C"),
            _w=pl.lit(str(Kind.WEIGHTED)),
        )
        book.note(
            bal["_numerator"].to_list(),
            bal.select(pl.col("mean_treated") * pl.col("n_treated") * pl.col("_per"))[
                "mean_treated"
            ].to_list(),
        )
        for _, _per, numerator, outcome, lo, hi in rows:
            if numerator and lo != hi:
                months = [f"{outcome}|M.S@{e}" for e in range(lo, hi + 1)]
                book.identity(
                    {numerator: 1.0, **{m: -1.0 for m in months}}, "a window mean's numerator = its months'"
                )
        tables.append(
            Table(
                "balance",
                "Covariate balance of the matched sample",
                bal,
                counts=(
                    Count("n_treated", pl.col("_t"), priority=1),
                    Count("n_controls", pl.col("_c"), priority=1),
                ),
                means=(
                    Mean(
                        "mean_treated",
                        "n_treated",
                        "_kind",
                        numerator=pl.col("_numerator"),
                        per="_per",
                        companions=("smd_before", "smd_after", "var_ratio_before", "var_ratio_after"),
                        priority=1,
                    ),
                    Mean(
                        "mean_control_after", "n_controls", "_kind", per="_per",
                        companions=("smd_after", "var_ratio_after"),
                    ),
                ),
                internal=("_kind", "_per", "_numerator", "_t", "_c", "_w"),
            )
        )

    # --- provenance ---------------------------------------------------------------------------------------
    prov = inputs.provenance
    if prov.height and {"site", "quarter", "rows_in"} <= set(prov.columns):
        tables.extend(_provenance(prov, book, choices))

    # --- sensitivity, sample flow, public budget, monitoring (issue #21) -----------------------------------
    keys = _Keys(book, n_key, outcomes)
    tables.extend(_sensitivity(inputs, keys))
    flow_keys = _sample_flow(inputs, keys, tables)
    tables.extend(_som(inputs, keys))
    if inputs.monitoring is not None:
        from analysis.publish.monitoring_tables import declare_monitoring

        tables.extend(declare_monitoring(inputs.monitoring, book, flow_keys, choices))
    return Publication(tuple(tables), tuple(book.identities), tuple(book.hidden), tuple(choices))


class _Keys:
    """Keys of quantities already declared, for the tables added after the core ones."""

    def __init__(self, book: _Book, n_key, outcomes: list[str]) -> None:
        self.book, self._n_key, self.outcomes = book, n_key, outcomes

    def n(self, outcome: str, side: str, month: int) -> str | None:
        """Return the event study's (or raw means') key of side ``M``/``C``/``P`` at event month ``month``."""
        return self._n_key(outcome, side, month) or self._n_key(outcome, f"{side}.es", month)

    def same(self, key: str | None, value: float | None, fallback: str) -> str:
        """``key`` when it holds ``value`` (the same persons), else ``fallback`` noted with ``value``."""
        if key is not None and value is not None and self.book.values.get(key) == float(value):
            return key
        if value is not None:
            self.book.note([fallback], [value])
        return fallback

    def pooled(self, base: str, outcome: str) -> str:
        """Return a pooled-estimate key, outcome-specific where the outcomes disagree (``did.M.all=all``)."""
        return base if base in self.book.values else f"{base}|{outcome}"


def _estimate_table(name: str, title: str, frame: pl.DataFrame, keys: _Keys, *, month: str,
                    columns: tuple[str, ...], persons: tuple[str, str] | None = None,
                    internal: tuple[str, ...] = ()) -> Table:
    """Return an estimates table whose n_treated/n_controls are the event study's n at column ``month``."""
    kt, kc = [], []
    for row in frame.iter_rows(named=True):
        o, e = row["outcome"], row[month]
        kt.append(keys.same(keys.n(o, "M", e), row["n_treated"], f"{name}.M|{o}|{e}"))
        kc.append(keys.same(keys.n(o, "C", e), row["n_controls"], f"{name}.C|{o}|{e}"))
    frame = frame.with_columns(_kt=pl.Series(kt, dtype=pl.String), _kc=pl.Series(kc, dtype=pl.String))
    who = persons or ("n_treated", "n_controls")
    return Table(
        name, title, frame,
        counts=(Count("n_treated", pl.col("_kt"), priority=1),
                Count("n_controls", pl.col("_kc"), priority=1)),
        estimates=(Estimate(columns, who, dof=pl.col(who[0]) + pl.col(who[1]).fill_null(0) - 2),),
        internal=("_kt", "_kc", *internal),
    )


def _sensitivity(inputs: ReportInputs, keys: _Keys) -> list[Table]:
    """Pre-trend tests, phase effects, the placebo and the honest-DiD bounds (all on the event study's n)."""
    from analysis.schema import HONEST_DID, PHASE_EFFECTS, PLACEBO_EFFECTS, PRETREND_TESTS

    out = []
    tests = _or_empty(inputs.pretrend_tests, PRETREND_TESTS).drop_nulls("n_treated").sort("outcome", "test")
    if tests.height:
        out.append(_estimate_table("pretrend_tests", "Pre-trend tests of the event study", tests, keys,
                                   month="first_month", columns=("chi2", "p_value")))
    phases = _or_empty(inputs.phase_effects, PHASE_EFFECTS).drop_nulls("n_treated")
    if phases.height:
        out.append(_estimate_table("phase_effects", "Effects by CTI phase", phases, keys, month="first_month",
                                   columns=_EST, persons=("persons_min", "controls_min"),
                                   internal=("persons_min", "controls_min")))
    placebo = _or_empty(inputs.placebo, PLACEBO_EFFECTS).drop_nulls("n_treated")
    if placebo.height:
        # the placebo's participants are those observed in real month post_first - shift
        placebo = placebo.with_columns(_real=pl.col("post_first") - pl.col("shift"))
        out.append(_estimate_table("placebo", "Placebo: every start moved 12 months earlier", placebo, keys,
                                   month="_real", columns=(*_EST, "mde"), internal=("_real",)))
    honest = _or_empty(inputs.honest, HONEST_DID).drop_nulls("n_treated")
    if honest.height:
        out.append(_estimate_table(
            "honest_did", "Honest DiD: relative-magnitude bounds of the pooled effect", honest, keys,
            month="first_month", columns=("estimate", "id_lower", "id_upper", "ci_lower", "ci_upper",
                                          "breakdown_m_bar", "max_pre_step"),
            persons=("persons_min", "controls_min"), internal=("persons_min", "controls_min")))
    return out


def _provenance(prov: pl.DataFrame, book: _Book, choices: list[str]) -> list[Table]:
    """Submissions (no counts), rows by site and period, rows by site and outcome of validation."""
    counts = {"rows_in": "rows", "rows_clean": "clean", "rows_quarantined": "quar", "rows_duplicate": "dup"}
    cols = [c for c in counts if c in prov.columns]
    files = prov.select(
        [c for c in ("site", "quarter", "file_name", "received_at", "status", "reason") if c in prov.columns]
    )
    long = prov.select("site", "quarter", *[pl.col(c).fill_null(0).cast(pl.Int64) for c in cols])
    inner = long.filter(pl.col("rows_in") > 0)["rows_in"]
    small = ((inner > 0) & (inner < 5)).sum() / max(1, inner.len())
    period = pl.col("quarter")
    if small > COARSEN_PROVENANCE:
        period = pl.col("quarter").str.slice(0, 4)
        choices.append(
            f"Rows received are published by site and year, not quarter: {small:.0%} of the site x quarter "
            "cells were under 5 rows and would have been suppressed with their neighbours."
        )
    choices.append(
        "The per-submission row counts (rows in, clean, quarantined, duplicates per file) are not "
        "published here: they are the stewards' working detail, exact in the steward view and the sites' "
        "feedback files (not for publication), and with the site totals they would give away small cells."
    )
    long = (
        long.with_columns(period=period)
        .group_by("site", "period")
        .agg([pl.col(c).sum() for c in cols])
        .sort("site", "period")
    )
    sites = sorted(long["site"].unique().to_list())
    periods = sorted(long["period"].unique().to_list())
    value = {(s, p): r for s, p, *r in long.select("site", "period", *cols).iter_rows()}
    for s in sites:
        for p in periods:
            r = value.get((s, p), [0] * len(cols))
            book.values[f"rows|{s}|{p}"] = float(r[0])
            parts = []
            for c, v in zip(cols[1:], r[1:], strict=True):
                key = f"{counts[c]}|{s}|{p}"
                book.values[key] = float(v)
                book.hidden.append(Hidden(key, float(v)))
                parts.append(key)
            if parts:
                book.identity(
                    {f"rows|{s}|{p}": 1.0, **{k: -1.0 for k in parts}},
                    "rows in = clean + quarantined + duplicates",
                )
    wide_rows = []
    for s in [*sites, "Total"]:
        row = {"site": s}
        for p in [*periods, "Total"]:
            if s == "Total" and p == "Total":
                v = sum(value.get((a, b), [0])[0] for a in sites for b in periods)
            elif s == "Total":
                v = sum(value.get((a, p), [0])[0] for a in sites)
            elif p == "Total":
                v = sum(value.get((s, b), [0])[0] for b in periods)
            else:
                v = value.get((s, p), [0])[0]
            row[p] = int(v)
            book.values[f"rows|{s}|{p}"] = float(v)
        wide_rows.append(row)
    by_period = pl.DataFrame(
        wide_rows, schema={"site": pl.String, **{p: pl.Int64 for p in [*periods, "Total"]}}
    )
    for s in [*sites, "Total"]:
        book.identity({f"rows|{s}|Total": 1.0, **{f"rows|{s}|{p}": -1.0 for p in periods}}, "row margin")
    for p in [*periods, "Total"]:
        book.identity({f"rows|Total|{p}": 1.0, **{f"rows|{s}|{p}": -1.0 for s in sites}}, "column margin")
    status_rows = []
    for s in [*sites, "Total"]:
        members = sites if s == "Total" else [s]
        row = {"site": s}
        for i, c in enumerate(cols):
            row[c] = int(sum(value.get((a, b), [0] * len(cols))[i] for a in members for b in periods))
            if i:
                book.values[f"{counts[c]}|{s}|Total"] = float(row[c])
        status_rows.append(row)
        parts = [f"{counts[c]}|{s}|Total" for c in cols[1:]]
        book.identity(
            {f"rows|{s}|Total": 1.0, **{k: -1.0 for k in parts}}, "rows in = clean + quarantined + duplicates"
        )
        for c in cols[1:]:
            if s != "Total":
                book.identity(
                    {f"{counts[c]}|{s}|Total": 1.0, **{f"{counts[c]}|{s}|{p}": -1.0 for p in periods}},
                    f"{c} over periods",
                )
    for c in cols[1:]:
        book.identity(
            {f"{counts[c]}|Total|Total": 1.0, **{f"{counts[c]}|{s}|Total": -1.0 for s in sites}},
            f"{c} over sites",
        )
    by_status = pl.DataFrame(status_rows, schema={"site": pl.String, **{c: pl.Int64 for c in cols}})
    period_label = "year" if periods and len(periods[0]) == 4 else "quarter"
    return [
        Table("submissions", "Submissions received (status only)", files),
        Table(
            f"rows_by_{period_label}",
            f"Rows received by site and {period_label}",
            by_period,
            counts=tuple(Count(p, pl.format("rows|{}|" + p, pl.col("site"))) for p in [*periods, "Total"]),
        ),
        Table(
            "rows_by_status",
            "Rows by site and outcome of validation",
            by_status,
            counts=tuple(
                Count(
                    c,
                    pl.format("rows|{}|Total", pl.col("site"))
                    if c == "rows_in"
                    else pl.format(counts[c] + "|{}|Total", pl.col("site")),
                )
                for c in cols
            ),
        ),
    ]


def _sample_flow(inputs: ReportInputs, keys: _Keys, tables: list[Table]) -> dict[str, str]:
    """Return the CONSORT flow and the matched/unmatched comparison; returns the flow's key per row code.

    Every box is one quantity: stages are tied to the keys of the same persons elsewhere (the provenance's
    row totals, the naive and matched n before the start, the pooled estimates' n), each stage is the one
    above it less what it excluded, and the comparison's groups sum to the matched and unmatched boxes.
    """
    from analysis.publish.sample_flow import COMPARISON_SCHEMA, FLOW_SCHEMA

    flow = _or_empty(inputs.sample_flow, FLOW_SCHEMA)
    if not flow.height:
        return {}
    book = keys.book
    first = keys.outcomes[0] if keys.outcomes else ""
    pre = -1  # a month before the start: every participant is observed
    value = {r["code"]: r["n"] if r["n"] is not None else r["excluded"] for r in flow.iter_rows(named=True)}
    base = {
        "current": "rows|Total|Total", "duplicates": "dup|Total|Total", "valid": "clean|Total|Total",
        "linked": keys.n(first, "P", pre), "matched": keys.n(first, "M", pre),
    }
    code_key = {c: keys.same(base.get(c), v, f"flow.{c}") for c, v in value.items()}
    n_keys, x_keys, c_keys = [], [], []
    for r in flow.iter_rows(named=True):
        code = r["code"]
        if r["kind"] == "design":
            design, outcome = r["design_code"], r["outcome_code"] or first
            pooled = {"matched_did": ("did.M.all=all", "did.C.all=all"),
                      "staggered_att": ("stag.M", "stag.C"),
                      "naive_before_after": ("naive_before_after.P", None)}.get(design, (None, None))
            t = keys.same(keys.pooled(pooled[0], outcome) if pooled[0] else None, r["n"], f"flow.{code}")
            c = keys.same(keys.pooled(pooled[1], outcome) if pooled[1] else None, r["n_controls"],
                          f"flow.{code}.controls")
            code_key[code] = t
            n_keys.append(t)
            c_keys.append(c)
            x_keys.append(f"flow.{code}.left_out")
            if r["excluded"] is not None:
                book.note([f"flow.{code}.left_out"], [r["excluded"]])
                parent = flow.filter(pl.col("step") == r["parent"])["code"]
                if parent.len():
                    book.identity({code_key[parent[0]]: 1.0, t: -1.0, f"flow.{code}.left_out": -1.0},
                                  "a design's base = its n + those left out")
        else:
            n_keys.append(code_key[code])
            x_keys.append(code_key[code])
            c_keys.append(None)
    k = code_key

    def parts(prefix: str) -> list[str]:
        return [key for c, key in k.items() if c.startswith(prefix)]

    def total(name: str, terms: list[str], label: str) -> None:
        if name in k and terms and all(t in book.values for t in terms):
            book.identity({k[name]: 1.0, **{t: -1.0 for t in terms}}, label)

    total("received", [k[c] for c in ("current", "superseded") if c in k], "received = current + replaced")
    total("current", [*parts("quarantined:"), *[k[c] for c in ("duplicates", "valid") if c in k]],
          "rows in = quarantined + duplicates + valid")
    if "quar|Total|Total" in book.values and parts("quarantined:"):
        book.identity({"quar|Total|Total": 1.0, **{t: -1.0 for t in parts("quarantined:")}},
                      "quarantined rows = the sum of the reasons")
    total("valid", [k[c] for c in ("courses", "repeat") if c in k], "valid rows = courses + repeat reports")
    total("courses", [k[c] for c in ("persons", "later") if c in k], "courses = persons + later courses")
    total("persons", [k[c] for c in ("linked", "unlinked", "unlinked_other") if c in k],
          "persons = linked + not linked")
    total("linked", [k["matched"], *parts("unmatched:"), *[k[c] for c in ("unmatched_other",) if c in k]]
          if "matched" in k else [], "linked = matched + not matched")
    total("linked", [k[c] for c in ("transition", "no_transition") if c in k], "linked = with + without")
    if "transition" in k and "transition_matched" in k:
        book.difference("flow.transition_unmatched", k["transition"], k["transition_matched"])
    unmatched_key = "flow.unmatched"
    if "linked" in k and "matched" in k:
        total_u = [*parts("unmatched:"), *[k[c] for c in ("unmatched_other",) if c in k]]
        if len(total_u) == 1 and total_u[0] in book.values:
            # one reason: its box is the number of the unmatched, published in the flow; the comparison's
            # unmatched persons are that same quantity (one decision for both), not a hidden difference
            unmatched_key = total_u[0]
        elif book.has(k["linked"], k["matched"]):  # published in the comparison: a quantity, not hidden
            book.note(["flow.unmatched"], [book.values[k["linked"]] - book.values[k["matched"]]])
            book.identity({k["linked"]: 1.0, k["matched"]: -1.0, "flow.unmatched": -1.0},
                          "linked = matched + not matched")
            if total_u and "flow.unmatched" in book.values:
                book.identity({"flow.unmatched": 1.0, **{t: -1.0 for t in total_u}},
                              "the unmatched, by reason")
    flow = flow.with_columns(
        _kn=pl.Series(n_keys, dtype=pl.String), _kx=pl.Series(x_keys, dtype=pl.String),
        _kc=pl.Series(c_keys, dtype=pl.String),
    )
    tables.append(Table(
        "sample_flow", "Sample flow: from the rows received to the n of each design", flow,
        counts=(Count("n", pl.col("_kn"), priority=2), Count("excluded", pl.col("_kx")),
                Count("n_controls", pl.col("_kc"), priority=1)),
        internal=("_kn", "_kx", "_kc", "step", "kind", "parent", "design_code", "outcome_code", "code"),
    ))

    cmp = _or_empty(inputs.flow_comparison, COMPARISON_SCHEMA)
    if not cmp.height or "matched" not in k or unmatched_key not in book.values:
        return dict(k)
    matched, unmatched = k["matched"], unmatched_key
    rows, members = [], {}
    for r in cmp.iter_rows(named=True):
        stat, attribute = r["statistic"], r["attribute"]
        row = dict(r)
        if stat == "count":
            row |= {"_km": keys.same(matched, r["matched_n"], "cmp.M.persons"),
                    "_ku": keys.same(unmatched, r["unmatched_n"], "cmp.U.persons"),
                    "_kind": str(Kind.LEVEL), "_per": 1, "_nm": None, "_nu": None}
        elif stat == "share":
            tag = f"{attribute}|{r['dimension'] or ''}|{r['level'] or ''}"
            row |= {"_km": f"cmp.M|{tag}", "_ku": f"cmp.U|{tag}", "_kind": str(Kind.LEVEL), "_per": 1,
                    "_nm": None,
                    "_nu": None, "matched_value": None, "unmatched_value": None}  # shares: from the counts
            book.note([row["_km"], row["_ku"]], [r["matched_n"], r["unmatched_n"]])
            if r["dimension"]:
                members.setdefault(r["dimension"], []).append((r["level"], row["_km"], row["_ku"]))
            else:
                book.difference(f"{row['_km']}~", matched, row["_km"])
                book.difference(f"{row['_ku']}~", unmatched, row["_ku"])
        else:  # a mean over the persons with a value
            outcome = r["outcome"]
            kind = OUTCOME_KINDS.get(outcome, Kind.LEVEL) if outcome else Kind.LEVEL
            lo, hi = r.get("first_month"), r.get("last_month")
            per = (hi - lo + 1) if outcome and lo is not None and hi is not None else 1
            tag = f"{attribute}|{outcome or ''}"
            km = keys.same(matched, r["matched_n"], f"cmp.M.n|{tag}")
            ku = keys.same(unmatched, r["unmatched_n"], f"cmp.U.n|{tag}")
            nm = nu = None
            if kind in _NUMERATOR_KINDS and per > 1:
                nm, nu = f"cmp|{outcome}|M.S@{lo}..{hi}", f"cmp|{outcome}|U.S@{lo}..{hi}"
                for key, mean, n, side in ((nm, r["matched_value"], r["matched_n"], "M"),
                                           (nu, r["unmatched_value"], r["unmatched_n"], "U")):
                    if mean is not None and n:
                        book.note([key], [mean * n * per])
                        months = [f"{outcome}|{side}.S@{e}" for e in range(lo, hi + 1)]
                        book.identity({key: 1.0, **{m: -1.0 for m in months}},
                                      "a window mean's numerator = its months'")
            row |= {"_km": km, "_ku": ku, "_kind": str(kind), "_per": per, "_nm": nm, "_nu": nu}
        rows.append(row)
    for dimension, levels in members.items():
        book.identity({matched: 1.0, **{m: -1.0 for _, m, _ in levels}},
                      f"matched = the sum over {dimension}")
        book.identity({unmatched: 1.0, **{u: -1.0 for _, _, u in levels}},
                      f"unmatched = the sum over {dimension}")
        # the pooled DiD's sub-group n are the group's matched participants observed at month 12: the rest
        # started too recently, a count of persons that must stay protected
        for outcome in keys.outcomes:
            late = []
            for level, m, _ in levels:
                did = keys.pooled(f"did.M.{dimension}={level}", outcome)
                name = f"late.{dimension}={level}|{did}"
                book.difference(name, m, did)
                late.append(name)
            total_did = keys.pooled("did.M.all=all", outcome)
            if all(n in book.values for n in late) and total_did in book.values:
                book.difference(f"late.all|{total_did}", matched, total_did)
                book.identity({f"late.all|{total_did}": 1.0, **{n: -1.0 for n in late}},
                              f"late starters = the sum over {dimension}")
    transition = [r for r in rows if r["attribute"] == "With a recorded transition"]
    if transition and "transition_matched" in k:
        book.identity({transition[0]["_km"]: 1.0, k["transition_matched"]: -1.0}, "matched with a transition")
        if "flow.transition_unmatched" in book.values:
            book.identity({transition[0]["_ku"]: 1.0, "flow.transition_unmatched": -1.0},
                          "unmatched with a transition")
    internal = ("_km", "_ku", "_kind", "_per", "_nm", "_nu", "first_month", "last_month")
    schema = {**dict(cmp.schema), "_km": pl.String, "_ku": pl.String, "_kind": pl.String, "_per": pl.Int64,
              "_nm": pl.String, "_nu": pl.String}
    frame = pl.DataFrame(rows, schema=schema)
    tables.append(Table(
        "flow_comparison", "Matched and unmatched participants compared", frame,
        counts=(Count("matched_n", pl.col("_km"), priority=1), Count("unmatched_n", pl.col("_ku"))),
        means=(Mean("matched_value", "matched_n", "_kind", numerator=pl.col("_nm"), per="_per"),
               Mean("unmatched_value", "unmatched_n", "_kind", numerator=pl.col("_nu"), per="_per")),
        internal=tuple(c for c in internal if c in frame.columns),
    ))
    return dict(k)


def _som(inputs: ReportInputs, keys: _Keys) -> list[Table]:
    """Return the public budget: kroner estimates on the matched sample (the persons behind them internal)."""
    budget = inputs.som_budget
    if not budget.height:
        return []
    persons = {"_persons": int(budget["n_treated"].min()), "_controls": int(budget["n_controls"].min())}
    with_persons = [pl.lit(v, pl.Int64).alias(c) for c, v in persons.items()]
    est = ("estimate", "se", "ci_lower", "ci_upper")
    out = [Table("som_budget", "Net result for the public purse per participant",
                 budget.rename({"n_treated": "_bt", "n_controls": "_bc"}).with_columns(with_persons),
                 estimates=(Estimate(est, ("_persons", "_controls")),), internal=("_bt", "_bc", "_persons",
                                                                                  "_controls"))]
    if inputs.som_effects.height:
        out.append(Table("som_effects", "The effect paths in SØM's form",
                         inputs.som_effects.with_columns(with_persons),
                         estimates=(Estimate(("effect", "ci_lower", "ci_upper"), ("_persons", "_controls")),),
                         internal=("_persons", "_controls")))
    if inputs.som_sensitivity.height:
        out.append(Table("som_sensitivity", "The net result under other persistence assumptions",
                         inputs.som_sensitivity.with_columns(with_persons),
                         estimates=(Estimate(est, ("_persons", "_controls")),),
                         internal=("_persons", "_controls")))
    if inputs.som_prices.height:
        out.append(Table("som_prices", "The prices used (configuration, not data)", inputs.som_prices))
    return out
