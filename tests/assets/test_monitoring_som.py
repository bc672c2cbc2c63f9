"""The monitoring and public-budget assets, materialised in-process on stored inputs with known answers."""

from datetime import date
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from analysis.schema import COURSES, EFFECT_INFLUENCE, EVENT_STUDY
from expectations import names
from pipelines.layout import Layout
from pipelines.partitions import quarter_key
from pipelines.storage import write_parquet


def _courses() -> pl.DataFrame:
    rows = [
        ("p1", "aarhus", date(2024, 2, 10), date(2024, 11, 5), "OVG", True),
        ("p2", "aarhus", date(2024, 3, 1), date(2024, 5, 20), "PSY", False),
        ("p3", "odense", date(2024, 5, 15), None, "GRL", None),
    ]
    frame = pl.DataFrame(
        rows,
        schema=["pseudonym", "site", "start_date", "end_date", "delmaalgruppe", "completed"],
        orient="row",
    )
    return frame.with_columns(
        course_id=pl.format("c{}", pl.int_range(pl.len())),
        key_id=pl.lit("k"),
        sex=pl.lit(1, pl.Int8),
        birth_date=pl.lit(date(1980, 1, 1)),
        first_reported=pl.lit("2024Q1"),
        last_reported=pl.lit("2024Q4"),
    ).select([pl.col(c).cast(t) for c, t in COURSES.items()])


def _store_inputs(layout: Layout) -> None:
    """Store upstream assets: courses, delivery log, per-file stats, link rates, two outcomes' estimates."""
    write_parquet(layout.asset_file(("courses",)), _courses())
    log = pl.DataFrame(
        [
            (s, q, f"2024-{m:02d}-20T00:00:00+00:00", 1, False, True)
            for s in ("aarhus", "odense")
            for q, m in (("2024Q1", 4), ("2024Q2", 7), ("2024Q3", 10))
        ],
        schema=["site", "quarter", "received", "version", "superseded", "readable"],
        orient="row",
    )
    write_parquet(layout.asset_file(("submission_log",)), log.with_columns(pl.col("version").cast(pl.Int32)))
    for site in ("aarhus", "odense"):
        for quarter in ("2024Q1", "2024Q2", "2024Q3"):
            stats = pl.DataFrame(
                {
                    "site": [site],
                    "quarter": [quarter],
                    "superseded": [False],
                    "rows_in": [10],
                    "quarantined": [0],
                    "clean": [10],
                    "duplicates": [0],
                }
            )
            write_parquet(
                layout.asset_file(("submission_stats",), partition=f"{quarter_key(quarter)}|{site}"), stats
            )
    write_parquet(
        layout.asset_file(("link_rate",)),
        pl.DataFrame(
            {
                "site": ["aarhus", "odense"],
                "quarter": ["2024Q1", "2024Q2"],
                "participants": [2, 1],
                "linked": [2, 1],
                "rate": [1.0, 1.0],
            }
        ),
    )
    rng = np.random.default_rng(0)
    for outcome, effect in (("social_assistance", -0.1), ("employed", 0.05)):
        months = list(range(-3, 25))
        study = pl.DataFrame(
            {
                "outcome": outcome,
                "event_time": months,
                "estimate": [0.0 if m < 0 else effect for m in months],
                "se": [None if m == -1 else 0.02 for m in months],
                "n_treated": 40,
                "n_controls": 160,
            }
        )
        study = study.with_columns(ci_lower=pl.col("estimate") - 0.04, ci_upper=pl.col("estimate") + 0.04)
        write_parquet(
            layout.asset_file(("event_study",), partition=outcome),
            study.select([pl.col(c).cast(t) for c, t in EVENT_STUDY.items()]),
        )
        influence = pl.DataFrame(
            {
                "outcome": outcome,
                "person_id": np.repeat(np.arange(200), 25),
                "event_time": np.tile(np.arange(25), 200),
                "influence": rng.normal(scale=0.02 / np.sqrt(200), size=5000),
            }
        )
        write_parquet(
            layout.asset_file(("effect_influence",), partition=outcome),
            influence.select([pl.col(c).cast(t) for c, t in EFFECT_INFLUENCE.items()]),
        )


def _materialise(data: Path, config: Path | None, selection: list[str]):
    from support import instance_with_sites, settings_for

    from assets import effects, ingest, linkage, monitoring, registers, som
    from pipelines.configuration import ConfigDir
    from pipelines.definitions import build_resources

    settings = settings_for(data)
    if config is not None:
        from dataclasses import replace

        settings = replace(settings, config=ConfigDir(config))
    everything = [
        *registers.assets,
        *ingest.assets,
        *linkage.assets,
        *effects.assets,
        *monitoring.assets,
        *som.assets,
    ]
    return dg.materialize(
        everything,
        selection=selection,
        resources=build_resources(settings),
        instance=instance_with_sites(settings),
        raise_on_error=False,
    )


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("monitoring") / "data"
    _store_inputs(Layout.at(data))
    return data


