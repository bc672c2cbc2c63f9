from __future__ import annotations

import math
import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.publish.labels import (
    MINUS,
    THOUSANDS,
    UNITS,
    Labels,
    check_label_table,
    check_labelled,
    event_month_label,
    event_quarter_label,
    format_interval,
    format_number,
    month_label,
    quarter_expr,
    quarter_label,
    to_unit,
    window_label,
)
from analysis.schema import OUTCOMES
from pipelines.configuration import ConfigDir


@pytest.fixture(scope="module")
def labels() -> Labels:
    config = ConfigDir()
    return Labels.from_tables(
        config.table("report_labels"),
        delmaalgrupper=config.table("delmaalgrupper"),
        sites=config.table("sites"),
    )


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.0434, "pp", "4.3"),
        (-0.07, "pp", f"{MINUS}7.0"),
        (-0.0004, "pp", "0.0"),  # rounds to zero: no sign
        (0.4155, "percent", "41.5"),
        (1021.388, "dkk", f"1{THOUSANDS}021"),
        (-35.4, "dkk", f"{MINUS}35"),
        (1234567.0, "dkk", f"1{THOUSANDS}234{THOUSANDS}567"),
        (0.18123, "rate", "0.181"),
        (-0.0001, "rate", "0.000"),
        (2.314, "level", "2.31"),
        (1239, "count", f"1{THOUSANDS}239"),
        (0.0004, "p_value", "<0.001"),
        (0.0321, "p_value", "0.032"),
        (1.0, "p_value", "1.000"),
        (-0.0821, "ratio", f"{MINUS}0.08"),
        (None, "pp", ""),
        (math.nan, "rate", ""),
    ],
)
def test_one_format_per_unit(value, unit, text):
    assert format_number(value, unit) == text


def test_sentences_carry_the_unit_symbol():
    assert format_number(0.043, "pp", with_unit=True) == "4.3 pp"
    assert format_number(1021.0, "dkk", with_unit=True) == f"1{THOUSANDS}021 DKK"
    assert format_number(0.181, "rate", with_unit=True) == "0.181"
    assert format_interval(-0.012, 0.043, "pp") == f"{MINUS}1.2 to 4.3"
    assert format_interval(None, 0.043, "pp") == ""


def test_to_unit_scales_rounds_and_never_gives_negative_zero():
    assert to_unit(0.04349, "pp") == 4.3
    assert to_unit(1021.6, "dkk") == 1022.0
    zero = to_unit(-0.0004, "pp")
    assert zero == 0.0 and not np.signbit(zero)
    assert to_unit(None, "pp") is None
    with pytest.raises(ValueError, match="unknown unit"):
        to_unit(1.0, "furlongs")


PLAUSIBLE = {"p_value": (0.0, 1.0), "rate": (-99.0, 99.0)}  # 100 contacts per person-month is no rate


@given(data=st.data(), unit=st.sampled_from(sorted(UNITS)))
def test_formatted_numbers_pass_the_guard_and_never_show_negative_zero(data, unit):
    low, high = PLAUSIBLE.get(unit, (-1e7, 1e7))
    value = data.draw(st.floats(min_value=low, max_value=high, allow_nan=False))
    text = format_number(value, unit)
    assert not re.fullmatch(r"[-\u2212]0([.]0+)?", text)
    pattern = r"<0\.001|\u2212?\d{1,3}(\u202f\d{3})*" if UNITS[unit].thousands else r"<0\.001|\u2212?\d+"
    decimals = UNITS[unit].decimals
    assert re.fullmatch(f"({pattern})" + (rf"(\.\d{{{decimals}}})?" if decimals else ""), text), text
    check_labelled(pl.DataFrame({"Estimate": [text]}))


def test_quarters_and_months_read_as_dates():
    assert quarter_label(8096) == "2024Q1"
    assert quarter_label(8099) == "2024Q4"
    assert quarter_label(8100) == "2025Q1"
    assert month_label(24288) == "2024-01"
    assert month_label(24299) == "2024-12"
    frame = pl.DataFrame({"cohort": [8096, 8101, None]}, schema={"cohort": pl.Int32})
    assert frame.select(quarter_expr("cohort"))["cohort"].to_list() == ["2024Q1", "2025Q2", None]
    with pytest.raises(ValueError, match="integer"):
        quarter_label("8096")  # type: ignore[arg-type]


