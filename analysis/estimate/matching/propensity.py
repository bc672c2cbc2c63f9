"""The propensity score of the match: a logit of participation per transition split.

The model is fitted on the participants and a sample of candidate rows per cohort (every candidate with a
transition, a seeded sample of the others; :func:`fit_sample`), on the standardised features and
start-year dummies, and used on the logit scale. A transition split with at least
``_EVENTS_PER_PARAMETER`` events per parameter (Peduzzi et al. 1996) gets its own model (take-up *among
persons in the same transition*), a smaller split is scored by the model fitted on everyone; the caliper
is always in SDs of the split's own scores, since pooled with the whole population the transition
dominates the score's spread. Within the transition split the score uses the attributes only unless
``MatchConfig.history_in_transition`` (see :mod:`analysis.estimate.matching`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm

from analysis.estimate.matching.arrays import PanelArrays
from analysis.estimate.matching.config import MatchConfig
from analysis.estimate.matching.features import FeatureRows, history_count, transition_marked

#: Events (the smaller of participants and candidates) per parameter a transition split needs for its own
#: propensity model; below it the pooled model scores the split.
_EVENTS_PER_PARAMETER = 10
_RIDGE_NOTE = "propensity logit did not converge unpenalised; used a ridge-penalised fit"


def logit(x: np.ndarray, d: np.ndarray, /) -> tuple[np.ndarray, bool]:
    """Logit coefficients of ``d`` on ``x``, and whether the lightly ridge-penalised fit had to be used.

    The penalised fit replaces the plain one when that separates or does not converge.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = sm.Logit(d, x).fit(method="newton", maxiter=100, disp=0)
            if result.mle_retvals.get("converged", False) and np.all(np.isfinite(result.params)):
                return np.asarray(result.params), False
        except (np.linalg.LinAlgError, ValueError, sm.tools.sm_exceptions.PerfectSeparationError):
            pass
        glm = sm.GLM(d, x, family=sm.families.Binomial()).fit_regularized(alpha=1e-4, L1_wt=0.0)
        return np.asarray(glm.params), True


@dataclass(frozen=True, slots=True)
class FitSample:
    """Candidate rows of the propensity fit, and their inverse sampling fractions (the balance weights)."""

    candidates: FeatureRows
    weight: np.ndarray


