"""Attack a run's published tables the way issue #19 did, reading only the files that leave.

Usage: ``python scripts/attack_published.py DATA_DIR``. Reads ``reports/tables/*.parquet`` (nothing else) and
tries the issue's attacks: margins minus cells, rows in = clean + quarantined + duplicates, overall n minus
the other sub-groups, mean x n of 0/1, share and count outcomes, naive n(t) minus matched n(t) and n(t) minus
n(t + 1). Prints every 1..4 it recovers (none expected) and the headline estimates; exits 1 on a hit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

SMALL = {1, 2, 3, 4}
NUMERATOR_OUTCOMES = (
    "employed",
    "enrolled",
    "emergency_contacts",
    "psych_admissions",
    "self_support",
    "unemployment_insurance",
    "social_assistance",
    "sickness_benefit",
    "disability_pension",
)


def _lines(frame: pl.DataFrame, parts: list[str], total: str, label: str) -> list[str]:
    hits = []
    for row in frame.iter_rows(named=True):
        missing = [p for p in parts if row[p] is None]
        if len(missing) == 1 and row[total] is not None:
            value = row[total] - sum(row[p] for p in parts if row[p] is not None)
            if value in SMALL:
                hits.append(f"{label}: {row.get('site', '')} {missing[0]} = {value}")
    return hits


def main() -> int:
    """Run every attack; print hits and the headline."""
    tables = Path(sys.argv[1]) / "reports" / "tables"
    t = {p.stem: pl.read_parquet(p) for p in tables.glob("*.parquet")}
    if "provenance" in t:  # the old two-way table ("<5" and "x" as text)
        old = t.pop("provenance")
        t["rows_by_quarter"] = old.with_columns(
            [
                pl.col(c).str.replace_all(" ", "").cast(pl.Int64, strict=False)
                for c in old.columns
                if c != "site"
            ]
        )
    hits: list[str] = []
    for name in ("rows_by_quarter", "rows_by_year"):
        if name in t:
            grid = t[name]
            periods = [c for c in grid.columns if c not in ("site", "Total", "suppressed")]
            hits += _lines(grid, periods, "Total", f"{name} row margin")
            inner = grid.filter(pl.col("site") != "Total")
            total = grid.filter(pl.col("site") == "Total")
            for p in [*periods, "Total"]:
                values = inner[p].to_list()
                if values.count(None) == 1 and total[p][0] is not None:
                    v = total[p][0] - sum(x for x in values if x is not None)
                    if v in SMALL:
                        hits.append(f"{name} column margin {p} = {v}")
    if "rows_by_status" in t:
        hits += _lines(
            t["rows_by_status"],
            ["rows_clean", "rows_quarantined", "rows_duplicate"],
            "rows_in",
            "rows_in identity",
        )
    est = t.get("estimates", pl.DataFrame())
    if est.height:
        for (outcome, dim), frame in est.filter(pl.col("design") == "matched_did").group_by(
            "outcome", "dimension"
        ):
            if dim == "all":
                continue
            overall = est.filter(
                (pl.col("outcome") == outcome)
                & (pl.col("design") == "matched_did")
                & (pl.col("dimension") == "all")
            )["n_treated"][0]
            parts = frame["n_treated"].to_list()
            if overall is not None and parts.count(None) == 1:
                v = overall - sum(x for x in parts if x is not None)
                if v in SMALL:
                    hits.append(f"sub-group {outcome} {dim} = {v}")
    for name, frame in (
        ("matched_means", t.get("matched_means", pl.DataFrame())),
        ("before_after", t.get("before_after", pl.DataFrame())),
    ):
        if not frame.height:
            continue
        rows = frame.filter(pl.col("outcome").is_in(NUMERATOR_OUTCOMES)).drop_nulls(["mean", "n"])
        for row in rows.iter_rows(named=True):
            s = row["mean"] * row["n"]
            for v in (
                s,
                row["n"] - s
                if "count" not in row["outcome"]
                and "contacts" not in row["outcome"]
                and "admissions" not in row["outcome"]
                else None,
            ):
                if v is not None and 0.5 < v < 4.5 and abs(v - round(v)) < 1e-6:
                    hits.append(
                        f"{name} mean x n {row['outcome']} {row.get('group', '')} "
                        f"e={row['event_time']}: {v:.0f}"
                    )
    if "balance" in t:
        balance = t["balance"]
        if (
            "n_treated" not in balance.columns
        ):  # the old table had none: the staggered n is the matched sample
            n = est.filter((pl.col("design") == "staggered_att") & (pl.col("dimension") == "all"))[
                "n_treated"
            ].max()
            balance = balance.with_columns(n_treated=pl.lit(n))
        for row in balance.drop_nulls(["mean_treated", "n_treated"]).iter_rows(named=True):
            s = row["mean_treated"] * row["n_treated"]
            if 0.5 < s < 4.5 and abs(s - round(s)) < 1e-6:
                hits.append(f"balance {row['covariate']}: {s:.0f}")
    if "before_after" in t and "matched_means" in t:
        naive = t["before_after"].select("outcome", "event_time", p="n")
        matched = (
            t["matched_means"]
            .filter(pl.col("group") == "participants")
            .select("outcome", "event_time", m="n")
        )
        both = naive.join(matched, on=["outcome", "event_time"]).sort("outcome", "event_time")
        for row in both.drop_nulls().iter_rows(named=True):
            if row["p"] - row["m"] in SMALL:
                hits.append(f"naive - matched n at {row['event_time']}: {row['p'] - row['m']}")
        for series, frame in (("naive", naive.rename({"p": "v"})), ("matched", matched.rename({"m": "v"}))):
            f = frame.sort("outcome", "event_time").with_columns(
                nxt=pl.col("v").shift(-1).over("outcome"), e1=pl.col("event_time").shift(-1).over("outcome")
            )
            for row in f.drop_nulls().filter(pl.col("e1") == pl.col("event_time") + 1).iter_rows(named=True):
                if row["v"] - row["nxt"] in SMALL:
                    hits.append(f"{series} n({row['event_time']}) - n(+1) = {row['v'] - row['nxt']}")
    for hit in sorted(set(hits)):
        print("HIT", hit)
    head = est.filter(
        (pl.col("dimension") == "all")
        & pl.col("outcome").is_in(["self_support", "employed", "emergency_contacts"])
    )
    print(
        head.select("outcome", "design", "estimate", "ci_lower", "ci_upper", "n_treated", "n_controls").sort(
            "outcome", "design"
        )
    )
    print(f"{len(set(hits))} small cells recovered")
    return 1 if hits else 0


if __name__ == "__main__":
    raise SystemExit(main())
