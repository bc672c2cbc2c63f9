"""Plots for the published pages: inline SVG at full width, every axis labelled with its unit.

Every figure is drawn by matplotlib from values the caller passes (the reports pass controlled values
only) and serialised by :func:`svg`, which gives each axis label an id (``axis-label-x-<name>``,
``axis-label-y-<name>``) so the browser test can check that every plot says what its axes are, and tick
labels stay in matplotlib's ``xtick_*``/``ytick_*`` groups, whose boxes the same test compares for overlap.
:func:`axis_problems` is the same check on a figure before it is serialised (unit tests). Output is
deterministic (a fixed hash salt, no date) and carries no namespace URL or external reference.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

#: Deterministic SVG, real text (searchable, selectable), one size of type.
RC = {
    "svg.hashsalt": "cti",
    "svg.fonttype": "none",
    "font.size": 10,
    "figure.dpi": 72,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
WIDTH = 10.0  # inches at 72 dpi: 720 px, scaled to the page's width by CSS
BLUE, GREY, RED, ORANGE = "#1f4e79", "#8a8a8a", "#b00020", "#c55a11"


def axis_problems(fig: plt.Figure, /) -> list[str]:
    """Return the axes of ``fig`` without an x or y label.

    Colour bars need a y label only; panels sharing an axis with a labelled one need no label of their own.
    """
    problems = []
    for i, ax in enumerate(fig.axes):
        colorbar = ax.get_label() == "<colorbar>"
        shared_y = [o for o in ax.get_shared_y_axes().get_siblings(ax) if o is not ax]
        if not colorbar and not ax.get_xlabel().strip():
            problems.append(f"axes {i} has no x-axis label")
        if not ax.get_ylabel().strip() and not any(o.get_ylabel().strip() for o in shared_y):
            problems.append(f"axes {i} has no y-axis label")
    return problems


def svg(fig: plt.Figure, /, *, name: str, caption: str = "") -> str:
    """Serialise ``fig`` as an inline ``<figure class="plot">`` (axis labels with ids; see module doc)."""
    problems = axis_problems(fig)
    if problems:
        plt.close(fig)
        raise ValueError(f"plot {name!r}: {'; '.join(problems)} (every plot says what its axes are)")
    safe = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    for i, ax in enumerate(fig.axes):
        suffix = f"{safe}-{i}"
        ax.xaxis.label.set_gid(f"axis-label-x-{suffix}")
        ax.yaxis.label.set_gid(f"axis-label-y-{suffix}")
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\s(xmlns(:xlink)?)="[^"]*"', "", text)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = text.replace("xlink:href", "href")
    # width from CSS (full width of the page), height from the aspect ratio
    text = re.sub(r'<svg([^>]*?)\swidth="[^"]*"\sheight="[^"]*"', r"<svg\1", text, count=1)
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure class="plot" data-plot="{safe}">{text}{cap}</figure>'


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.array(
        [np.nan if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values], dtype=float
    )


def event_study(
    months: Sequence[int],
    estimate: Sequence[float | None],
    lower: Sequence[float | None],
    upper: Sequence[float | None],
    /,
    *,
    name: str,
    title: str,
    ylabel: str,
    reference: tuple[int, int],
    transition: int | None,
    scale: float = 1.0,
) -> str:
    """Coefficients by event month with 95 % intervals; the reference months shaded, the transition marked."""
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
        x = np.asarray(months, dtype=float)
        y, lo, hi = (_finite(v) * scale for v in (estimate, lower, upper))
        ok = ~np.isnan(y)
        ax.axvspan(
            reference[0] - 0.5,
            reference[1] + 0.5,
            color="#dde8f3",
            zorder=0,
            label=f"reference: mean of months {_span(*reference)} = 0",
        )
        ax.axhline(0, color=GREY, lw=0.8)
        ax.axvline(-0.5, color=GREY, lw=0.8, ls=":")
        err = np.vstack([np.where(np.isnan(lo), 0, y - lo), np.where(np.isnan(hi), 0, hi - y)])
        ax.errorbar(
            x[ok],
            y[ok],
            yerr=err[:, ok],
            fmt="o",
            ms=3.5,
            lw=0.9,
            color=BLUE,
            ecolor="#7f9fbf",
            label="estimate, 95 % CI",
        )
        if transition is not None and transition in set(months):
            at = list(months).index(transition)
            if ok[at]:
                ax.plot(
                    [transition],
                    [y[at]],
                    "D",
                    ms=6,
                    mfc="white",
                    mec=RED,
                    mew=1.5,
                    label=f"transition month ({_signed(transition)}): left out of the pre-trend test",
                )
        ax.set_xticks(range(6 * math.floor(min(months) / 6), max(months) + 1, 6))
        ax.set_xlabel("months since the start of the course (0 = start month)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left", fontsize=11)
        ax.legend(frameon=False, fontsize=8, loc="upper left", ncol=3, bbox_to_anchor=(0, -0.18))
        return svg(fig, name=name)


def lines(
    series: dict[str, tuple[Sequence[int], Sequence[float | None]]],
    /,
    *,
    name: str,
    title: str,
    xlabel: str,
    ylabel: str,
    scale: float = 1.0,
    start: float | None = -0.5,
    band: dict[str, tuple[Sequence[float | None], Sequence[float | None]]] | None = None,
) -> str:
    """One line per series (gaps where a value is missing); optional 95 % bands per series."""
    colours = [BLUE, ORANGE, GREY, RED]
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
        for (label, (xs, ys)), colour in zip(series.items(), colours, strict=False):
            ax.plot(list(xs), _finite(ys) * scale, lw=1.5, color=colour, label=label)
            if band and label in band:
                lo, hi = band[label]
                ax.fill_between(
                    list(xs), _finite(lo) * scale, _finite(hi) * scale, color=colour, alpha=0.15, lw=0
                )
        if start is not None:
            ax.axvline(start, color=GREY, lw=0.8, ls=":")
        all_x = [x for xs, _ in series.values() for x in xs]
        if all_x:
            ax.set_xticks(range(6 * math.floor(min(all_x) / 6), max(all_x) + 1, 6))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left", fontsize=11)
        ax.legend(frameon=False, fontsize=8, loc="best")
        return svg(fig, name=name)


def forest(
    labels: Sequence[str],
    estimate: Sequence[float | None],
    lower: Sequence[float | None],
    upper: Sequence[float | None],
    /,
    *,
    name: str,
    title: str,
    xlabel: str,
    ylabel: str,
    scale: float = 1.0,
    reference: float | None = None,
    reference_label: str = "",
) -> str:
    """Estimates with intervals, one row per label (long labels stay readable: they are on the y axis)."""
    with plt.rc_context(RC):
        height = 0.9 + 0.32 * max(1, len(labels))
        fig, ax = plt.subplots(figsize=(WIDTH, height))
        y = np.arange(len(labels))[::-1]
        est, lo, hi = (_finite(v) * scale for v in (estimate, lower, upper))
        ok = ~np.isnan(est)
        err = np.vstack([np.where(np.isnan(lo), 0, est - lo), np.where(np.isnan(hi), 0, hi - est)])
        ax.axvline(0, color=GREY, lw=0.8)
        if reference is not None:
            ax.axvline(reference * scale, color=RED, lw=0.9, ls="--", label=reference_label or None)
        ax.errorbar(est[ok], y[ok], xerr=err[:, ok], fmt="o", ms=4, lw=1, color=BLUE, ecolor="#7f9fbf")
        ax.set_yticks(y, list(labels), fontsize=9)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left", fontsize=11)
        if reference is not None and reference_label:
            ax.legend(frameon=False, fontsize=8, loc="lower right")
        return svg(fig, name=name)


def forest_panels(
    labels: Sequence[str],
    panels: Sequence[
        tuple[str, Sequence[float | None], Sequence[float | None], Sequence[float | None], str, float]
    ],
    /,
    *,
    name: str,
    ylabel: str,
) -> str:
    """Side-by-side forest panels sharing the rows.

    ``(title, estimates, lower, upper, xlabel, scale)`` each.
    """
    with plt.rc_context(RC):
        height = 1.1 + 0.32 * max(1, len(labels))
        fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, height), sharey=True, squeeze=False)
        y = np.arange(len(labels))[::-1]
        for ax, (title, estimate, lower, upper, xlabel, scale) in zip(axes[0], panels, strict=True):
            est, lo, hi = (_finite(v) * scale for v in (estimate, lower, upper))
            ok = ~np.isnan(est)
            err = np.vstack([np.where(np.isnan(lo), 0, est - lo), np.where(np.isnan(hi), 0, hi - est)])
            ax.axvline(0, color=GREY, lw=0.8)
            ax.errorbar(est[ok], y[ok], xerr=err[:, ok], fmt="o", ms=4, lw=1, color=BLUE, ecolor="#7f9fbf")
            ax.set_title(title, loc="left", fontsize=9.5)
            ax.set_xlabel(xlabel, fontsize=9)
            ax.tick_params(axis="x", labelsize=8)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        first = axes[0][0]
        first.set_yticks(y, list(labels), fontsize=9)
        first.set_ylim(-0.7, len(labels) - 0.3)
        first.set_ylabel(ylabel)
        fig.tight_layout()
        return svg(fig, name=name)


def coefficients(
    times: Sequence[int],
    estimate: Sequence[float | None],
    lower: Sequence[float | None],
    upper: Sequence[float | None],
    /,
    *,
    name: str,
    title: str,
    xlabel: str,
    ylabel: str,
    scale: float = 1.0,
    marked: int | None = None,
    marked_label: str = "",
) -> str:
    """Effects by event period with 95 % intervals (the staggered design's dynamic aggregation)."""
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
        x = np.asarray(times, dtype=float)
        y, lo, hi = (_finite(v) * scale for v in (estimate, lower, upper))
        ok = ~np.isnan(y)
        err = np.vstack([np.where(np.isnan(lo), 0, y - lo), np.where(np.isnan(hi), 0, hi - y)])
        ax.axhline(0, color=GREY, lw=0.8)
        ax.axvline(-0.5, color=GREY, lw=0.8, ls=":")
        ax.errorbar(x[ok], y[ok], yerr=err[:, ok], fmt="o", ms=3.5, lw=0.9, color=BLUE, ecolor="#7f9fbf")
        if marked is not None and marked in set(times):
            at = list(times).index(marked)
            if ok[at]:
                ax.plot([marked], [y[at]], "D", ms=6, mfc="white", mec=RED, mew=1.5, label=marked_label)
                ax.legend(frameon=False, fontsize=8, loc="upper left")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, nbins=14))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left", fontsize=11)
        return svg(fig, name=name)


