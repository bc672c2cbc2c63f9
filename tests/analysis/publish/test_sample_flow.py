from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from analysis.publish.labels import THOUSANDS, Labels, check_labelled
from analysis.publish.sample_flow import (
    PUBLISHED_COLUMNS,
    FlowInputs,
    render_sample_flow_svg,
    sample_flow,
)
from analysis.schema import EFFECT_ESTIMATES
from pipelines.configuration import ConfigDir


@pytest.fixture(scope="module")
def labels() -> Labels:
    config = ConfigDir()
    return Labels.from_tables(
        config.table("report_labels"),
        delmaalgrupper=config.table("delmaalgrupper"),
        sites=config.table("sites"),
    )


def _months(first: date, count: int) -> list[date]:
    return [
        date(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1, 1)
        for i in range(count)
    ]


def _inputs(*, with_panel: bool = True, with_quarantine: bool = True) -> FlowInputs:
    stats = pl.DataFrame(
        {
            "superseded": [False, False, True],
            "rows_in": [1200, 40, 30],
            "clean": [1150, 30, 30],
            "quarantined": [40, 8, 0],
            "duplicates": [10, 2, 0],
        }
    )
    # persons 1..6 linked (person 6 twice: two courses), one pseudonym unlinked
    linked = pl.DataFrame(
        {
            "pseudonym": ["p1", "p2", "p3", "p4", "p5", "p6", "p6"],
            "person_id": [1, 2, 3, 4, 5, 6, 6],
            "start_date": [
                date(2024, 3, 5),
                date(2024, 4, 1),
                date(2024, 6, 9),
                date(2025, 1, 2),
                date(2025, 2, 2),
                date(2024, 5, 5),
                date(2025, 6, 1),
            ],
            "site": ["aarhus", "aarhus", "odense", "odense", "koebenhavn", "aarhus", "aarhus"],
            "delmaalgruppe": ["OVG", "PSY", "OVG", "GRL", "GRL", "OVG", "OVG"],
            "completed": [True, False, None, True, None, True, None],
            "sex": [1, 2, 2, 1, 2, 1, 1],
            "birth_date": [date(1970, 1, 1)] * 7,
        },
        schema_overrides={"sex": pl.Int8},
    )
    courses = pl.concat([linked.drop("person_id"), pl.DataFrame({"pseudonym": ["p7"]})], how="diagonal")
    units = pl.DataFrame(
        {"person_id": [1, 2, 3, 6, 10, 11, 12], "treated": [1, 1, 1, 1, 0, 0, 0]},
        schema_overrides={"treated": pl.Int8},
    )
    unmatched = pl.DataFrame(
        {"person_id": [4, 5], "cohort": [60, 61], "reason": ["no comparison person within the caliper"] * 2}
    )
    estimates = pl.DataFrame(
        [
            {
                "outcome": o,
                "design": "matched_did",
                "dimension": "all",
                "level": "all",
                "n_treated": 3,
                "n_controls": 3,
                "window": "12..24",
            }
            for o in ("employed", "self_support")
        ]
        + [
            {
                "outcome": "employed",
                "design": "naive_before_after",
                "dimension": "all",
                "level": "all",
                "n_treated": 5,
                "n_controls": None,
                "window": "12..24 vs -3..-1",
            },
            {
                "outcome": "self_support",
                "design": "naive_before_after",
                "dimension": "all",
                "level": "all",
                "n_treated": 4,
                "n_controls": None,
                "window": "12..24 vs -3..-1",
            },
            {
                "outcome": "employed",
                "design": "matched_did",
                "dimension": "site",
                "level": "aarhus",
                "n_treated": 2,
                "n_controls": 2,
                "window": "12..24",
            },
        ],
        schema=EFFECT_ESTIMATES,
    )
    panel = None
    if with_panel:
        rows = []
        for person, start in zip(
            [1, 2, 3, 4, 5, 6],
            [
                date(2024, 3, 1),
                date(2024, 4, 1),
                date(2024, 6, 1),
                date(2025, 1, 1),
                date(2025, 2, 1),
                date(2024, 5, 1),
            ],
            strict=True,
        ):
            for month in _months(date(2023, 1, 1), 40):
                before = month < start
                rows.append(
                    {
                        "person_id": person,
                        "month": month,
                        # a shelter exit in the month before the start for persons 1, 2 and 4; person 3's
                        # exit is two months before (outside the transition month)
                        "shelter_exits": int(
                            person in (1, 2, 4)
                            and _months(month, 2)[1] == start
                            or person == 3
                            and _months(month, 3)[2] == start
                        ),
                        "psych_ward_exits": 0,
                        "prison_exits": 0,
                        "self_support": 0.25 if before else 0.5,
                        "employed": 0,
                        "emergency_contacts": 1,
                    }
                )
        panel = pl.DataFrame(rows)
    quarantine = None
    if with_quarantine:
        quarantine = pl.DataFrame(
            {
                "reasons": [["end_before_start"]] * 30
                + [["cpr_wrong_length", "date_unparseable"]] * 16
                + [["brand_new_reason"]] * 2
                + [["not_a_data_row"]] * 3,
                "superseded": [False] * 48 + [True] * 3,
            }
        )
    return FlowInputs(
        stats,
        courses,
        linked,
        pl.DataFrame({"pseudonym": ["p7"]}),
        units,
        unmatched,
        estimates,
        panel=panel,
        quarantine=quarantine,
    )


