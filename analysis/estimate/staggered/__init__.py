"""Callaway & Sant'Anna (2021) group-time average treatment effects for balanced panels.

A vectorised port of R ``did`` (panel data), split as R ``did`` is:

* :mod:`~analysis.estimate.staggered.att_gt`: the panel preparation and every ATT(g, t), a 2x2
  difference-in-differences between cohort ``g`` and a control group (never treated, or not yet treated);
* :mod:`~analysis.estimate.staggered.drdid`: the doubly robust, IPW and outcome-regression 2x2 estimators
  used with covariates (R ``DRDID``);
* :mod:`~analysis.estimate.staggered.aggte`: the simple / dynamic / group / calendar aggregations, and
  :func:`stack_results` for cohorts estimated on separate samples;
* :mod:`~analysis.estimate.staggered.bootstrap`: standard errors from influence functions, analytic or by
  the multiplier bootstrap (R ``mboot``).

Periods are mapped to ranks 0..T-1 internally (as R ``did`` does), so any integer spacing works;
anticipation and event times are measured in ranks. Cohort values must be periods of the panel
(units first treated after the last period count as never treated); a null or 0 cohort is never treated.
"""

from analysis.estimate.staggered.aggte import AggregateResult, Aggregation, aggte, stack_results
from analysis.estimate.staggered.att_gt import BasePeriod, ControlGroup, GroupTimeResult, Method, att_gt

__all__ = [
    "AggregateResult",
    "Aggregation",
    "BasePeriod",
    "ControlGroup",
    "GroupTimeResult",
    "Method",
    "aggte",
    "att_gt",
    "stack_results",
]