def love(
    covariates: Sequence[str],
    before: Sequence[float | None],
    after: Sequence[float | None],
    /,
    *,
    name: str,
    threshold: float = 0.1,
) -> str:
    """|Standardised mean difference| before and after matching, one row per covariate."""
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(WIDTH, 0.9 + 0.24 * max(1, len(covariates))))
        y = np.arange(len(covariates))[::-1]
        ax.scatter(np.abs(_finite(before)), y, s=16, color=GREY, label="before matching")
        ax.scatter(np.abs(_finite(after)), y, s=16, color=BLUE, label="after matching")
        ax.axvline(threshold, color=RED, lw=0.8, ls="--", label=f"|SMD| = {threshold:g}")
        ax.set_yticks(y, list(covariates), fontsize=8)
        ax.set_ylim(-0.7, len(covariates) - 0.3)
        ax.set_xlabel("|standardised mean difference| (participants vs comparison persons)")
        ax.set_ylabel("covariate")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
        return svg(fig, name=name)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: np.ndarray,
    /,
    *,
    name: str,
    title: str,
    xlabel: str,
    ylabel: str,
    colour_label: str,
    scale: float = 1.0,
) -> str:
    """Return a rows x columns grid of effects.

    (missing cells blank), a diverging colour scale centred on 0.
    """
    shown = np.asarray(values, dtype=float) * scale
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(WIDTH, 1.4 + 0.26 * max(1, len(rows))))
        finite = shown[np.isfinite(shown)]
        bound = float(np.max(np.abs(finite))) if finite.size else 1.0
        image = ax.imshow(
            shown, cmap="RdBu", vmin=-bound or -1, vmax=bound or 1, aspect="auto", interpolation="nearest"
        )
        step_y = max(1, math.ceil(len(rows) / 24))
        ax.set_yticks(range(0, len(rows), step_y), list(rows)[::step_y], fontsize=8)
        step_x = max(1, math.ceil(len(columns) / 12))
        ax.set_xticks(
            range(0, len(columns), step_x),
            list(columns)[::step_x],
            fontsize=8,
            rotation=45,
            ha="right",
            rotation_mode="anchor",
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left", fontsize=11)
        bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02)
        bar.set_label(colour_label)
        return svg(fig, name=name)


