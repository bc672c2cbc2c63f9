"""Who enters the outcome panel: every participant plus the comparison pool from the population."""

from __future__ import annotations

import polars as pl


def comparison_pool(population: pl.LazyFrame, participants: pl.DataFrame, /, *, size: int = 0,
                    seed: int = 0) -> pl.DataFrame:
    """Return ``person_id`` of all participants plus the comparison pool.

    Parameters
    ----------
    population
        Population register (``PNR`` column), any number of yearly snapshots.
    participants
        Frame with ``person_id`` of linked participants.
    size
        Number of non-participants to keep; 0 keeps every non-participant. A positive size draws a seeded
        simple random sample, so the pool (and every estimate) is reproducible.
    seed
        Seed for the sample.
    """
    if size < 0:
        raise ValueError(f"comparison pool size must be >= 0 (0 = everyone), got {size}")
    treated = participants.select(pl.col("person_id").cast(pl.Int64)).unique()
    others = (
        population.select(pl.col("PNR").cast(pl.Int64).alias("person_id"))
        .unique()
        .join(treated.lazy(), on="person_id", how="anti")
        .sort("person_id")
        .collect(engine="streaming")
    )
    if 0 < size < others.height:
        others = others.sample(n=size, seed=seed).sort("person_id")
    return pl.concat([treated, others]).sort("person_id")
