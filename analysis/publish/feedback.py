"""Feedback a site can act on, remembered from round to round.

A site's feedback *round* starts when its file for a new quarter arrives and lasts until its next quarter's
file arrives; corrections received in between belong to the round. In each round the pipeline lists *items*:
a quarantined row, a file-level problem said once however many rows and quarters it touches (a totals row, a
missing column), a course conflict, a course whose CPR is not in the population register, a file that could
not be read. Each item has a fingerprint that holds no CPR (an HMAC with the pseudonymisation key over the
row's content, or over the pseudonym-based course id), so the next round can tell what is new, what is still
outstanding and since which round, and what was corrected: a corrected row is gone when the site resends.

The memory (:data:`STATE_SCHEMA`) keeps one row per site, round and item, with its status. Rounds before a
site's last remembered round stay as they were (what the site was told); the last remembered round and every
later one are computed again from the data (the files received before the round ended). A first run over a
history therefore replays the rounds in order and remembers what a pipeline that ran every quarter would
have; a rerun on the same data changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from analysis.ingest import reasons as texts
from analysis.ingest.courses import consolidate_courses, course_ids
from analysis.ingest.submissions import LOCATION_COLUMNS
from analysis.ingest.validate import QUARANTINE_EXTRA
from analysis.masking import mask_digits
from analysis.masking import mask_text as _mask_text
from analysis.publish.monitoring import Targets
from analysis.schema import SUBMISSION_COLUMNS

DANISH, ENGLISH = texts.DANISH, texts.ENGLISH
NEW, OUTSTANDING, RESOLVED = "new", "outstanding", "resolved"
KINDS = ("row", "file", "conflict", "unlinked", "unreadable")
#: The memory of what feedback was produced: one row per site, round and item.
STATE_SCHEMA = pl.Schema({"site": pl.String, "round": pl.String, "kind": pl.String, "fingerprint": pl.String,
                          "quarter": pl.String, "since": pl.String, "status": pl.String})
LOCAL_TIME = ZoneInfo("Europe/Copenhagen")
_MESSAGE = b"cti-feedback:v1:"


# --- configuration ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FeedbackSettings:
    """The ``feedback`` configuration table (contact line, staff language) and the delivery deadline.

    The deadline is the one programme monitoring measures lateness by: ``delivery_days`` of
    ``monitoring_targets.csv`` (per site, else each_site, else programme; see
    ``analysis.publish.monitoring.Targets.bound``), so the cover sheet and the monitoring page agree.
    ``delivery_days`` maps a site to its days after the quarter's end (a site without one: no deadline).
    """

    contact: str = "CTI-datateamet, Social- og Boligstyrelsen"
    staff_language: str = DANISH
    delivery_days: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_tables(cls, table: pl.DataFrame, /, *, targets: Targets | None = None,
                    sites: Sequence[str] = ()) -> FeedbackSettings:
        """Read the ``feedback`` table's ``setting``/``value`` rows and each site's deadline (``targets``)."""
        values = {row["setting"]: (row["value"] or "").strip() for row in table.iter_rows(named=True)}
        language = values.get("staff_language", DANISH) or DANISH
        if language not in texts.LANGUAGES:
            raise ValueError(f"staff_language must be da or en, not {language!r}; fix feedback.csv")
        days = {}
        for site in sites if targets is not None else ():
            high = targets.bound("delivery_days", site)[1]
            if high is not None:
                days[site] = int(high)
        return cls(values.get("contact") or cls.contact, language, days)

    def deadline(self, quarter: str, site: str, /) -> date | None:
        """Return when ``site``'s file for ``quarter`` must have arrived (None: no deadline configured)."""
        days = self.delivery_days.get(site)
        return None if days is None else texts.quarter_bounds(quarter)[1] + timedelta(days=days)


# --- small helpers ------------------------------------------------------------------------------------------

def fingerprint(key: bytes, /, *parts: str | None) -> str:
    """Hash an item with the key (32 hex digits): the same item, the same value; it reveals no CPR."""
    message = "\x1f".join("" if p is None else str(p) for p in parts).encode("utf-8")
    return hmac.new(key, _MESSAGE + message, hashlib.sha256).hexdigest()[:32]


