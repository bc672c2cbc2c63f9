"""How far the matched design's effects can be trusted: pre-trend tests, phases, a placebo, honest DiD.

The event study's reference and pre-trend tests, effects by CTI phase, a placebo in time and honest-DiD
bounds.

The matched event study is normalised to the mean of months ``REFERENCE_MONTHS`` (-15..-13): before the
Ashenfelter dip and well before the transition month (-1, a discharge from a stay), whose register trace
differs between participants and comparisons by design of the selection, not by trend. So

* the **pre-trend tests** (:func:`pretrend_tests`) cover the months before the dip (``PRE_DIP_MONTHS``) and,
  separately, the dip itself (``DIP_MONTHS``), the transition month marked and left out (still estimated
  and shown); the binned variants average the months into the windows of :data:`PRETREND_BINS` (fewer
  restrictions, each estimated more precisely);
* the **phase effects** (:func:`phase_effects`) are the mean coefficient over each of the method's three
  phases (months 1-3, 4-6, 7-9 after the start) and the follow-up (10-24): linear combinations of the
  event study, with its clustered covariance, relative to the same reference as the figure;
* the **placebo** (:func:`placebo_did`) moves every start ``shift`` (12) months earlier and estimates the
  pooled DiD on months before the real start only: placebo months 0..10 (real -12..-2, the transition
  month left out) against placebo months -24..-1 (real -36..-13). A placebo "effect" is a difference the
  design would have reported although nobody had started;
* the **honest DiD** bounds (:func:`honest_did`) bin the event study into quarters relative to the reference
  (bin 0 = months -15..-13) and bound the pooled effect over months 12..23 under Rambachan & Roth's relative
  magnitudes (:mod:`analysis.estimate.honest`).

Every table carries the persons behind it (the event study's n at the window's first month, and the fewest
at any of its months) for disclosure control.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from analysis.estimate import did
from analysis.estimate.honest import DEFAULT_M_BARS, EventStudy, bin_event_study, relative_magnitudes
from analysis.estimate.inference import z_critical
from analysis.schema import HONEST_DID, PHASE_EFFECTS, PLACEBO_EFFECTS, PRETREND_TESTS

#: The event study's reference: the mean of these event months is 0 (before the dip).
REFERENCE_MONTHS = (-15, -13)
#: The month before the start: the transition (discharge from a stay) that defines the matched split.
TRANSITION_MONTH = -1
#: Months before the dip (the pre-trend test that matters for parallel trends).
PRE_DIP_MONTHS = (-36, -13)
#: The dip up to the start (the transition month excluded by the study): do the comparisons share it?
DIP_MONTHS = (-12, -1)
#: Averaged windows of the binned pre-trend test: the year-long windows of the match's history, then the
#: months before the transition month in two halves.
PRETREND_BINS = ((-36, -25), (-24, -13), (-12, -7), (-6, -2))
#: The CTI method's phases (months after the start) and the follow-up after the planned nine months.
PHASES = (("phase_1", 1, 3), ("phase_2", 4, 6), ("phase_3", 7, 9), ("after", 10, 24))
#: Placebo in time: starts moved this many months earlier.
PLACEBO_SHIFT = 12
#: The honest-DiD target: the pooled post effect over these months (whole quarters from the reference).
HONEST_TARGET = (12, 23)


def _counts(study: did.EventStudyResult, first: int, last: int) -> dict[str, int | None]:
    rows = study.table.filter(pl.col("event_time").is_between(first, last)).sort("event_time")
    if not rows.height:
        return {"n_treated": None, "n_controls": None, "persons_min": None, "controls_min": None}
    return {
        "n_treated": rows["n_treated"][0],
        "n_controls": rows["n_controls"][0],
        "persons_min": rows["n_treated"].min(),
        "controls_min": rows["n_controls"].min(),
    }


def headline_pretrend(study: did.EventStudyResult, /, *, bins: Sequence[tuple[int, int]] = PRETREND_BINS
                      ) -> tuple[float, int, float]:
    """Return the pre-trend test the estimates carry (``pretrend_p``): the binned test of the window.

    The yearly means of the months before the dip (two restrictions) rather than every month (23): with
    a few hundred participants the monthly test's covariance is estimated too noisily for its size to hold
    (``scripts/validate.py`` measures both), while a trend before the dip still moves the yearly means.
    The monthly test stays in :func:`pretrend_tests`. Falls back to the monthly test when no bin lies
    inside the window.
    """
    window = study.pretrend_window or (int(study.times.min()), study.reference_months[0] - 1)
    return study.pretrend_test(_bins_inside(bins, window) or None, window=window)


def _bins_inside(bins: Sequence[tuple[int, int]], window: tuple[int, int], /) -> list[tuple[int, int]]:
    """Return the ``bins`` that lie wholly inside ``window``."""
    return [b for b in bins if b[0] >= window[0] and b[1] <= window[1]]


def pretrend_tests(study: did.EventStudyResult, /, *, pre_dip: tuple[int, int] = PRE_DIP_MONTHS,
                   dip: tuple[int, int] = DIP_MONTHS,
                   bins: Sequence[tuple[int, int]] = PRETREND_BINS) -> pl.DataFrame:
    """Test the event study's pre-trends (``analysis.schema.PRETREND_TESTS``), relative to its reference.

    Rows: every month before the dip (``pre_dip``), every month of the dip (``dip``), the months of both
    averaged into ``bins`` (the bins inside each window). Months the study excludes (the transition
    month) are left out of every test. A window outside the study's months is skipped.
    """
    lo, hi = study.reference_months
    months = study.times
    rows = []
    for name, window in (("pre_dip", pre_dip), ("dip", dip)):
        first, last = max(window[0], int(months.min())), min(window[1], int(months.max()))
        if first > last:
            continue
        inside = _bins_inside(bins, window)
        tests = [(name, None), *([(f"{name}_binned", inside)] if inside else [])]
        for test, chosen in tests:
            stat, dof, p = study.pretrend_test(chosen, window=(first, last))
            counts = _counts(study, first, last)
            rows.append({
                "outcome": study.outcome, "test": test, "first_month": first, "last_month": last,
                "excluded": ", ".join(str(m) for m in study.exclude if first <= m <= last) or None,
                "reference_first": lo, "reference_last": hi, "bins": None if chosen is None else len(chosen),
                "chi2": stat if np.isfinite(stat) else None, "df": dof,
                "p_value": p if np.isfinite(p) else None,
                "n_treated": counts["n_treated"], "n_controls": counts["n_controls"],
            })
    return pl.DataFrame(rows, schema=PRETREND_TESTS)


def phase_effects(study: did.EventStudyResult, /, *,
                  phases: Sequence[tuple[str, int, int]] = PHASES) -> pl.DataFrame:
    """Mean event-study effect over each phase's months (``analysis.schema.PHASE_EFFECTS``).

    A phase is clipped to the study's months (the follow-up ends at the last estimated month); a phase with
    no month inside the study is left out.
    """
    z = z_critical(study.alpha)
    top = int(study.times.max())
    rows = []
    for name, first, last in phases:
        last = min(last, top)
        if first > last:
            continue
        months = range(first, last + 1)
        estimate, se = study.combination({m: 1.0 / len(months) for m in months})
        ok = np.isfinite(se) and se > 0
        rows.append({
            "outcome": study.outcome, "phase": name, "first_month": first, "last_month": last,
            "estimate": estimate, "se": se if ok else None,
            "ci_lower": estimate - z * se if ok else None, "ci_upper": estimate + z * se if ok else None,
            **_counts(study, first, last),
        })
    return pl.DataFrame(rows, schema=PHASE_EFFECTS)


def placebo_did(stacked: pl.DataFrame, outcome: str, /, *, shift: int = PLACEBO_SHIFT,
                transition: int = TRANSITION_MONTH, alpha: float = 0.05) -> pl.DataFrame:
    """Pooled DiD with every start moved ``shift`` months earlier (``analysis.schema.PLACEBO_EFFECTS``).

    Only months before the transition month enter (nobody has started, and the transition itself is left
    out): the placebo "post" window is placebo months 0 .. ``shift + transition - 1`` (real months
    ``-shift`` .. ``transition - 1``), compared with every earlier month. Months are reported in placebo
    time (real month + ``shift``).
    """
    if shift < 2:
        raise ValueError("a placebo needs its start moved at least two months earlier")
    before = stacked.filter(pl.col("event_time") < transition)
    first = int(before["event_time"].min()) if before.height else -shift
    post, pre = (-shift, transition - 1), (first, -shift - 1)
    if pre[0] > pre[1]:
        raise ValueError(f"the panel starts at month {first}: too late for a placebo {shift} months earlier")
    result = did.pooled_did(before, outcome, post=post, pre=pre, alpha=alpha)
    row = {
        "outcome": outcome, "shift": shift, "post_first": post[0] + shift, "post_last": post[1] + shift,
        "pre_first": pre[0] + shift, "pre_last": pre[1] + shift,
        **{c: getattr(result, c) for c in ("estimate", "se", "ci_lower", "ci_upper", "n_treated",
                                           "n_controls", "mde")},
    }
    return pl.DataFrame([row], schema=PLACEBO_EFFECTS)


def honest_did(study: did.EventStudyResult, /, *, width: int = 3, target: tuple[int, int] = HONEST_TARGET,
               m_bars: Sequence[float] = DEFAULT_M_BARS, seed: int = 0, grid_points: int = 1000,
               sims: int = 1000) -> pl.DataFrame:
    """Rambachan & Roth relative-magnitude bounds of the pooled effect over ``target`` (``HONEST_DID``).

    The monthly study is averaged into bins of ``width`` months starting at its reference window, which
    must be one bin long (bin 0, normalised to 0); bins before it are the pre-periods, bins after it (the
    dip and the post-period) the post-periods, as HonestDiD treats anticipation. The target is the bins
    wholly inside ``target`` (months 12..23 with quarters from -15).
    """
    lo, hi = study.reference_months
    if hi - lo + 1 != width:
        raise ValueError(f"the reference window {lo}..{hi} must be one bin of {width} months")
    if study.cov.shape != (study.times.size, study.times.size):
        raise ValueError("the event study carries no covariance matrix: estimate it with did.event_study")
    if lo == hi:
        keep = study.times != lo
        monthly = EventStudy(tuple(study.times[keep]), study.params[keep], study.cov[np.ix_(keep, keep)], lo)
    else:
        monthly = EventStudy(tuple(study.times), study.params, study.cov, None)
    binned = bin_event_study(monthly, width=width, origin=lo, reference_bin=0)
    starts = {b: lo + b * width for b in binned.times}
    chosen = [b for b, s in starts.items() if s >= target[0] and s + width - 1 <= target[1]]
    if len(chosen) < 1:
        raise ValueError(f"no whole bin of {width} months lies inside the target months {target}")
    result = relative_magnitudes(binned, target=chosen, m_bars=m_bars, seed=seed, grid_points=grid_points,
                                 sims=sims)
    first, last = starts[min(chosen)], starts[max(chosen)] + width - 1
    common = {
        "outcome": study.outcome, "estimate": result.estimate, "breakdown_m_bar": result.breakdown_m_bar,
        "max_pre_step": result.max_pre_step, "first_month": first, "last_month": last, "bin_months": width,
        "reference_first": lo, "reference_last": hi, "pre_bins": len(result.pre_periods),
        "post_bins": len(result.post_periods), **_counts(study, first, last),
    }
    rows = [{**common, "m_bar": None, "id_lower": result.estimate, "id_upper": result.estimate,
             "ci_lower": result.ci_lower, "ci_upper": result.ci_upper}]
    rows += [{**common, "m_bar": b.m_bar, "id_lower": b.id_lower, "id_upper": b.id_upper,
              "ci_lower": b.ci_lower, "ci_upper": b.ci_upper} for b in result.bounds]
    frame = pl.DataFrame(rows, schema=HONEST_DID)
    # an empty identified set or interval is NaN in the result: a missing value in the table
    bounds = ("id_lower", "id_upper", "ci_lower", "ci_upper")
    return frame.with_columns(pl.col(c).fill_nan(None) for c in bounds)
