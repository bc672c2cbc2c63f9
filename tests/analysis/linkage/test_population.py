"""Person-year covariates, the CEM candidate pool and cohort extraction on small hand-made registers."""

from datetime import date, timedelta

import polars as pl
import pytest

from analysis.linkage.population import (
    candidate_pool,
    cem_pool,
    extract_cohort,
    person_year_covariates,
    stratum,
    transition_pool,
)


def _registers() -> dict[str, pl.LazyFrame]:
    population = pl.DataFrame({
        "PNR": [1, 2, 3, 4, 5, 6], "AAR": [2023] * 6, "KOEN": [1, 1, 1, 2, 1, 1],
        "FOED_DAG": [date(1990, 1, 1)] * 6, "IE_TYPE": [1] * 6, "OPR_LAND": ["DNK"] * 6, "KOM": [101] * 6,
    })
    mondays = [date(2023, 1, 2), date(2023, 1, 9), date(2023, 1, 16)]
    benefits = pl.DataFrame({"PNR": [1, 1, 1, 2, 2, 2, 3, 3, 3, 6, 6, 6, 1],
                             "UGE_START": mondays * 4 + [date(2022, 12, 26)], "YDELSESKODE": ["111"] * 13})
    employment = pl.DataFrame({"PNR": [4, 4, 5],
                               "MAANED": [date(2023, 1, 1), date(2023, 2, 1), date(2023, 1, 1)],
                               "BESKAEFTIGET": pl.Series([1, 1, 1], dtype=pl.Int8),
                               "LOEN": [100.0, 200.0, 50.0]})
    health = pl.DataFrame({"PNR": [1, 2], "RECNUM": [1, 2], "C_PATTYPE": pl.Series([3, 0], dtype=pl.Int8),
                           "C_ADIAG": ["DS52", "DF20"], "D_INDDTO": [date(2023, 3, 1), date(2023, 4, 1)],
                           "D_UDDTO": [date(2023, 3, 1), date(2023, 4, 5)],
                           "V_SENGDAGE": pl.Series([0, 4], dtype=pl.Int32)})
    return {"population": population.lazy(), "benefits": benefits.lazy(), "employment": employment.lazy(),
            "health": health.lazy()}


def test_person_year_covariates_sum_each_register_within_the_year() -> None:
    cov = person_year_covariates(_registers(), year=2023)
    assert cov["person_id"].to_list() == [1, 2, 3, 4, 5, 6]  # sorted by person
    assert cov["benefit_weeks"].to_list() == [3, 3, 3, 0, 0, 3]  # the 2022 week does not count
    assert cov["employed_months"].to_list() == [0, 0, 0, 2, 1, 0] and cov["earnings"][3] == 300.0
    assert cov["emergency_contacts"].to_list() == [1, 0, 0, 0, 0, 0]
    assert cov["psych_admissions"].to_list() == [0, 1, 0, 0, 0, 0] and cov["bed_days"][1] == 4
    assert cov.schema["benefit_weeks"] == pl.Int64  # counts are Int64 before any sum


def test_candidate_pool_keeps_participants_and_same_stratum_candidates_only() -> None:
    cov = person_year_covariates(_registers(), year=2023)
    participants = pl.DataFrame({"person_id": [3], "start_month": [date(2024, 3, 1)]})
    pool = candidate_pool(cov, participants, per_participant=5)
    # person 3: 3 benefit weeks, no work, no hospital: only person 6 shares the stratum (1 and 2 had hospital
    # contacts, 4 and 5 worked, 4 is a woman)
    strata = cov.with_columns(s=stratum()).select("person_id", "s")
    mine = strata.filter(pl.col("person_id") == 3)["s"].item()
    same = set(strata.filter(pl.col("s") == mine)["person_id"].to_list())
    assert set(pool["person_id"].to_list()) == same == {3, 6}
    assert pool.filter(pl.col("participant"))["person_id"].to_list() == [3]
    one = candidate_pool(cov, participants, per_participant=1)
    assert one.height == 2  # the participant and exactly one candidate
    assert one.equals(candidate_pool(cov, participants, per_participant=1))  # seeded: reproducible


