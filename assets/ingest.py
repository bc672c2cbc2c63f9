"""Ingest: raw submission -> validated rows + quarantine -> pseudonymised rows -> consolidated courses.

The first three assets are partitioned by quarter x site, so one unreadable file fails only its own
partition. ``raw_submission`` and ``validated_rows``/``quarantine`` hold raw CPR and live in the restricted
store; from ``pseudonymised_courses`` on there is no CPR anywhere.
"""


from datetime import date, timedelta

import dagster as dg
import polars as pl

from analysis.ingest import courses as course_rules
from analysis.ingest import pseudonym, submissions, validate
from analysis.masking import mask_text
from expectations import ingest as suites
from expectations.adapter import check_results, check_specs
from pipelines import inbox, keys
from pipelines.layout import RESTRICTED
from pipelines.partitions import INGEST_GROUP, QUARTER_DIM, SITE_DIM, SUBMISSIONS, quarter_label
from pipelines.resources import CodeLists, LayoutResource, PseudonymKey
from pipelines.storage import STORE_KEY

RESTRICTED_META = {STORE_KEY: RESTRICTED}
VERSION_COLUMNS = ("sha256", "filename", "received", "version", "superseded")
RECEIVED_SCHEMA = {
    "sha256": pl.String, "filename": pl.String, "received": pl.String, "version": pl.Int32,
    "superseded": pl.Boolean, "size_bytes": pl.Int64, "readable": pl.Boolean, "encoding": pl.String,
    "delimiter": pl.String, "sheet": pl.String, "rows_read": pl.Int64, "blank_lines_skipped": pl.Int64,
    "note": pl.String, "columns": pl.String,
}