def test_monitoring_assets_reconcile_and_write_both_pages(stored: Path) -> None:
    result = _materialise(
        stored,
        None,
        [
            "programme_monitoring",
            "monitoring_mix",
            "monitoring_endings",
            "monitoring_targets",
            "monitoring_delivery",
            "monitoring_status",
            "monitoring_html",
        ],
    )
    assert result.success
    checks = _checks(result)
    assert checks[names.MONITORING_RECONCILES].passed and checks[names.MONITORING_TARGETS_COMPLETE].passed
    layout = Layout.at(stored)
    flows = pl.read_parquet(layout.asset_file(("programme_monitoring",)))
    programme = flows.filter((pl.col("site") == "ALL") & (pl.col("quarter") == "2024Q2")).row(0, named=True)
    assert (programme["new_starts"], programme["ended_early"], programme["open_at_end"]) == (1, 1, 2)
    internal = layout.monitoring_page(restricted=True).read_text()
    assert "INTERNAL – EXACT COUNTS" in internal and str(layout.restricted) in str(
        layout.monitoring_page(restricted=True)
    )
    assert (layout.monitoring_tables(restricted=True) / "monitoring_flows.csv").exists()
    # the public page is the effect report's to write, from the tables it controls jointly with its own
    # (tests/test_end_to_end.py): a page controlled on its own beside the report could be combined with it
    assert not layout.monitoring_page(restricted=False).exists()
    assert not layout.monitoring_tables(restricted=False).exists()


def test_an_incomplete_targets_table_fails_its_check_and_the_page_says_why(
    stored: Path, tmp_path: Path
) -> None:
    from pipelines.configuration import PACKAGED

    table = pl.read_csv(PACKAGED / "monitoring_targets.csv", infer_schema=False)
    table.filter(pl.col("measure") != "delivery_days").write_csv(tmp_path / "monitoring_targets.csv")
    result = _materialise(
        stored,
        tmp_path,
        [
            "programme_monitoring",
            "monitoring_mix",
            "monitoring_endings",
            "monitoring_targets",
            "monitoring_delivery",
            "monitoring_status",
            "monitoring_html",
        ],
    )
    assert result.success  # the reports still run
    check = _checks(result)[names.MONITORING_TARGETS_COMPLETE]
    assert not check.passed and "delivery_days" in check.metadata["first_problems"].value
    page = Layout.at(stored).monitoring_page(restricted=True).read_text()
    assert "Not computed" in page and "measure &#x27;delivery_days&#x27; is missing" in page


def test_public_budget_values_the_priced_outcomes_with_their_joint_interval(
    stored: Path, tmp_path: Path
) -> None:
    from pipelines.configuration import PACKAGED

    prices = pl.read_csv(PACKAGED / "som_prices.csv", infer_schema=False)
    prices.filter(pl.col("outcome").is_in(["social_assistance", "employed"])).write_csv(
        tmp_path / "som_prices.csv"
    )
    result = _materialise(
        stored, tmp_path, ["public_budget", "som_effects", "som_sensitivity", "som_prices_used", "som_status"]
    )
    assert result.success
    checks = _checks(result)
    assert checks[names.SOM_PRICES_COMPLETE].passed and checks[names.SOM_OUTCOMES_VALUED].passed
    budget = pl.read_parquet(Layout.at(stored).asset_file(("public_budget",)))
    net = budget.filter(
        (pl.col("purse") == "all") & (pl.col("measure") == "net") & (pl.col("horizon_years") == 1)
    )
    # year 1: 1.2 months less kontanthjælp (12,326 kr. a month), 0.6 more months employed (6,262 kr. of tax)
    assert net["estimate"][0] == pytest.approx(1.2 * 12_326 + 0.6 * (2_950 + 3_312))
    assert net["ci_lower"][0] < net["estimate"][0] < net["ci_upper"][0]
    assert budget["persistence"][0].startswith("beyond the last estimated event month 24")
    effects = pl.read_parquet(Layout.at(stored).asset_file(("som_effects",)))
    assert set(effects.columns) >= {"outcome", "year", "effect", "unit"} and effects["year"].max() == 5


def test_a_missing_price_fails_the_check_with_the_reason_and_values_nothing(
    stored: Path, tmp_path: Path
) -> None:
    from pipelines.configuration import PACKAGED

    prices = pl.read_csv(PACKAGED / "som_prices.csv", infer_schema=False)
    prices.with_columns(
        pl.when(pl.col("item") == "kontanthjælp")
        .then(pl.lit(""))
        .otherwise(pl.col("dkk_per_unit"))
        .alias("dkk_per_unit")
    ).write_csv(tmp_path / "som_prices.csv")
    result = _materialise(
        stored, tmp_path, ["public_budget", "som_effects", "som_sensitivity", "som_prices_used", "som_status"]
    )
    assert result.success
    check = _checks(result)[names.SOM_PRICES_COMPLETE]
    assert (
        not check.passed and "the price (dkk_per_unit) is missing" in check.metadata["first_problems"].value
    )
    status = pl.read_parquet(Layout.at(stored).asset_file(("som_status",)))
    assert status["kind"].to_list()[0] == "prices" and "kontanthjælp" in status["message"][0]


def test_a_priced_outcome_without_estimates_is_named(stored: Path) -> None:
    result = _materialise(
        stored, None, ["public_budget", "som_effects", "som_sensitivity", "som_prices_used", "som_status"]
    )
    assert result.success
    check = _checks(result)[names.SOM_OUTCOMES_VALUED]
    assert not check.passed and "bed_days: no effect estimates" in check.metadata["not_valued"].value
    budget = pl.read_parquet(Layout.at(stored).asset_file(("public_budget",)))
    assert "emergency_contacts: no effect estimates" in budget["not_valued"][0]
