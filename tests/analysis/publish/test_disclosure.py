"""The publication layer: each leak of issue #19 is closed, and the audit finds none in random small worlds.

Every regression test runs the attack of the issue by hand on the published frames (not only through the
layer's own audit), on a small world built so that the attack would succeed on uncontrolled tables.
"""

import re

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.publish import report_tables
from analysis.publish.cti_tables import ReportInputs, declare
from analysis.publish.disclosure import (
    Controlled,
    Count,
    Hidden,
    Identity,
    Publication,
    Rules,
    Table,
    audit,
    control,
)
from analysis.publish.effect_report import publish, render_effect_report
from analysis.publish.labels import Labels
from analysis.schema import EFFECT_ESTIMATES, EVENT_STUDY
from pipelines.configuration import ConfigDir

SMALL = range(1, 5)


def _series(
    n_matched: list[int],
    n_naive: list[int],
    *,
    outcome: str = "employed",
    share: float = 0.3,
    start: int = -2,
    comparison_share: float | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Event study, matched means and naive before/after for event months start.. with the given n's."""
    times = list(range(start, start + len(n_matched)))
    es = pl.DataFrame(
        [
            {
                "outcome": outcome,
                "event_time": e,
                "estimate": 0.01,
                "se": 0.02,
                "ci_lower": -0.03,
                "ci_upper": 0.05,
                "n_treated": m,
                "n_controls": 5 * m,
            }
            for e, m in zip(times, n_matched, strict=True)
        ],
        schema=EVENT_STUDY,
    )
    rows = []
    for e, m in zip(times, n_matched, strict=True):
        rows.append(
            {
                "outcome": outcome,
                "group": "participants",
                "event_time": e,
                "mean": round(share * m) / m,
                "n": m,
                "n_positive": round(share * m),
                "n_full": round(share * m),
                "top2_share": 2 / max(2, round(share * m)),
            }
        )
        c = share if comparison_share is None else comparison_share
        rows.append(
            {
                "outcome": outcome,
                "group": "comparisons",
                "event_time": e,
                "mean": c,
                "n": 5 * m,
                "n_positive": round(c * 5 * m),
                "n_full": round(c * 5 * m),
                "top2_share": 0.01,
            }
        )
    mm = pl.DataFrame(rows).with_columns(pl.col("event_time").cast(pl.Int32))
    ba = pl.DataFrame(
        [
            {
                "outcome": outcome,
                "event_time": e,
                "mean": round(share * p) / p,
                "se": 0.02,
                "ci_lower": 0.1,
                "ci_upper": 0.5,
                "n": p,
                "n_positive": round(share * p),
                "n_full": round(share * p),
                "top2_share": 0.05,
            }
            for e, p in zip(times, n_naive, strict=True)
        ]
    ).with_columns(pl.col("event_time").cast(pl.Int32))
    return es, mm, ba


LABELS = Labels.from_config(ConfigDir())


def export_tables(what) -> dict[str, pl.DataFrame]:
    """The controlled tables in the report's codes and raw units (what the attacks read).

    The files the report writes are these tables labelled and scaled to their units
    (``report_tables.export_tables``): the same cells, the same suppressions
    (test_labelled_exports_suppress_exactly_the_controlled_cells).
    """
    published = what if isinstance(what, Controlled) else publish(what)
    return {name: published.export(name) for name in published.frames}


def _inputs(**overrides) -> ReportInputs:
    es, mm, ba = _series([60, 60, 60, 52, 45], [80, 80, 80, 69, 61])
    values = dict(
        estimates=pl.DataFrame(schema=EFFECT_ESTIMATES),
        event_study=es,
        matched_means=mm,
        balance=pl.DataFrame(),
        group_time=pl.DataFrame(),
        aggregates=pl.DataFrame(),
        before_after=ba,
        provenance=pl.DataFrame(),
        headline_outcomes=("employed",),
        labels=LABELS,
    )
    return ReportInputs(**{**values, **overrides})


def _provenance(cells: dict[tuple[str, str], tuple[int, int, int]]) -> pl.DataFrame:
    """One submission per (site, quarter): rows (clean, quarantined, duplicates)."""
    return pl.DataFrame(
        [
            {
                "site": s,
                "quarter": q,
                "file_name": f"{s}_{q}.csv",
                "received_at": "2024-04-02",
                "rows_in": c + qu + d,
                "rows_clean": c,
                "rows_quarantined": qu,
                "rows_duplicate": d,
                "status": "ok",
                "reason": None,
            }
            for (s, q), (c, qu, d) in cells.items()
        ]
    )


def _printed_small(tables: dict[str, pl.DataFrame], columns: tuple[str, ...]) -> list:
    return [
        (name, c, v)
        for name, frame in tables.items()
        for c in columns
        if c in frame.columns
        for v in frame[c].to_list()
        if isinstance(v, int) and v in SMALL
    ]


def _line_attack(frame: pl.DataFrame, parts: list[str], total: str) -> list[int]:
    """Recover the one suppressed cell of a line whose other cells and total are printed."""
    found = []
    for row in frame.iter_rows(named=True):
        missing = [p for p in parts if row[p] is None]
        if len(missing) == 1 and row[total] is not None:
            found.append(row[total] - sum(row[p] for p in parts if row[p] is not None))
    return found


# --- provenance ---------------------------------------------------------------------------------------------


def _prov_world() -> pl.DataFrame:
    cells = {
        (s, q): (30 + i, 0, 0)
        for i, s in enumerate(("aarhus", "odense", "randers"))
        for q in ("2024Q1", "2024Q2", "2024Q3")
    }
    cells[("aarhus", "2024Q1")] = (3, 1, 0)  # a site's first quarter with 4 rows: the 272 - 268
    cells[("odense", "2024Q2")] = (28, 2, 0)  # 2 quarantined rows
    cells[("randers", "2024Q3")] = (29, 0, 3)  # 3 duplicates
    return _provenance(cells)


def test_provenance_margins_minus_the_submissions_give_nothing_away() -> None:
    tables = export_tables(_inputs(provenance=_prov_world()))
    by_q = tables["rows_by_quarter"]
    quarters = ["2024Q1", "2024Q2", "2024Q3"]
    assert by_q.filter(pl.col("site") == "aarhus")["2024Q1"].to_list() == [None]  # the 4 is suppressed ...
    for value in _line_attack(
        by_q, quarters, "Total"
    ):  # ... and site total minus its quarters does not give it back
        assert value not in SMALL
    columns = by_q.filter(pl.col("site") != "Total")
    for q in quarters:
        column_values = columns[q].to_list()
        total = by_q.filter(pl.col("site") == "Total")[q][0]
        if column_values.count(None) == 1 and total is not None:
            assert total - sum(v for v in column_values if v is not None) not in SMALL
    # no per-submission counts are published (the stewards' detail, exact in the steward view)
    assert "submissions" in tables and not {"rows_in", "rows_clean"} & set(tables["submissions"].columns)
    assert (
        _printed_small(
            tables, ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate", *quarters, "Total")
        )
        == []
    )
    assert publish(_inputs(provenance=_prov_world())).audit.passed


def test_rows_in_equals_clean_plus_quarantined_plus_duplicates_is_protected() -> None:
    tables = export_tables(_inputs(provenance=_prov_world()))
    status = tables["rows_by_status"]
    for value in _line_attack(status, ["rows_clean", "rows_quarantined", "rows_duplicate"], "rows_in"):
        assert value not in SMALL
    odense = status.filter(pl.col("site") == "odense").row(0, named=True)
    assert odense["rows_quarantined"] is None  # 2 quarantined rows: suppressed, with a partner on the line
    assert [odense[c] for c in ("rows_in", "rows_clean", "rows_duplicate")].count(None) >= 1


def test_a_secondary_x_is_never_printed_in_another_table() -> None:
    # the event study and the raw means print the same n; a month with 3 starters forces a secondary cell
    es, mm, ba = _series([60, 60, 60, 57, 45], [80, 80, 80, 77, 60])
    published = export_tables(_inputs(event_study=es, matched_means=mm, before_after=ba))
    study = published["event_study"].select("event_time", "n_treated")
    raw = published["matched_means"].filter(pl.col("group") == "participants").select("event_time", "n")
    joined = study.join(raw, on="event_time", validate="1:1")
    assert joined.filter(pl.col("n_treated").is_null() != pl.col("n").is_null()).height == 0
    assert joined["n"].null_count() >= 1
    n = joined.sort("event_time")["n"].to_list()
    assert all(a - b not in SMALL for a, b in zip(n, n[1:], strict=False) if a is not None and b is not None)


def test_naive_minus_matched_n_per_month_gives_nothing_away() -> None:
    # 80 - 77 = 3 unmatched participants observed in month 1
    es, mm, ba = _series([60, 60, 60, 57, 45], [80, 80, 80, 60, 48])
    published = export_tables(_inputs(event_study=es, matched_means=mm, before_after=ba))
    naive = published["before_after"].select("event_time", naive="n")
    matched = (
        published["matched_means"].filter(pl.col("group") == "participants").select("event_time", matched="n")
    )
    both = naive.join(matched, on="event_time", validate="1:1").drop_nulls().sort("event_time")
    assert all(d not in SMALL for d in (both["naive"] - both["matched"]).to_list())
    rows = naive.join(matched, on="event_time").sort("event_time").rows()
    for (_, p0, m0), (_, p1, m1) in zip(rows, rows[1:], strict=False):  # unmatched starters of one month
        if None not in (p0, m0, p1, m1):
            assert (p0 - m0) - (p1 - m1) not in SMALL


def test_mean_times_n_of_shares_and_counts_is_never_a_small_number() -> None:
    # 2 of 60 participants employed in month 0: mean x n = 2; the naive mean on 80 adds 1 more unmatched
    es, mm, ba = _series([60, 60, 60, 60, 60], [80, 80, 80, 80, 80], share=0.04)
    published = export_tables(_inputs(event_study=es, matched_means=mm, before_after=ba))
    for name, frame in (
        ("matched_means", published["matched_means"].filter(pl.col("group") == "participants")),
        ("before_after", published["before_after"]),
    ):
        for mean, n in frame.select("mean", "n").drop_nulls().rows():
            assert round(mean * n) not in SMALL and round(n - mean * n) not in SMALL, name
    assert published["matched_means"].filter(pl.col("group") == "participants")["mean"].null_count() == 5


def test_a_nested_subgroup_n_is_not_the_overall_n_minus_the_others() -> None:
    rows = [("all", "all", 50), ("site", "a", 3), ("site", "b", 40), ("site", "c", 7)]
    est = pl.DataFrame(
        [
            {
                "outcome": o,
                "design": "matched_did",
                "dimension": d,
                "level": lv,
                "estimate": 0.1,
                "se": 0.05,
                "ci_lower": 0.0,
                "ci_upper": 0.2,
                "n_treated": n,
                "n_controls": 5 * n,
                "mde": 0.1,
                "pretrend_p": None,
                "window": "12..24",
            }
            for o in ("employed", "self_support")
            for d, lv, n in rows
        ],
        schema=EFFECT_ESTIMATES,
    )
    published = export_tables(_inputs(estimates=est))["estimates"]
    for _, frame in published.group_by("outcome"):
        total = frame.filter(pl.col("dimension") == "all")["n_treated"][0]
        parts = frame.filter(pl.col("dimension") == "site")["n_treated"].to_list()
        if total is not None and parts.count(None) == 1:
            assert total - sum(p for p in parts if p is not None) not in SMALL
        assert frame.filter(pl.col("level") == "a")["estimate"].to_list() == [None]  # 3 persons: no estimate
    # the same sub-group n is suppressed for every outcome alike (one quantity, one decision)
    assert (
        published.group_by("level").agg(pl.col("n_treated").null_count().n_unique())["n_treated"].to_list()
        == [1] * 4
    )


def test_balance_table_goes_through_control() -> None:
    bal = pl.DataFrame(
        {
            "covariate": ["greenlandic", "sex", "age"],
            "mean_treated": [3 / 60, 30 / 60, 40.0],
            "mean_control_before": [0.02, 0.5, 45.0],
            "mean_control_after": [0.03, 0.5, 41.0],
            "smd_before": [0.2, 0.0, -0.4],
            "smd_after": [0.1, 0.0, -0.05],
            "var_ratio_before": [1.0, 1.0, 1.0],
            "var_ratio_after": [1.0, 1.0, 1.0],
        }
    )
    published = export_tables(_inputs(balance=bal))["balance"]
    green = published.filter(pl.col("covariate") == "greenlandic").row(0, named=True)
    assert (
        green["mean_treated"] is None and green["smd_after"] is None
    )  # 3 Greenlanders: mean and the SMD that reveals it
    assert published.filter(pl.col("covariate") == "sex")["mean_treated"].to_list() == [0.5]
    assert published["n_treated"].to_list() == [60, 60, 60]


def test_plots_carry_no_suppressed_value() -> None:
    """The SVG is identical whatever the suppressed (small-numerator) means are: no coordinate has them."""

    def page(share: float) -> str:
        es, mm, ba = _series([60, 60, 60, 60, 60], [80, 80, 80, 80, 80], share=share, comparison_share=0.3)
        return render_effect_report(_inputs(event_study=es, matched_means=mm, before_after=ba))

    def svgs(text: str) -> list[str]:
        return re.findall(
            r"<svg.*?</svg>", text.split('<section id="raw-means">')[1].split("</section>")[0], flags=re.S
        )

    low, other = page(2 / 60), page(3 / 60)  # means of 2 and 3 persons: both suppressed
    assert svgs(low) and svgs(low) == svgs(other)
    assert svgs(page(0.3)) != svgs(low)  # a published mean does move the plot


# --- the model itself ---------------------------------------------------------------------------------


def test_a_wrong_identity_is_a_clear_error() -> None:
    frame = pl.DataFrame({"k": ["a", "b", "t"], "n": [10, 12, 30]})
    pub = Publication(
        (Table("t", "t", frame, counts=(Count("n", pl.col("k")),)),),
        identities=(Identity.total("t", ["a", "b"], "t = a + b"),),
    )
    with pytest.raises(ValueError, match="does not hold"):
        control(pub)


def test_the_audit_catches_an_uncontrolled_table() -> None:
    frame = pl.DataFrame({"k": ["a", "b", "t"], "n": [3, 27, 30]})
    pub = Publication(
        (Table("t", "t", frame, counts=(Count("n", pl.col("k")),)),),
        identities=(Identity.total("t", ["a", "b"], "t = a + b"),),
    )
    raw = audit(pub, {"t": frame})
    assert not raw.passed and any("small count printed" in p for p in raw.problems)
    primary_only = audit(
        pub,
        {"t": frame.with_columns(pl.when(pl.col("k") == "a").then(None).otherwise(pl.col("n")).alias("n"))},
    )
    assert not primary_only.passed and any("derived" in p for p in primary_only.problems)
    controlled = control(pub)
    assert controlled.audit.passed and controlled.frames["t"]["n"].null_count() >= 2


def test_rules_come_from_the_packaged_table() -> None:
    from pipelines.configuration import ConfigDir

    rules = Rules.from_table(ConfigDir(None).table("disclosure_rules"))
    assert rules == Rules()  # the packaged defaults are the Danish ones
    with pytest.raises(ValueError, match="unknown disclosure rule"):
        Rules.from_table(pl.DataFrame({"rule": ["min_cell"], "value": ["5"]}))
    strict = Rules.from_table(pl.DataFrame({"rule": ["min_persons"], "value": ["10"]}))
    frame = pl.DataFrame({"k": ["a"], "n": [7]})
    pub = Publication((Table("t", "t", frame, counts=(Count("n", pl.col("k")),)),))
    assert control(pub, rules=strict).frames["t"]["n"].to_list() == [None]
    assert control(pub).frames["t"]["n"].to_list() == [7]


# --- random small worlds ------------------------------------------------------------------------------


@st.composite
def _worlds(draw) -> Publication:
    """A random linked publication: a sites x periods table with both margins, a status split of each site's
    rows, and a nested event-time series (naive >= matched, both non-increasing) with hidden differences."""
    sites, periods = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    cells = [[draw(st.integers(0, 12)) for _ in range(periods)] for _ in range(sites)]
    rows = [
        {"site": f"s{i}", **{f"p{j}": cells[i][j] for j in range(periods)}, "Total": sum(cells[i])}
        for i in range(sites)
    ]
    rows.append(
        {
            "site": "Total",
            **{f"p{j}": sum(c[j] for c in cells) for j in range(periods)},
            "Total": sum(map(sum, cells)),
        }
    )
    grid = pl.DataFrame(rows)
    identities = [
        Identity.total(f"{r['site']}|Total", [f"{r['site']}|p{j}" for j in range(periods)], "row")
        for r in rows
    ]
    identities += [
        Identity.total(f"Total|{c}", [f"s{i}|{c}" for i in range(sites)], "col")
        for c in [*(f"p{j}" for j in range(periods)), "Total"]
    ]
    status = []
    hidden = []
    for i in range(sites):
        total = sum(cells[i])
        bad = draw(st.integers(0, min(6, total)))
        status.append({"site": f"s{i}", "rows_in": total, "clean": total - bad, "bad": bad})
        identities.append(Identity.total(f"s{i}|Total", [f"clean|s{i}", f"bad|s{i}"], "in = clean + bad"))
    steps = draw(st.lists(st.integers(0, 8), min_size=1, max_size=4))
    unmatched = draw(st.lists(st.integers(0, 4), min_size=len(steps) + 1, max_size=len(steps) + 1))
    matched = [30 + sum(steps)]
    for step in steps:
        matched.append(matched[-1] - step)
    naive = [m + sum(unmatched[k:]) for k, m in enumerate(matched)]
    series = pl.DataFrame({"e": list(range(len(matched))), "matched": matched, "naive": naive})
    for k in range(len(matched)):
        hidden.append(Hidden(f"U{k}", naive[k] - matched[k]))
        identities.append(
            Identity(((f"P{k}", 1.0), (f"M{k}", -1.0), (f"U{k}", -1.0)), "naive = matched + unmatched")
        )
        if k:
            for name in ("P", "M", "U"):
                value = {"P": naive, "M": matched, "U": [a - b for a, b in zip(naive, matched, strict=True)]}[
                    name
                ]
                hidden.append(Hidden(f"d{name}{k}", value[k - 1] - value[k]))
                identities.append(
                    Identity(((f"{name}{k - 1}", 1.0), (f"{name}{k}", -1.0), (f"d{name}{k}", -1.0)), "chain")
                )
    tables = (
        Table(
            "grid",
            "grid",
            grid,
            counts=tuple(Count(c, pl.format("{}|" + c, pl.col("site"))) for c in grid.columns[1:]),
        ),
        Table(
            "status",
            "status",
            pl.DataFrame(status),
            counts=(
                Count("rows_in", pl.format("{}|Total", pl.col("site"))),
                Count("clean", pl.format("clean|{}", pl.col("site"))),
                Count("bad", pl.format("bad|{}", pl.col("site"))),
            ),
        ),
        Table(
            "series",
            "series",
            series,
            counts=(
                Count("matched", pl.format("M{}", pl.col("e"))),
                Count("naive", pl.format("P{}", pl.col("e"))),
            ),
        ),
    )
    return Publication(tables, tuple(identities), tuple(hidden))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_worlds())
