"""Who is in each estimate: a CONSORT-style sample flow, and the unmatched compared with the matched.

From the rows the sites sent to the persons behind each design's estimate, every step says how many were
kept and why the others were not::

    course rows received (all file versions)
      -> rows in current files            (files replaced by a corrected resubmission)
      -> valid rows                       (quarantined: one row per reason; exact duplicates)
      -> courses                          (repeat reports of a course counted once: a consolidation)
      -> persons with a course            (later courses of the same person: the first one counts)
      -> linked to the registers          (not found in the register key)
         note: with / without a recorded transition in the month before the start
      -> matched                          (no comparison within the caliper, ...: the matching's reasons)
      -> n per design (and per outcome when they differ), each from its base stage

:func:`sample_flow` returns the table (:class:`SampleFlow`) and :func:`render_sample_flow_svg` draws it as
boxes and arrows. The drawing reads every number from the table it is given, so the report passes the
table *after* disclosure control (counts may then be text such as ``"<5"`` or missing).

The comparison (:attr:`SampleFlow.comparison`) sets the unmatched participants beside the matched ones on
what the report knows about them (sex, age, sub-target group, site, start year, completion, transition,
pre-period outcomes): with it a reader can judge what the matched estimand (the effect on the matched
participants) leaves out. It carries numerators and denominators, for the disclosure layer to control.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from analysis.publish.labels import Labels, event_month_label, format_number, window_label
from analysis.schema import EXIT_COLUMNS, HEADLINE_OUTCOMES

#: Short phrases for the quarantine reasons (``analysis.schema.QUARANTINE_REASONS``), for researchers.
QUARANTINE_PHRASES: dict[str, str] = {
    "missing_required_field": "CPR number, start date or delmålgruppe missing",
    "cpr_wrong_length": "CPR number not 10 digits",
    "cpr_invalid_date": "CPR number without a valid birth date",
    "date_unparseable": "a date that could not be read",
    "end_before_start": "end date before start date",
    "start_in_future": "start after the reported quarter",
    "course_too_long": "course longer than a CTI course can last",
    "unknown_delmaalgruppe": "delmålgruppe not on the code list at the start date",
    "completed_unparseable": "completion neither yes nor no",
    "duplicate_in_file": "same person and start twice in one file, different content",
    "not_a_data_row": "a totals line, not a course",
}

#: Which stage each design's participants are drawn from (its n is compared with that stage's).
DESIGN_BASE: dict[str, str] = {
    "matched_did": "matched",
    "staggered_att": "matched",
    "naive_before_after": "linked",
}

#: The flow table's columns a reader sees (the others structure the figure).
PUBLISHED_COLUMNS = ("stage", "n", "excluded", "reason", "unit", "n_controls")

FLOW_SCHEMA = pl.Schema(
    {
        "step": pl.Int64,
        "kind": pl.String,
        "stage": pl.String,
        "n": pl.Int64,
        "excluded": pl.Int64,
        "reason": pl.String,
        "unit": pl.String,
        "parent": pl.Int64,
        "n_controls": pl.Int64,
        "design_code": pl.String,
        "outcome_code": pl.String,
        "code": pl.String,  # what the row counts, for machines and the disclosure declaration
    }
)

COMPARISON_SCHEMA = pl.Schema(
    {
        "attribute": pl.String,
        "dimension": pl.String,
        "level": pl.String,
        "outcome": pl.String,
        "statistic": pl.String,
        "matched_n": pl.Int64,
        "matched_value": pl.Float64,
        "unmatched_n": pl.Int64,
        "unmatched_value": pl.Float64,
        "first_month": pl.Int32,  # the months of a pre-period mean (null for other rows)
        "last_month": pl.Int32,
    }
)


@dataclass(frozen=True, slots=True)
class FlowInputs:
    """The asset frames the flow is counted from (frames may be empty; ``panel``/``quarantine`` optional).

    ``submission_stats``: per received file ``superseded``, ``rows_in``, ``clean``, ``quarantined``,
    ``duplicates``. ``courses``/``linked_courses``: the consolidated courses (``pseudonym``; linked ones with
    ``person_id``, ``start_date``, ``site``, ``delmaalgruppe``, ``completed``, ``sex``, ``birth_date``).
    ``unlinked_participants``: ``pseudonym``. ``matched_units``: ``person_id``, ``treated``.
    ``unmatched_participants``: ``person_id``, ``reason``. ``effect_estimates``: the
    ``analysis.schema.EFFECT_ESTIMATES`` rows. ``panel``: the outcome panel (``person_id``, ``month``, the
    exit columns, the history outcomes), lazy is fine: only participants' rows are read. ``quarantine``:
    the quarantined rows' ``reasons`` (list) or ``reason`` and ``superseded`` (no CPR needed).
    """

    submission_stats: pl.DataFrame
    courses: pl.DataFrame
    linked_courses: pl.DataFrame
    unlinked_participants: pl.DataFrame
    matched_units: pl.DataFrame
    unmatched_participants: pl.DataFrame
    effect_estimates: pl.DataFrame
    panel: pl.LazyFrame | pl.DataFrame | None = None
    quarantine: pl.DataFrame | None = None


@dataclass(frozen=True, slots=True)
class SampleFlow:
    """The flow table (one row per box: stages, exclusions, notes, designs) and the comparison.

    ``table`` columns to publish: ``stage`` (the box's words), ``n`` (kept), ``excluded`` (left out at this
    row), ``reason``, ``unit`` (rows, courses, persons), ``n_controls`` (design rows). Columns that structure
    the flow (for the figure and machines): ``step`` (order), ``kind`` (``stage``, ``excluded``, ``note``,
    ``design``), ``parent`` (the step a row hangs from), ``design_code``/``outcome_code``.
    """

    table: pl.DataFrame
    comparison: pl.DataFrame

    def to_frame(self) -> pl.DataFrame:
        """Return the flow table."""
        return self.table


def _first_courses(linked: pl.DataFrame) -> pl.DataFrame:
    if not linked.height:
        return pl.DataFrame(schema={"person_id": pl.Int64, "start_date": pl.Date})
    return linked.sort("person_id", "start_date").group_by("person_id", maintain_order=True).first()


def _quarantine_reasons(quarantine: pl.DataFrame | None, total: int) -> list[tuple[int, str, str]]:
    """(rows, code, phrase) per first reason of the current quarantined rows, reconciled with ``total``."""
    if quarantine is None or not quarantine.height or not total:
        return [(total, "unknown", "the steward view lists every row and its reason")] if total else []
    rows = quarantine.filter(~pl.col("superseded")) if "superseded" in quarantine.columns else quarantine
    if "reasons" in rows.columns:
        first = rows.select(reason=pl.col("reasons").list.first())
    else:
        first = rows.select(reason=pl.col("reason").str.split(",").list.first().str.strip_chars())
    counts = first.group_by("reason").len().sort("len", "reason", descending=[True, False])
    out = [
        (int(n), r or "none", QUARANTINE_PHRASES.get(r or "", (r or "no reason given").replace("_", " ")))
        for r, n in counts.iter_rows()
    ]
    gap = total - sum(n for n, _, _ in out)
    if gap > 0:
        out.append((gap, "other", "reason not in the quarantine table"))
    return out


def _transitions(
    panel: pl.LazyFrame | pl.DataFrame | None, first: pl.DataFrame, months: tuple[int, int]
) -> pl.DataFrame | None:
    """person_id, transition (any stay exit in months ``months`` relative to the start month)."""
    if panel is None or not first.height:
        return None
    lazy = panel.lazy()
    exits = [c for c in EXIT_COLUMNS.values() if c in lazy.collect_schema().names()]
    if not exits:
        return None
    starts = first.select(pl.col("person_id").cast(pl.Int64), start=pl.col("start_date").dt.truncate("1mo"))
    rows = (
        lazy.select("person_id", "month", *exits)
        .join(starts.lazy(), on="person_id", how="inner", validate="m:1")
        .with_columns(
            offset=(pl.col("month").dt.year() * 12 + pl.col("month").dt.month())
            - (pl.col("start").dt.year() * 12 + pl.col("start").dt.month())
        )
        .filter(pl.col("offset").is_between(*months))
        .group_by("person_id")
        .agg(transition=pl.any_horizontal([pl.col(c).sum() > 0 for c in exits]))
        .collect()
    )
    return (
        starts.select("person_id")
        .join(rows, on="person_id", how="left", validate="1:1")
        .with_columns(pl.col("transition").fill_null(False))
    )


def sample_flow(
    inputs: FlowInputs,
    /,
    *,
    labels: Labels | None = None,
    transition_months: tuple[int, int] = (-1, -1),
    history_outcomes: Sequence[str] = HEADLINE_OUTCOMES,
    history_months: tuple[int, int] = (-12, -1),
    design_base: Mapping[str, str] = DESIGN_BASE,
) -> SampleFlow:
    """Count the sample flow from the pipeline's frames.

    Parameters
    ----------
    inputs
        The frames (:class:`FlowInputs`).
    labels
        Words for designs and outcomes in the design rows (without it those rows say the codes, which
        :func:`analysis.publish.labels.check_labelled` rejects).
    transition_months
        Event months, relative to the start month, in which a stay exit counts as the transition (the
        matching's definition is the month before the start).
    history_outcomes
        Outcomes whose mean over ``history_months`` is compared between matched and unmatched.
    history_months
        The pre-period window of that comparison.
    design_base
        The stage each design's participants come from (``"matched"`` or ``"linked"``).

    Returns
    -------
    SampleFlow
        The flow table and the matched/unmatched comparison.
    """
    rows: list[dict] = []

    def add(
        kind: str,
        stage: str,
        *,
        n: int | None = None,
        excluded: int | None = None,
        reason: str | None = None,
        unit: str,
        parent: int | None = None,
        code: str,
        **extra,
    ) -> int:
        rows.append(
            {
                "step": len(rows) + 1,
                "kind": kind,
                "stage": stage,
                "n": n,
                "excluded": excluded,
                "reason": reason,
                "unit": unit,
                "parent": parent,
                "code": code,
                **extra,
            }
        )
        return len(rows)

    stats = inputs.submission_stats
    counts = {c: 0 for c in ("rows_in", "clean", "quarantined", "duplicates")}
    superseded_rows = 0
    if stats.height:
        current = stats.filter(~pl.col("superseded")) if "superseded" in stats.columns else stats
        counts = {c: int(current[c].cast(pl.Int64).sum()) for c in counts}
        superseded_rows = int(stats["rows_in"].cast(pl.Int64).sum()) - counts["rows_in"]
    received = add(
        "stage",
        "Course rows received (all file versions)",
        n=counts["rows_in"] + superseded_rows,
        unit="rows",
        code="received",
    )
    if superseded_rows:
        add(
            "excluded",
            "Replaced by a corrected file",
            excluded=superseded_rows,
            unit="rows",
            parent=received,
            reason="rows of files the site later resubmitted in corrected form",
            code="superseded",
        )
    current_step = add("stage", "Rows in the current files", n=counts["rows_in"], unit="rows", code="current")
    for n, reason, phrase in _quarantine_reasons(inputs.quarantine, counts["quarantined"]):
        add("excluded", "Quarantined", excluded=n, reason=phrase, unit="rows", parent=current_step,
            code=f"quarantined:{reason}")
    if counts["duplicates"]:
        add(
            "excluded",
            "Exact duplicates",
            excluded=counts["duplicates"],
            unit="rows",
            parent=current_step,
            reason="the same row twice in one file (kept once)",
            code="duplicates",
        )
    valid = add("stage", "Valid rows", n=counts["clean"], unit="rows", code="valid")
    n_courses = inputs.courses.height
    if counts["clean"] > n_courses:
        add(
            "note",
            "Repeat reports",
            excluded=counts["clean"] - n_courses,
            unit="rows",
            parent=valid,
            reason="rows reporting a course already counted (an ongoing course is reported every quarter)",
            code="repeat",
        )
    courses_step = add("stage", "Courses", n=n_courses, unit="courses", code="courses")
    persons = (
        inputs.courses["pseudonym"].n_unique()
        if "pseudonym" in inputs.courses.columns
        else inputs.courses.height
    )
    if n_courses > persons:
        add(
            "note",
            "Later courses",
            excluded=n_courses - persons,
            unit="courses",
            parent=courses_step,
            reason="a second course of the same person: each person's first course is the one evaluated",
            code="later",
        )
    persons_step = add("stage", "Persons with a course", n=persons, unit="persons", code="persons")

    first = _first_courses(inputs.linked_courses)
    linked = first.height
    unlinked = (
        inputs.unlinked_participants["pseudonym"].n_unique() if inputs.unlinked_participants.height else 0
    )
    if unlinked:
        add(
            "excluded",
            "Not linked",
            excluded=unlinked,
            unit="persons",
            parent=persons_step,
            reason="not found in the register key (no register record for the CPR number)",
            code="unlinked",
        )
    if persons - unlinked - linked > 0:
        add(
            "excluded",
            "Not linked",
            excluded=persons - unlinked - linked,
            unit="persons",
            parent=persons_step,
            reason="courses without a linked person for another reason",
            code="unlinked_other",
        )
    linked_step = add("stage", "Linked to the registers", n=linked, unit="persons", code="linked")

    matched_ids = (
        inputs.matched_units.filter(pl.col("treated") == 1)["person_id"].unique()
        if inputs.matched_units.height
        else pl.Series("person_id", [], pl.Int64)
    )
    unmatched = inputs.unmatched_participants
    transitions = _transitions(inputs.panel, first, transition_months)
    if transitions is not None:
        with_t = transitions.filter(pl.col("transition"))["person_id"]
        matched_t = int(with_t.is_in(matched_ids.implode()).sum())
        # every number in its own cell: the disclosure layer controls cells, not sentences
        stage = f"Transition in {_months(transition_months)}"
        add("note", stage, n=with_t.len(), unit="persons", parent=linked_step, code="transition",
            reason="discharged from a shelter, a psychiatric ward or prison")
        add("note", stage, n=matched_t, unit="persons", parent=linked_step, code="transition_matched",
            reason="of them matched")
        add("note", stage, n=linked - with_t.len(), unit="persons", parent=linked_step, code="no_transition",
            reason="no recorded discharge (matched among persons without one)")
    if unmatched.height:
        why = (
            unmatched.group_by("reason")
            .agg(n=pl.col("person_id").n_unique())
            .sort("n", "reason", descending=[True, False])
        )
        for reason, n in why.iter_rows():
            add("excluded", "Not matched", excluded=int(n), reason=reason, unit="persons", parent=linked_step,
                code=f"unmatched:{reason}")
    n_unmatched = unmatched["person_id"].n_unique() if unmatched.height else 0
    if linked - n_unmatched - matched_ids.len() > 0:
        add(
            "excluded",
            "Not matched",
            excluded=linked - n_unmatched - matched_ids.len(),
            unit="persons",
            parent=linked_step,
            reason="not among the matching's participants (no panel rows)",
            code="unmatched_other",
        )
    matched_step = add("stage", "Matched with comparison persons", n=matched_ids.len(), unit="persons",
                       code="matched")

    bases = {"matched": (matched_step, matched_ids.len()), "linked": (linked_step, linked)}
    estimates = inputs.effect_estimates
    overall = (
        estimates.filter((pl.col("dimension") == "all") & (pl.col("level") == "all"))
        if estimates.height
        else estimates
    )
    for design in overall["design"].unique(maintain_order=True).to_list() if overall.height else []:
        part = overall.filter(pl.col("design") == design).sort("outcome")
        base_step, base_n = bases[design_base.get(design, "matched")]
        per_outcome = part["n_treated"].n_unique() > 1
        for row in part.iter_rows(named=True) if per_outcome else part.head(1).iter_rows(named=True):
            n = row["n_treated"]
            name = labels.design(design) if labels is not None else design
            if per_outcome:
                name += ": " + (labels.outcome(row["outcome"]) if labels is not None else row["outcome"])
            missing = base_n - n if n is not None and base_n > n else None
            window = (row["window"] or "").split(" (")[0]
            add(
                "design",
                name,
                n=n,
                excluded=missing,
                unit="persons",
                parent=base_step,
                n_controls=row["n_controls"],
                design_code=design,
                outcome_code=row["outcome"] if per_outcome else None,
                code=f"design:{design}" + (f":{row['outcome']}" if per_outcome else ""),
                reason=(
                    f"not observed over the whole window ({window_label(window)}): started too recently"
                    if missing
                    else None
                ),
            )
    table = pl.DataFrame(rows, schema=FLOW_SCHEMA)
    return SampleFlow(
        table,
        _comparison(
            first, matched_ids, unmatched, transitions, inputs.panel, history_outcomes, history_months
        ),
    )


def _months(window: tuple[int, int]) -> str:
    lo, hi = window
    return event_month_label(lo) if lo == hi else window_label(f"{lo}..{hi}")


def _comparison(
    first: pl.DataFrame,
    matched_ids: pl.Series,
    unmatched: pl.DataFrame,
    transitions: pl.DataFrame | None,
    panel: pl.LazyFrame | pl.DataFrame | None,
    history_outcomes: Sequence[str],
    history_months: tuple[int, int],
) -> pl.DataFrame:
    """Compare matched and unmatched: counts, shares (with numerators) and means (with their n)."""
    if not first.height:
        return pl.DataFrame(schema=COMPARISON_SCHEMA)
    unmatched_ids = unmatched["person_id"].unique() if unmatched.height else pl.Series([], dtype=pl.Int64)
    people = first.with_columns(
        group=pl.when(pl.col("person_id").is_in(matched_ids.implode()))
        .then(pl.lit("matched"))
        .when(pl.col("person_id").is_in(unmatched_ids.implode()))
        .then(pl.lit("unmatched")),
    ).filter(pl.col("group").is_not_null())
    if transitions is not None:
        people = people.join(transitions, on="person_id", how="left", validate="1:1")
    groups = ("matched", "unmatched")
    out: list[dict] = []

    def row(
        attribute: str, statistic: str, values: dict[str, tuple[int | None, float | None]], **codes
    ) -> None:
        out.append(
            {
                "attribute": attribute,
                "statistic": statistic,
                **codes,
                **{f"{g}_n": values.get(g, (0, None))[0] for g in groups},
                **{f"{g}_value": values.get(g, (0, None))[1] for g in groups},
            }
        )

    sizes = {g: people.filter(pl.col("group") == g).height for g in groups}
    row("Persons", "count", {g: (sizes[g], None) for g in groups})

    def share(attribute: str, condition: pl.Expr, **codes) -> None:
        values = {}
        for g in groups:
            part = people.filter(pl.col("group") == g)
            k = int(part.select(condition.fill_null(False).sum()).item()) if part.height else 0
            values[g] = (k, k / part.height if part.height else None)
        row(attribute, "share", values, **codes)

    def mean(attribute: str, expression: pl.Expr, frame: pl.DataFrame, **codes) -> None:
        values = {}
        for g in groups:
            part = frame.filter(pl.col("group") == g).select(v=expression).drop_nulls()
            values[g] = (part.height, float(part["v"].mean()) if part.height else None)
        row(attribute, "mean", values, **codes)

    if "sex" in people.columns:
        share("Women", pl.col("sex") == 2)
    if "birth_date" in people.columns:
        age = (pl.col("start_date") - pl.col("birth_date")).dt.total_days() / 365.25
        mean("Age at start (years)", age, people)
    for dimension in ("delmaalgruppe", "site"):
        if dimension in people.columns:
            for level in sorted(people[dimension].drop_nulls().unique().to_list()):
                share(
                    "Sub-target group" if dimension == "delmaalgruppe" else "Site",
                    pl.col(dimension) == level,
                    dimension=dimension,
                    level=level,
                )
    for year in sorted(people["start_date"].dt.year().unique().to_list()):
        share(
            "Year of start", pl.col("start_date").dt.year() == year, dimension="start_cohort", level=str(year)
        )
    if "completed" in people.columns:
        share("Completed the course", pl.col("completed") == True)  # noqa: E712 (null: ongoing, not completed)
        share("Still in the course", pl.col("completed").is_null())
    if transitions is not None:
        share("With a recorded transition", pl.col("transition"))
    if panel is not None and history_outcomes:
        lazy = panel.lazy()
        names = [o for o in history_outcomes if o in lazy.collect_schema().names()]
        if names:
            starts = people.select("person_id", "group", start=pl.col("start_date").dt.truncate("1mo"))
            history = (
                lazy.select("person_id", "month", *names)
                .join(starts.lazy(), on="person_id", how="inner", validate="m:1")
                .filter(
                    (
                        (pl.col("month").dt.year() * 12 + pl.col("month").dt.month())
                        - (pl.col("start").dt.year() * 12 + pl.col("start").dt.month())
                    ).is_between(*history_months)
                )
                .group_by("person_id", "group")
                .agg(pl.col(n).cast(pl.Float64).mean() for n in names)
                .collect()
            )
            for name in names:
                mean(
                    f"Mean in {window_label(f'{history_months[0]}..{history_months[1]}')}",
                    pl.col(name),
                    history,
                    outcome=name,
                    first_month=history_months[0],
                    last_month=history_months[1],
                )
    return pl.DataFrame(out, schema=COMPARISON_SCHEMA)


# --- the figure --------------------------------------------------------------------------------------------


def _count(value: object) -> str:
    if value is None:
        return "\u2013"  # suppressed or missing: an en dash, never a number the table does not hold
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_number(value, "count")
    return str(value)


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def render_sample_flow_svg(table: pl.DataFrame, /, *, title: str = "Sample flow") -> str:
    """Draw the flow as inline SVG: stages down the middle, exclusions and notes to the right, designs below.

    Every number comes from ``table`` (pass it after disclosure control: ``n``/``excluded`` may be counts,
    text such as ``"<5"``, or missing, drawn as a dash). Self-contained: no script, no external font.
    """
    needed = ("step", "kind", "stage", "n", "excluded", "reason", "parent")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"the flow table lacks {missing}: pass SampleFlow.table (after disclosure control)")
    records = table.sort("step").to_dicts()
    width, box_w, side_w, gap = 960, 360, 400, 22
    main_x, side_x = 40, 40 + 360 + 60
    char = 7.2  # px per character at 12 px sans-serif (for wrapping only)
    parts: list[str] = []
    y = 50
    centre: dict[int, tuple[float, float, float]] = {}  # step -> (x centre, top, bottom) of main boxes

    def box(
        x: float, top: float, w: float, lines: list[str], *, bold_first: bool, dashed: bool = False
    ) -> float:
        h = 18 * len(lines) + 14
        style = ' stroke-dasharray="5 4"' if dashed else ""
        parts.append(
            f'<rect x="{x}" y="{top}" width="{w}" height="{h}" rx="4" fill="#fff" stroke="#333"{style}/>'
        )
        for i, line in enumerate(lines):
            weight = ' font-weight="bold"' if bold_first and i == 0 else ""
            parts.append(f'<text x="{x + 10}" y="{top + 22 + 18 * i}"{weight}>{html.escape(line)}</text>')
        return top + h

    last_bottom = None
    pending_side: list[dict] = []

    def flush_side() -> None:
        """Draw the exclusions and notes since the last stage; rows of one kind and stage share a box."""
        nonlocal y
        groups: list[list[dict]] = []
        for record in pending_side:
            if groups and (groups[-1][0]["stage"], groups[-1][0]["kind"]) == (
                record["stage"],
                record["kind"],
            ):
                groups[-1].append(record)
            else:
                groups.append([record])
        top = y
        wrap = int((side_w - 20) / char)
        for group in groups:
            head = group[0]
            def value(record: dict) -> object:
                return record["excluded"] if record["excluded"] is not None else record["n"]

            if len(group) == 1:
                lines = [f"{head['stage']}: {_count(value(head))}", *_wrap(head["reason"] or "", wrap)]
            else:  # one line per reason, each with its own count (no total the table does not hold)
                lines = [head["stage"]]
                for record in group:
                    lines += _wrap(f"{_count(value(record))}: {record['reason'] or ''}", wrap)
            bottom = box(side_x, top, side_w, lines, bold_first=True, dashed=head["kind"] == "note")
            mid = top + 17
            parts.append(
                f'<line x1="{main_x + box_w / 2}" y1="{mid}" x2="{side_x}" y2="{mid}" stroke="#333" '
                'marker-end="url(#arrow)"/>'
            )
            top = bottom + 10
        if groups:
            y = top + 6
        pending_side.clear()

    designs = [r for r in records if r["kind"] == "design"]
    for record in records:
        if record["kind"] in ("excluded", "note"):
            pending_side.append(record)
            continue
        if record["kind"] != "stage":
            continue
        flush_side()
        lines = [record["stage"], f"n = {_count(record['n'])} {record.get('unit') or ''}".strip()]
        top = y + (gap if last_bottom is not None else 0)
        bottom = box(main_x, top, box_w, lines, bold_first=True)
        if last_bottom is not None:
            parts.append(
                f'<line x1="{main_x + box_w / 2}" y1="{last_bottom}" x2="{main_x + box_w / 2}" y2="{top}" '
                'stroke="#333" marker-end="url(#arrow)"/>'
            )
        centre[record["step"]] = (main_x + box_w / 2, top, bottom)
        last_bottom, y = bottom, bottom
    flush_side()
    last_stage = centre[max(centre)] if centre else None
    if designs:
        y += gap + 8
        column_w = (width - 2 * main_x - 20 * (len(designs) - 1)) / len(designs)
        for i, record in enumerate(designs):
            x = main_x + i * (column_w + 20)
            extra = (
                f"; comparison persons {_count(record.get('n_controls'))}"
                if record.get("n_controls") is not None
                else ""
            )
            lines = [
                *_wrap(record["stage"], int((column_w - 20) / char)),
                f"participants {_count(record['n'])}{extra}",
            ]
            if record["excluded"] is not None:
                lines += _wrap(
                    f"left out {_count(record['excluded'])}: {record['reason'] or ''}",
                    int((column_w - 20) / char),
                )
            source = centre.get(record["parent"])
            top = y
            bottom = box(x, top, column_w, lines, bold_first=False)
            middle = x + column_w / 2
            if source is not None and source == last_stage:  # from the box above: down, across, down
                sx, _, sb = source
                path = f"M {sx} {sb} L {sx} {top - 8} L {middle} {top - 8} L {middle} {top}"
            elif source is not None:  # from an earlier stage: out of its left side, down a rail, across
                sx, st, sb = source
                rail, level = main_x - 16 - 5 * i, top - 16 - 3 * i
                path = (
                    f"M {main_x} {(st + sb) / 2} L {rail} {(st + sb) / 2} L {rail} {level} "
                    f"L {middle} {level} L {middle} {top}"
                )
            if source is not None:
                parts.append(f'<path d="{path}" fill="none" stroke="#333" marker-end="url(#arrow)"/>')
            last_bottom = max(last_bottom or 0, bottom)
        y = last_bottom
    height = int(y + 30)
    head = (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{html.escape(title)}" font-family="sans-serif" font-size="12">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>'
        f"<title>{html.escape(title)}</title>"
        f'<text x="{main_x}" y="28" font-size="15" font-weight="bold">{html.escape(title)}</text>'
    )
    return head + "".join(parts) + "</svg>"
