"""WorldConfig/PlantedEffects: the validated mapping round trip, the identity, the programme's capacity."""

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis import mockworld
from analysis.mockworld import PlantedEffects, WorldConfig

CONFIG = Path(__file__).parents[3] / "pipelines" / "config"


def _tables() -> dict:
    return {name: pl.read_csv(CONFIG / f"{name}.csv", infer_schema=False)
            for name in ("sites", "delmaalgrupper", "dream_codes", "hfaudd_levels")}


#: A value other than the default for every field (the round trip must carry each of them).
OTHER = {
    "persons": 12_345, "seed": 9, "first_year": 2020, "last_year": 2025, "reference_date": "2025-06-30",
    "crisis_share": 0.1, "take_up": 0.4, "take_up_minority_bonus": 0.1, "take_up_greenlandic_bonus": 0.2,
    "enrolment": "population", "site_capacity": 7, "site_capacity_overrides": {"aarhus": 3},
    "dip_logit": 2.0, "recovery_share": 0.9, "completion_rate": 0.7, "bad_row_share": 0.01,
    "effects": {"self_support_pp": -0.05, "employed_pp": 0.01, "emergency_rel": 0.2, "ramp_months": 6,
                "completer_multiplier": 1.0, "non_completer_multiplier": 0.5,
                "delmaalgruppe_multiplier": {"OVG": 2.0, "GRL": 0.5}},
}


def test_other_covers_every_field_so_the_round_trip_test_is_complete() -> None:
    assert set(OTHER) == {f.name for f in dataclasses.fields(WorldConfig)}
    assert set(OTHER["effects"]) == {f.name for f in dataclasses.fields(PlantedEffects)}


def test_mapping_round_trip_carries_every_field() -> None:
    config = WorldConfig.from_mapping(OTHER)
    default = WorldConfig()
    for f in dataclasses.fields(WorldConfig):
        assert getattr(config, f.name) != getattr(default, f.name), f.name
    for f in dataclasses.fields(PlantedEffects):
        assert getattr(config.effects, f.name) != getattr(default.effects, f.name), f.name
    assert config.reference_date == date(2025, 6, 30)
    assert config.to_mapping() == OTHER
    assert WorldConfig.from_mapping(config.to_mapping()) == config
    assert WorldConfig.from_mapping({}) == default
    assert WorldConfig.from_mapping(default.to_mapping()) == default


def test_partial_mappings_keep_defaults_and_accept_integers_for_numbers() -> None:
    config = WorldConfig.from_mapping({"persons": 2_000.0, "effects": {"employed_pp": 0}})
    assert config.persons == 2_000 and isinstance(config.persons, int)
    assert config.effects.employed_pp == 0.0
    assert config.effects.self_support_pp == PlantedEffects().self_support_pp
    assert config.effects == PlantedEffects(employed_pp=0.0)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"persns": 5}, r"unknown world setting\(s\) \['persns'\]; known: .*persons"),
        ({"effects": {"self_support": 0.1}}, r"unknown effects setting\(s\) \['self_support'\]"),
        ({"persons": "many"}, "world.persons must be an integer"),
        ({"persons": 10.5}, "world.persons must be an integer"),
        ({"persons": True}, "world.persons must be an integer"),
        ({"seed": -1}, "seed must be between 0"),
        ({"crisis_share": 1.5}, "crisis_share must be between"),
        ({"take_up": float("nan")}, "take_up must be between"),
        ({"reference_date": "30-09-2026"}, "reference_date must be a date as YYYY-MM-DD"),
        ({"enrolment": "lottery"}, "enrolment must be one of"),
        ({"site_capacity": -2}, "site_capacity must be between 0"),
        ({"site_capacity_overrides": {"aarhus": 1.5}},
         r"site_capacity_overrides\['aarhus'\] must be an integer"),
        ({"site_capacity_overrides": [1]}, "site_capacity_overrides must be a mapping"),
        ({"first_year": 2026, "last_year": 2020}, "first_year 2026 is after last_year 2020"),
        ({"effects": {"ramp_months": 0}}, "ramp_months must be between 1"),
        ({"effects": {"emergency_rel": -2.0}}, "emergency_rel must be between -1.0"),
        ({"effects": {"delmaalgruppe_multiplier": {"GRL": "high"}}}, "must be a number"),
        ({"effects": 0.3}, "effects settings must be a mapping"),
        ([("persons", 5)], "world settings must be a mapping"),
    ],
)
def test_bad_settings_raise_a_value_error_that_names_them(mapping, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorldConfig.from_mapping(mapping)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ValueError, match="recovery_share must be between 0.0 and 1.0"):
        WorldConfig(recovery_share=2.0)
    with pytest.raises(ValueError, match="self_support_pp must be between"):
        PlantedEffects(self_support_pp=3.0)