def test_the_audit_never_recovers_a_small_cell_in_random_worlds(world: Publication) -> None:
    controlled = control(world)
    assert controlled.audit.passed, controlled.audit.problems
    again = audit(world, controlled.frames)  # the audit of the frames as they leave agrees
    assert again.passed
    for name, frame in controlled.frames.items():
        for column in frame.columns[1:]:
            assert not [v for v in frame[column].to_list() if isinstance(v, int) and v in SMALL], (
                name,
                column,
            )
    grid = controlled.frames["grid"]
    parts = [c for c in grid.columns if c.startswith("p")]
    assert all(v not in SMALL for v in _line_attack(grid, parts, "Total"))
    series = controlled.frames["series"].drop_nulls()
    assert all(d not in SMALL for d in (series["naive"] - series["matched"]).to_list())


def test_declare_on_empty_inputs_publishes_nothing_but_does_not_fail() -> None:
    empty = {
        k: pl.DataFrame()
        for k in (
            "estimates",
            "event_study",
            "matched_means",
            "balance",
            "group_time",
            "aggregates",
            "before_after",
            "provenance",
        )
    }
    pub = declare(ReportInputs(**empty, labels=LABELS))
    controlled = control(pub)
    assert controlled.audit.passed and all(f.height == 0 for f in controlled.frames.values())