def test_candidate_pool_rejects_bad_input() -> None:
    cov = person_year_covariates(_registers(), year=2023)
    with pytest.raises(ValueError, match="start_month"):
        candidate_pool(cov, pl.DataFrame({"person_id": [1]}))
    with pytest.raises(ValueError, match="per_participant"):
        candidate_pool(cov, pl.DataFrame({"person_id": [1], "start_month": [date(2024, 1, 1)]}),
                       per_participant=0)


def test_benefit_weeks_count_distinct_weeks_across_the_whole_year() -> None:
    regs = _registers()
    # person 7: the first and last Monday of 2023 (bits 0 and 52), one week twice (two codes), 10 more weeks
    mondays = [date(2023, 1, 2), date(2023, 12, 25), date(2023, 6, 5), date(2023, 6, 5)]
    mondays += [date(2023, 3, 6) + timedelta(weeks=i) for i in range(10)]
    extra = pl.DataFrame({"PNR": [7] * len(mondays), "UGE_START": mondays,
                          "YDELSESKODE": ["111", "111", "111", "890"] + ["111"] * 10})
    regs["benefits"] = pl.concat([regs["benefits"].collect(), extra]).lazy()
    seven = regs["population"].collect().tail(1).with_columns(PNR=pl.lit(7, pl.Int64))
    regs["population"] = pl.concat([regs["population"].collect(), seven]).lazy()
    cov = person_year_covariates(regs, year=2023)
    assert len(set(mondays)) == 13
    assert cov.filter(pl.col("person_id") == 7)["benefit_weeks"].item() == 13


def test_cem_pool_is_the_candidate_pool_of_each_baseline_year() -> None:
    participants = pl.DataFrame({"person_id": [3], "start_month": [date(2024, 3, 1)]})
    direct = candidate_pool(person_year_covariates(_registers(), year=2023), participants, per_participant=5)
    assert cem_pool(_registers(), participants, per_participant=5).equals(direct)
    with pytest.raises(ValueError, match="start_month"):
        cem_pool(_registers(), pl.DataFrame({"person_id": [3]}))


def test_extract_cohort_keeps_only_the_ids_rows_and_columns() -> None:
    rows = extract_cohort(_registers()["benefits"], pl.DataFrame({"person_id": [2, 9]}),
                          columns=("PNR", "UGE_START"))
    out = rows.collect(engine="streaming")
    assert out.columns == ["PNR", "UGE_START"] and set(out["PNR"]) == {2} and out.height == 3


def test_transition_pool_is_everyone_discharged_the_month_before_a_start() -> None:
    stays = pl.DataFrame({
        "PNR": [1, 2, 3, 4], "OPHOLD_TYPE": ["BOF", "PSY", "KRF", "BOF"],
        "INDDATO": [date(2023, 1, 1)] * 4,
        "UDDATO": [date(2023, 5, 31), date(2023, 5, 2), date(2023, 6, 15), date(2023, 3, 20)],
    }).lazy()
    participants = pl.DataFrame({"person_id": [9, 8], "start_month": [date(2023, 6, 1), date(2023, 6, 1)]})
    pool = transition_pool({**_registers(), "stays": stays}, participants)
    assert pool["person_id"].to_list() == [1, 2]  # May discharges; June and March are not the month before
    assert transition_pool(_registers(), participants).height == 0  # no stays register: nothing to add
    with pytest.raises(ValueError, match="start_month"):
        transition_pool(_registers(), participants.drop("start_month"))


def test_only_participants_without_their_own_transition_need_cem_candidates() -> None:
    from analysis.linkage.population import without_transition

    stays = pl.DataFrame({"PNR": [9, 8], "OPHOLD_TYPE": ["BOF", "PSY"], "INDDATO": [date(2023, 1, 1)] * 2,
                          "UDDATO": [date(2023, 5, 31), date(2023, 2, 10)]}).lazy()
    participants = pl.DataFrame({"person_id": [9, 8, 7], "start_month": [date(2023, 6, 1)] * 3})
    # 9 was discharged in May (start June): matched in the transition split; 8's discharge is too early
    assert without_transition({**_registers(), "stays": stays}, participants)["person_id"].to_list() == [8, 7]
    assert without_transition(_registers(), participants).equals(participants)
