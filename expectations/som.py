"""Checks of the public-budget (SØM) valuation: a complete, dated price table; every priced outcome valued."""

from __future__ import annotations

import dagster as dg

from expectations import names

ASSET = dg.AssetKey("public_budget")

PRICES_SPEC = dg.AssetCheckSpec(
    name=names.SOM_PRICES_COMPLETE,
    asset=ASSET,
    blocking=False,
    description="som_prices.csv is complete and dated: every row has an outcome, a purse, a direction, a "
    "price in DKK, a unit, a price year, a status and a source.",
)
VALUED_SPEC = dg.AssetCheckSpec(
    name=names.SOM_OUTCOMES_VALUED,
    asset=ASSET,
    blocking=False,
    description="Every outcome the price table prices has effect estimates and influence functions this run.",
)
SPECS = [PRICES_SPEC, VALUED_SPEC]


def prices_complete(problems: list[str], /, *, rows: int, statuses: str) -> dg.AssetCheckResult:
    """Fail (ERROR) when a price is missing, undated or unsourced (the valuation is then not computed)."""
    return dg.AssetCheckResult(
        check_name=names.SOM_PRICES_COMPLETE,
        asset_key=ASSET,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "problems": len(problems),
            "first_problems": "; ".join(problems[:10]) or "none",
            "rows": rows,
            "statuses": statuses,
        },
    )


def outcomes_valued(not_valued: dict[str, str], /) -> dg.AssetCheckResult:
    """Warn when a priced outcome could not be valued (its partition failed or has no influence functions)."""
    return dg.AssetCheckResult(
        check_name=names.SOM_OUTCOMES_VALUED,
        asset_key=ASSET,
        passed=not not_valued,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"not_valued": "; ".join(f"{o}: {why}" for o, why in sorted(not_valued.items())) or "none"},
    )