def _row(table: pl.DataFrame, stage: str, **match) -> dict:
    rows = table.filter(pl.col("stage") == stage)
    for column, value in match.items():
        rows = rows.filter(pl.col(column) == value)
    assert rows.height == 1, (stage, match, rows)
    return rows.row(0, named=True)


def test_the_flow_counts_every_stage_and_says_why(labels):
    flow = sample_flow(_inputs(), labels=labels)
    table = flow.table
    stages = table.filter(pl.col("kind") == "stage").select("stage", "n").rows()
    assert stages == [
        ("Course rows received (all file versions)", 1270),
        ("Rows in the current files", 1240),
        ("Valid rows", 1180),
        ("Courses", 8),
        ("Persons with a course", 7),
        ("Linked to the registers", 6),
        ("Matched with comparison persons", 4),
    ]
    assert _row(table, "Replaced by a corrected file")["excluded"] == 30
    quarantined = table.filter(pl.col("stage") == "Quarantined").select("excluded", "reason").rows()
    assert quarantined == [
        (30, "end date before start date"),
        (16, "CPR number not 10 digits"),
        (2, "brand new reason"),
    ]  # a row counts under its first reason; unknown codes in words
    assert sum(n for n, _ in quarantined) == 48
    assert _row(table, "Exact duplicates")["excluded"] == 12
    assert (
        _row(table, "Repeat reports")["excluded"] == 1172 and _row(table, "Repeat reports")["kind"] == "note"
    )
    assert _row(table, "Later courses")["excluded"] == 1
    assert _row(table, "Not linked")["excluded"] == 1
    assert _row(table, "Not matched")["excluded"] == 2
    assert _row(table, "Not matched")["reason"] == "no comparison person within the caliper"
    # every number in its own cell (the disclosure layer controls cells, not sentences)
    transition = {r["code"]: r for r in table.filter(pl.col("stage") == "Transition in month −1").iter_rows(
        named=True)}
    assert transition["transition"]["n"] == 3 and transition["transition_matched"]["n"] == 2
    assert transition["no_transition"]["n"] == 3
    assert not any(ch.isdigit() for r in transition.values() for ch in r["reason"])
    assert _row(table, "Valid rows")["code"] == "valid" and table["code"].null_count() == 0


