"""Ingest throughput: 1 million submission rows from bytes to consolidated courses (prints rows/s).

Usage: ``.venv/bin/python scripts/bench_ingest.py [--rows 1000000]``. Synthetic CPR only (day + 60).
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date, timedelta

import numpy as np
import polars as pl

from analysis.ingest import courses, pseudonym, submissions, validate
from pipelines.configuration import ConfigDir


def synthetic_file(rows: int, seed: int = 0) -> bytes:
    """Return a `;`-separated cp1252 file with Danish headers, mixed date formats and a few bad rows."""
    rng = np.random.default_rng(seed)
    day = rng.integers(61, 89, rows)
    month = rng.integers(1, 13, rows)
    year = rng.integers(50, 99, rows)
    serial = rng.integers(0, 10_000, rows)
    cpr = [f"{d:02d}{m:02d}{y:02d}-{s:04d}" for d, m, y, s in zip(day, month, year, serial, strict=True)]
    start = [date(2024, 1, 1) + timedelta(days=int(x)) for x in rng.integers(0, 80, rows)]
    end = [s + timedelta(days=int(x)) if x < 270 else None
           for s, x in zip(start, rng.integers(150, 300, rows), strict=True)]
    codes = rng.choice(["OVG", "PSY", "FAE", "GRL", "AKB", "XXX"], rows,
                       p=[0.3, 0.25, 0.15, 0.15, 0.149, 0.001])
    lines = ["CPR-nr.;Startdato;Slutdato;Delmålgruppe;Gennemført"]
    for c, s, e, g in zip(cpr, start, end, codes, strict=True):
        lines.append(f"{c};{s:%d-%m-%Y};{'' if e is None else f'{e:%d.%m.%Y}'};{g};{'Ja' if e else ''}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def main() -> None:
    """Time each ingest stage on one large synthetic submission."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    content = synthetic_file(args.rows)
    key = b"benchmark-key-not-secret-0123456789abcdef"
    timings = {}
    t0 = time.perf_counter()
    raw = submissions.read_submission(content, filename="bench.csv")
    timings["parse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = validate.validate_rows(
        raw.rows, quarter="2024Q1", site="bench", codes=ConfigDir().table("delmaalgrupper"),
        today=date(2024, 3, 31)
    )
    timings["validate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = pseudonym.pseudonymise(result.clean, key=key, key_id=pseudonym.key_id(key))
    timings["pseudonymise"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    history = rows.with_columns(
        sha256=pl.lit(raw.sha256), filename=pl.lit("bench.csv"), received=pl.lit("2024-04-15T00:00:00"),
        version=pl.lit(1, pl.Int32), superseded=pl.lit(False),
    )
    consolidated = courses.consolidate_courses(history)
    timings["consolidate"] = time.perf_counter() - t0
    total = sum(timings.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{'stage':<14}{'seconds':>10}{'rows/s':>14}")
    for stage, seconds in timings.items():
        print(f"{stage:<14}{seconds:>10.2f}{args.rows / seconds:>14,.0f}")
    print(f"{'total':<14}{total:>10.2f}{args.rows / total:>14,.0f}")
    print(f"rows in {args.rows:,}: clean {result.clean.height:,}, quarantined {result.quarantine.height:,}, "
          f"duplicates {result.exact_duplicates_removed:,}; courses {consolidated.courses.height:,}; "
          f"peak RSS {peak:.2f} GiB")


if __name__ == "__main__":
    main()