def honest(
    m_bars: Sequence[float | None],
    lower: Sequence[float | None],
    upper: Sequence[float | None],
    /,
    *,
    name: str,
    title: str,
    ylabel: str,
    scale: float = 1.0,
) -> str:
    """Robust 95 % intervals by M-bar (the conventional interval first), as HonestDiD plots them."""
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(WIDTH, 3.0))
        labels = ["conventional" if m is None else f"M̄ = {m:g}" for m in m_bars]
        x = np.arange(len(labels))
        lo, hi = _finite(lower) * scale, _finite(upper) * scale
        for i in range(len(labels)):
            if np.isfinite(lo[i]) and np.isfinite(hi[i]):
                colour = GREY if m_bars[i] is None else BLUE
                ax.plot([x[i], x[i]], [lo[i], hi[i]], lw=3, color=colour, solid_capstyle="butt")
        ax.axhline(0, color=RED, lw=0.8, ls="--")
        ax.set_xticks(x, labels)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_xlabel("how far the post-period trend may differ (M̄: times the largest pre-period change)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left", fontsize=11)
        return svg(fig, name=name)


def bars(
    groups: Sequence[str],
    series: dict[str, tuple[Sequence[float | None], Sequence[float | None], Sequence[float | None]]],
    /,
    *,
    name: str,
    title: str,
    xlabel: str,
    ylabel: str,
) -> str:
    """Return grouped bars with 95 % intervals: ``series`` maps a label to.

    (estimates, lower, upper) per group.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
        width = 0.8 / max(1, len(series))
        for j, (label, (est, lo, hi)) in enumerate(series.items()):
            e, a, b = _finite(est), _finite(lo), _finite(hi)
            xs = np.arange(len(groups)) + (j - (len(series) - 1) / 2) * width
            ax.bar(
                xs,
                np.nan_to_num(e),
                width=width,
                label=label,
                yerr=np.vstack([np.nan_to_num(e - a), np.nan_to_num(b - e)]),
                capsize=2,
            )
        ax.axhline(0, color=GREY, lw=0.8)
        ax.set_xticks(range(len(groups)), list(groups))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left", fontsize=11)
        ax.legend(
            frameon=False, fontsize=8, ncol=len(series), loc="upper center", bbox_to_anchor=(0.5, -0.18)
        )
        return svg(fig, name=name)


def _signed(n: int) -> str:
    return f"\u2212{abs(n)}" if n < 0 else str(n)


def _span(a: int, b: int) -> str:
    return f"{_signed(a)} to {_signed(b)}" if min(a, b) < 0 else f"{a}\u2013{b}"
