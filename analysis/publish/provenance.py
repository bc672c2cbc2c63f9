"""Where the report's data came from: one row per current submission, and the quarters a site sent nothing."""

from __future__ import annotations

import polars as pl


def provenance(stats: pl.DataFrame, received: pl.DataFrame, sites: pl.DataFrame, /, *,
               failures: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per current submission, plus a 'missing' row for each active site without a file in a quarter.

    Parameters
    ----------
    stats, received
        The ``submission_stats`` and ``received_files`` assets (every partition).
    sites
        The ``sites`` configuration table (``site``, ``joined``): a site is expected from its joining quarter.
    failures
        Partitions whose latest file could not be ingested (``quarter``, ``site``, ``message``): the row says
        "failed" with the reason, and any numbers shown are from the last good file.
    """
    files = (
        received.filter(~pl.col("superseded"))
        .join(
            stats.select(
                "sha256", "quarter", "site", "version", "rows_in", "clean", "quarantined", "duplicates"
            ),
            on=["sha256", "quarter", "site", "version"],
            how="left",
            validate="1:1",
        )
        .select(
            "site",
            "quarter",
            file_name="filename",
            received_at="received",
            rows_in="rows_in",
            rows_clean="clean",
            rows_quarantined="quarantined",
            rows_duplicate="duplicates",
            status=pl.when(pl.col("readable")).then(pl.lit("ok")).otherwise(pl.lit("failed")),
            reason="note",
        )
    )
    joined = sites.select("site", joined=pl.col("joined").cast(pl.String))
    quarters = files.select("quarter").unique()
    joined_quarter = (pl.col("joined").str.slice(0, 4) + pl.lit("Q")
                      + ((pl.col("joined").str.slice(5, 2).cast(pl.Int32) - 1) // 3 + 1).cast(pl.String))
    expected = joined.join(quarters, how="cross").filter(pl.col("quarter") >= joined_quarter)
    missing = expected.join(files, on=["site", "quarter"], how="anti").select(
        "site", "quarter", status=pl.lit("missing"), reason=pl.lit("no file received"))
    out = pl.concat([files, missing], how="diagonal_relaxed")
    if failures is not None and failures.height:
        failed = failures.select("site", "quarter", failure=pl.col("message"))
        out = (
            out.join(failed, on=["site", "quarter"], how="full", coalesce=True, validate="1:1")
            .with_columns(
                status=pl.when(pl.col("failure").is_not_null())
                .then(pl.lit("failed"))
                .otherwise(pl.col("status")),
                reason=pl.when(pl.col("failure").is_null())
                .then(pl.col("reason"))
                .when(pl.col("file_name").is_null())
                .then(pl.col("failure"))
                .otherwise(
                    pl.lit("latest file could not be ingested: ")
                    + pl.col("failure")
                    + pl.lit(" (rows shown are from the last good file)")
                ),
            )
            .drop("failure")
        )
    return out.sort("site", "quarter")