def local_time(stamp: str | None, /, *, language: str) -> str:
    """``2024-10-20T00:00:00+00:00`` -> ``20-10-2024 kl. 02.00`` (Danish time) / ``20-10-2024 02:00``."""
    if not stamp:
        return ""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    local = moment.astimezone(LOCAL_TIME)
    return local.strftime("%d-%m-%Y kl. %H.%M") if language == DANISH else local.strftime("%d-%m-%Y %H:%M")


def quarter_code(label: str | None, /, *, language: str) -> str:
    """``2025Q1`` -> ``2025K1`` (Statistics Denmark's Danish form) or unchanged in English."""
    if not label:
        return ""
    return label.replace("Q", "K") if language == DANISH else label


def _with_columns(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Add each column of ``schema`` that ``frame`` lacks, as null (data written before it existed)."""
    return frame.with_columns(pl.lit(None, t).alias(c) for c, t in schema.items() if c not in frame.columns)


def _plain(values: Mapping) -> dict:
    """``values`` with dates as ISO text, so it can be stored as JSON."""
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()}


def _columns_of(received: pl.DataFrame) -> dict[str, texts.Columns]:
    """Read the site's header and column positions per file (sha256) from ``received_files.columns``."""
    out: dict[str, texts.Columns] = {}
    if "columns" not in received.columns:
        return out
    for sha, value in received.select("sha256", "columns").iter_rows():
        if value:
            parsed = json.loads(value)
            out[sha] = texts.Columns(tuple(parsed.get("header", ())), dict(parsed.get("positions", {})))
    return out


# --- rounds and what was current when -----------------------------------------------------------------------

def feedback_rounds(received: pl.DataFrame, /) -> pl.DataFrame:
    """List each site's rounds: ``site``, ``round`` (quarter), ``starts``, ``ends`` (next start; null: now).

    A round starts with the first receipt that raises the site's latest quarter; a late file for an earlier
    quarter, or a correction, falls into the round running when it arrived.
    """
    if not received.height:
        return pl.DataFrame(schema={"site": pl.String, "round": pl.String, "starts": pl.String,
                                    "ends": pl.String})
    first = received.group_by("site", "quarter").agg(pl.col("received").min())
    first = first.sort("site", "received", "quarter")
    first = first.with_columns(latest=pl.col("quarter").cum_max().over("site"))
    starts = first.filter(pl.col("latest") != pl.col("latest").shift(1).over("site").fill_null(""))
    starts = starts.select("site", round="latest", starts="received").sort("site", "starts")
    return starts.with_columns(ends=pl.col("starts").shift(-1).over("site"))


def _current_versions(received: pl.DataFrame, cutoff: str | None) -> pl.DataFrame:
    """Pick the version of each (site, quarter) file that counted before ``cutoff`` (None: the latest)."""
    seen = received if cutoff is None else received.filter(pl.col("received") < cutoff)
    return seen.sort("received", "version").group_by("site", "quarter").agg(pl.all().last())


# --- items --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FeedbackInputs:
    """Everything feedback is built from (every version of every file, so past rounds can be replayed).

    ``registered`` holds the pseudonyms of ``history`` that are in the population register (``person_index``);
    ``conflicts`` and ``unlinked`` are the current ``course_conflicts`` and ``unlinked_participants`` assets;
    ``unreadable`` lists partitions whose latest file could not be read (``site``, ``quarter``, ``message``
    and optionally ``reason`` and ``details``, a JSON object).
    """

    quarantine: pl.DataFrame
    received: pl.DataFrame
    stats: pl.DataFrame
    history: pl.DataFrame
    registered: pl.DataFrame
    conflicts: pl.DataFrame
    unlinked: pl.DataFrame
    sites: pl.DataFrame
    codes: pl.DataFrame
    unreadable: pl.DataFrame | None = None


@dataclass(frozen=True, slots=True)
class Items:
    """The items of one moment (every frame has ``site``, ``quarter``, ``kind``, ``fingerprint``, details)."""

    rows: pl.DataFrame
    files: pl.DataFrame
    conflicts: pl.DataFrame
    unlinked: pl.DataFrame
    unreadable: pl.DataFrame

    def keys(self) -> pl.DataFrame:
        """``site``, ``quarter``, ``kind``, ``fingerprint`` of every item."""
        frames = [f.select("site", "quarter", "kind", "fingerprint") for f in
                  (self.rows, self.files, self.conflicts, self.unlinked, self.unreadable)]
        return pl.concat(frames, how="vertical_relaxed").unique(maintain_order=True)


_KEY_SCHEMA = {"site": pl.String, "quarter": pl.String, "kind": pl.String, "fingerprint": pl.String}


def _row_items(inputs: FeedbackInputs, current: pl.DataFrame, key: bytes) -> pl.DataFrame:
    quarantine = _with_columns(inputs.quarantine, {**QUARANTINE_EXTRA, "version": pl.Int32})
    mine = quarantine.join(current.select("site", "quarter", "version"), on=["site", "quarter", "version"],
                           how="semi")
    rows = mine.filter(pl.col("reasons").list.set_difference(pl.lit(["not_a_data_row"])).list.len() > 0)
    prints = [fingerprint(key, r["site"], r["quarter"], "row", *(r[c] for c in SUBMISSION_COLUMNS))
              for r in rows.iter_rows(named=True)]
    return rows.with_columns(kind=pl.lit("row"), fingerprint=pl.Series(prints, dtype=pl.String))


def _missing_columns(current: pl.DataFrame) -> pl.DataFrame:
    """List (site, quarter, column) for each current file read without an optional column."""
    found = []
    for row in current.iter_rows(named=True):
        for column in ("end_date", "completed"):
            if f"column {column} missing" in (row.get("note") or ""):
                found.append((row["site"], row["quarter"], column, row["filename"], row.get("columns")))
    return pl.DataFrame(found, schema={"site": pl.String, "quarter": pl.String, "column": pl.String,
                                       "filename": pl.String, "columns": pl.String}, orient="row")


def _file_items(inputs: FeedbackInputs, current: pl.DataFrame, key: bytes) -> pl.DataFrame:
    """List the problems said once per site: a totals row (while the latest file has one), a lost column."""
    schema = {**_KEY_SCHEMA, "problem": pl.String, "column": pl.String, "quarters": pl.List(pl.String),
              "example": pl.String, "filename": pl.String, "columns": pl.String}
    quarantine = _with_columns(inputs.quarantine, {**QUARANTINE_EXTRA, "version": pl.Int32})
    totals = quarantine.join(current.select("site", "quarter", "version"), on=["site", "quarter", "version"],
                             how="semi").filter(pl.col("reasons").list.contains("not_a_data_row"))
    latest = current.group_by("site").agg(pl.col("quarter").max().alias("latest"))
    out = []
    for site, group in totals.sort("quarter", "source_row").group_by("site", maintain_order=True):
        site = site[0]
        newest = latest.filter(pl.col("site") == site)["latest"][0]
        last = group.filter(pl.col("quarter") == newest)
        if not last.height:
            continue  # the latest file has no totals row: corrected, whatever older files hold
        example = last.row(0, named=True)
        where = {c: example[c] for c in ("file_line", "sheet", "sheet_row", "source_row")}
        text = next((example[c] for c in SUBMISSION_COLUMNS if example[c]), "")
        out.append({"site": site, "quarter": newest, "kind": "file",
                    "fingerprint": fingerprint(key, site, "totals"),
                    "problem": "totals", "column": None, "quarters": sorted(set(group["quarter"].to_list())),
                    "example": json.dumps({**where, "text": text}, ensure_ascii=False),
                    "filename": example["filename"], "columns": None})
    missing = _missing_columns(current)
    for (site, column), group in missing.sort("quarter").group_by("site", "column", maintain_order=True):
        newest = group.row(group.height - 1, named=True)
        out.append({"site": site, "quarter": newest["quarter"], "kind": "file",
                    "fingerprint": fingerprint(key, site, "missing_column", column),
                    "problem": "missing_column",
                    "column": column, "quarters": group["quarter"].to_list(), "example": None,
                    "filename": newest["filename"], "columns": newest["columns"]})
    return pl.DataFrame(out, schema=schema)


def _history_as_of(history: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """Keep the pseudonymised rows of the files current then, marked current for ``consolidate_courses``."""
    rows = _with_columns(history, {**LOCATION_COLUMNS, "version": pl.Int32})
    rows = rows.join(current.select("site", "quarter", "version"), on=["site", "quarter", "version"],
                     how="semi")
    return rows.with_columns(superseded=pl.lit(False))


def _course_refs(rows: pl.DataFrame) -> pl.DataFrame:
    """Find, per course id, the row of its latest report: file, quarter, location, dates."""
    if not rows.height:
        return pl.DataFrame(schema={"course_id": pl.String, "ref_site": pl.String, "ref_quarter": pl.String,
                                    "ref_filename": pl.String, **LOCATION_COLUMNS, "source_row": pl.Int64,
                                    "start_date": pl.Date, "end_date": pl.Date, "groups": pl.String})
    rows = rows.with_columns(course_ids(rows))
    groups = rows.sort("quarter").group_by("course_id").agg(
        groups=pl.concat_str(pl.col("quarter"), pl.lit(":"), pl.col("delmaalgruppe"))
        .unique(maintain_order=True).str.join(","))
    latest = rows.sort("quarter", "source_row").group_by("course_id").agg(pl.all().last())
    return latest.join(groups, on="course_id", how="left", validate="1:1").select(
        "course_id", ref_site="site", ref_quarter="quarter", ref_filename="filename", file_line="file_line",
        sheet="sheet", sheet_row="sheet_row", source_row="source_row", start_date="start_date",
        end_date="end_date", groups="groups")


def _conflict_items(conflicts: pl.DataFrame, refs: pl.DataFrame, key: bytes) -> pl.DataFrame:
    """Make one item per conflict and site involved; ``cross_site`` when the courses are at two sites."""
    schema = {**_KEY_SCHEMA, "conflict": pl.String, "cross_site": pl.Boolean, "courses": pl.String}
    out = []
    by_id = {r["course_id"]: r for r in refs.iter_rows(named=True)}
    for row in conflicts.iter_rows(named=True):
        ids = row["course_ids"].split(",")
        courses = [by_id[i] for i in ids if i in by_id]
        if not courses:
            continue
        sites = sorted(set(row["sites"].split(",")))
        quarter = max(c["ref_quarter"] for c in courses)
        for site in sites:
            mine = [c for c in courses if c["ref_site"] == site] if len(sites) > 1 else courses
            out.append({"site": site, "quarter": quarter, "kind": "conflict",
                        "fingerprint": fingerprint(key, "conflict", row["kind"], *sorted(ids)),
                        "conflict": row["kind"], "cross_site": len(sites) > 1,
                        "courses": json.dumps([_plain(c) for c in mine], ensure_ascii=False)})
    return pl.DataFrame(out, schema=schema)


def _unlinked_items(unlinked: pl.DataFrame, refs: pl.DataFrame, key: bytes) -> pl.DataFrame:
    schema = {**_KEY_SCHEMA, "course": pl.String}
    if not unlinked.height:
        return pl.DataFrame(schema=schema)
    rows = unlinked.with_columns(course_ids(unlinked)).join(refs, on="course_id", how="left", validate="1:1")
    out = []
    for row in rows.iter_rows(named=True):
        course = _plain({k: v for k, v in row.items() if k != "pseudonym"})
        out.append({"site": row["site"], "quarter": row["ref_quarter"] or row["first_reported"],
                    "kind": "unlinked",
                    "fingerprint": fingerprint(key, "unlinked", row["course_id"]),
                    "course": json.dumps(course, ensure_ascii=False)})
    return pl.DataFrame(out, schema=schema)


def _unreadable_items(unreadable: pl.DataFrame | None, key: bytes) -> pl.DataFrame:
    schema = {**_KEY_SCHEMA, "message": pl.String, "reason": pl.String, "details": pl.String}
    if unreadable is None or not unreadable.height:
        return pl.DataFrame(schema=schema)
    frame = _with_columns(unreadable, {"reason": pl.String, "details": pl.String})
    return frame.select(
        "site", "quarter", kind=pl.lit("unreadable"),
        fingerprint=pl.Series([fingerprint(key, s, q, "unreadable")
                               for s, q in frame.select("site", "quarter").rows()], dtype=pl.String),
        message="message", reason="reason", details="details",
    )


def items_at(inputs: FeedbackInputs, /, *, key: bytes, cutoff: str | None) -> Items:
    """List the items of every site as they stood just before ``cutoff`` (ISO time; None: now).

    Now, conflicts and unlinked courses are the ``course_conflicts`` and ``unlinked_participants`` assets;
    before, they are recomputed with the same rules from the files current then. Unreadable files are
    known only now (the run storage keeps no history of them).
    """
    received = _with_columns(inputs.received, {"columns": pl.String, "note": pl.String,
                                               "readable": pl.Boolean})
    current = _current_versions(received.filter(pl.col("readable").fill_null(True)), cutoff)
    rows = _row_items(inputs, current, key)
    files = _file_items(inputs, current, key)
    history = _history_as_of(inputs.history, current)
    refs = _course_refs(history)
    if cutoff is None:
        conflicts, unlinked = inputs.conflicts, inputs.unlinked
        unreadable = _unreadable_items(inputs.unreadable, key)
    else:
        consolidated = consolidate_courses(history) if history.height else None
        conflicts = consolidated.conflicts if consolidated else inputs.conflicts.clear()
        courses = consolidated.courses if consolidated else pl.DataFrame(schema={"pseudonym": pl.String,
                                                                                "site": pl.String,
                                                                                "start_date": pl.Date,
                                                                                "first_reported": pl.String})
        unlinked = courses.join(inputs.registered.select("pseudonym"), on="pseudonym", how="anti").select(
            "pseudonym", "site", "start_date", "first_reported")
        unreadable = _unreadable_items(None, key)
    return Items(rows, files, _conflict_items(conflicts, refs, key), _unlinked_items(unlinked, refs, key),
                 unreadable)


# --- the memory ---------------------------------------------------------------------------------------------

def update_state(state: pl.DataFrame, items: pl.DataFrame, /, *, site: str, round_label: str) -> pl.DataFrame:
    """Record ``site``'s items of ``round_label`` against its previous round (replacing any earlier record).

    An item open in the previous round and open now is ``outstanding`` since that item's ``since``; an item
    not open in the previous round is ``new`` (since this round); an item open in the previous round and
    gone now is ``resolved``.
    """
    state = state.filter(~((pl.col("site") == site) & (pl.col("round") == round_label)))
    earlier = state.filter((pl.col("site") == site) & (pl.col("round") < round_label))
    previous = earlier.filter(pl.col("round") == earlier["round"].max()) if earlier.height else earlier
    open_before = previous.filter(pl.col("status") != RESOLVED).select("fingerprint", "since", "quarter",
                                                                        "kind")
    mine = items.filter(pl.col("site") == site).select("kind", "fingerprint", "quarter")
    now = mine.join(open_before.select("fingerprint", "since"), on="fingerprint", how="left", validate="1:1")
    now = now.with_columns(
        status=pl.when(pl.col("since").is_null()).then(pl.lit(NEW)).otherwise(pl.lit(OUTSTANDING)),
        since=pl.col("since").fill_null(pl.lit(round_label)),
    )
    gone = open_before.join(mine, on="fingerprint", how="anti").with_columns(status=pl.lit(RESOLVED))
    recorded = pl.concat([now, gone.select("kind", "fingerprint", "quarter", "since", "status")],
                         how="diagonal")
    recorded = recorded.with_columns(site=pl.lit(site), round=pl.lit(round_label)).select(list(STATE_SCHEMA))
    return pl.concat([state, recorded.cast(STATE_SCHEMA)]).sort("site", "round", "kind", "quarter",
                                                                 "fingerprint")


def remember(previous: pl.DataFrame | None, inputs: FeedbackInputs, /, *,
             key: bytes) -> tuple[pl.DataFrame, Items]:
    """Return the new memory and the current items; rounds from the last remembered one on are recomputed."""
    state = previous if previous is not None else pl.DataFrame(schema=STATE_SCHEMA)
    state = state.select(list(STATE_SCHEMA)).cast(STATE_SCHEMA)
    received = _with_columns(inputs.received, {"readable": pl.Boolean})
    schedule = feedback_rounds(received)
    cache: dict[str | None, Items] = {}

    def at(cutoff: str | None) -> Items:
        if cutoff not in cache:
            cache[cutoff] = items_at(inputs, key=key, cutoff=cutoff)
        return cache[cutoff]

    known_sites = schedule["site"].unique().sort().to_list()
    for site in known_sites:
        mine = schedule.filter(pl.col("site") == site)
        remembered = state.filter(pl.col("site") == site)["round"]
        last = remembered.max() if remembered.len() else None
        for row in mine.iter_rows(named=True):
            if last is not None and row["round"] < last:
                continue
            keys = at(row["ends"]).keys()
            if row["ends"] is not None:  # a finished round: unreadable files cannot be replayed, keep them
                said = state.filter((pl.col("site") == site) & (pl.col("round") == row["round"])
                                    & (pl.col("kind") == "unreadable") & (pl.col("status") != RESOLVED))
                keys = pl.concat([keys, said.select(list(_KEY_SCHEMA))], how="vertical_relaxed")
            state = update_state(state, keys, site=site, round_label=row["round"])
    current = at(None)
    # sites with no readable file yet still hear about an unreadable one
    for site in current.unreadable["site"].unique().to_list():
        if site not in known_sites:
            label = current.unreadable.filter(pl.col("site") == site)["quarter"].max()
            state = update_state(state, current.keys(), site=site, round_label=label)
    return state, current


# --- what the site and the steward see ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Feedback:
    """The current feedback of every site, with status and since (``new``/``outstanding``) on each item.

    ``state`` is what to remember for the next run; ``rounds`` lists every site's rounds
    (:func:`feedback_rounds`).
    """

    rows: pl.DataFrame
    files: pl.DataFrame
    conflicts: pl.DataFrame
    unlinked: pl.DataFrame
    unreadable: pl.DataFrame
    submissions: pl.DataFrame
    overview: pl.DataFrame
    state: pl.DataFrame
    rounds: pl.DataFrame
    columns: Mapping[str, texts.Columns]
    sites: pl.DataFrame
    codes: pl.DataFrame


def quarter_span(labels: list[str], /, *, language: str) -> str:
    """``2024K1–2024K4, 2025K2 og 2025K4``: quarters, consecutive ones as a range."""
    ordered = sorted(set(labels))
    runs: list[list[str]] = []
    for label in ordered:
        if runs and texts.next_quarter(runs[-1][-1]) == label:
            runs[-1].append(label)
        else:
            runs.append([label])
    shown = [quarter_code(r[0], language=language)
             + (f"–{quarter_code(r[-1], language=language)}" if len(r) > 1 else "") for r in runs]
    word = " og " if language == DANISH else " and "
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + word + shown[-1] if shown else ""


def _current_round(state: pl.DataFrame) -> pl.DataFrame:
    latest = state.group_by("site").agg(pl.col("round").max())
    return state.join(latest, on=["site", "round"], how="semi")


def _submissions(inputs: FeedbackInputs) -> pl.DataFrame:
    """List the current file per site and quarter (with counts) and the quarters a site sent nothing."""
    received = _with_columns(inputs.received, {"readable": pl.Boolean, "note": pl.String})
    current = received.filter(~pl.col("superseded")) if "superseded" in received.columns else received
    stats = inputs.stats.select("sha256", "site", "quarter", "version", "rows_in", "clean", "quarantined",
                                "duplicates")
    versions = received.group_by("site", "quarter").agg(versions=pl.len().cast(pl.Int64))
    files = current.join(stats, on=["sha256", "site", "quarter", "version"], how="left", validate="1:1").join(
        versions, on=["site", "quarter"], how="left", validate="1:1").select(
        "site", "quarter", "filename", "received", "rows_in", "clean", "quarantined", "duplicates",
        "versions",
        status=pl.when(pl.col("readable").fill_null(True)).then(pl.lit("ok")).otherwise(pl.lit("unreadable")))
    quarters = files.select("quarter").unique()
    joined = inputs.sites.select("site", joined=pl.col("joined").cast(pl.String))
    joined_quarter = (pl.col("joined").str.slice(0, 4) + pl.lit("Q")
                      + ((pl.col("joined").str.slice(5, 2).cast(pl.Int32) - 1) // 3 + 1).cast(pl.String))
    expected = joined.join(quarters, how="cross").filter(pl.col("quarter") >= joined_quarter)
    missing = expected.join(files, on=["site", "quarter"], how="anti").select("site", "quarter",
                                                                             status=pl.lit("missing"))
    out = pl.concat([files, missing], how="diagonal_relaxed")
    if inputs.unreadable is not None and inputs.unreadable.height:
        failed = inputs.unreadable.select("site", "quarter", failed=pl.lit(True))
        out = out.join(failed, on=["site", "quarter"], how="full", coalesce=True, validate="1:1")
        out = out.with_columns(status=pl.when(pl.col("failed").fill_null(False)).then(pl.lit("unreadable"))
                               .otherwise(pl.col("status"))).drop("failed")
    return out.sort("site", "quarter")


def _attach(frame: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """Add ``status``, ``since`` and ``round`` from the current round of the memory."""
    return frame.join(current.select("site", "fingerprint", "status", "since", "round"),
                      on=["site", "fingerprint"], how="left", validate="m:1")


def build_feedback(inputs: FeedbackInputs, /, *, key: bytes, previous_state: pl.DataFrame | None) -> Feedback:
    """Compute the current feedback and the memory to keep (see the module docstring)."""
    state, items = remember(previous_state, inputs, key=key)
    current = _current_round(state)
    schedule = feedback_rounds(_with_columns(inputs.received, {"readable": pl.Boolean}))
    latest = pl.concat([schedule.select("site", "round"), current.select("site", "round")])
    latest = latest.group_by("site").agg(pl.col("round").max())
    counts = current.group_by("site", "round").agg(
        new=(pl.col("status") == NEW).sum().cast(pl.Int64),
        outstanding=(pl.col("status") == OUTSTANDING).sum().cast(pl.Int64),
        resolved=(pl.col("status") == RESOLVED).sum().cast(pl.Int64),
        oldest=pl.col("since").filter(pl.col("status") == OUTSTANDING).min(),
    )
    sites = inputs.sites.select("site", "name")
    overview = sites.join(latest, on="site", how="left", validate="1:1").join(
        counts, on=["site", "round"], how="left", validate="1:1").with_columns(
        pl.col("new", "outstanding", "resolved").fill_null(0))
    received = _with_columns(inputs.received, {"columns": pl.String})
    return Feedback(
        rows=_attach(items.rows, current), files=_attach(items.files, current),
        conflicts=_attach(items.conflicts, current), unlinked=_attach(items.unlinked, current),
        unreadable=_attach(items.unreadable, current), submissions=_submissions(inputs), overview=overview,
        state=state, rounds=schedule, columns=_columns_of(received), sites=inputs.sites, codes=inputs.codes,
    )


def mask_cpr(value: str | None, /) -> str:
    """Mask every digit (``XXXXXX-XXXX``, ``analysis.masking``), keeping only the shape.

    A steward sees what is wrong without the number.
    """
    return "" if value is None else mask_digits(value)


def mask_text(text: str | None, /) -> str:
    """Text a site wrote with everything CPR-shaped masked: the one rule of ``analysis.masking``."""
    return "" if text is None else _mask_text(text)


def masked(feedback: Feedback, /) -> Feedback:
    """``feedback`` with the text a site wrote besides its values masked too: file names, sheet titles.

    For the general (non-restricted) outputs; :func:`analysis.publish.feedback_text.describe` masks the CPR
    numbers and the messages.
    """
    def text(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
        return frame.with_columns(pl.col(c).map_elements(mask_text, return_dtype=pl.String)
                                  for c in columns if c in frame.columns)

    return replace(
        feedback, rows=text(feedback.rows, ("filename", "sheet")),
        files=text(feedback.files, ("filename", "example", "columns")),
        conflicts=text(feedback.conflicts, ("courses",)), unlinked=text(feedback.unlinked, ("course",)),
        submissions=text(feedback.submissions, ("filename",)),
    )
