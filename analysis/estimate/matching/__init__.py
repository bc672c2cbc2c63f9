"""Matched comparison group: at a participant's start month, persons not (yet) in CTI with the same history.

Design (a stacked, cohort-by-cohort match):

* A *cohort* is a start month ``m``. Its candidates are every person in the panel who has not started CTI
  by ``m`` (never-treated, or not yet treated: their rows from their own start on are censored later).
* Features at ``m`` (for participants at their own start month, for candidates at the cohort's month):
  means of the history outcomes over event-month windows (default -36..-25, -24..-13, -12..-4), each of
  the dip months -3, -2, -1, age, sex, origin, municipality type and education level in month -1.
* Transition: participants and candidates are split by whether they had a critical transition in month
  -1 (an institution stay discharge; see ``MatchConfig.exact_transition``) and matched only within that
  split.
* Propensity: a logit (statsmodels) of participation on the standardised features and start-year dummies,
  fitted on the participants and candidate rows (every candidate with a transition, a seeded sample of
  the others per cohort); it is used on the logit scale. A transition split with at least 10 events per
  parameter gets its own model (take-up *among persons in the same transition*), a smaller split is
  scored by a model fitted on everyone; the caliper is in SDs of the split's own scores, since pooled with
  the whole population the transition dominates the score's spread. Inside the transition split the score
  and the distance use the attributes only (``history_in_transition``): persons in the same transition in
  the same month already share the dip, and matching on noisy pre-period outcomes as well makes the
  comparisons regress to their mean after the start (Daw & Hatfield 2018; measured on the 5.9 M mock
  world: emergency contacts DiD -0.068 [-0.072, -0.063] with history vs -0.062 [-0.067, -0.057] without, truth
  -0.059). The history features stay in the balance table.
* Matching: within cohort, transition split and exact strata (default sex), the ``neighbours`` nearest
  candidates (standardised features, or the score) within a caliper of ``caliper`` SDs of the logit
  (Austin 2011), with replacement by default. Participants without a candidate inside the caliper are
  reported, not matched.
  A matched control carries weight 1/k for each participant it serves, so every participant weighs 1.

Everything is arrays over a balanced person x month panel (cumulative sums give every window mean in
O(1)), one cohort at a time, so memory is one cohort's candidate features at most.

The sub-modules follow the steps: ``config`` (the design), ``arrays`` (the panel as arrays), ``features``
(what is matched on), ``propensity`` (the score models), ``nearest`` (the neighbour search), ``match``
(the steps strung together), ``balance`` (the balance table) and ``stacked`` (the stacked panel the DiD
is estimated on).
"""

from analysis.estimate.matching.arrays import PanelArrays, month_index
from analysis.estimate.matching.balance import balance_table
from analysis.estimate.matching.config import MatchConfig
from analysis.estimate.matching.features import CAPITAL_KOM, LARGE_CITY_KOM, kom_type, person_attributes
from analysis.estimate.matching.match import MatchResult, match
from analysis.estimate.matching.stacked import stacked_panel

__all__ = [
    "CAPITAL_KOM",
    "LARGE_CITY_KOM",
    "MatchConfig",
    "MatchResult",
    "PanelArrays",
    "balance_table",
    "kom_type",
    "match",
    "month_index",
    "person_attributes",
    "stacked_panel",
]
