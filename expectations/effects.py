"""Suites for the effects group: covariate balance after matching and sanity of the estimate tables."""

from __future__ import annotations

from expectations import names
from expectations.adapter import Gx, Suite

#: The usual bar for a standardised mean difference after matching.
MAX_ABS_SMD = 0.1


def balance_suites(*, column: str = "smd_after", max_abs: float = MAX_ABS_SMD) -> list[Suite]:
    """|SMD| after matching below ``max_abs`` on every covariate (a warning: the report shows balance)."""
    return [
        Suite(
            name=names.BALANCE_AFTER_MATCHING,
            expectations=[
                Gx("ExpectColumnValuesToNotBeNull", column=column),
                Gx(
                    "ExpectColumnValuesToBeBetween",
                    column=column,
                    min_value=-max_abs,
                    max_value=max_abs,
                    strict_min=True,
                    strict_max=True,
                ),
            ],
            description=f"Every covariate has |standardised mean difference| < {max_abs} after matching.",
        )
    ]


def estimate_suites(name: str, /, *, estimate: str = "estimate", blocking: bool = True) -> list[Suite]:
    """Sanity of an estimates table: ``se >= 0`` and ``ci_lower <= estimate <= ci_upper``.

    ``se`` is 0 for an outcome that is constant in the window.

    Parameters
    ----------
    name
        Check name (a constant from :mod:`expectations.names`).
    estimate
        The point-estimate column (``"estimate"`` in the DiD table, ``"att"`` in ATT(g,t)).
    blocking
        A broken interval is a computational error: by default no report is built from it.
    """
    return [
        Suite(
            name=name,
            expectations=[
                Gx("ExpectTableRowCountToBeBetween", min_value=1),
                Gx("ExpectColumnValuesToBeBetween", column="se", min_value=0),
                Gx(
                    "ExpectColumnPairValuesAToBeGreaterThanB",
                    column_A=estimate,
                    column_B="ci_lower",
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                ),
                Gx(
                    "ExpectColumnPairValuesAToBeGreaterThanB",
                    column_A="ci_upper",
                    column_B=estimate,
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                ),
            ],
            blocking=blocking,
            description=f"Standard errors are non-negative and ci_lower <= {estimate} <= ci_upper.",
        )
    ]


BALANCE = balance_suites()
"""Suites of ``balance``."""

ESTIMATES = estimate_suites(names.ESTIMATES_SANE, estimate="estimate")
"""Suites of ``did_estimates``."""

GROUP_TIME = estimate_suites(names.GROUP_TIME_SANE, estimate="att")
"""Suites of ``group_time_att``."""
