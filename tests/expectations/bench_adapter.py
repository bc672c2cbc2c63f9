"""Benchmark (not a test) of suite run time on 100k rows.

Run: ``.venv/bin/python tests/expectations/bench_adapter.py [rows]``.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import polars as pl

from analysis.schema import OUTCOME_PANEL
from expectations import adapter, ingest, linkage


def _panel(rows: int, rng: np.random.Generator) -> pl.DataFrame:
    months = pl.date_range(date(2019, 1, 1), date(2026, 4, 1), "1mo", eager=True)
    persons = rows // len(months) + 1
    frame = pl.DataFrame({"person_id": np.repeat(np.arange(persons), len(months))}).head(rows)
    frame = frame.with_columns(month=pl.Series(np.tile(months.to_numpy(), persons)[:rows]))
    columns = {}
    for name, dtype in OUTCOME_PANEL.items():
        if name in ("person_id", "month"):
            continue
        columns[name] = pl.Series(rng.random(rows) if dtype == pl.Float64 else rng.integers(0, 2, rows)).cast(
            dtype
        )
    return frame.with_columns(**columns).cast(dict(OUTCOME_PANEL))


def _courses(rows: int, rng: np.random.Generator) -> pl.DataFrame:
    hexes = [f"{x:064x}" for x in rng.integers(0, 2**62, rows)]
    return pl.DataFrame(
        {
            "pseudonym": hexes,
            "key_id": ["k2024"] * rows,
            "site": rng.choice(["aarhus", "odense", "aalborg"], rows),
            "delmaalgruppe": rng.choice(["1", "2", "3"], rows),
            "source_row": np.arange(rows),
        }
    )


def _time(label: str, frame: pl.DataFrame, suites: list[adapter.Suite]) -> None:
    start = time.perf_counter()
    outcomes = adapter.run_suites(frame, suites)
    elapsed = time.perf_counter() - start
    verdict = "pass" if all(o.success for o in outcomes) else "FAIL"
    print(f"{label:<28} {frame.height:>8} rows {len(frame.columns):>3} cols  {elapsed:6.2f} s  {verdict}")


def main(rows: int = 100_000) -> None:
    """Print run times of the outcome panel and pseudonymised-courses suites."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    adapter._batch_definition()
    print(f"GX import + ephemeral context: {time.perf_counter() - start:.2f} s")
    panel, courses = _panel(rows, rng), _courses(rows, rng)
    start = time.perf_counter()
    adapter.to_pandas(panel)
    print(f"to_pandas(panel):             {time.perf_counter() - start:.2f} s")
    _time("outcome_panel (2 suites)", panel, linkage.OUTCOME_PANEL)
    _time("pseudonymised_courses", courses, ingest.PSEUDONYMISED)
    _time("outcome_panel (2 suites) x2", panel, linkage.OUTCOME_PANEL)


if __name__ == "__main__":
    import sys

    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
