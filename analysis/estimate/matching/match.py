"""The match itself: propensity estimation, matching cohort by cohort within strata, and assembly.

:func:`match` strings three steps together: the propensity model per transition split
(:mod:`~analysis.estimate.matching.propensity`), then for every cohort (start month) the nearest
candidates of each participant within its exact stratum (:func:`match_cohort`, :func:`match_stratum`, on
:mod:`~analysis.estimate.matching.nearest`), then the units, pairs and balance table of the result
(:func:`assemble`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from analysis.estimate.matching.arrays import PanelArrays, month_index
from analysis.estimate.matching.balance import balance_table
from analysis.estimate.matching.config import MatchConfig
from analysis.estimate.matching.features import (
    FeatureRows,
    attribute_arrays,
    feature_names,
    transition_marked,
)
from analysis.estimate.matching.nearest import nearest_features, nearest_scores, stratum_codes
from analysis.estimate.matching.propensity import (
    Design,
    FitSample,
    PropensityModel,
    SplitModel,
    fit_propensity,
    fit_sample,
)
from analysis.frames import sum_by

_PAIRS = {"cohort": pl.Int64, "treated_id": pl.Int64, "control_id": pl.Int64, "distance": pl.Float64,
          "weight": pl.Float64}
_UNMATCHED = {"person_id": pl.Int64, "cohort": pl.Int64, "reason": pl.String}
#: The report's design.
_DEFAULT = MatchConfig()


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Matched units, pairs, balance and what could not be matched."""

    units: pl.DataFrame  # person_id, cohort (start month), treated, weight: one row per stacked unit
    pairs: pl.DataFrame  # cohort, treated_id, control_id, distance, weight
    balance: pl.DataFrame  # analysis.schema.BALANCE
    unmatched: pl.DataFrame  # person_id, cohort, reason
    n_treated: int
    n_controls: int
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class CohortMatches:
    """What one cohort's matching found (panel months and rows as positions, ids as person ids)."""

    pairs: list[dict]  # cohort, treated_id, control_id, distance, weight
    unmatched: list[dict]  # person_id, cohort, reason
    features: list[np.ndarray]  # each matched participant's chosen comparisons' features
    weights: list[np.ndarray]  # their matching weights (1/k each)
    coarsened: list[int]  # matched within the whole transition split (no candidate of their own kind)


