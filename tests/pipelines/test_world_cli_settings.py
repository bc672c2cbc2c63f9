"""Every mock-world setting reaches the generated world, from a file or ``--set``, and is its identity."""

import json
from pathlib import Path

import polars as pl
import pytest
import typer
from support import settings_for

from analysis.mockworld import WorldConfig
from pipelines import world
from pipelines.cli import _world_settings
from pipelines.definitions import register_source


def test_settings_come_from_a_json_or_toml_file_with_set_on_top(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text(json.dumps({"site_capacity": 4, "effects": {"employed_pp": 0.01}}))
    (tmp_path / "w.toml").write_text('enrolment = "population"\n[effects]\nself_support_pp = 0.0\n')
    got = _world_settings(tmp_path / "w.json", ["effects.employed_pp=0", "dip_logit=2.4",
                                                "enrolment=population", "site_capacity_overrides.Aarhus=3"])
    assert got == {"site_capacity": 4, "effects": {"employed_pp": 0}, "dip_logit": 2.4,
                   "enrolment": "population", "site_capacity_overrides": {"Aarhus": 3}}
    assert (_world_settings(tmp_path / "w.toml", [])
            == {"enrolment": "population", "effects": {"self_support_pp": 0.0}})
    assert WorldConfig.from_mapping(got).effects.employed_pp == 0.0  # every value is a WorldConfig setting


@pytest.mark.parametrize(("config", "sets", "says"), [
    (None, ["site_capacity"], "is not name=value"),
    (None, ["dip_logit=1", "dip_logit.x=2"], "is not a group of settings"),
    ("broken.json", [], "cannot read"),
    ("list.json", [], "must hold a table"),
])
def test_unreadable_settings_are_refused_with_the_reason(tmp_path: Path, config, sets, says) -> None:
    (tmp_path / "broken.json").write_text("{nope")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(typer.BadParameter, match=says):
        _world_settings(tmp_path / config if config else None, sets)


def test_the_world_is_built_with_its_settings_and_its_identity_covers_all_of_them(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", persons=1_000, seed=4)
    chosen = {"site_capacity": 2, "effects": {"self_support_pp": 0.0}}
    world.generate(settings, persons=1_000, seed=4, world=chosen)
    made = json.loads(settings.layout.manifest.read_text())
    config = WorldConfig.from_mapping({**chosen, "persons": 1_000, "seed": 4})
    assert made["identity"] == config.identity() and made["config"] == config.to_mapping()
    again = settings.with_generated_world()  # how the Definitions, the UI and the workers see the world
    assert again.source.config() == config
    state = register_source(again).world()
    assert state.config == config
    per_quarter = state.participants.group_by("site", pl.col("start").dt.year().alias("y"),
                                              pl.col("start").dt.quarter().alias("q")).len()
    assert per_quarter.height and per_quarter["len"].max() <= 2  # the capacity reached the generator
    assert "already present" in world.generate(settings, persons=1_000, seed=4, world=chosen)
    with pytest.raises(ValueError, match="unknown world setting"):
        world.generate(settings, persons=1_000, seed=4, world={"site_capasity": 3})
    assert json.loads(settings.layout.manifest.read_text())["identity"] == config.identity()  # untouched
    other = world.generate(settings, persons=1_000, seed=4, world={"site_capacity": 3})  # one setting differs
    assert "already present" not in other and "site_capacity=3" in other
    assert json.loads(settings.layout.manifest.read_text())["config"]["effects"]["self_support_pp"] > 0
