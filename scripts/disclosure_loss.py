"""Information loss of disclosure control: share of published cells suppressed, per table, before and after.

Usage: ``python scripts/disclosure_loss.py NEW_DATA_DIR [REFERENCE_DATA_DIR] [--json OUT]``. "Before" is a
run of the old per-table control (the reference run's ``reports/tables``: row-wise suppression of estimates
on fewer than 5 persons, one two-way provenance table); "after" is the new run's output-checking bundle.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl

#: The columns the old control blanked in a suppressed row, per exported table.
OLD_COLUMNS = {
    "estimates": ("estimate", "se", "ci_lower", "ci_upper", "mde", "pretrend_p", "n_treated", "n_controls"),
    "event_study": ("estimate", "se", "ci_lower", "ci_upper", "n_treated", "n_controls"),
    "matched_means": ("mean", "n"),
    "group_time": ("att", "se", "ci_lower", "ci_upper", "n_treated"),
    "aggregates": ("att", "se", "ci_lower", "ci_upper", "n_treated"),
    "before_after": ("mean", "se", "ci_lower", "ci_upper", "n"),
    "balance": (
        "mean_treated",
        "mean_control_after",
        "smd_before",
        "smd_after",
        "var_ratio_before",
        "var_ratio_after",
    ),
}


def before(tables: Path) -> dict[str, dict]:
    """Cells and suppressed cells of the old exports."""
    out = {}
    for name, columns in OLD_COLUMNS.items():
        path = tables / f"{name}.parquet"
        if not path.exists():
            continue
        frame = pl.read_parquet(path)
        hidden = frame["suppressed"] if "suppressed" in frame.columns else pl.Series([False] * frame.height)
        cols = [c for c in columns if c in frame.columns]
        suppressed = int(hidden.sum()) * len(cols)
        shown = int(sum(frame.filter(~hidden)[c].is_not_null().sum() for c in cols))
        out[name] = {"cells": suppressed + shown, "suppressed": suppressed}
    prov = tables / "provenance.parquet"
    if prov.exists():
        frame = pl.read_parquet(prov).drop("site")
        cells = frame.height * frame.width
        suppressed = int(sum(frame[c].is_in(["<5", "x"]).sum() for c in frame.columns))
        out["provenance (site x quarter)"] = {"cells": cells, "suppressed": suppressed}
    return out


def after(reports: Path) -> dict[str, dict]:
    """Cells and suppressed cells from the output-checking bundle of a new run."""
    bundle = json.loads((reports / "output_checking.json").read_text())
    out = {}
    for entry in bundle["outputs"]:
        if entry.get("table") and entry["file"].endswith(".parquet") and "cells" in entry and entry["cells"]:
            out[entry["table"]] = {
                "cells": entry["cells"],
                "suppressed": entry["suppressed"],
                "by_own_rule": entry["suppressed_by_own_rule"],
            }
    return out | {"_audit": bundle["audit"]}


def main() -> None:
    """Print the loss table of a new run against the reference run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("new", type=Path)
    parser.add_argument("reference", type=Path, nargs="?", default=Path("/work/ref/data_base"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    old, new = before(args.reference / "reports" / "tables"), after(args.new / "reports")
    audit = new.pop("_audit")
    print(f"{'table':28} {'before':>22} {'after':>32}")
    rows = []
    for name in sorted(set(old) | set(new)):
        o, n = old.get(name), new.get(name)
        fmt_o = (
            f"{o['suppressed']}/{o['cells']} ({o['suppressed'] / o['cells']:.1%})"
            if o and o["cells"]
            else "-"
        )
        fmt_n = (
            f"{n['suppressed']}/{n['cells']} ({n['suppressed'] / n['cells']:.1%}; "
            f"own rule {n['by_own_rule']})"
            if n
            else "not published"
        )
        print(f"{name:28} {fmt_o:>22} {fmt_n:>32}")
        rows.append({"table": name, "before": o, "after": n})
    total = lambda d: (sum(v["suppressed"] for v in d.values()), sum(v["cells"] for v in d.values()))  # noqa: E731
    (so, co), (sn, cn) = total(old), total(new)
    print(
        f"{'all tables':28} {f'{so}/{co} ({so / max(1, co):.1%})':>22} "
        f"{f'{sn}/{cn} ({sn / max(1, cn):.1%})':>32}"
    )
    print(
        "audit:",
        {
            k: audit[k]
            for k in (
                "passed",
                "cells_checked",
                "cells_suppressed",
                "small_quantities_bounded",
                "narrowest_range",
            )
        },
    )
    if args.json:
        args.json.write_text(json.dumps({"tables": rows, "audit": audit}, indent=1))


if __name__ == "__main__":
    main()