def test_output_checking_bundle_lists_every_file_with_its_checks() -> None:
    import hashlib
    import json

    from analysis.publish.output_check import ACRO_NOTE, output_bundle

    published = publish(_inputs(provenance=_prov_world()))
    files = {
        f"tables/{name}.csv": (name, frame.write_csv().encode())
        for name, frame in export_tables(published).items()
    }
    files["effect_report.html"] = (None, b"<html></html>")
    bundle = json.loads(json.dumps(output_bundle(published, files)))
    listed = {o["file"]: o for o in bundle["outputs"]}
    assert (
        set(listed) == set(files)
        and bundle["audit"]["passed"]
        and bundle["status"] == "ready for output checking"
    )
    assert listed["effect_report.html"]["sha256"] == hashlib.sha256(b"<html></html>").hexdigest()
    rows = listed["tables/rows_by_status.csv"]
    assert rows["suppressed"] >= 2 and all(v == "pass" for v in rows["checks"].values())
    assert "pandas 3" in ACRO_NOTE and bundle["rules"]["min_persons"] == 5


def test_labelled_exports_suppress_exactly_the_controlled_cells() -> None:
    """The files written (labelled, scaled) carry the controlled cells: null exactly where suppressed."""
    es, mm, ba = _series([60, 60, 60, 52, 4], [80, 80, 80, 69, 3])
    published = publish(_inputs(event_study=es, matched_means=mm, before_after=ba, provenance=_prov_world()))
    raw = export_tables(published)
    labelled = report_tables.export_tables(published, LABELS)
    assert set(raw) <= set(labelled)
    for name, frame in raw.items():
        out = labelled[name]
        assert out.height == frame.height, name
        if "suppressed" in frame.columns:
            assert out["suppressed"].to_list() == frame["suppressed"].to_list(), name
        for column in frame.columns:
            if column in out.columns and frame.schema[column].is_numeric():
                assert out[column].is_null().to_list() == frame[column].is_null().to_list(), (name, column)