def test_identity_is_stable_and_covers_every_field() -> None:
    base = WorldConfig()
    assert base.identity() == WorldConfig().identity()
    assert base.identity() == WorldConfig.from_mapping(base.to_mapping()).identity()
    assert len(base.identity()) == 64 and int(base.identity(), 16) >= 0
    # insertion order of dict fields does not matter; 1 and 1.0 are the same setting
    a = WorldConfig.from_mapping({"effects": {"delmaalgruppe_multiplier": {"OVG": 1.0, "GRL": 2.0}}})
    b = WorldConfig.from_mapping({"effects": {"delmaalgruppe_multiplier": {"GRL": 2, "OVG": 1}}})
    assert a.identity() == b.identity()
    seen = {base.identity()}
    for name, value in OTHER.items():
        changed = WorldConfig.from_mapping({name: value})
        assert changed.identity() not in seen, name
        seen.add(changed.identity())
    for name, value in OTHER["effects"].items():
        changed = WorldConfig.from_mapping({"effects": {name: value}})
        assert changed.identity() not in seen, name
        seen.add(changed.identity())


def _participants(**settings) -> pl.DataFrame:
    return mockworld.build_world(WorldConfig(**settings), **_tables()).participants


def test_capacity_bounds_each_site_quarter_and_prorates_the_first() -> None:
    sites = _tables()["sites"]
    joined = dict(zip(sites["site"], sites["joined"], strict=True))
    capped = _participants(persons=200_000, seed=3, site_capacity=4, site_capacity_overrides={"aarhus": 2})
    free = _participants(persons=200_000, seed=3, enrolment="population")
    assert capped.height < free.height
    assert set(capped["PNR"]) <= set(free["PNR"])  # the capacity picks among those who take CTI up
    per_cell = capped.group_by("site", quarter=pl.col("start").dt.truncate("1q")).len()
    for site, quarter, count in per_cell.iter_rows():
        capacity = 2 if site == "aarhus" else 4
        join = date.fromisoformat(joined[site])
        before = (join.year * 12 + join.month) - (quarter.year * 12 + quarter.month)  # months closed in it
        assert count <= np.floor(capacity * (3 - min(max(before, 0), 3)) / 3 + 0.5), (site, quarter, count)
    full = per_cell.filter(pl.col("site") == "koebenhavn", pl.col("quarter") > date(2024, 1, 1))["len"]
    assert (full == 4).all()  # binding: this many persons take it up each quarter at 200,000 persons
    august = per_cell.filter(pl.col("site") == "aalborg", pl.col("quarter") == date(2024, 7, 1))["len"]
    assert august.to_list() == [3]  # joined 1 August: two of the quarter's three months, 4 * 2/3 rounds to 3


def test_capacity_is_independent_of_population_size_once_it_binds() -> None:
    small = _participants(persons=300_000, seed=1, site_capacity=2)
    large = _participants(persons=600_000, seed=1, site_capacity=2)
    assert small.height == large.height  # every site-quarter full in both
    population = _participants(persons=600_000, seed=1, enrolment="population")
    assert population.height > 10 * large.height


def test_a_capacity_nobody_reaches_is_the_population_behaviour() -> None:
    population = _participants(persons=20_000, seed=2, enrolment="population")
    assert _participants(persons=20_000, seed=2).equals(population)


def test_with_outcome_model_equals_building_the_world_again() -> None:
    base = WorldConfig(persons=5_000, seed=4)
    effects = PlantedEffects(delmaalgruppe_multiplier={"GRL": 3.0}, completer_multiplier=1.0)
    other = dataclasses.replace(base, dip_logit=2.5, recovery_share=0.9, effects=effects)
    world = mockworld.build_world(base, **_tables())
    rebound, rebuilt = mockworld.with_outcome_model(world, other), mockworld.build_world(other, **_tables())
    assert rebound.config == other
    assert rebound.participants.equals(rebuilt.participants)
    assert not rebound.participants["multiplier"].equals(world.participants["multiplier"])
    assert all(np.array_equal(rebound.person[k], rebuilt.person[k]) for k in rebuilt.person)
    with pytest.raises(ValueError, match=r"\['persons'\] differ"):
        mockworld.with_outcome_model(world, dataclasses.replace(base, persons=6_000))
