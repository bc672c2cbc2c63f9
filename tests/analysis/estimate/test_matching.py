"""Matching on pre-period history, the stacked panel, and planted-effect recovery on the mock world."""

from dataclasses import replace
from datetime import date

import numpy as np
import polars as pl
import pytest

from analysis import mockworld as mw
from analysis.estimate.before_after import before_after
from analysis.estimate.effects import outcome_effects, participant_table
from analysis.estimate.matching import MatchConfig, balance_table, match, person_attributes, stacked_panel
from analysis.linkage.panel import outcome_panel
from analysis.schema import BALANCE, HEADLINE_OUTCOMES, REGISTERS
from pipelines.configuration import ConfigDir

SMALL = MatchConfig(history_outcomes=("self_support",), windows=((-6, -4),), dip_outcomes=("self_support",),
                    dip_months=(-2, -1), exact=(), exact_transition=(), neighbours=1)


def _toy(seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """20 persons x 24 months; persons 0-3 start in month 12 after a dip; 4-7 share the dip, never start."""
    rng = np.random.default_rng(seed)
    months = pl.date_range(date(2022, 1, 1), date(2023, 12, 1), "1mo", eager=True)
    rows = []
    for person in range(20):
        for i, m in enumerate(months):
            dip = person < 8 and 9 <= i < 12
            base = 0.2 if dip else (0.8 if person < 16 else 0.3)
            rows.append((person, m, base + rng.normal(scale=0.01), 0))
    schema = {"person_id": pl.Int64, "month": pl.Date, "self_support": pl.Float64, "edu_level": pl.Int8}
    panel = pl.DataFrame(rows, schema=schema, orient="row")
    participants = pl.DataFrame({"person_id": [0, 1, 2, 3], "start_month": [months[12]] * 4})
    persons = pl.DataFrame({"person_id": list(range(20)), "sex": [1, 2] * 10,
                            "birth_date": [date(1990, 1, 1)] * 20, "greenlandic": [0] * 20,
                            "immigrant": [0] * 20, "kom_type": [2] * 20})
    return panel, participants, persons


def test_each_participant_is_matched_to_a_person_with_the_same_dip() -> None:
    panel, participants, persons = _toy()
    result = match(panel, participants, persons, config=SMALL)
    assert result.n_treated == 4 and result.unmatched.height == 0
    assert set(result.pairs["control_id"].to_list()) <= {4, 5, 6, 7}  # the dip twins, not the flat persons
    assert result.balance.schema == BALANCE
    assert result.balance.filter(pl.col("covariate") == "self_support -1")["smd_after"].abs().item() < 0.1
    assert result.balance.filter(pl.col("covariate") == "self_support -1")["smd_before"].abs().item() > 1


def test_without_replacement_each_control_serves_one_participant() -> None:
    panel, participants, persons = _toy()
    result = match(panel, participants, persons, config=replace(SMALL, replacement=False))
    assert result.pairs["control_id"].is_unique().all()


def test_exact_strata_and_caliper() -> None:
    panel, participants, persons = _toy()
    result = match(panel, participants, persons, config=replace(SMALL, exact=("sex",), neighbours=2))
    sex = dict(zip(persons["person_id"].to_list(), persons["sex"].to_list(), strict=True))
    assert all(sex[t] == sex[c] for t, c in result.pairs.select("treated_id", "control_id").iter_rows())
    weights = result.pairs.group_by("treated_id").agg(pl.col("weight").sum())["weight"]
    assert weights.to_list() == pytest.approx([1.0] * 4)


def test_transition_split_matches_participants_to_persons_discharged_the_same_month() -> None:
    panel, participants, persons = _toy()
    # participants 0-3 and dip twins 6, 7 left a shelter or a prison in month 11 (the month before the start);
    # 5 left a prison two months earlier, 4 nothing
    def exit_in(ids: list[int], month: date) -> pl.Expr:
        return (pl.col("person_id").is_in(ids) & (pl.col("month") == month)).cast(pl.Int64)

    panel = panel.with_columns(shelter_exits=exit_in([0, 1, 6], date(2022, 12, 1)),
                               psych_ward_exits=pl.lit(0, pl.Int64),
                               prison_exits=exit_in([2, 3, 7], date(2022, 12, 1))
                               + exit_in([5], date(2022, 10, 1)))
    # a wide caliper: with two candidates in the split the score's SD says nothing; the split is under test
    config = replace(SMALL, exact_transition=MatchConfig().exact_transition, caliper=10.0)
    result = match(panel, participants, persons, config=config)
    assert result.n_treated == 4 and set(result.pairs["control_id"].to_list()) <= {6, 7}
    assert any("4 of 4 participants had a transition" in n for n in result.notes)
    # without the marker column (extracts without a stays register) the hospital fallback is used, and said
    unmarked = panel.drop("shelter_exits", "psych_ward_exits", "prison_exits")
    plain = match(unmarked, participants, persons, config=replace(config, transition_fallback=()))
    assert plain.n_treated == 4 and any("no participant has shelter_exits" in n for n in plain.notes)


def _exits(panel: pl.DataFrame, shelter: list[int], prison: list[int]) -> pl.DataFrame:
    """Stay discharges in month 11 (the month before the participants' start) for the listed persons."""
    def exit_in(ids: list[int]) -> pl.Expr:
        return (pl.col("person_id").is_in(ids) & (pl.col("month") == date(2022, 12, 1))).cast(pl.Int64)

    return panel.with_columns(shelter_exits=exit_in(shelter), psych_ward_exits=pl.lit(0, pl.Int64),
                              prison_exits=exit_in(prison))


def test_comparisons_share_the_kind_of_transition_where_one_of_that_kind_exists() -> None:
    panel, participants, persons = _toy()
    config = replace(SMALL, exact_transition=MatchConfig().exact_transition, caliper=10.0, neighbours=2)
    # shelter exits 0, 1 and twin 6 (and flat person 9); prison releases 2, 3 and twin 7 (and flat 10)
    marked = _exits(panel, shelter=[0, 1, 6, 9], prison=[2, 3, 7, 10])
    result = match(marked, participants, persons, config=config)
    kind = {p: "shelter" for p in (0, 1, 6, 9)} | {p: "prison" for p in (2, 3, 7, 10)}
    pairs = result.pairs.select("treated_id", "control_id").iter_rows()
    assert all(kind[t] == kind[c] for t, c in pairs)
    assert not any("matched within the whole transition split" in n for n in result.notes)
    # with no prison release among the candidates, the prison participants fall back to the whole split
    no_prison = _exits(panel, shelter=[0, 1, 6, 7, 9], prison=[2, 3])
    fallback = match(no_prison, participants, persons, config=config)
    assert fallback.n_treated == 4 and fallback.unmatched.height == 0
    assert set(fallback.pairs.filter(pl.col("treated_id") >= 2)["control_id"].to_list()) <= {6, 7, 9}
    assert any(n.startswith("2 participants had no comparison of their kind") for n in fallback.notes)
    # and without exact kinds, any transition serves any participant from the start
    loose = match(marked, participants, persons, config=replace(config, exact_transition_kind=False))
    assert set(loose.pairs["control_id"].to_list()) <= {6, 7, 9, 10}


def test_a_participant_without_history_is_reported_not_matched() -> None:
    panel, participants, persons = _toy()
    early = pl.concat([participants, pl.DataFrame({"person_id": [8], "start_month": [date(2022, 3, 1)]})])
    result = match(panel, early, persons, config=SMALL)
    reason = result.unmatched.filter(pl.col("person_id") == 8)["reason"].item()
    assert reason.startswith("start outside the panel")
    # the cohort is the start month as a month index (year * 12 + month - 1), like matched_units.cohort
    assert result.unmatched.filter(pl.col("person_id") == 8)["cohort"].item() == 2022 * 12 + 2


def test_stacked_panel_censors_controls_at_their_own_start() -> None:
    units = pl.DataFrame({"person_id": [0, 9], "cohort": [2022 * 12 + 12, 2022 * 12 + 12], "treated": [1, 0],
                          "weight": [1.0, 1.0], "person_start": [2022 * 12 + 12, 2023 * 12 + 3]})
    panel, _, _ = _toy()
    stacked = stacked_panel(panel, units, window=(-12, 11), outcomes=["self_support"])
    control = stacked.filter(pl.col("treated") == 0)
    assert control["event_time"].max() == 2  # month 2023-04 is the control's own start: censored from there
    assert stacked.filter(pl.col("treated") == 1)["event_time"].max() == 11


def test_balance_table_formula() -> None:
    xt = np.array([[1.0], [3.0]])
    xc = np.array([[0.0], [2.0], [4.0], [6.0]])
    table = balance_table(["x"], xt, xc, np.ones(4), xc[:2], np.ones(2)).row(0, named=True)
    pooled = np.sqrt((1.0 + 5.0) / 2)
    assert table["smd_before"] == pytest.approx((2 - 3) / pooled)
    assert table["smd_after"] == pytest.approx((2 - 1) / pooled)
    assert table["var_ratio_before"] == pytest.approx(1 / 5)


def test_row_order_and_duplicates_of_the_panel() -> None:
    panel, participants, persons = _toy()
    sorted_result = match(panel, participants, persons, config=SMALL)
    shuffled = match(panel.sample(fraction=1.0, shuffle=True, seed=1), participants, persons, config=SMALL)
    assert shuffled.pairs.equals(sorted_result.pairs) and shuffled.units.equals(sorted_result.units)
    # a duplicated person-month in place of a missing one keeps the row count but is not balanced
    gap = (pl.col("person_id") == 3) & (pl.col("month") == date(2022, 5, 1))
    twice = (pl.col("person_id") == 3) & (pl.col("month") == date(2022, 6, 1))
    doubled = pl.concat([panel.filter(~gap), panel.filter(twice)])
    with pytest.raises(ValueError, match="balanced"):
        match(doubled, participants, persons, config=SMALL)


def test_k_smallest_breaks_ties_like_a_stable_sort() -> None:
    from analysis.estimate.matching.nearest import k_smallest

    rng = np.random.default_rng(0)
    for _ in range(200):
        values = rng.integers(0, 5, size=rng.integers(1, 40)).astype(float)  # many ties
        k = int(rng.integers(1, 8))
        assert np.array_equal(k_smallest(values, k), np.argsort(values, kind="stable")[:k])


def test_bad_input_is_explained() -> None:
    panel, participants, persons = _toy()
    with pytest.raises(ValueError, match="balanced"):
        gap = (pl.col("person_id") == 3) & (pl.col("month") == date(2022, 5, 1))
        match(panel.filter(~gap), participants, persons, config=SMALL)
    with pytest.raises(ValueError, match="one row per person"):
        match(panel, pl.concat([participants, participants]), persons, config=SMALL)
    with pytest.raises(ValueError, match="not in the panel"):
        stranger = pl.DataFrame({"person_id": [99], "start_month": [date(2023, 1, 1)]})
        match(panel, stranger, persons, config=SMALL)
    with pytest.raises(ValueError, match="lacks columns"):
        match(panel, participants, persons.drop("kom_type"), config=SMALL)
    with pytest.raises(ValueError, match="caliper"):
        MatchConfig(caliper=0)


# --- planted-effect recovery on the mock world -------------------------------------------------------------


@pytest.fixture(scope="module")
def world_effects() -> tuple[dict, dict, pl.DataFrame]:
    """A 20k-person mock world (seed 0): matched DiD, staggered ATT and naive contrast per headline outcome.

    Crisis share 0.15 (default 0.06) so that each start month has a few dozen persons discharged that
    month: the design matches within (start month, transition, sex), which at 20k default persons leaves
    about six candidates per cell and most participants outside the caliper.
    """
    tables = ConfigDir().table
    codes = {"dream_codes": tables("dream_codes"), "hfaudd_levels": tables("hfaudd_levels")}
    world = mw.build_world(mw.WorldConfig(persons=20_000, seed=0, crisis_share=0.15),
                           sites=tables("sites"), delmaalgrupper=tables("delmaalgrupper"), **codes)
    registers = {r: pl.concat([mw.register_year(world, r, y) for y in range(2019, 2027)]).lazy()
                 for r in REGISTERS}
    panel = outcome_panel(registers, persons=None, first_month=date(2019, 1, 1), last_month=date(2026, 9, 1),
                          **codes).collect()
    courses = world.participants.select(person_id=pl.col("PNR"), start_date="start", site="site",
                                        delmaalgruppe="delmaalgruppe", completed="completed")
    participants = participant_table(courses)
    persons = person_attributes(registers["population"], panel.select("person_id").unique())
    result = match(panel, participants.select("person_id", "start_month"), persons)
    naive = before_after(panel, participants, outcomes=HEADLINE_OUTCOMES).contrasts
    estimates = {
        o: outcome_effects(panel, stacked_panel(panel, result.units, outcomes=[o]), result.units,
                           participants, o, naive=naive).estimates
        for o in HEADLINE_OUTCOMES
    }
    return mw.truth(world)["effects"], estimates, result.balance


@pytest.mark.parametrize("outcome", HEADLINE_OUTCOMES)
@pytest.mark.parametrize("design", ["matched_did", "staggered_att"])
def test_designs_with_a_comparison_group_recover_the_planted_effect(world_effects, outcome: str,
                                                                     design: str) -> None:
    truth, estimates, _ = world_effects
    headline = (pl.col("design") == design) & (pl.col("dimension") == "all")
    row = estimates[outcome].filter(headline).row(0, named=True)
    planted = truth[outcome]["att_months_12_24"]
    # One world's 95 % interval misses a correct estimate one time in twenty (scripts/validate.py measures
    # the coverage over replications), so a single world is held to 3.29 standard errors (99.9 %).
    assert abs(row["estimate"] - planted) <= 3.29 * row["se"], (design, outcome, planted, row)
    assert row["n_treated"] > 0 and row["n_controls"] > 0 and row["mde"] > 0


def test_naive_before_after_is_visibly_biased_by_the_dip(world_effects) -> None:
    truth, estimates, _ = world_effects
    row = estimates["self_support"].filter(pl.col("design") == "naive_before_after").row(0, named=True)
    assert row["ci_lower"] > truth["self_support"]["att_months_12_24"]  # the dip's recovery counted as effect


def test_heterogeneity_rows_carry_their_n(world_effects) -> None:
    _, estimates, _ = world_effects
    table = estimates["self_support"]
    assert set(table["dimension"].unique()) >= {"all", "delmaalgruppe", "site", "completed", "start_cohort"}
    assert table["n_treated"].null_count() == 0


def test_matching_improves_balance_on_the_dip(world_effects) -> None:
    _, _, balance = world_effects
    dip = balance.filter(pl.col("covariate").str.starts_with("self_support -"))
    assert (dip["smd_after"].abs() < dip["smd_before"].abs()).all()