def test_event_time_is_said_in_months():
    assert event_month_label(-3) == f"month {MINUS}3"
    assert event_month_label(0) == "month 0 (start)"
    assert event_quarter_label(4) == "quarter 4 (months 12\u201314)"
    assert event_quarter_label(-1) == f"quarter {MINUS}1 (months {MINUS}3 to {MINUS}1)"
    assert window_label("12..24") == "months 12\u201324"
    assert window_label("quarters 4..8") == "quarters 4\u20138 (months 12\u201326)"
    assert window_label("12..24 vs -3..-1") == f"months 12\u201324 vs months {MINUS}3 to {MINUS}1"


def test_every_outcome_has_a_label_and_a_unit(labels):
    for outcome in OUTCOMES:
        assert labels.outcome(outcome) and labels.effect_unit(outcome) in ("pp", "dkk", "rate", "level")
    assert labels.outcome("self_support") == "Share of months self-supporting"
    assert labels.effect_unit("self_support") == "pp" and labels.level_unit("self_support") == "percent"
    assert labels.outcome("earnings", with_unit=True) == "Earnings, DKK per month, DKK per month"
    assert labels.outcome("emergency_contacts") == "Emergency contacts per person-month"


def test_codes_become_words(labels):
    assert labels.design("matched_did").startswith("Matched difference-in-differences")
    assert labels.level("delmaalgruppe", "OVG") == "Overgang fra botilbud/herberg til egen bolig"
    assert labels.level("site", "koebenhavn") == "Københavns Kommune"
    assert labels.level("completed", "not completed") == "Not completed"
    assert labels.level("start_cohort", "2025") == "2025"
    assert labels.level("all", "all") == "All participants"
    assert labels.subgroup("ZZ9") == "ZZ9 (code not in the delmålgruppe list)"
    assert labels.aggregation_key("dynamic", 4) == "month 4"  # the staggered design is monthly
    assert labels.aggregation_key("dynamic", 4, monthly=False) == "quarter 4 (months 12\u201314)"
    assert labels.aggregation_key("group", 8096) == "starting 2024Q1"
    assert labels.aggregation_key("group", 24290) == "starting 2024-03"  # a start month
    assert labels.aggregation_key("calendar", 8101) == "2025Q2"
    assert labels.aggregation_key("calendar", 24301) == "2025-02"
    assert labels.aggregation_key("simple", None) == "overall"
    months = f"months {MINUS}36 to {MINUS}25"
    assert labels.covariate("self_support -36..-25") == f"Share of months self-supporting, {months}"
    assert labels.covariate("employed -1") == f"Share of months in employment, month {MINUS}1"
    assert labels.covariate("age") == "Age (years)"
    assert labels.column("n_treated") == "Participants"
    with pytest.raises(ValueError, match="report_labels.csv"):
        labels.design("regression_discontinuity")


def _estimates() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "outcome": ["self_support", "earnings", "emergency_contacts"],
            "design": ["matched_did", "staggered_att", "matched_did"],
            "dimension": ["all", "site", "delmaalgruppe"],
            "level": ["all", "aarhus", "PSY"],
            "estimate": [0.0434, -35.4, -0.0004],
            "pretrend_p": [0.0004, 0.5, 0.03],
            "n_treated": [212, 20, 59],
        }
    )


def test_a_table_formatted_labelled_and_renamed_passes_the_guard(labels):
    units = {"estimate": "effect", "pretrend_p": "p_value", "n_treated": "count"}
    table = labels.format_table(_estimates(), units=units)
    assert table["estimate"].to_list() == ["4.3", f"{MINUS}35", "0.000"]
    published = labels.headers(labels.label_codes(table))
    assert published.columns == [
        "Outcome",
        "Design",
        "Sub-group",
        "Group",
        "Estimate",
        "Pre-trend test, p-value",
        "Participants",
        "Unit",
    ]
    assert published["Group"].to_list() == [
        "All participants",
        "Aarhus Kommune",
        "Udskrivning fra psykiatrisk indlæggelse",
    ]
    assert published["Unit"].to_list() == ["percentage points", "DKK per month", "per person-month"]
    check_labelled(published, labels=labels)


def test_keep_codes_keeps_machine_readable_columns(labels):
    table = labels.label_codes(_estimates(), keep_codes=True)
    assert table["outcome_code"].to_list() == ["self_support", "earnings", "emergency_contacts"]
    assert table["outcome"][0] == "Share of months self-supporting"
    check_labelled(table.drop("estimate", "pretrend_p"), labels=labels, exported=True)


