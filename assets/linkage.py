"""Linkage: pseudonym -> integer person id, courses -> register persons, person x month outcome panel."""


from datetime import date

import dagster as dg
import polars as pl

from analysis.estimate import effects
from analysis.ingest import pseudonym
from analysis.linkage import panel
from analysis.linkage import population as pools
from expectations import linkage as suites
from expectations.adapter import check_results, check_specs
from pipelines import keys
from pipelines.partitions import LINKAGE_GROUP
from pipelines.resources import CodeLists, LayoutResource, PseudonymKey

PANEL_FIRST_MONTH = date(2019, 1, 1)


class LinkageConfig(dg.Config):
    """How much of the population enters the comparison pool (``analysis.linkage.population.panel_pool``)."""

    comparison_pool: int = 0  # 0 = every non-participant; otherwise a seeded sample of this size
    #: "auto": coarsened-exact pre-selection (analysis.linkage.population) once the population exceeds
    #: ``cem_above`` persons, everyone below; "cem" / "all" force one or the other.
    candidate_pool: str = "auto"
    cem_above: int = pools.CEM_ABOVE
    per_participant: int = 20
    seed: int = 0
    # last month of the panel (YYYY-MM-01); empty = the last month in the employment register
    last_month: str = ""


@dg.asset(
    group_name=LINKAGE_GROUP,
    check_specs=check_specs(dg.AssetKey("person_index"), suites.PERSON_INDEX),
    description="Dense integer person id (the register PNR) for every pseudonym, computed once.",
    kinds={"polars", "parquet"},
)
def person_index(cpr_key: pl.DataFrame, pseudonym_key: PseudonymKey, layout: LayoutResource):
    """Pseudonymise the register provider's CPR bridge so courses can be joined on integers from here on.

    The index carries the key id; a key other than the data directory's stops it before anything is written.
    """
    try:
        secret, key_id = pseudonym_key.for_data(layout.value)
    except keys.KeyRefused as error:
        raise dg.Failure(description=str(error)) from None
    index = pseudonym.pseudonymise(cpr_key.rename({"CPR": "cpr_norm"}), key=secret, key_id=key_id).select(
        "pseudonym", pl.col("PNR").alias("person_id"), "key_id")
    keys.record(layout.value, key_id)
    yield dg.Output(index, metadata={"persons": index.height})
    yield from suites.person_index_results(index)


@dg.multi_asset(
    group_name=LINKAGE_GROUP,
    outs={
        "linked_courses": dg.AssetOut(description="Courses with their integer person id."),
        "unlinked_participants": dg.AssetOut(
            description="Courses whose pseudonym is not in the population register (for stewards; never "
                        "dropped silently)."
        ),
        "link_rate": dg.AssetOut(description="Participants found in the population register, by site and "
                                             "quarter."),
    },
    check_specs=[suites.LINK_RATE_SPEC],
)
def linked_courses(courses: pl.DataFrame, person_index: pl.DataFrame):
    """Join courses to the person index (many courses to one person)."""
    try:
        result = panel.link_participants(courses, person_index)
    except ValueError as error:  # courses and index pseudonymised with different keys: nothing would link
        raise dg.Failure(description=str(error)) from None
    yield dg.Output(result.linked, output_name="linked_courses", metadata={"courses": result.linked.height})
    yield dg.Output(result.unlinked, output_name="unlinked_participants",
                    metadata={"unlinked": result.unlinked.height})
    yield dg.Output(result.link_rate, output_name="link_rate")
    yield suites.link_rate_check(result.link_rate)


@dg.asset(
    group_name=LINKAGE_GROUP,
    check_specs=check_specs(dg.AssetKey("outcome_panel"), suites.OUTCOME_PANEL),
    description="Person x month outcomes of participants and the comparison pool, "
                "built lazily from the registers.",
    kinds={"polars", "parquet"},
)
def outcome_panel(
    context: dg.AssetExecutionContext, config: LinkageConfig, linked_courses: pl.DataFrame,
    code_lists: CodeLists, population: pl.LazyFrame, benefits: pl.LazyFrame, employment: pl.LazyFrame,
    health: pl.LazyFrame, education: pl.LazyFrame, enrolment: pl.LazyFrame, stays: pl.LazyFrame | None,
):
    """Participants plus the comparison pool, every month from 2019 to the last register month."""
    registers = {"population": population, "benefits": benefits, "employment": employment, "health": health,
                 "education": education, "enrolment": enrolment}
    if stays is not None:
        registers["stays"] = stays
    else:
        context.log.warning("no 'stays' register: comparisons are matched on a hospital contact in month -1 "
                            "and the outcome history instead of a stay discharge (see README)")
    try:
        pool = pools.panel_pool(registers, effects.participant_table(linked_courses),
                                kind=config.candidate_pool, cem_above=config.cem_above,
                                per_participant=config.per_participant,
                                comparison_pool=config.comparison_pool, seed=config.seed)
    except ValueError as error:
        raise dg.Failure(str(error)) from None
    frame = panel.outcome_panel(
        registers, persons=pool.persons.lazy(), first_month=PANEL_FIRST_MONTH,
        last_month=(date.fromisoformat(config.last_month) if config.last_month
                    else _last_register_month(registers)),
        dream_codes=code_lists.table("dream_codes"), hfaudd_levels=code_lists.table("hfaudd_levels"),
    ).collect(engine="streaming")
    yield dg.Output(frame, metadata={"rows": frame.height, "persons": pool.persons.height,
                                     "pool": pool.description, "population": pool.population,
                                     "stays_register": pool.stays_register,
                                     "participants": linked_courses["person_id"].n_unique()})
    yield from check_results(frame, suites.OUTCOME_PANEL)


def _last_register_month(registers: dict[str, pl.LazyFrame]) -> date:
    return registers["employment"].select(pl.col("MAANED").max()).collect(engine="streaming").item()


assets = [person_index, linked_courses, outcome_panel]
