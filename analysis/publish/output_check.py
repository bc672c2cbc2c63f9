"""The output-checking bundle: a JSON file listing each published output with the checks it passed.

An output checker at the research server reads one file, ``output_checking.json`` beside the report: for every
file that leaves (the HTML report, each table as CSV and parquet) its SHA-256, the table it holds, how many
cells were published and suppressed, and the checks it passed; then the rules and the attacker's audit of all
tables together. PyPI ``acro`` (SACRO) writes a similar ``results.json``, but is not used: see
:data:`ACRO_NOTE`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict

from analysis.publish.disclosure import Controlled

#: Why the bundle is written here and not by acro (evaluated 2026-12-01).
ACRO_NOTE = (
    "acro 0.4.2 (PyPI) resolves with this project's pins (python 3.11, pandas 3, statsmodels 0.15, "
    "numpy 2) and adds lxml and PyYAML, but does not fit: (1) its crosstab with suppress=True fails under "
    "pandas 3 (TypeError in acro.utils.apply_suppression: fillna('') on a float frame); (2) its rules "
    "(threshold, p-ratio, (n, k) dominance, residual dof) are per table and primary only: no secondary "
    "suppression, no identities "
    "across linked tables, so the leaks of issue #19 pass it; (3) it wraps pandas crosstab/pivot_table and "
    "statsmodels ols/logit/probit on microdata, while this report's tables come from its own estimators "
    "(stacked DiD, Callaway & Sant'Anna) in polars. Its default safe_threshold is 10 and its dof "
    "threshold 10; the latter is adopted here as min_dof."
)

#: The checks every published table passes (names an output checker recognises).
CHECKS = (
    "threshold",
    "numerator_threshold",
    "complement",
    "zeros_and_hundreds",
    "dominance_nk",
    "estimate_persons",
    "residual_dof",
    "secondary_suppression_linked_tables",
    "attacker_audit_lp_milp",
)


def output_bundle(published: Controlled, files: Mapping[str, tuple[str | None, bytes]], /) -> dict:
    """Return the bundle as a JSON-ready dict.

    ``files`` maps each published file's path (relative to the reports folder) to the table it holds (None for
    the whole report) and its bytes.
    """
    loss = {t.table: t for t in published.loss}
    audit = published.audit
    verdict = "pass" if audit.passed else "fail"
    outputs = []
    for path, (table, content) in sorted(files.items()):
        entry = {
            "file": path,
            "sha256": hashlib.sha256(content).hexdigest(),
            "table": table,
            "checks": {name: verdict for name in CHECKS},
        }
        if table is not None and table in loss:
            entry |= {
                "cells": loss[table].cells,
                "suppressed": loss[table].suppressed,
                "suppressed_by_own_rule": loss[table].primary,
                "title": published.titles.get(table, table),
            }
        outputs.append(entry)
    narrow = audit.narrowest
    return {
        "bundle": "CTI effect report, output-checking bundle",
        "status": "ready for output checking" if audit.passed else "NOT PUBLISHABLE",
        "rules": asdict(published.rules),
        "rules_text": published.rules.describe(),
        "audit": {
            "passed": audit.passed,
            "cells_checked": audit.cells_checked,
            "cells_suppressed": audit.cells_suppressed,
            "small_quantities_bounded": audit.quantities_checked,
            "narrowest_range": None
            if narrow is None
            else {"quantity": narrow.key, "low": narrow.low, "high": narrow.high, "method": narrow.method},
            "problems": list(audit.problems),
        },
        "choices": list(published.choices),
        "not_for_publication": [
            "steward_view.html",
            "feedback/*.xlsx",
            "feedback/*_rows.csv",
            "restricted/reports/* (exact counts and single rows for data stewards)",
        ],
        "acro": ACRO_NOTE,
        "outputs": outputs,
    }