def test_the_warm_started_programme_gives_every_target_the_cold_solvers_range() -> None:
    """One HiGHS model per component, the objective changed per target: a fresh linprog's optimum."""
    import numpy as np
    from scipy import sparse
    from scipy.optimize import linprog

    from analysis.publish.disclosure import _Programme

    rng = np.random.default_rng(7)
    seen = set()
    for _ in range(30):
        rows, unknown = int(rng.integers(2, 7)), int(rng.integers(3, 9))
        values = rng.integers(1, 20, unknown).astype(float)  # the suppressed cells' true values
        a = np.zeros((rows, unknown))
        for r in range(rows):  # each published total covers some of them (a cell in none is unbounded)
            a[r, rng.choice(unknown, size=int(rng.integers(1, unknown)), replace=False)] = 1.0
        a = np.c_[a, -(a @ values)]  # the totals, as one known column fixed at 1: a @ [x, 1] == 0
        lb, ub = np.r_[np.ones(unknown), 1.0], np.r_[np.full(unknown, np.inf), 1.0]
        programme = _Programme(sparse.csr_array(a), lb, ub)
        for k in rng.permutation(unknown):
            for sign in (-1.0, 1.0):
                c = np.zeros(unknown + 1)
                c[k] = sign
                cold = linprog(c, A_eq=a, b_eq=np.zeros(rows), bounds=list(zip(lb, ub, strict=True)),
                               method="highs")
                status, value, _ = programme.solve(int(k), sign)
                seen.add(status)
                if cold.status == 3:
                    assert status == "unbounded"
                else:
                    assert cold.status == 0 and status == "optimal"
                    assert value == pytest.approx(cold.fun, abs=1e-7)
    assert seen == {"optimal", "unbounded"}