def test_design_rows_give_n_per_design_and_per_outcome_when_they_differ(labels):
    table = sample_flow(_inputs(), labels=labels).table.filter(pl.col("kind") == "design")
    did = _row(table, labels.design("matched_did"))
    assert (did["n"], did["n_controls"], did["excluded"], did["outcome_code"]) == (3, 3, 1, None)
    assert "months 12\u201324" in did["reason"]
    naive = table.filter(pl.col("design_code") == "naive_before_after").sort("outcome_code")
    assert naive["outcome_code"].to_list() == ["employed", "self_support"]
    assert naive["n"].to_list() == [5, 4] and naive["excluded"].to_list() == [1, 2]  # base: the 6 linked
    assert naive["stage"][0] == f"{labels.design('naive_before_after')}: {labels.outcome('employed')}"
    linked_step = _row(sample_flow(_inputs(), labels=labels).table, "Linked to the registers")["step"]
    assert set(naive["parent"].to_list()) == {linked_step}


def test_the_published_columns_pass_the_label_guard(labels):
    table = sample_flow(_inputs(), labels=labels).table
    check_labelled(table.select(PUBLISHED_COLUMNS), labels=labels, exported=True)
    coded = sample_flow(_inputs()).table  # without labels the design rows say their codes
    with pytest.raises(ValueError, match="identifier 'matched_did'"):
        check_labelled(coded.select(PUBLISHED_COLUMNS), labels=labels, exported=True)


def test_without_the_panel_or_the_quarantine_the_flow_still_adds_up(labels):
    table = sample_flow(_inputs(with_panel=False, with_quarantine=False), labels=labels).table
    assert table.filter(pl.col("stage").str.starts_with("Transition")).height == 0
    quarantined = _row(table, "Quarantined")
    assert quarantined["excluded"] == 48 and "steward view" in quarantined["reason"]


def test_the_comparison_sets_unmatched_beside_matched(labels):
    comparison = sample_flow(_inputs(), labels=labels).comparison
    persons = _row(comparison.rename({"attribute": "stage"}), "Persons")
    assert (persons["matched_n"], persons["unmatched_n"]) == (4, 2)
    women = _row(comparison.rename({"attribute": "stage"}), "Women")
    assert (women["matched_n"], women["matched_value"]) == (2, 0.5)  # persons 2 and 3 of 1, 2, 3, 6
    assert (women["unmatched_n"], women["unmatched_value"]) == (1, 0.5)  # person 5 of 4, 5
    grl = _row(comparison.rename({"attribute": "stage"}), "Sub-target group", level="GRL")
    assert (grl["matched_n"], grl["unmatched_n"], grl["unmatched_value"]) == (0, 2, 1.0)
    transition = _row(comparison.rename({"attribute": "stage"}), "With a recorded transition")
    assert (transition["matched_n"], transition["unmatched_n"]) == (2, 1)
    history = _row(
        comparison.rename({"attribute": "stage"}),
        "Mean in months \u221212 to \u22121",
        outcome="self_support",
    )
    assert history["matched_value"] == pytest.approx(0.25) and history["unmatched_n"] == 2
    labelled = labels.label_codes(comparison)
    assert "Borger med grønlandsk baggrund" in labelled["level"].to_list()
    check_labelled(labelled.drop("statistic"), labels=labels, exported=True)


def test_the_figure_draws_the_numbers_of_the_table_it_is_given(labels):
    table = sample_flow(_inputs(), labels=labels).table
    svg = render_sample_flow_svg(table)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "<script" not in svg
    assert f"n = 1{THOUSANDS}270 rows" in svg and "Not matched: 2" in svg
    assert "30: end date before start date" in svg
    # after disclosure control: small counts as text, a suppressed one missing
    controlled = table.with_columns(
        pl.when(pl.col("stage") == "Not linked")
        .then(pl.lit("<5"))
        .otherwise(pl.col("excluded").cast(pl.String))
        .alias("excluded"),
        pl.when(pl.col("stage") == "Matched with comparison persons")
        .then(None)
        .otherwise(pl.col("n"))
        .alias("n"),
    )
    svg = render_sample_flow_svg(controlled)
    assert "Not linked: &lt;5" in svg
    assert "n = \u2013 persons" in svg and "n = 4 persons" not in svg


def test_the_figure_needs_the_flow_table():
    with pytest.raises(ValueError, match="SampleFlow.table"):
        render_sample_flow_svg(pl.DataFrame({"stage": ["x"]}))
