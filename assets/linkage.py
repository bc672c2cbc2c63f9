"""Linkage: pseudonym -> integer person id, courses -> register persons, person x month outcome panel."""


from datetime import date

import dagster as dg
import polars as pl

from analysis.linkage import cohort, panel, population
from analysis.estimate import effects
from analysis.ingest import pseudonym
from analysis.schema import REGISTERS
from expectations import linkage as suites
from expectations.adapter import check_results, check_specs
from pipelines.partitions import LINKAGE_GROUP
from pipelines.resources import CodeLists, ProjectPaths, PseudonymKey
from pipelines.storage import scan_register

PANEL_FIRST_MONTH = date(2019, 1, 1)
#: Registers the panel can do without (real extracts may lack them; analysis.linkage.panel fills zeros).
OPTIONAL_REGISTERS = ("stays",)


class LinkageConfig(dg.Config):
    """How much of the population enters the comparison pool (all of it by default)."""

    comparison_pool: int = 0  # 0 = every non-participant; otherwise a seeded sample of this size
    #: "auto": coarsened-exact pre-selection (analysis.linkage.population) once the population exceeds ``cem_above``
    #: persons, everyone below; "cem" / "all" force one or the other.
    candidate_pool: str = "auto"
    cem_above: int = 500_000
    per_participant: int = 20
    seed: int = 0
    last_month: str = ""  # last month of the panel (YYYY-MM-01); empty = the last month in the employment register


@dg.asset(
    group_name=LINKAGE_GROUP,
    check_specs=check_specs(dg.AssetKey("person_index"), suites.PERSON_INDEX),
    description="Dense integer person id (the register PNR) for every pseudonym, computed once.",
    kinds={"polars", "parquet"},
)
def person_index(cpr_key: pl.DataFrame, pseudonym_key: PseudonymKey):
    """Pseudonymise the register provider's CPR bridge so courses can be joined on integers from here on."""
    secret = pseudonym_key.secret()
    index = pseudonym.pseudonymise(
        cpr_key.rename({"CPR": "cpr_norm"}), key=secret, key_id=pseudonym.key_id(secret)
    ).select("pseudonym", pl.col("PNR").alias("person_id"))
    yield dg.Output(index, metadata={"persons": index.height})
    yield from suites.person_index_results(index)


@dg.multi_asset(
    group_name=LINKAGE_GROUP,
    outs={
        "linked_courses": dg.AssetOut(description="Courses with their integer person id."),
        "unlinked_participants": dg.AssetOut(
            description="Courses whose pseudonym is not in the population register (for stewards; never dropped silently)."
        ),
        "link_rate": dg.AssetOut(description="Participants found in the population register, by site and quarter."),
    },
    check_specs=[suites.LINK_RATE_SPEC],
)
def linked_courses(courses: pl.DataFrame, person_index: pl.DataFrame):
    """Join courses to the person index (many courses to one person)."""
    result = panel.link_participants(courses, person_index)
    yield dg.Output(result.linked, output_name="linked_courses", metadata={"courses": result.linked.height})
    yield dg.Output(result.unlinked, output_name="unlinked_participants", metadata={"unlinked": result.unlinked.height})
    yield dg.Output(result.link_rate, output_name="link_rate")
    yield suites.link_rate_check(result.link_rate)


@dg.asset(
    group_name=LINKAGE_GROUP,
    deps=list(REGISTERS),
    check_specs=check_specs(dg.AssetKey("outcome_panel"), suites.OUTCOME_PANEL),
    description="Person x month outcomes of participants and the comparison pool, built lazily from the registers.",
    kinds={"polars", "parquet"},
)
def outcome_panel(
    context: dg.AssetExecutionContext, config: LinkageConfig, linked_courses: pl.DataFrame, code_lists: CodeLists,
    paths: ProjectPaths,
):
    """Participants plus the comparison pool, every month from 2019 to the last register month."""
    registers = {name: scan_register(paths.root, name) for name in REGISTERS if name not in OPTIONAL_REGISTERS}
    for name in OPTIONAL_REGISTERS:
        try:
            registers[name] = scan_register(paths.root, name)
        except FileNotFoundError:
            context.log.warning(f"no {name!r} register: comparisons are matched on a hospital contact in month -1 "
                                "and the outcome history instead of a stay discharge (see README)")
    if config.candidate_pool not in ("auto", "cem", "all"):
        raise dg.Failure(f"candidate_pool must be 'auto', 'cem' or 'all', got {config.candidate_pool!r}")
    size = registers["population"].select(pl.col("PNR").n_unique()).collect(engine="streaming").item()
    participants = effects.participant_table(linked_courses)
    if config.candidate_pool == "cem" or (config.candidate_pool == "auto" and size > config.cem_above):
        # Population scale: participants, persons in the same transition (below) and coarsened-exact
        # candidates for the participants without a transition enter the monthly panel.
        unmarked = population.without_transition(registers, participants)
        persons = pl.concat([
            participants.select("person_id"),
            population.cem_pool(registers, unmarked, per_participant=config.per_participant, seed=config.seed).select("person_id"),
        ])
        pool = f"cem ({config.per_participant} per participant without a transition: {unmarked.height})"
    else:
        persons = cohort.comparison_pool(
            registers["population"], linked_courses, size=config.comparison_pool, seed=config.seed
        )
        pool = "everyone" if config.comparison_pool == 0 else f"random sample of {config.comparison_pool}"
    # Persons in the same transition (a stay discharge the month before a start) always enter the panel.
    transitions = population.transition_pool(registers, participants)
    persons = pl.concat([persons.select(pl.col("person_id").cast(pl.Int64)), transitions]).unique().sort("person_id")
    if pool != "everyone":
        pool += f" + {transitions.height} with a stay discharge the month before a start"
    frame = panel.outcome_panel(
        registers, persons=persons.lazy(), first_month=PANEL_FIRST_MONTH,
        last_month=date.fromisoformat(config.last_month) if config.last_month else _last_register_month(registers),
        dream_codes=code_lists.table("dream_codes"), hfaudd_levels=code_lists.table("hfaudd_levels"),
    ).collect(engine="streaming")
    yield dg.Output(frame, metadata={"rows": frame.height, "persons": persons.height, "pool": pool, "population": size,
                                     "stays_register": "stays" in registers,
                                     "participants": linked_courses["person_id"].n_unique()})
    yield from check_results(frame, suites.OUTCOME_PANEL)


def _last_register_month(registers: dict[str, pl.LazyFrame]) -> date:
    return registers["employment"].select(pl.col("MAANED").max()).collect(engine="streaming").item()


assets = [person_index, linked_courses, outcome_panel]
