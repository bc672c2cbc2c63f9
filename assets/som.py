"""Public budget (SØM): what the estimated effect paths are worth to municipality, region and state."""

import dagster as dg
import polars as pl

from analysis.estimate import som
from analysis.publish.som_report import som_tables
from analysis.schema import OUTCOMES
from expectations import som as checks
from pipelines.partitions import SOM_GROUP
from pipelines.resources import CodeLists
from pipelines.storage import OPTIONAL_KEY

_OUTS = {
    "public_budget": "Change in public expenditure and income per participant, by horizon and purse, with "
    "95 % "
    "intervals from the joint covariance of the effects; the options (discount rate, persistence, n) as "
    "columns.",
    "som_effects": "The effect paths per outcome and year in SØM's form (outcome, year, effect, unit, "
    "interval).",
    "som_sensitivity": "The longest horizon's net result under other persistence assumptions.",
    "som_prices_used": "The price table the valuation used (ILLUSTRATIVE unless SBST's SØM prices replace "
    "it).",
    "som_status": "Why the valuation was not computed or is partial; empty when every priced outcome is "
    "valued.",
}
STATUS = pl.Schema({"kind": pl.String, "message": pl.String})


class SomConfig(dg.Config):
    """The valuation's assumptions (all reported with the figures)."""

    discount_rate: float = (
        0.035  # Finansministeriet's samfundsøkonomiske diskonteringsrente, years 0-35 (2021)
    )
    horizons: list[int] = [1, 2, 5]
    #: Beyond the observed window: the share of the effect kept for each further year (0 = it stops, 1 = it
    #: persists); the mean of the last ``base_months`` estimated months is carried forward.
    retention: float = 0.5
    base_months: int = 12


def _empty(messages: list[str], kind: str):
    for name in list(_OUTS)[:-1]:
        yield dg.Output(pl.DataFrame(), output_name=name)
    yield dg.Output(
        pl.DataFrame({"kind": [kind] * len(messages), "message": messages}, schema=STATUS),
        output_name="som_status",
    )


@dg.multi_asset(
    group_name=SOM_GROUP,
    # OPTIONAL: the effect report reads these when they exist and says "not available" when they do not
    outs={name: dg.AssetOut(description=text, metadata={OPTIONAL_KEY: True}) for name, text in _OUTS.items()},
    check_specs=checks.SPECS,
)
def public_budget(
    context: dg.AssetExecutionContext,
    config: SomConfig,
    code_lists: CodeLists,
    event_study: pl.DataFrame | None,
    effect_influence: pl.LazyFrame | None,
):
    """Value every priced outcome's effect path; a bad price table or no estimates is said, not a crash."""
    table = code_lists.table("som_prices")
    statuses = (
        ", ".join(f"{s}: {n}" for s, n in sorted(table["status"].value_counts().iter_rows()))
        if ("status" in table.columns)
        else ""
    )
    problems = som.price_problems(table, outcomes=OUTCOMES)
    if problems:
        context.log.error("som_prices.csv is not usable: " + "; ".join(problems))
        yield from _empty(problems, "prices")
        yield checks.prices_complete(problems, rows=table.height, statuses=statuses)
        yield checks.outcomes_valued({"all": "not computed: the price table is incomplete"})
        return
    prices = som.PriceTable.from_table(table, outcomes=OUTCOMES)
    have = set()
    if event_study is not None and effect_influence is not None:
        influenced = set(effect_influence.select("outcome").unique().collect()["outcome"].to_list())
        have = set(event_study["outcome"].unique().to_list()) & influenced
    not_valued = {
        o: "no effect estimates or influence functions in this run (rerun its outcome partition)"
        for o in prices.outcomes
        if o not in have
    }
    chosen = [o for o in prices.outcomes if o in have]
    yield checks.prices_complete([], rows=table.height, statuses=statuses)
    yield checks.outcomes_valued(not_valued)
    if not chosen:
        yield from _empty(["no priced outcome has effect estimates in this run"], "estimates")
        return
    influence = effect_influence.filter(pl.col("outcome").is_in(chosen)).collect()
    paths = som.EffectPaths.from_influence(event_study, influence, outcomes=chosen)
    persistence = som.Persistence(retention=config.retention, base_months=config.base_months)
    try:
        result = som.public_budget(
            paths,
            prices,
            horizons=config.horizons,
            discount_rate=config.discount_rate,
            persistence=persistence,
            outcomes=chosen,
        )
        sensitivity = som.persistence_sensitivity(
            paths,
            prices,
            horizon=max(config.horizons),
            discount_rate=config.discount_rate,
            base_months=config.base_months,
            outcomes=chosen,
        )
    except ValueError as error:
        yield from _empty([str(error)], "valuation")
        return
    tables = som_tables(result, prices, sensitivity=sensitivity, not_valued=not_valued)
    net = result.break_even.sort("horizon_years")
    meta = {
        f"net_{r['horizon_years']}y_kr": f"{r['estimate']:,.0f} [{r['ci_lower']:,.0f}, {r['ci_upper']:,.0f}]"
        for r in net.iter_rows(named=True)
    }
    yield dg.Output(
        tables.budget,
        output_name="public_budget",
        metadata={**meta, "n_treated": result.n_treated, "persistence": result.persistence_text},
    )
    yield dg.Output(tables.effects, output_name="som_effects", metadata={"rows": tables.effects.height})
    yield dg.Output(tables.sensitivity, output_name="som_sensitivity")
    yield dg.Output(
        tables.prices, output_name="som_prices_used", metadata={"price_years": str(prices.years())}
    )
    messages = [f"{o}: {why}" for o, why in sorted(not_valued.items())]
    yield dg.Output(
        pl.DataFrame({"kind": ["partial"] * len(messages), "message": messages}, schema=STATUS),
        output_name="som_status",
    )


assets = [public_budget]
