"""Disclosure control: no count of 1..4 can be published or derived from what is published."""

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.publish.sdc import audit, display_table, format_count, suppress_estimates, suppress_table


def _with_margins(inner: np.ndarray) -> np.ndarray:
    table = np.zeros((inner.shape[0] + 1, inner.shape[1] + 1), dtype=np.int64)
    table[:-1, :-1] = inner
    table[:-1, -1] = inner.sum(axis=1)
    table[-1, :-1] = inner.sum(axis=0)
    table[-1, -1] = inner.sum()
    return table


def test_primary_suppression_alone_is_recoverable_from_the_margins() -> None:
    table = _with_margins(np.array([[3, 20, 30], [40, 50, 60]]))
    primary = (table > 0) & (table < 5)
    assert audit(table, primary)  # 3 = row total - 20 - 30: the LP pins it
    mask = suppress_table(table)
    assert audit(table, mask) == []
    assert mask.sum() >= 4  # a rectangle: two cells in two rows and two columns


def test_small_margins_are_suppressed_too() -> None:
    table = _with_margins(np.array([[1, 2], [0, 40]]))
    mask = suppress_table(table)
    assert mask[0, 2]  # row total 3
    assert audit(table, mask) == []


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda r: st.integers(1, 4).flatmap(
            lambda c: st.lists(st.integers(0, 30), min_size=r * c, max_size=r * c).map(
                lambda v: np.array(v).reshape(r, c)
            )
        )
    )
)
def test_no_small_cell_can_be_derived(inner: np.ndarray) -> None:
    table = _with_margins(inner)
    mask = suppress_table(table)
    published = table[~mask]
    assert not ((published > 0) & (published < 5)).any()
    assert audit(table, mask) == []


def test_display_table_and_formatting() -> None:
    frame = pl.DataFrame(
        {"site": ["a", "a", "b", "b"], "quarter": ["Q1", "Q2", "Q1", "Q2"], "n": [3, 20, 40, 50]}
    )
    shown = display_table(frame, rows="site", columns="quarter", count="n")
    assert shown.row(0) == ("a", "<5", "x", "23")  # a rectangle of suppressions; totals stay
    assert shown.filter(pl.col("site") == "Total").row(0)[-1] == "113"
    assert format_count(4) == "<5" and format_count(0) == "0" and format_count(12345) == "12 345"


def test_estimates_on_small_n_are_removed() -> None:
    frame = pl.DataFrame({"estimate": [0.1, 0.2, 0.3], "n_treated": [4, 5, None], "n_controls": [10, 10, 10]})
    out = suppress_estimates(frame, n_columns=["n_treated", "n_controls"], value_columns=["estimate"])
    assert out["suppressed"].to_list() == [True, False, True]
    assert out["estimate"].to_list() == [None, 0.2, None] and out["n_treated"].to_list() == [None, 5, None]
