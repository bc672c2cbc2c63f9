"""The outcome panel straight from the mock world equals the panel the linkage builds from its registers."""

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis import mockworld
from analysis.estimate.matching import person_attributes
from analysis.linkage import panel as linkage
from analysis.linkage.population import transition_pool
from analysis.mockworld import panel as world_panel
from analysis.mockworld import registers
from analysis.schema import OUTCOME_PANEL, REGISTERS

CONFIG = Path(__file__).parents[3] / "pipelines" / "config"


def _table(name: str) -> pl.DataFrame:
    return pl.read_csv(CONFIG / f"{name}.csv", infer_schema=False)


def _world(**settings) -> mockworld.World:
    return mockworld.build_world(mockworld.WorldConfig(**settings), sites=_table("sites"),
                                 delmaalgrupper=_table("delmaalgrupper"), dream_codes=_table("dream_codes"),
                                 hfaudd_levels=_table("hfaudd_levels"))


@pytest.fixture(scope="module")
def world() -> mockworld.World:
    return _world(persons=8_000, seed=6, crisis_share=0.12)


@pytest.fixture(scope="module")
def persons(world: mockworld.World) -> np.ndarray:
    """Participants, some persons in their transition months, and a random sample of everyone else."""
    rng = np.random.default_rng(1)
    pool = world_panel.transition_pool(world, world.participants["start"].dt.truncate("1mo"))
    return np.unique(np.concatenate([world.participants["PNR"].to_numpy(), pool[::3],
                                     rng.choice(world.config.persons, 400, replace=False)]))


def _registers(world: mockworld.World) -> dict[str, pl.LazyFrame]:
    years = range(world.config.first_year, world.config.last_year + 1)
    return {name: pl.concat([mockworld.register_year(world, name, y) for y in years]).lazy()
            for name in REGISTERS}


def test_register_draws_give_the_linkage_panel_cell_by_cell(world, persons, monkeypatch) -> None:
    monkeypatch.setattr(registers, "CHUNK", 2_500)  # several person chunks, each drawn as the registers do
    months = {"first_month": date(2020, 2, 1), "last_month": date(2026, 9, 1)}
    linked = linkage.outcome_panel(_registers(world), persons=pl.LazyFrame({"person_id": persons}), **months,
                                   dream_codes=_table("dream_codes"),
                                   hfaudd_levels=_table("hfaudd_levels")).collect()
    direct = world_panel.outcome_panel(world, persons[::-1], **months, hfaudd_levels=_table("hfaudd_levels"),
                                       draws="registers")
    assert direct.schema == OUTCOME_PANEL
    assert direct.equals(linked)
    # every column carries information (a column of zeros would hide a broken definition)
    participants = direct.filter(pl.col("person_id").is_in(world.participants["PNR"].implode()))
    assert all(participants[c].sum() > 0 for c in OUTCOME_PANEL.names() if c not in ("person_id", "month"))


def test_fresh_draws_are_reproducible_and_touched_by_the_effect_only_after_the_start(world, persons) -> None:
    kw = {"first_month": date(2021, 1, 1), "last_month": date(2026, 9, 1),
          "hfaudd_levels": _table("hfaudd_levels")}
    first = world_panel.outcome_panel(world, persons, **kw, stream=3)
    assert first.equals(world_panel.outcome_panel(world, persons, **kw, stream=3))
    assert not first.equals(world_panel.outcome_panel(world, persons, **kw, stream=4))
    none = mockworld.with_outcome_model(world, mockworld.WorldConfig(
        persons=8_000, seed=6, crisis_share=0.12, effects=mockworld.PlantedEffects(0.0, 0.0, 0.0)))
    placebo = world_panel.outcome_panel(none, persons, **kw, stream=3)
    starts = world.participants.select(person_id="PNR", start=pl.col("start").dt.truncate("1mo"))
    before = pl.col("start").is_null() | (pl.col("month") <= pl.col("start"))
    untouched = [f.join(starts, on="person_id", how="left", validate="m:1").filter(before).drop("start")
                 for f in (first, placebo)]
    assert untouched[0].equals(untouched[1])
    assert not first.equals(placebo)


def test_fresh_draws_follow_the_registers_distribution(world) -> None:
    """Same model, other random numbers: means agree within a few Monte Carlo standard errors."""
    persons = np.arange(world.config.persons)
    kw = {"first_month": date(2023, 1, 1), "last_month": date(2024, 12, 1),
          "hfaudd_levels": _table("hfaudd_levels")}
    fresh = world_panel.outcome_panel(world, persons, **kw)
    same = world_panel.outcome_panel(world, persons, **kw, draws="registers")
    for column in ("self_support", "employed", "social_assistance", "emergency_contacts", "enrolled",
                   "earnings"):
        a, b = fresh[column].cast(pl.Float64), same[column].cast(pl.Float64)
        # person-level means: cells of one person are correlated, persons are independent
        pa = fresh.group_by("person_id").agg(pl.col(column).cast(pl.Float64).mean())[column]
        se = float(pa.std()) * np.sqrt(2 / pa.len())
        assert abs(a.mean() - b.mean()) < 5 * se, column
    for column in ("edu_level", "shelter_exits", "psych_ward_exits", "prison_exits"):  # no randomness in them
        assert fresh[column].equals(same[column]), column


def test_pool_and_attributes_equal_the_registers_versions(world) -> None:
    regs = _registers(world)
    participants = world.participants.select(person_id="PNR", start_month=pl.col("start").dt.truncate("1mo"))
    expected = transition_pool(regs, participants)["person_id"].to_numpy()
    assert np.array_equal(world_panel.transition_pool(world, participants["start_month"]), expected)
    assert expected.size > participants.height  # others in the same transition, not only participants
    ids = np.concatenate([expected, np.arange(0, world.config.persons, 7)])
    want = person_attributes(regs["population"], pl.DataFrame({"person_id": ids}))
    assert world_panel.person_attributes(world, ids).equals(want)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first_month": date(2018, 1, 1)}, "inside the registers' span|registers' span"),
        ({"last_month": date(2026, 10, 1)}, "registers' span"),
        ({"first_month": date(2022, 1, 15)}, "first days of months"),
        ({"draws": "both"}, "draws must be one of"),
        ({"stream": -1}, "stream must be a non-negative integer"),
    ],
)
def test_bad_arguments_are_refused(world, kwargs, message: str) -> None:
    args = {"first_month": date(2021, 1, 1), "last_month": date(2026, 9, 1),
            "hfaudd_levels": _table("hfaudd_levels")}
    with pytest.raises(ValueError, match=message):
        world_panel.outcome_panel(world, np.arange(10), **(args | kwargs))
    with pytest.raises(ValueError, match="PNR values"):
        world_panel.outcome_panel(world, np.array([world.config.persons]), **args)


def test_effects_truth_is_the_truths_effects_section() -> None:
    world = _world(persons=4_000, seed=2)
    assert mockworld.effects_truth(world) == mockworld.truth(world)["effects"]
    some = world.participants["PNR"].to_numpy()[::2]
    subset = mockworld.effects_truth(world, persons=np.concatenate([some, [-5]]))
    everyone = mockworld.effects_truth(world)["self_support"]["persons_months_12_24"]
    assert subset["self_support"]["persons_months_12_24"] < everyone