def _partition(context: dg.AssetExecutionContext) -> tuple[str, str, date]:
    """(quarter label, site, last day of the quarter) of the running partition."""
    key = context.partition_key.keys_by_dimension
    start = date.fromisoformat(key[QUARTER_DIM])
    end = (date(start.year + (start.month + 2) // 12, (start.month + 2) % 12 + 1, 1)) - timedelta(days=1)
    return quarter_label(key[QUARTER_DIM]), key[SITE_DIM], end


@dg.multi_asset(
    group_name=INGEST_GROUP,
    partitions_def=SUBMISSIONS,
    outs={
        "raw_submission": dg.AssetOut(
            metadata=RESTRICTED_META,
            description="Every received version of one site's quarterly file, read as delivered "
                        "(restricted: raw CPR).",
        ),
        "received_files": dg.AssetOut(
            description="Each received version: file name, size, sha256, when, encoding, rows read (no CPR).",
        ),
    },
    check_specs=check_specs(dg.AssetKey("raw_submission"), suites.RAW_SUBMISSION, partitions_def=SUBMISSIONS),
)
def raw_submission(context: dg.AssetExecutionContext, layout: LayoutResource, code_lists: CodeLists):
    """Read the site's file(s) for the quarter; a file that cannot be read fails only this partition."""
    quarter, site, _ = _partition(context)
    receipts = inbox.receive(layout.inbox, layout.received, quarter=quarter, site=site,
                             sites=code_lists.site_ids())
    if not receipts:
        raise dg.Failure(f"{site} {quarter}: no submission file in {layout.inbox / quarter} "
                         f"(expected {site}.csv or .xlsx)")
    frames, files = [], []
    for version, receipt in enumerate(receipts, start=1):
        latest = version == len(receipts)
        tags = {"sha256": receipt.sha256, "filename": receipt.filename, "received": receipt.received,
                "version": version, "superseded": not latest}
        try:
            raw = submissions.read_submission(receipt.content(), filename=receipt.filename)
        except submissions.SubmissionError as error:
            message = mask_text(str(error))  # the reader never quotes the file; masked all the same
            if latest:  # the file that counts is unreadable: fail this partition with the steward's message
                raise dg.Failure(description=message, metadata={
                    "file": receipt.filename, "sha256": receipt.sha256, "reason": error.reason,
                    **{k: mask_text(v) for k, v in error.details.items()},
                }) from None
            files.append({**tags, "size_bytes": receipt.size_bytes, "readable": False, "note": message})
            continue
        files.append({**tags, "size_bytes": receipt.size_bytes, "readable": True, "encoding": raw.encoding,
                      "delimiter": raw.delimiter, "sheet": raw.sheet, "rows_read": raw.rows.height,
                      "blank_lines_skipped": raw.blank_lines_skipped, "note": "; ".join(raw.notes),
                      "columns": submissions.columns_record(raw)})
        frames.append(raw.rows.with_columns(
            sha256=pl.lit(receipt.sha256), filename=pl.lit(receipt.filename),
            received=pl.lit(receipt.received), version=pl.lit(version, dtype=pl.Int32),
            superseded=pl.lit(not latest),
        ))
    rows = pl.concat(frames, how="diagonal_relaxed")
    received = (pl.DataFrame(files, schema=RECEIVED_SCHEMA)
                .with_columns(quarter=pl.lit(quarter), site=pl.lit(site)))
    yield dg.Output(rows, output_name="raw_submission",
                    metadata={"rows": rows.height, "versions": len(receipts)})
    yield dg.Output(received, output_name="received_files", metadata={"files": received.height})
    yield from check_results(rows, suites.RAW_SUBMISSION, asset_key=dg.AssetKey("raw_submission"))


@dg.multi_asset(
    group_name=INGEST_GROUP,
    partitions_def=SUBMISSIONS,
    outs={
        "validated_rows": dg.AssetOut(
            metadata=RESTRICTED_META,
            description="Clean rows (restricted: raw CPR).",
        ),
        "quarantine": dg.AssetOut(
            metadata=RESTRICTED_META,
            description="Rows a site must correct, with reason codes and a sentence for the steward "
                        "(restricted).",
        ),
        "submission_stats": dg.AssetOut(
            description="Per received file: rows in, clean, quarantined, exact duplicates removed (no CPR).",
        ),
    },
    check_specs=[
        *check_specs(dg.AssetKey("validated_rows"), suites.VALIDATED_ROWS, partitions_def=SUBMISSIONS),
        suites.conservation_spec(dg.AssetKey("validated_rows"), partitions_def=SUBMISSIONS),
    ],
)
def validated_rows(
    context: dg.AssetExecutionContext, raw_submission: pl.DataFrame, received_files: pl.DataFrame,
    code_lists: CodeLists
):
    """Validate every row of every received version; rows in = clean + quarantined + exact duplicates."""
    quarter, site, quarter_end = _partition(context)
    clean, quarantined, stats = [], [], []
    for tags in received_files.filter(pl.col("readable")).select(VERSION_COLUMNS).iter_slices(1):
        version_rows = raw_submission.filter(pl.col("sha256") == tags["sha256"][0])
        result = validate.validate_rows(
            version_rows.drop(VERSION_COLUMNS, strict=False), quarter=quarter, site=site,
            codes=code_lists.table("delmaalgrupper"), today=quarter_end,
        )
        clean.append(result.clean.join(tags, how="cross"))
        quarantined.append(result.quarantine.join(tags, how="cross"))
        stats.append(tags.with_columns(
            quarter=pl.lit(quarter), site=pl.lit(site), rows_in=pl.lit(result.rows_in, pl.Int64),
            clean=pl.lit(result.clean.height, pl.Int64),
            quarantined=pl.lit(result.quarantine.height, pl.Int64),
            duplicates=pl.lit(result.exact_duplicates_removed, pl.Int64),
        ))
    clean_rows = pl.concat(clean, how="diagonal_relaxed")
    quarantine_rows = pl.concat(quarantined, how="diagonal_relaxed")
    per_file = pl.concat(stats)
    counts = {c: int(per_file[c].sum()) for c in ("rows_in", "clean", "quarantined", "duplicates")}
    yield dg.Output(clean_rows, output_name="validated_rows", metadata=counts)
    yield dg.Output(quarantine_rows, output_name="quarantine", metadata={"rows": quarantine_rows.height})
    yield dg.Output(per_file, output_name="submission_stats", metadata={"files": per_file.height})
    yield from check_results(clean_rows, suites.VALIDATED_ROWS, asset_key=dg.AssetKey("validated_rows"))
    yield suites.conservation_check(
        rows_in=counts["rows_in"], clean=counts["clean"], quarantined=counts["quarantined"],
        duplicates=counts["duplicates"], asset_key=dg.AssetKey("validated_rows"),
    )


@dg.asset(
    group_name=INGEST_GROUP,
    partitions_def=SUBMISSIONS,
    check_specs=check_specs(dg.AssetKey("pseudonymised_courses"), suites.PSEUDONYMISED,
                            partitions_def=SUBMISSIONS),
    description="Clean rows with the CPR replaced by a keyed pseudonym (HMAC-SHA256) and key id; no raw CPR.",
    kinds={"polars", "parquet"},
)
def pseudonymised_courses(validated_rows: pl.DataFrame, pseudonym_key: PseudonymKey, layout: LayoutResource):
    """Pseudonymise the clean rows; sex and birth date were derived from the CPR before it is dropped.

    A key whose id differs from the data directory's stops the partition before anything is written.
    """
    try:
        secret, key_id = pseudonym_key.for_data(layout.value)
    except keys.KeyRefused as error:
        raise dg.Failure(description=str(error)) from None
    rows = pseudonym.pseudonymise(validated_rows, key=secret, key_id=key_id)
    keys.record(layout.value, key_id)
    yield dg.Output(rows, metadata={"rows": rows.height, "key_id": key_id})
    yield from check_results(rows, suites.PSEUDONYMISED)


@dg.multi_asset(
    group_name=INGEST_GROUP,
    outs={
        "courses": dg.AssetOut(description="One record per person and course across all quarters."),
        "course_conflicts": dg.AssetOut(
            description="Overlaps and changed start dates for stewards (not resolved).",
        ),
        "submission_log": dg.AssetOut(
            description="Every received file: when, sha256, and whether superseded.",
        ),
    },
    check_specs=check_specs(dg.AssetKey("courses"), suites.COURSES),
)
def courses(pseudonymised_courses: pl.DataFrame, received_files: pl.DataFrame):
    """Consolidate all quarters: resubmissions supersede, ongoing-then-ended is one course, flag conflicts."""
    try:
        result = course_rules.consolidate_courses(pseudonymised_courses, received=received_files)
    except ValueError as error:  # e.g. partitions pseudonymised with two keys
        raise dg.Failure(description=str(error)) from None
    yield dg.Output(result.courses, output_name="courses", metadata={"courses": result.courses.height})
    yield dg.Output(result.conflicts, output_name="course_conflicts",
                    metadata={"conflicts": result.conflicts.height})
    yield dg.Output(result.submission_log, output_name="submission_log",
                    metadata={"files": result.submission_log.height})
    yield from check_results(result.courses, suites.COURSES, asset_key=dg.AssetKey("courses"))


SUBMISSION_ASSETS = [raw_submission, validated_rows, pseudonymised_courses]
CONSOLIDATION_ASSETS = [courses]
assets = [*SUBMISSION_ASSETS, *CONSOLIDATION_ASSETS]
