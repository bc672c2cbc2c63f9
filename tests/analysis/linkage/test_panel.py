from datetime import date

import polars as pl
import pytest

from analysis.linkage.panel import link_participants, outcome_panel, quarterly
from analysis.schema import OUTCOME_PANEL, REGISTERS
from pipelines.configuration import ConfigDir


def _registers() -> dict[str, pl.LazyFrame]:
    frames = {
        "population": [{"PNR": 1, "AAR": 2024, "KOEN": 1, "FOED_DAG": date(1980, 1, 1), "IE_TYPE": 1,
                        "OPR_LAND": "DNK", "KOM": 101},
                       {"PNR": 2, "AAR": 2024, "KOEN": 2, "FOED_DAG": date(1990, 1, 1), "IE_TYPE": 2,
                        "OPR_LAND": "GRL", "KOM": 751}],
        # January 2024 has 5 Mondays (1, 8, 15, 22, 29): person 1 has social assistance in 2 and
        # sickness in 1 of them.
        "benefits": [{"PNR": 1, "UGE_START": date(2024, 1, d), "YDELSESKODE": c}
                     for d, c in ((1, "730"), (8, "740"), (15, "890"))]
                    + [{"PNR": 3, "UGE_START": date(2024, 1, 1), "YDELSESKODE": "730"}],  # not requested
        "employment": [{"PNR": 2, "MAANED": date(2024, 2, 1), "BESKAEFTIGET": 1, "LOEN": 21000.0}],
        "health": [
            {"PNR": 1, "RECNUM": 1, "C_PATTYPE": 3, "C_ADIAG": "DS52", "D_INDDTO": date(2024, 1, 5),
             "D_UDDTO": date(2024, 1, 5), "V_SENGDAGE": 0},
            {"PNR": 1, "RECNUM": 2, "C_PATTYPE": 0, "C_ADIAG": "DF20", "D_INDDTO": date(2024, 2, 3),
             "D_UDDTO": date(2024, 2, 13), "V_SENGDAGE": 10},
            {"PNR": 1, "RECNUM": 3, "C_PATTYPE": 0, "C_ADIAG": "DJ18", "D_INDDTO": date(2024, 2, 20),
             "D_UDDTO": date(2024, 2, 23), "V_SENGDAGE": 3},
        ],
        "education": [{"PNR": 2, "AAR": 2024, "HFAUDD": "3500", "HF_VFRA": date(2024, 2, 1),
                       "HF_VTIL": date(9999, 12, 31)}],
        "enrolment": [{"PNR": 2, "UDD": "5080", "ELEV3_VFRA": date(2024, 1, 15),
                       "ELEV3_VTIL": date(2024, 3, 10)}],
        "stays": [{"PNR": 2, "OPHOLD_TYPE": "BOF", "INDDATO": date(2023, 9, 1), "UDDATO": date(2024, 2, 27)},
                  # before
                  {"PNR": 2, "OPHOLD_TYPE": "PSY", "INDDATO": date(2023, 1, 1), "UDDATO": date(2023, 2, 1)}],
    }
    return {name: pl.DataFrame(rows, schema=REGISTERS[name]).lazy() for name, rows in frames.items()}


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    return outcome_panel(
        _registers(), persons=pl.LazyFrame({"person_id": [1, 2]}), first_month=date(2024, 1, 1),
        last_month=date(2024, 3, 1), dream_codes=ConfigDir().table("dream_codes"),
        hfaudd_levels=ConfigDir().table("hfaudd_levels"),
    ).collect()


def _at(panel: pl.DataFrame, person: int, month: int) -> dict:
    at = (pl.col("person_id") == person) & (pl.col("month") == date(2024, month, 1))
    return panel.filter(at).row(0, named=True)


def test_panel_has_the_contract_schema_and_one_row_per_person_month(panel: pl.DataFrame) -> None:
    assert panel.schema == OUTCOME_PANEL
    assert panel.height == 2 * 3 and panel.select("person_id", "month").is_unique().all()


def test_weekly_codes_become_monthly_shares(panel: pl.DataFrame) -> None:
    january = _at(panel, 1, 1)
    assert january["social_assistance"] == pytest.approx(2 / 5)
    assert january["sickness_benefit"] == pytest.approx(1 / 5)
    assert january["self_support"] == pytest.approx(1 - 3 / 5)
    assert _at(panel, 1, 2)["self_support"] == 1.0


def test_sparse_employment_health_and_education(panel: pl.DataFrame) -> None:
    assert (_at(panel, 2, 2)["employed"], _at(panel, 2, 2)["earnings"]) == (1, 21000.0)
    assert (_at(panel, 2, 1)["employed"], _at(panel, 2, 1)["earnings"]) == (0, 0.0)
    assert _at(panel, 1, 1)["emergency_contacts"] == 1
    february = _at(panel, 1, 2)
    assert (february["psych_admissions"], february["bed_days"]) == (1, 13)
    assert [_at(panel, 2, m)["edu_level"] for m in (1, 2, 3)] == [0, 3, 3]  # valid from 1 February
    assert [_at(panel, 2, m)["enrolled"] for m in (1, 2, 3)] == [0, 1, 1]  # spell covers 1 Feb and 1 Mar


def test_stay_discharges_are_counted_by_month_and_type(panel: pl.DataFrame) -> None:
    assert [_at(panel, 2, m)["shelter_exits"] for m in (1, 2, 3)] == [0, 1, 0]
    # its PSY stay ended in 2023
    assert [_at(panel, 2, m)["psych_ward_exits"] for m in (1, 2, 3)] == [0, 0, 0]
    assert [_at(panel, 1, m)["shelter_exits"] + _at(panel, 1, m)["prison_exits"]
            for m in (1, 2, 3)] == [0, 0, 0]


def test_registers_without_stays_give_zero_exits() -> None:
    registers = {k: v for k, v in _registers().items() if k != "stays"}
    frame = outcome_panel(
        registers, persons=pl.LazyFrame({"person_id": [1, 2]}), first_month=date(2024, 1, 1),
        last_month=date(2024, 3, 1), dream_codes=ConfigDir().table("dream_codes"),
        hfaudd_levels=ConfigDir().table("hfaudd_levels"),
    ).collect()
    assert frame.schema == OUTCOME_PANEL
    assert frame.select("shelter_exits", "psych_ward_exits", "prison_exits").sum().row(0) == (0, 0, 0)


def test_quarterly_aggregation(panel: pl.DataFrame) -> None:
    q = quarterly(panel.lazy()).collect()
    row = q.filter(pl.col("person_id") == 1).row(0, named=True)
    assert row["bed_days"] == 13 and row["emergency_contacts"] == 1


def test_linkage_lists_unlinked_and_rates() -> None:
    courses = pl.DataFrame({"pseudonym": ["a", "b", "c"], "site": ["x", "x", "y"],
                            "start_date": [date(2024, 2, 1)] * 3, "first_reported": ["2024Q1"] * 3})
    index = pl.DataFrame({"pseudonym": ["a", "c"], "person_id": [10, 11]})
    result = link_participants(courses, index)
    assert result.linked["person_id"].to_list() == [10, 11]
    assert result.unlinked["pseudonym"].to_list() == ["b"]
    assert result.link_rate.filter(pl.col("site") == "x")["rate"][0] == pytest.approx(0.5)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="registers"):
        outcome_panel({}, persons=None, first_month=date(2024, 1, 1), last_month=date(2024, 2, 1),
                      dream_codes=ConfigDir().table("dream_codes"),
                      hfaudd_levels=ConfigDir().table("hfaudd_levels"))