def _starts(arrays: PanelArrays, participants: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Panel row and start month position of each participant, and every panel person's start position.

    Persons who never start carry the int64 maximum.
    """
    starts = participants.select(pl.col("person_id").cast(pl.Int64),
                                 (month_index("start_month") - arrays.first).alias("s"))
    ids = starts["person_id"].to_numpy()
    pos = np.searchsorted(arrays.ids, ids)
    if (pos >= arrays.ids.size).any() or (arrays.ids[np.minimum(pos, arrays.ids.size - 1)] != ids).any():
        raise ValueError(
            "some participants are not in the panel; link them first "
            "(analysis.linkage.panel.link_participants)"
        )
    start_col = starts["s"].to_numpy()
    person_start = np.full(arrays.ids.size, np.iinfo(np.int64).max)
    person_start[pos] = start_col
    return pos, start_col, person_start


def _transition(arrays: PanelArrays, pos: np.ndarray, start_col: np.ndarray, *, exact: tuple[str, ...],
                fallback: tuple[str, ...], config: MatchConfig) -> tuple[tuple[str, ...], list[str]]:
    """Return the transition marker columns (``exact`` when they mark some participant, else the fallback).

    Also returns the note that says so when the fallback is used.
    """
    if config.exact_transition and not (exact and transition_marked(arrays, pos, start_col, exact).any()):
        note = (f"no participant has {'/'.join(config.exact_transition)} in the month before the start "
                f"(no stays register?): exact transition stratum on {'/'.join(fallback) or 'nothing'} "
                "instead")
        return fallback, [note]
    return exact, []


def match_stratum(treated_x: np.ndarray, candidate_x: np.ndarray, treated_scores: np.ndarray,
                  candidate_scores: np.ndarray, /, *, split: SplitModel, design: Design, config: MatchConfig,
                  rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Choose up to ``config.neighbours`` candidates per participant of one stratum (one transition split).

    With the Mahalanobis metric the nearest in standardised features (the split's columns) among those
    within the split's caliper on the score, else the nearest on the score. Returns candidate positions
    and score distances per participant (empty when none is inside the caliper).
    """
    if config.metric == "mahalanobis":
        return nearest_features(design.standardise(treated_x)[:, split.columns],
                                design.standardise(candidate_x)[:, split.columns], treated_scores,
                                candidate_scores, k=config.neighbours, caliper=split.caliper,
                                replacement=config.replacement, rng=rng)
    return nearest_scores(treated_scores, candidate_scores, k=config.neighbours, caliper=split.caliper,
                          replacement=config.replacement, rng=rng)


def match_cohort(cohort: int, treated: FeatureRows, scores: np.ndarray, model: PropensityModel,
                 arrays: PanelArrays, attrs: dict[str, np.ndarray], person_start: np.ndarray, /, *,
                 transition: tuple[str, ...], config: MatchConfig, rng: np.random.Generator) -> CohortMatches:
    """Match the participants who start in ``cohort`` to the persons who have not started by then.

    Within each exact stratum (``config.exact`` and, with a ``transition``, the transition split and, with
    ``config.exact_transition_kind``, the kind of transition) the ``config.neighbours`` nearest candidates
    inside the caliper of the stratum's split model. A participant whose kind stratum has none is matched
    within the whole transition split (listed in ``coarsened``); one without any is reported as unmatched.
    ``scores`` are the participants' propensities.
    """
    t_idx = np.flatnonzero(treated.at == cohort)
    eligible = np.flatnonzero(person_start > cohort)
    if transition:
        # Only candidates in a participant's transition split can be chosen: the features of the others (at
        # population scale nearly everyone) are never evaluated.
        marked = transition_marked(arrays, eligible, np.full(eligible.size, cohort), transition)
        eligible = eligible[np.isin(marked, treated.split[t_idx])]
    candidates = FeatureRows.build(arrays, attrs, eligible, np.full(eligible.size, cohort), config=config,
                                   transition=transition)
    ps_c = model.score(candidates)
    exact = [np.concatenate([attrs[c][treated.rows[t_idx]], attrs[c][eligible]]) for c in config.exact]
    levels = [exact]  # strata from the finest to the coarsest a participant may fall back to
    if transition:
        split = np.concatenate([treated.split[t_idx], candidates.split])
        levels = [exact + [split]]
        if config.exact_transition_kind:
            levels.insert(0, exact + [split, np.concatenate([treated.kind[t_idx], candidates.kind])])
    pairs, unmatched, features, weights, coarsened = [], [], [], [], []
    pending = np.arange(t_idx.size)  # positions in t_idx still to match
    for level, strata in enumerate(levels):
        keys = stratum_codes(strata, t_idx.size + eligible.size)
        t_key, c_key = keys[: t_idx.size], keys[t_idx.size :]
        last = level == len(levels) - 1
        retry = []
        for key in np.unique(t_key[pending]):
            here = pending[t_key[pending] == key]
            ti, ci = t_idx[here], np.flatnonzero(c_key == key)
            split_model = model.splits[bool(treated.split[ti[0]])]
            nearest = match_stratum(treated.features[ti], candidates.features[ci], scores[ti], ps_c[ci],
                                    split=split_model, design=model.design, config=config, rng=rng)
            for position, i, (chosen, dist) in zip(here, ti, nearest, strict=True):
                treated_id = int(arrays.ids[treated.rows[i]])
                if not chosen.size:
                    # a kind stratum is finer than the split only for participants with a transition
                    if not last and treated.split[i]:
                        retry.append(position)
                    else:
                        unmatched.append({"person_id": treated_id, "cohort": int(cohort),
                                          "reason": "no comparison person within the caliper"})
                    continue
                if level:
                    coarsened.append(treated_id)
                k = chosen.size
                controls = arrays.ids[eligible[ci[chosen]]]
                pairs.extend(
                    {"cohort": int(cohort), "treated_id": treated_id, "control_id": int(j),
                     "distance": float(dj), "weight": 1.0 / k}
                    for j, dj in zip(controls, dist, strict=True)
                )
                features.append(candidates.features[ci[chosen]])
                weights.append(np.full(k, 1.0 / k))
        pending = np.array(retry, dtype=np.int64)
        if not pending.size:
            break
    return CohortMatches(pairs, unmatched, features, weights, coarsened)


def assemble(matches: list[CohortMatches], treated: FeatureRows, sample: FitSample, arrays: PanelArrays,
             person_start: np.ndarray, /, *, unmatched: list[dict], config: MatchConfig,
             notes: list[str]) -> MatchResult:
    """Return the result of a match: stacked units, pairs, balance and the unmatched participants.

    A matched comparison carries weight 1/k for each participant it serves within a cohort (summed into
    one unit per person and cohort), every matched participant weighs 1; months become month indexes
    again. ``unmatched`` holds the participants left out before matching (no history).
    """
    pairs = pl.DataFrame([p for m in matches for p in m.pairs], schema=_PAIRS)
    if not pairs.height:
        raise ValueError(
            "no participant found a comparison person within the caliper; widen MatchConfig.caliper"
        )
    unmatched = unmatched + [u for m in matches for u in m.unmatched]
    matched_treated = pairs["treated_id"].unique()
    treated_units = (
        pl.DataFrame({"person_id": arrays.ids[treated.rows], "cohort": treated.at.astype(np.int64)})
        .filter(pl.col("person_id").is_in(matched_treated.implode()))
        .with_columns(treated=pl.lit(1, pl.Int8), weight=pl.lit(1.0))
    )
    control_units = sum_by(pairs, ["control_id", "cohort"], "weight").select(  # same bits on every run
        person_id="control_id", cohort="cohort", treated=pl.lit(0, pl.Int8), weight="weight"
    )
    ever = person_start < arrays.months + 10**6  # never-treated persons carry the int64 maximum
    starts_all = pl.DataFrame({"person_id": arrays.ids[ever],
                               "person_start": person_start[ever] + arrays.first})
    units = (
        pl.concat([treated_units, control_units]).with_columns(cohort=(pl.col("cohort") + arrays.first))
        .join(starts_all, on="person_id", how="left", validate="m:1")
        .sort("cohort", "treated", "person_id", descending=[False, True, False])
    )
    keep_treated = np.isin(arrays.ids[treated.rows], matched_treated.to_numpy())
    balance = balance_table(feature_names(config), treated.features[keep_treated], sample.candidates.features,
                            sample.weight, np.vstack([x for m in matches for x in m.features]),
                            np.concatenate([w for m in matches for w in m.weights]))
    coarsened = sum(len(m.coarsened) for m in matches)
    if coarsened:
        notes = [*notes, f"{coarsened} participants had no comparison of their kind of transition within the "
                         "caliper and were matched within the whole transition split"]
    if unmatched:
        notes = [*notes, f"{len(unmatched)} participants could not be matched (see unmatched)"]
    return MatchResult(
        units=units,
        pairs=pairs.with_columns(cohort=pl.col("cohort") + arrays.first),
        balance=balance,
        # panel positions -> month indices, like the units' and pairs' cohorts (a start month, not a position)
        unmatched=pl.DataFrame(unmatched, schema=_UNMATCHED).with_columns(
            cohort=pl.col("cohort") + arrays.first),
        n_treated=int(treated_units.height),
        n_controls=int(pairs["control_id"].n_unique()),
        notes=tuple(notes),
    )


def match(panel: pl.DataFrame, participants: pl.DataFrame, persons: pl.DataFrame, /, *,
          config: MatchConfig = _DEFAULT) -> MatchResult:
    """Match each participant to comparison persons at the participant's start month.

    Parameters
    ----------
    panel
        Balanced person x month outcome panel (``analysis.schema.OUTCOME_PANEL``) of participants and
        candidates.
    participants
        ``person_id``, ``start_month`` (each person's first CTI start): the treated.
    persons
        Attributes of every panel person (:func:`analysis.estimate.matching.person_attributes`).
    config
        The design (:class:`analysis.estimate.matching.MatchConfig`).

    Returns
    -------
    MatchResult
        Stacked units, pairs, balance and the unmatched participants with the reason.
    """
    missing = [c for c in ("person_id", "start_month") if c not in participants.columns]
    if missing:
        raise ValueError(f"participants lacks columns {missing}")
    if participants["person_id"].n_unique() != participants.height:
        raise ValueError("participants must have one row per person (each person's first start month)")
    exact = config.exact_transition if all(c in panel.columns for c in config.exact_transition) else ()
    fallback = (tuple(c for c in config.transition_fallback if c in panel.columns)
                if config.exact_transition else ())
    outcomes = tuple(dict.fromkeys((*config.history_outcomes, *config.dip_outcomes, *exact, *fallback,
                                    "edu_level")))
    arrays = PanelArrays.from_panel(panel, [o for o in outcomes if o in panel.columns or o != "edu_level"],
                                    cumulative=config.history_outcomes)
    attrs = attribute_arrays(arrays, persons)
    rng = np.random.default_rng(config.seed)

    pos, start_col, person_start = _starts(arrays, participants)
    has_history = (start_col - config.history_months >= 0) & (start_col < arrays.months)
    unmatched = [
        {"person_id": int(arrays.ids[p]), "cohort": int(s),
         "reason": "start outside the panel or without full pre-period history"}
        for p, s in zip(pos[~has_history], start_col[~has_history], strict=True)
    ]
    pos, start_col = pos[has_history], start_col[has_history]
    if not pos.size:
        raise ValueError(
            f"no participant has {config.history_months} months of history inside the panel before the "
            "start month"
        )
    cohorts = np.unique(start_col)
    transition, notes = _transition(arrays, pos, start_col, exact=exact, fallback=fallback, config=config)

    # 1. the propensity model per transition split, fitted on the participants and a sample of candidates
    treated = FeatureRows.build(arrays, attrs, pos, start_col, config=config, transition=transition)
    sample = fit_sample(arrays, attrs, person_start, cohorts, transition=transition, config=config, rng=rng)
    model = fit_propensity(treated, sample, cohorts, arrays.first, config=config, by_split=bool(transition))
    notes += model.notes
    if transition:
        notes.append(f"{int(treated.split.sum())} of {treated.split.size} participants had a transition "
                     f"({'/'.join(transition)}) in month -1; matched within that split")
    # 2. cohort by cohort, nearest neighbours within exact strata; 3. units, pairs and balance
    scores = model.score(treated)
    matches = [match_cohort(c, treated, scores, model, arrays, attrs, person_start, transition=transition,
                            config=config, rng=rng) for c in cohorts]
    return assemble(matches, treated, sample, arrays, person_start, unmatched=unmatched, config=config,
                    notes=notes)
