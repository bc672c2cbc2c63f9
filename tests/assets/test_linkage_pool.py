"""The outcome panel at population scale: participants, persons in the same transition and CEM candidates."""

import shutil
from pathlib import Path

import dagster as dg
import polars as pl
from support import settings_for

from analysis.schema import REGISTERS
from pipelines.layout import Layout

PERSONS, SEED = 4000, 7


def _registers(layout: Layout, *, without: tuple[str, ...] = ()) -> dict[str, pl.LazyFrame | None]:
    return {name: (pl.scan_parquet(layout.register_files(name)) if name not in without else None)
            for name in REGISTERS}


def _outputs(config, linked, layout: Layout, **registers) -> dict:
    from assets.linkage import outcome_panel
    from pipelines.resources import CodeLists

    context = dg.build_asset_context()
    events = list(outcome_panel(context, config=config, linked_courses=linked, code_lists=CodeLists(),
                                **(registers or _registers(layout))))
    return {e.output_name: e for e in events if isinstance(e, dg.Output)}


def _linked(settings) -> pl.DataFrame:
    from pipelines.definitions import register_source

    part = register_source(settings).world().participants
    return part.select(person_id="PNR", start_date="start", site="site", delmaalgruppe="delmaalgruppe",
                       completed="completed", end_date="end")


def test_cem_pool_keeps_every_participant_and_far_fewer_others(tmp_path: Path) -> None:
    from assets.linkage import LinkageConfig
    from pipelines import world

    settings = settings_for(tmp_path / "data", persons=PERSONS, seed=SEED)
    world.generate(settings, persons=PERSONS, seed=SEED)
    layout, linked = settings.layout, _linked(settings)
    everyone = _outputs(LinkageConfig(candidate_pool="all"), linked, layout)["result"]
    cem = _outputs(LinkageConfig(candidate_pool="cem", per_participant=5), linked, layout)["result"]
    assert cem.metadata["pool"].value.startswith("cem")
    ids_all, ids_cem = set(everyone.value["person_id"]), set(cem.value["person_id"])
    assert set(linked["person_id"]) <= ids_cem < ids_all
    # everyone discharged from a stay the month before a start is in; CEM adds <= 5 per unmarked participant
    from analysis.estimate.effects import participant_table
    from analysis.linkage.population import transition_pool, without_transition

    registers = _registers(layout)
    participants = participant_table(linked)
    transitions = set(transition_pool(registers, participants)["person_id"])
    assert transitions and transitions <= ids_cem
    others = ids_cem - transitions - set(linked["person_id"])
    assert len(others) <= 5 * without_transition(registers, participants).height
    # The same person-months are computed the same way whichever pool they are in.
    shared = everyone.value.join(pl.DataFrame({"person_id": sorted(ids_cem)}), on="person_id", how="semi")
    assert shared.equals(cem.value)
    auto = _outputs(LinkageConfig(), linked, layout)["result"]  # 4,000 persons: below the threshold
    assert auto.metadata["pool"].value == "everyone"
    above = _outputs(LinkageConfig(cem_above=PERSONS - 1), linked, layout)["result"]
    assert above.metadata["pool"].value.startswith("cem")
    assert transitions | set(linked["person_id"]) <= set(above.value["person_id"]) < ids_all


def test_the_demo_world_takes_the_population_scale_path() -> None:
    """`make run`'s world is large enough for the transition + CEM pool (production's design)."""
    from analysis.linkage.population import CEM_ABOVE
    from assets.linkage import LinkageConfig
    from pipelines.settings import DEFAULT_PERSONS, FULL_POPULATION

    assert LinkageConfig().candidate_pool == "auto" and LinkageConfig().cem_above == CEM_ABOVE
    assert CEM_ABOVE < DEFAULT_PERSONS < FULL_POPULATION
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert f"PERSONS ?= {DEFAULT_PERSONS}" in makefile


def test_extracts_without_a_stays_register_still_build_the_panel(tmp_path: Path) -> None:
    from assets.linkage import LinkageConfig
    from pipelines import world
    from pipelines.storage import ParquetIOManager

    settings = settings_for(tmp_path / "data", persons=PERSONS, seed=SEED)
    world.generate(settings, persons=PERSONS, seed=SEED)
    shutil.rmtree(settings.layout.register_dir("stays"))
    # the IO manager hands an optional register without files to the asset as None
    from assets.registers import register_assets

    stays = next(a for a in register_assets if a.key == dg.AssetKey("stays"))
    lazy = dg.DagsterType(type_check_fn=lambda _context, _value: True, name="lazy", typing_type=pl.LazyFrame)
    upstream = dg.build_output_context(definition_metadata=stays.metadata_by_key[stays.key])
    context = dg.build_input_context(asset_key=dg.AssetKey("stays"), dagster_type=lazy,
                                     upstream_output=upstream)
    assert ParquetIOManager(base_dir=str(settings.layout.root)).load_input(context) is None
    result = _outputs(LinkageConfig(candidate_pool="cem", per_participant=5), _linked(settings),
                      settings.layout, **_registers(settings.layout, without=("stays",)))["result"]
    assert result.metadata["stays_register"].value is False
