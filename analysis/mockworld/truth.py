"""The planted truth: realised effects on the treated and profiles, for the report and the tests."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date

import numpy as np
import polars as pl

from analysis.mockworld.inbox import _submissions_with_truth
from analysis.mockworld.model import emergency_rates, labour_probabilities, psych_rates
from analysis.mockworld.world import World, _month_index

# --- truth ------------------------------------------------------------------------------------------------

#: Event-time windows (months from the start/crisis month) of the selection and dip summaries.
_WINDOWS = {"pre_36_13": (-36, -13), "dip_6_1": (-6, -1), "post_0_5": (0, 5), "post_12_24": (12, 24)}


def _window_means(values: np.ndarray, e: np.ndarray, observed: np.ndarray) -> dict[str, float | None]:
    out = {}
    for name, (lo, hi) in _WINDOWS.items():
        mask = observed & (e >= lo) & (e <= hi)
        out[name] = float(values[mask].mean()) if mask.any() else None
    return out


def _profile(world: World, idx: np.ndarray, anchor: np.ndarray, months: np.ndarray) -> dict:
    """Summarise expected untreated outcomes of persons ``idx`` around ``anchor`` (a month per person)."""
    lab = labour_probabilities(world, idx, months)
    rates = emergency_rates(world, idx, months)
    psych = psych_rates(world, idx, months)
    e = months[None, :] - anchor[:, None]
    observed = np.ones_like(e, dtype=bool)
    p = world.person
    return {
        "persons": len(idx),
        "self_support": _window_means(lab["ss0"], e, observed),
        "employed": _window_means(lab["emp0"], e, observed),
        "emergency_contacts": _window_means(rates["em0"], e, observed),
        "psych_admissions": _window_means(psych, e, observed),
        "greenlandic_share": float((p["opr_land"][idx] == "GRL").mean()) if len(idx) else None,
        "non_danish_share": float((p["opr_land"][idx] != "DNK").mean()) if len(idx) else None,
        "mean_edu_rank": float(p["edu_rank"][idx].mean()) if len(idx) else None,
        "mean_vulnerability_z": float(p["z"][idx].mean()) if len(idx) else None,
    }


def effects_truth(world: World, /, *, persons: np.ndarray | None = None) -> dict[str, dict]:
    """Return the ``effects`` section of :func:`truth`: realised effects on the treated by outcome.

    ``persons`` (PNR values) restricts it to some participants, e.g. those an estimator kept (the ATT on the
    matched); others in ``persons`` are ignored. Cheap (participants only), unlike the whole :func:`truth`,
    which also describes every inbox file.
    """
    cfg = world.config
    part = world.participants
    if persons is not None:
        part = part.filter(pl.col("PNR").is_in(pl.Series(np.asarray(persons, dtype=np.int64)).implode()))
    idx = part["PNR"].to_numpy()
    months = np.arange(_month_index(date(2021, 1, 1)), _month_index(cfg.reference_date) + 1)
    labour = labour_probabilities(world, idx, months)
    rates = emergency_rates(world, idx, months)
    e = months[None, :] - part["start_month"].to_numpy()[:, None]
    diffs = {
        "self_support": labour["ss1"] - labour["ss0"],
        "employed": labour["emp1"] - labour["emp0"],
        "emergency_contacts": rates["em1"] - rates["em0"],
    }
    levels = {"self_support": labour["ss0"], "employed": labour["emp0"], "emergency_contacts": rates["em0"]}
    pooled, post = (e >= 12) & (e <= 24), (e >= 0) & (e <= 24)
    effects: dict[str, dict] = {}
    for outcome, diff in diffs.items():
        by_month = {str(k): float(diff[e == k].mean()) for k in range(0, 25) if (e == k).any()}
        groups, by_column = {}, {}
        for column in ("delmaalgruppe", "completed"):
            by_column[column] = {}
            for value in sorted(part[column].unique().to_list()):
                rows = (part[column] == value).to_numpy()[:, None] & pooled
                if rows.any():
                    groups[f"{column}={value}"] = float(diff[rows].mean())
                    by_column[column][str(value).lower()] = {
                        "att": float(diff[rows].mean()),
                        "persons": int(rows.any(axis=1).sum()),
                    }
        effects[outcome] = {
            "att_by_event_month": by_month,
            "persons_by_event_month": {str(k): int((e == k).sum()) for k in range(0, 25)},
            "att_months_12_24": float(diff[pooled].mean()) if pooled.any() else None,
            "att_months_0_24": float(diff[post].mean()) if post.any() else None,
            "persons_months_12_24": int(pooled.any(axis=1).sum()),
            "counterfactual_mean_months_12_24": float(levels[outcome][pooled].mean())
            if pooled.any()
            else None,
            "by_group_months_12_24": groups,
            "by_delmaalgruppe_months_12_24": by_column["delmaalgruppe"],
            "by_completed_months_12_24": by_column["completed"],
        }
    return effects


def truth(world: World) -> dict:
    """Return the planted truth: effects on the treated, selection, participants, every defect in the inbox.

    Effects are realised average effects on the treated from the model's own expected values (before
    sampling noise): for every participant and event month ``e`` (months from the start month, 0 = the
    start month) observed up to the reference date, ``E[Y(1)] - E[Y(0)]``. ``att_months_12_24`` pools event
    months 12..24 (only participants who have reached them count), ``att_months_0_24`` pools 0..24.

    Submissions: one record per file, in the order of ``submissions(world)``. ``rows_total`` counts data
    rows: every line after the header whose fields are not all empty (fully blank lines, e.g. trailing
    ``;;;;`` rows, are ignored). ``source_row`` is the 1-based number of a data row in that count, so the
    first line after the header is row 1. ``rows_total == good_rows + exact_duplicates + len(bad_rows)``;
    ``exact_duplicates`` counts the second copy of an identical line (the first copy is a good row); the
    totals row ("I alt") is a bad row with reason ``not_a_data_row``. ``warnings`` would list clean rows
    whose 9-digit CPR was repaired with a leading zero, but synthetic CPRs use day + 60 (first digit 6-9),
    so no synthetic CPR starts with 0 and the list is always empty here; ingest tests cover that repair.
    """
    cfg = world.config
    part = world.participants
    idx = part["PNR"].to_numpy()
    months = np.arange(_month_index(date(2021, 1, 1)), _month_index(cfg.reference_date) + 1)
    effects = effects_truth(world)
    # Selection and dip: participants vs crisis persons who did not take part (2024+) vs the population.
    p = world.person
    crisis_2024 = (p["crisis_month"] >= _month_index(date(2024, 1, 1))) & (p["part_row"] < 0)
    others = np.flatnonzero(crisis_2024)
    sample_rng = np.random.default_rng([cfg.seed, 42])
    population = np.sort(sample_rng.choice(cfg.persons, min(cfg.persons, 50_000), replace=False))
    others = (
        np.sort(sample_rng.choice(others, min(len(others), 20_000), replace=False)) if len(others) else others
    )
    pop_anchor = np.full(len(population), _month_index(date(2024, 1, 1)))  # population: around January 2024
    files = [t for _, t in _submissions_with_truth(world)]
    ongoing = part.filter(pl.col("end") > cfg.reference_date)
    return {
        "config": {
            **{k: v for k, v in asdict(cfg).items() if k != "effects"},
            "reference_date": cfg.reference_date.isoformat(),
        },
        "planted_effects": asdict(cfg.effects),
        "definitions": {
            "event_month": "months from the CTI start month (0 = the calendar month of the start date)",
            "att": "mean over participants and observed event months of E[Y(1)] - E[Y(0)] "
            "(expected values, before sampling)",
            "att_months_12_24": "att pooled over event months 12..24 observed up to the reference date",
            "att_months_0_24": "att pooled over event months 0..24 observed up to the reference date",
            "self_support": "probability that a month has no DREAM benefit code in any of its weeks",
            "employed": "probability of employment in the month",
            "emergency_contacts": "expected emergency contacts (C_PATTYPE 3) per month",
            "ramp": "effect = planted size x min(event_month / ramp_months, 1) "
            "x completion multiplier x delmaalgruppe multiplier",
            "completed": "latent completion of the course (also for courses ongoing at the reference date)",
            "selection": "expected untreated outcomes by event-time window (months from start / crisis; "
            "population: months from January 2024, random sample of at most 50,000 persons)",
        },
        "participants": {
            "count": part.height,
            "pnr": sorted(int(v) for v in idx),
            "by_site": dict(sorted(part.group_by("site").len().iter_rows())),
            "by_delmaalgruppe": dict(sorted(part.group_by("delmaalgruppe").len().iter_rows())),
            "completed_share": float(part["completed"].mean()) if part.height else None,
            "ongoing_at_reference_date": ongoing.height,
            "greenlandic_share": float((p["opr_land"][idx] == "GRL").mean()) if part.height else None,
            "population_greenlandic_share": float((p["opr_land"] == "GRL").mean()),
            "crisis_persons": int((p["crisis_month"] >= 0).sum()),
        },
        "selection": {
            "participants": _profile(world, idx, part["start_month"].to_numpy(), months),
            "crisis_non_participants_2024": _profile(world, others, p["crisis_month"][others], months),
            "population": _profile(world, population, pop_anchor, months),
        },
        "effects": effects,
        "submissions": files,
    }
