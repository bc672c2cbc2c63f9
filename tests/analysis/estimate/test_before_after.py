from datetime import date

import numpy as np
import polars as pl
import pytest

from analysis.estimate.before_after import before_after


def _panel(persons: int = 400, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Self-support 0.6 at baseline, a dip to 0.2 in the 6 months before start, recovery to 0.4: no effect."""
    rng = np.random.default_rng(seed)
    months = pl.date_range(date(2021, 1, 1), date(2026, 9, 1), "1mo", eager=True)
    starts = [months[int(i)] for i in rng.integers(36, 44, persons)]
    rows = []
    for person, start in enumerate(starts):
        s = (start.year * 12 + start.month)
        for m in months:
            e = m.year * 12 + m.month - s
            p = 0.2 if -6 <= e < 0 else (0.4 if e >= 0 else 0.6)
            rows.append((person, m, float(rng.random() < p)))
    panel = pl.DataFrame(rows, schema={"person_id": pl.Int64, "month": pl.Date, "self_support": pl.Float64},
                         orient="row")
    return panel, pl.DataFrame({"person_id": list(range(persons)), "start_month": starts})


def test_means_by_event_time_show_the_dip_and_ci_covers_truth() -> None:
    panel, participants = _panel()
    result = before_after(panel, participants, outcomes=("self_support",))
    table = result.by_event_time
    at = {r["event_time"]: r for r in table.iter_rows(named=True)}
    assert at[-3]["mean"] < at[-20]["mean"] - 0.25  # the dip
    assert at[-20]["ci_lower"] < 0.6 < at[-20]["ci_upper"]  # seeded: this draw covers the truth
    assert at[0]["n"] == 400 and table["event_time"].min() == -36 and table["event_time"].max() == 24


def test_naive_contrasts_are_biased_by_the_dip() -> None:
    panel, participants = _panel()
    result = before_after(panel, participants, outcomes=("self_support",))
    contrasts = {r["contrast"]: r for r in result.contrasts.iter_rows(named=True)}
    # True effect is 0. Against the dip months the naive estimate is +0.2, against the early pre-period -0.2.
    assert contrasts["post 12..24 minus pre -3..-1"]["estimate"] == pytest.approx(0.2, abs=0.05)
    assert contrasts["post 12..24 minus pre -36..-13"]["estimate"] == pytest.approx(-0.2, abs=0.04)
    assert contrasts["post 12..24 minus pre -3..-1"]["ci_lower"] > 0  # confidently wrong: why controls


def test_bad_input_is_explained() -> None:
    panel, participants = _panel(10)
    with pytest.raises(ValueError, match="no participants"):
        before_after(panel, participants.head(0), outcomes=("self_support",))
    with pytest.raises(ValueError, match="outcome columns"):
        before_after(panel, participants, outcomes=("employed",))
    with pytest.raises(ValueError, match="one start month per person"):
        before_after(panel, pl.concat([participants, participants]), outcomes=("self_support",))
