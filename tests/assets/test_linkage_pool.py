"""At population scale the outcome panel holds participants, persons in the same transition and CEM candidates only."""

from pathlib import Path

import dagster as dg
import polars as pl


def _outputs(config, linked, data: Path) -> dict:
    from assets.linkage import outcome_panel
    from pipelines.resources import CodeLists, ProjectPaths

    context = dg.build_asset_context()
    events = list(outcome_panel(context, config=config, linked_courses=linked, code_lists=CodeLists(),
                                paths=ProjectPaths(data_dir=str(data))))
    return {e.output_name: e for e in events if isinstance(e, dg.Output)}


def test_cem_pool_keeps_every_participant_and_far_fewer_others(cti_env: Path) -> None:
    from assets.linkage import LinkageConfig
    from pipelines import world
    from pipelines.resources import RegisterSource

    world.generate(cti_env, persons=4000, seed=7)
    part = RegisterSource(kind="mock", persons=4000, seed=7).world().participants
    linked = part.select(person_id="PNR", start_date="start", site="site", delmaalgruppe="delmaalgruppe",
                         completed="completed", end_date="end")
    everyone = _outputs(LinkageConfig(candidate_pool="all"), linked, cti_env)["result"]
    cem = _outputs(LinkageConfig(candidate_pool="cem", per_participant=5), linked, cti_env)["result"]
    assert cem.metadata["pool"].value.startswith("cem")
    ids_all, ids_cem = set(everyone.value["person_id"]), set(cem.value["person_id"])
    assert set(linked["person_id"]) <= ids_cem < ids_all
    # everyone discharged from a stay the month before a start is in; CEM adds <= 5 per unmarked participant
    from analysis.estimate.effects import participant_table
    from analysis.linkage.population import transition_pool, without_transition
    from analysis.schema import REGISTERS
    from pipelines.storage import scan_register

    registers = {name: scan_register(cti_env, name) for name in REGISTERS}
    participants = participant_table(linked)
    transitions = set(transition_pool(registers, participants)["person_id"])
    assert transitions and transitions <= ids_cem
    others = ids_cem - transitions - set(linked["person_id"])
    assert len(others) <= 5 * without_transition(registers, participants).height
    # The same person-months are computed the same way whichever pool they are in.
    shared = everyone.value.join(pl.DataFrame({"person_id": sorted(ids_cem)}), on="person_id", how="semi")
    assert shared.equals(cem.value)
    auto = _outputs(LinkageConfig(), linked, cti_env)["result"]  # 4,000 persons: below the threshold
    assert auto.metadata["pool"].value == "everyone"


def test_extracts_without_a_stays_register_still_build_the_panel(cti_env: Path) -> None:
    import shutil

    from assets.linkage import LinkageConfig
    from pipelines import world
    from pipelines.resources import RegisterSource
    from pipelines.storage import register_dir

    world.generate(cti_env, persons=4000, seed=7)
    part = RegisterSource(kind="mock", persons=4000, seed=7).world().participants
    linked = part.select(person_id="PNR", start_date="start", site="site", delmaalgruppe="delmaalgruppe",
                         completed="completed", end_date="end")
    shutil.rmtree(register_dir(cti_env, "stays"))
    result = _outputs(LinkageConfig(candidate_pool="cem", per_participant=5), linked, cti_env)["result"]
    assert result.metadata["stays_register"].value is False
    assert result.value.select("shelter_exits", "psych_ward_exits", "prison_exits").sum().row(0) == (0, 0, 0)
    assert set(linked["person_id"]) <= set(result.value["person_id"])