def fit_sample(arrays: PanelArrays, attrs: dict[str, np.ndarray], person_start: np.ndarray,
               cohorts: np.ndarray, /, *, transition: tuple[str, ...], config: MatchConfig,
               rng: np.random.Generator) -> FitSample:
    """Draw the fit's candidate rows: per cohort, every candidate with a transition and a sample of the rest.

    Candidates of cohort ``c`` are the persons who have not started by ``c`` (``person_start > c``); the
    sample holds ``config.max_fit_controls`` rows over all cohorts at most, besides the transitions.
    """
    per_cohort = max(1, config.max_fit_controls // cohorts.size)
    rows, at, weight = [], [], []
    for c in cohorts:
        eligible = np.flatnonzero(person_start > c)
        m_eligible = transition_marked(arrays, eligible, np.full(eligible.size, c), transition)
        flagged, others = eligible[m_eligible], eligible[~m_eligible]
        take = others if others.size <= per_cohort else rng.choice(others, per_cohort, replace=False)
        rows += [flagged, take]
        at += [np.full(flagged.size, c), np.full(take.size, c)]
        weight += [np.ones(flagged.size), np.full(take.size, others.size / max(take.size, 1))]
    candidates = FeatureRows.build(arrays, attrs, np.concatenate(rows), np.concatenate(at), config=config,
                                   transition=transition)
    return FitSample(candidates, np.concatenate(weight))


@dataclass(frozen=True, slots=True)
class Design:
    """Design rows of the logit: intercept, standardised features (some columns), start-year dummies."""

    mean: np.ndarray  # feature means of the fit sample's candidates
    sd: np.ndarray  # their standard deviations (1 where constant)
    first: int  # month index of panel column 0
    years: np.ndarray  # start years of the cohorts; the first is the reference

    @classmethod
    def from_sample(cls, sample: FitSample, cohorts: np.ndarray, first: int) -> Design:
        """Standardise on the fit sample's candidates; a dummy per start year of ``cohorts`` but the first."""
        x = sample.candidates.features
        mean, sd = x.mean(axis=0), x.std(axis=0)
        sd[sd == 0] = 1.0
        return cls(mean, sd, first, np.unique((first + cohorts) // 12))

    def standardise(self, x: np.ndarray, /) -> np.ndarray:
        """Features in standard deviations of the fit sample (the Mahalanobis metric's scale)."""
        return (x - self.mean) / self.sd

    def matrix(self, x: np.ndarray, at: np.ndarray, cols: np.ndarray, /) -> np.ndarray:
        """Design rows of features ``x`` (columns ``cols``) evaluated at month positions ``at``."""
        dummies = [(((self.first + at) // 12) == y).astype(float) for y in self.years[1:]]
        return np.column_stack([np.ones(len(x)), self.standardise(x)[:, cols], *dummies])


@dataclass(frozen=True, slots=True)
class SplitModel:
    """The logit that scores one transition split, its caliper and the feature columns it uses."""

    beta: np.ndarray
    caliper: float  # MatchConfig.caliper standard deviations of the split's own scores
    columns: np.ndarray


@dataclass(frozen=True, slots=True)
class PropensityModel:
    """Logit propensity models by transition split (False: no transition in month -1)."""

    design: Design
    splits: dict[bool, SplitModel]
    notes: tuple[str, ...]

    def score(self, rows: FeatureRows, /) -> np.ndarray:
        """Logit propensity from the model of each row's transition split (NaN where no participant is)."""
        out = np.full(len(rows.features), np.nan)
        for split, model in self.splits.items():
            take = rows.split == split
            if take.any():
                out[take] = self.design.matrix(rows.features[take], rows.at[take], model.columns) @ model.beta
        return out


def _design_rows(design: Design, treated: FeatureRows, candidates: FeatureRows, t_rows: np.ndarray,
                 c_rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Design rows of the chosen participants and of the chosen candidates."""
    return (design.matrix(treated.features[t_rows], treated.at[t_rows], cols),
            design.matrix(candidates.features[c_rows], candidates.at[c_rows], cols))


def fit_propensity(treated: FeatureRows, sample: FitSample, cohorts: np.ndarray, first: int, /, *,
                   config: MatchConfig, by_split: bool) -> PropensityModel:
    """Fit the propensity model of each transition split that holds a participant.

    Parameters
    ----------
    treated
        The participants at their start months.
    sample
        The candidate rows of the fit (:func:`fit_sample`).
    cohorts, first
        The cohorts' month positions and the month index of panel column 0 (for the start-year dummies).
    config
        ``caliper`` and ``history_in_transition`` are used.
    by_split
        Whether the match has a transition split; without one, one model is fitted on everyone.
    """
    design = Design.from_sample(sample, cohorts, first)
    candidates = sample.candidates
    all_cols = np.arange(candidates.features.shape[1])
    attribute_cols = all_cols[history_count(config):]
    everyone = np.ones(treated.split.size, bool), np.ones(candidates.split.size, bool)
    splits, notes = {}, []
    for split in (False, True):
        t_rows, c_rows = treated.split == split, candidates.split == split
        if not t_rows.any():
            continue
        cols = attribute_cols if split and not config.history_in_transition else all_cols
        events = min(t_rows.sum(), c_rows.sum())
        own = by_split and events >= _EVENTS_PER_PARAMETER * (cols.size + design.years.size)
        x_t, x_c = _design_rows(design, treated, candidates, *((t_rows, c_rows) if own else everyone), cols)
        d = np.concatenate([np.ones(len(x_t)), np.zeros(len(x_c))])
        beta, penalised = logit(np.vstack([x_t, x_c]), d)
        if penalised:
            notes.append(_RIDGE_NOTE)
        x_t, x_c = _design_rows(design, treated, candidates, t_rows, c_rows, cols)
        scores = np.concatenate([x_t @ beta, x_c @ beta])
        splits[split] = SplitModel(beta, config.caliper * float(scores.std()) or np.inf, cols)
    return PropensityModel(design, splits, tuple(notes))
