"""The effect report in headless Chromium, without a pipeline run: every plot says what its axes are and no
two tick labels of one axis overlap (measured on the rendered page), and the check itself fails on a plot
without axis labels and on overlapping tick labels. Section screenshots go to ``build/screenshots/unit/``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "analysis" / "publish"))

from browser import chromium_path, render  # noqa: E402

from analysis.publish import figures  # noqa: E402
from analysis.publish.effect_report import SECTIONS, render_effect_report  # noqa: E402

SHOTS = Path(
    os.environ.get("CTI_SCREENSHOT_DIR", Path(__file__).resolve().parents[1] / "build" / "screenshots")
)

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="chromium is not installed (scripts/setup_system.sh installs it)"
)


def _page(body: str) -> str:
    return f'<!doctype html><html><head><meta charset="utf-8"></head><body>{body}</body></html>'


def test_the_report_renders_with_labelled_axes_and_no_overlapping_ticks(tmp_path: Path) -> None:
    from test_reports import _monthly_inputs

    page = tmp_path / "effect_report.html"
    page.write_text(render_effect_report(_monthly_inputs()))
    rendered = render(page, SHOTS / "unit" / "effect_report.png", sections=SHOTS / "unit" / "sections")
    assert rendered.problems == [], rendered.problems
    assert rendered.plots >= 5 and rendered.plot_problems == [], rendered.plot_problems
    assert set(rendered.section_shots) >= set(SECTIONS)


def test_a_plot_without_axis_labels_fails(tmp_path: Path) -> None:
    with plt.rc_context(figures.RC):  # real text, as every report plot is drawn
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot([0, 1, 2], [1, 0, 1])
        ax.set_xlabel("months since the start")
        ax.set_ylabel("effect, percentage points")
        good = figures.svg(fig, name="good")
    bad = good.replace('id="axis-label-y-good-0"', 'id="something-else"')  # as if drawn without a y label
    page = tmp_path / "bad.html"
    page.write_text(_page(good + bad.replace('data-plot="good"', 'data-plot="bad"')))
    rendered = render(page, tmp_path / "bad.png")
    assert any("y-axis label" in p for p in rendered.plot_problems), rendered.plot_problems
    assert len(rendered.plot_problems) == 1  # the good plot passes
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with pytest.raises(ValueError, match="no x-axis label"):  # and figures refuses to draw one at all
        figures.svg(fig, name="unlabelled")


def test_overlapping_tick_labels_fail(tmp_path: Path) -> None:
    names = [f"a long category name {i}" for i in range(12)]  # horizontal, far too long for their slots
    crowded = figures.bars(
        names,
        {"estimate": ([1.0] * 12, [0.5] * 12, [1.5] * 12)},
        name="crowded",
        title="crowded",
        xlabel="category",
        ylabel="effect, percentage points",
    )
    page = tmp_path / "ticks.html"
    page.write_text(_page('<div style="width:600px">' + crowded + "</div>"))
    rendered = render(page, tmp_path / "ticks.png")
    assert any("tick labels overlap" in p for p in rendered.plot_problems), rendered.plot_problems