def test_staggered_tables_lose_their_quarter_indices(labels):
    gt = pl.DataFrame(
        {"outcome": ["employed"], "cohort": [8096], "period": [8101], "att": [0.01]},
        schema_overrides={"cohort": pl.Int32, "period": pl.Int32},
    )
    out = labels.label_codes(gt)
    assert out["cohort"].to_list() == ["2024Q1"] and out["period"].to_list() == ["2025Q2"]
    monthly = gt.with_columns(cohort=pl.lit(24290, pl.Int32), period=pl.lit(24300, pl.Int32))
    out = labels.label_codes(monthly)  # by start month and month (the staggered design since h3)
    assert out["cohort"].to_list() == ["2024-03"] and out["period"].to_list() == ["2025-01"]
    check_labelled(out, labels=labels, exported=True)
    agg = pl.DataFrame(
        {"outcome": ["employed"] * 3, "aggregation": ["dynamic", "group", "simple"], "key": [4, 24290, None]},
        schema_overrides={"key": pl.Int32},
    )
    keys = labels.label_codes(agg)["key"].to_list()
    assert keys == ["month 4", "starting 2024-03", "overall"]


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (pl.DataFrame({"Quarter of start": [8096, 8097]}), "quarter indices"),
        (pl.DataFrame({"cohort": ["2024Q1"], "period": [8101]}), "encoded periods"),
        (pl.DataFrame({"Aggregation key": [-2, 4, 8096]}), "quarter indices"),
        (pl.DataFrame({"Start": [24288]}), "month indices"),
        (pl.DataFrame({"Quarter": ["8096"]}), "encoded period"),
        (pl.DataFrame({"Outcome": ["self_support"]}), "identifier 'self_support'"),
        (pl.DataFrame({"Design": ["naive_before_after"]}), "identifier"),
        (pl.DataFrame({"Group": ["PSY"]}), "identifier 'PSY'"),
        (pl.DataFrame({"Site": ["koebenhavn"]}), "identifier 'koebenhavn'"),
        (pl.DataFrame({"n_treated": ["212"]}), "header 'n_treated'"),
        (pl.DataFrame({"Estimate": [1021.388]}), "unformatted float"),
        (pl.DataFrame({"Estimate": ["1021.388"]}), "unformatted float"),
        (pl.DataFrame({"Estimate": ["-0.000"]}), "rounds to zero"),
        (pl.DataFrame({"Estimate": [f"{MINUS}0.0 pp"]}), "rounds to zero"),
        (pl.DataFrame({"Estimate": ["1e-05"]}), "unformatted float"),
    ],
)
def test_the_guard_names_each_leak(labels, frame, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_labelled(frame, labels=labels)


def test_the_guard_in_export_mode_accepts_numbers_but_not_codes_or_negative_zero(labels):
    check_labelled(
        pl.DataFrame({"estimate": [4.3, 0.0], "n_treated": [8096, 212], "event_time": [-3, 24]}),
        labels=labels,
        exported=True,
    )  # a count of 8096 persons is a count, not a quarter
    with pytest.raises(ValueError, match="negative zero"):
        check_labelled(pl.DataFrame({"estimate": [4.3, -0.0]}), labels=labels, exported=True)
    with pytest.raises(ValueError, match="encoded periods"):
        check_labelled(pl.DataFrame({"cohort": [8096]}), labels=labels, exported=True)
    with pytest.raises(ValueError, match="identifier"):
        check_labelled(pl.DataFrame({"outcome": ["employed"]}), labels=labels, exported=True)


def test_the_guard_leaves_code_columns_and_allowed_columns_alone(labels):
    check_labelled(
        pl.DataFrame({"Outcome": ["Share of months in employment"], "outcome_code": ["employed"]}),
        labels=labels,
    )
    check_labelled(pl.DataFrame({"Note": ["see_below"]}), labels=labels, allow=["Note"])


def test_label_table_problems_are_named():
    table = pl.DataFrame(
        {
            "kind": ["outcome", "outcome", "flavour", "level"],
            "key": ["self_support", "self_support", "x", "ongoing"],
            "label": ["A", "B", "", "Ongoing"],
            "unit": ["pp", "furlongs", None, None],
        }
    )
    problems = check_label_table(table)
    assert "row 2: outcome 'self_support' needs a unit, one of pp, dkk, rate, level" in problems
    assert "row 2: outcome 'self_support' appears twice" in problems
    assert any(p.startswith("row 3: kind 'flavour'") for p in problems)
    assert "row 3: label is empty" in problems
    assert any(p.startswith("row 4: a level key is 'dimension:code'") for p in problems)
    assert "outcome 'earnings' (analysis.schema.OUTCOMES) has no label row" in problems
    with pytest.raises(ValueError, match="cti config check"):
        Labels.from_tables(table)
