"""Programme monitoring in the joint publication: its public tables declared for the disclosure layer.

The public monitoring page and the effect report's monitoring section are drawn from the same controlled
publication as the rest of the effect report (:func:`analysis.publish.effect_report.publish`), so the
attacker's audit sees the monitoring's counts together with the report's: the site x quarter flows with
their margins, the programme's stock (open = open before + starts - ended, active = open before + starts,
programme = sum of sites, with every site's stock a hidden quantity that must stay protected), open
courses by phase, ended courses by phase and completion, the sub-target-group mix, the targets, and the
delivery table's quarantine and link rates (means over the rows and participants behind them, which the
provenance tables count too). Courses tie to the sample flow: all courses started = the flow's courses;
the participants of a site, a sub-target group or a start year split into the matched, the unmatched and
the others (later courses, not linked), a hidden remainder per group.

:func:`public_tables` turns the controlled frames back into the page's tables (suppressed cells print "x").
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from analysis.publish.disclosure import (
    Controlled,
    Count,
    Hidden,
    Kind,
    Mean,
    Publication,
    Rules,
    Table,
    control,
)
from analysis.publish.monitoring import PHASES, PROGRAMME, Monitoring, delivery_flags, slipping_sites
from analysis.publish.monitoring_page import PUBLIC, MonitoringTables

#: Flow measures published per site and quarter (``ended_unknown`` only when any course has no flag).
FLOWS = {"new_starts": "S", "ended_completed": "EC", "ended_early": "EE", "ended_unknown": "EU"}
PHASE_LABEL = {
    "phase_1": "phase 1 (months 1-3)",
    "phase_2": "phase 2 (months 4-6)",
    "phase_3": "phase 3 (months 7-9)",
    "beyond_plan": "beyond the planned 9 months",
}
_COMPLETION = {"completed": "EC", "early": "EE", "unknown": "EU"}
TOTAL = "Total"


def comparison_key(side: str, attribute: str, dimension: str, level: str) -> str:
    """Return the key of a share row of the sample flow's comparison.

    ``side`` ``M`` matched, ``U`` unmatched.
    """
    return f"cmp.{side}|{attribute}|{dimension}|{level}"


def _two_way(
    name: str,
    title: str,
    long: pl.DataFrame,
    book,
    *,
    rows: str,
    columns: str,
    value: str,
    prefix: str,
    row_order: list[str],
    column_order: list[str],
    total_row: bool = True,
) -> Table:
    """Return a rows x columns table with its Total row and column, every cell a key ``prefix|row|column``."""
    cells = {(r, c): float(v) for r, c, v in long.select(rows, columns, value).iter_rows()}
    out = []
    for r in [*row_order, TOTAL]:
        record = {rows: r}
        for c in [*column_order, TOTAL]:
            members_r = row_order if r == TOTAL else [r]
            members_c = column_order if c == TOTAL else [c]
            v = sum(cells.get((a, b), 0.0) for a in members_r for b in members_c)
            record[c] = int(v)
            book.values[f"{prefix}|{r}|{c}"] = float(v)
        out.append(record)
    for r in [*row_order, TOTAL]:
        book.identity(
            {f"{prefix}|{r}|{TOTAL}": 1.0, **{f"{prefix}|{r}|{c}": -1.0 for c in column_order}},
            f"{name}: row margin",
        )
    for c in [*column_order, TOTAL]:
        book.identity(
            {f"{prefix}|{TOTAL}|{c}": 1.0, **{f"{prefix}|{r}|{c}": -1.0 for r in row_order}},
            f"{name}: column margin",
        )
    frame = pl.DataFrame(out, schema={rows: pl.String, **{c: pl.Int64 for c in [*column_order, TOTAL]}})
    if not total_row:  # the margin is published in a table of its own (kept longer: its priority)
        frame = frame.filter(pl.col(rows) != TOTAL)
    counts = tuple(
        Count(c, pl.format(f"{prefix}|{{}}|{c}", pl.col(rows)), priority=1 if c == TOTAL else 0)
        for c in [*column_order, TOTAL]
    )
    return Table(name, title, frame, counts=counts)


def _hidden(book, key: str, value: float) -> None:
    if key not in book.values:
        book.values[key] = float(value)
        book.hidden.append(Hidden(key, float(value)))


def declare_monitoring(m: Monitoring, book, flow_keys: dict[str, str], choices: list[str]) -> list[Table]:
    """Declare the public monitoring tables, their identities and hidden quantities in ``book``."""
    sites, quarters = list(m.sites), list(m.quarters)
    flows = m.flows
    by_site = flows.filter(pl.col("site") != PROGRAMME)
    measures = [c for c in FLOWS if c != "ended_unknown" or int(by_site["ended_unknown"].sum())]
    tables = [
        _two_way(
            f"monitoring_{c}",
            f"{c.replace('_', ' ').capitalize()} by site and quarter",
            by_site,
            book,
            rows="site",
            columns="quarter",
            value=c,
            prefix=f"mon.{FLOWS[c]}",
            row_order=sites,
            column_order=quarters,
            total_row=False,
        )
        for c in measures
    ]
    ended = [FLOWS[c] for c in measures if c != "new_starts"]
    # the stock of courses: hidden per site, published for the programme
    values = {(r["site"], r["quarter"]): r for r in flows.iter_rows(named=True)}
    for site in [*sites, TOTAL]:
        source = PROGRAMME if site == TOTAL else site
        for i, q in enumerate(quarters):
            row = values[(source, q)]
            if site != TOTAL:
                _hidden(book, f"mon.open|{site}|{q}", row["open_at_end"])
                _hidden(book, f"mon.active|{site}|{q}", row["active"])
            else:
                book.values[f"mon.open|{site}|{q}"] = float(row["open_at_end"])
                book.values[f"mon.active|{site}|{q}"] = float(row["active"])
            before = {f"mon.open|{site}|{quarters[i - 1]}": -1.0} if i else {}
            book.identity(
                {f"mon.active|{site}|{q}": 1.0, **before, f"mon.S|{site}|{q}": -1.0},
                "active = open before + new starts",
            )
            book.identity(
                {
                    f"mon.open|{site}|{q}": 1.0,
                    f"mon.active|{site}|{q}": -1.0,
                    **{f"mon.{e}|{site}|{q}": 1.0 for e in ended},
                },
                "open = active - ended",
            )
    for q in quarters:
        for stock in ("open", "active"):
            book.identity(
                {f"mon.{stock}|{TOTAL}|{q}": 1.0, **{f"mon.{stock}|{s}|{q}": -1.0 for s in sites}},
                f"the programme's {stock} courses = the sum of the sites'",
            )
    # the programme by quarter (the flow tables' Total row, kept longest) and its stock of courses
    programme = flows.filter(pl.col("site") == PROGRAMME).sort("quarter")
    totals = pl.concat(
        [
            programme.select("quarter", *measures, "active", "open_at_end"),
            pl.DataFrame(
                {"quarter": [TOTAL], **{c: [int(programme[c].sum())] for c in measures}},
                schema={"quarter": pl.String, **{c: pl.Int64 for c in measures}},
            ),
        ],
        how="diagonal_relaxed",
    )
    flow_counts = tuple(
        Count(c, pl.format(f"mon.{FLOWS[c]}|Total|{{}}", pl.col("quarter")), priority=2) for c in measures
    )
    tables.append(
        Table(
            "monitoring_stock",
            "The programme by quarter: new starts, ended and open courses",
            totals,
            counts=(
                *flow_counts,
                Count("active", pl.format("mon.active|Total|{}", pl.col("quarter"))),
                Count("open_at_end", pl.format("mon.open|Total|{}", pl.col("quarter"))),
            ),
        )
    )
    # open courses by phase at the end of the last quarter (the programme), summing to the open courses
    latest = programme.filter(pl.col("quarter") == m.through).row(0, named=True)
    phase = pl.DataFrame(
        {
            "phase": [*PHASES, TOTAL],
            "open_courses": [latest[f"open_{p}"] for p in PHASES] + [latest["open_at_end"]],
        },
        schema={"phase": pl.String, "open_courses": pl.Int64},
    )
    for p in PHASES:
        book.values[f"mon.openphase|{p}"] = float(latest[f"open_{p}"])
    book.identity(
        {f"mon.open|{TOTAL}|{m.through}": 1.0, **{f"mon.openphase|{p}": -1.0 for p in PHASES}},
        "open courses = the sum over phases",
    )
    tables.append(
        Table(
            "monitoring_open_by_phase",
            f"Open courses at the end of {m.through} by phase",
            phase,
            counts=(
                Count(
                    "open_courses",
                    pl.when(pl.col("phase") == TOTAL)
                    .then(pl.lit(f"mon.open|{TOTAL}|{m.through}"))
                    .otherwise(pl.format("mon.openphase|{}", pl.col("phase"))),
                ),
            ),
        )
    )
    # ended courses by the phase they ended in and completion (programme, all quarters)
    ends = (
        m.endings.filter(pl.col("site") == PROGRAMME)
        .group_by("phase", "completion")
        .agg(pl.col("courses").sum())
    )
    completions = [c for c in _COMPLETION if c != "unknown" or "ended_unknown" in measures]
    table = _two_way(
        "monitoring_endings_by_phase",
        "Ended courses by phase and completion, all quarters",
        ends.filter(pl.col("completion").is_in(completions)),
        book,
        rows="phase",
        columns="completion",
        value="courses",
        prefix="mon.end",
        row_order=list(PHASES),
        column_order=completions,
    )
    for c in completions:
        book.identity(
            {f"mon.end|{TOTAL}|{c}": 1.0, f"mon.{_COMPLETION[c]}|{TOTAL}|{TOTAL}": -1.0},
            "ended by completion = the ended-courses tables' grand totals",
        )
    tables.append(table)
    # the sub-target-group mix of new starts, by site (all quarters)
    mix = (
        m.mix.filter(pl.col("site") != PROGRAMME)
        .group_by("delmaalgruppe", "site")
        .agg(pl.col("new_starts").sum())
    )
    groups = sorted(mix["delmaalgruppe"].unique().to_list())
    tables.append(
        _two_way(
            "monitoring_mix",
            "New starts by sub-target group and site, all quarters",
            mix,
            book,
            rows="delmaalgruppe",
            columns="site",
            value="new_starts",
            prefix="mon.mix",
            row_order=groups,
            column_order=sites,
        )
    )
    for s in [*sites, TOTAL]:
        book.identity(
            {f"mon.mix|{TOTAL}|{s}": 1.0, f"mon.S|{s}|{TOTAL}": -1.0},
            "a site's new starts = its sub-target groups'",
        )
    # targets: distinct citizens up to the last quarter
    targets = m.targets.filter(pl.col("quarter") == m.through).select(
        "target",
        "scope",
        "delmaalgruppe",
        "site",
        citizens="value",
        min="min",
        max="max",
        status="status",
        source="source",
    )
    targets = targets.with_columns(_k=pl.format("mon.target|{}|{}", pl.col("target"), pl.col("site")))
    book.note(targets["_k"].to_list(), targets["citizens"].to_list())
    for (_target,), rows in targets.partition_by("target", as_dict=True, maintain_order=True).items():
        group = rows["delmaalgruppe"][0]
        for r in rows.iter_rows(named=True):
            if group and r["site"] in sites:
                book.identity(
                    {r["_k"]: 1.0, f"mon.mix|{group}|{r['site']}": -1.0},
                    "a group's citizens at a site = its new starts there",
                )
            elif group:
                book.identity(
                    {r["_k"]: 1.0, f"mon.mix|{group}|{TOTAL}": -1.0}, "a group's citizens = its new starts"
                )
    tables.append(
        Table(
            "monitoring_targets",
            "Targets: distinct citizens who started a course",
            targets,
            counts=(Count("citizens", pl.col("_k")),),
            internal=("_k", "scope", "delmaalgruppe"),
        )
    )
    tables.append(_delivery(m, book, sites))
    tables.append(
        Table(
            "monitoring_slipping",
            "Sites that slip (files late, missing, unreadable, flagged)",
            slipping_sites(m),
        )
    )
    _link_to_flow(m, book, flow_keys, sites, quarters, groups)
    return tables


def _delivery(m: Monitoring, book, sites: list[str]) -> Table:
    """Per site and expected quarter: file facts, and the quarantine and link rates with the n behind them."""
    d = m.delivery.with_columns(
        _rows=pl.format("rows|{}|{}", pl.col("site"), pl.col("quarter")),
        _quar=pl.format("quar|{}|{}", pl.col("site"), pl.col("quarter")),
        _part=pl.format("mon.part|{}|{}", pl.col("site"), pl.col("quarter")),
        _link=pl.format("mon.linked|{}|{}", pl.col("site"), pl.col("quarter")),
        _kind=pl.lit(str(Kind.BINARY)),
    )
    for r in d.iter_rows(named=True):
        if r["rows_in"] is not None:
            book.note([r["_rows"], r["_quar"]], [r["rows_in"], r["quarantined"]])
        if r["participants"] is not None:
            book.note([r["_part"]], [r["participants"]])
            book.identity(
                {r["_part"]: 1.0, f"mon.S|{r['site']}|{r['quarter']}": -1.0},
                "a quarter's newly reported participants = its new starts",
            )
    # the provenance may count rows by year: a year is the sum of its quarters (rows and quarantined)
    for site in sites:
        part = d.filter((pl.col("site") == site) & pl.col("rows_in").is_not_null())
        years = part.group_by(year=pl.col("quarter").str.slice(0, 4)).agg("_rows", "_quar")
        for year, rows, quarantined in years.iter_rows():
            for total, members, numerator in ((f"rows|{site}|{year}", rows, False),
                                              (f"quar|{site}|{year}", quarantined, True)):
                if total in book.values and book.has(*members):
                    # a quarter's count is not always published (no rate for it): it is then a hidden
                    # quantity the year's total would reveal, protected like any other
                    for key in members:
                        book.hidden.append(Hidden(key, book.values[key], numerator=numerator))
                    book.identity(
                        {total: 1.0, **{k: -1.0 for k in members}}, "a year = the sum of its quarters"
                    )
    return Table(
        "monitoring_delivery",
        "Every expected delivery",
        d,
        counts=(Count("rows_in", pl.col("_rows")), Count("participants", pl.col("_part"))),
        means=(
            Mean("quarantine_rate", "rows_in", "_kind", numerator=pl.col("_quar")),
            Mean("link_rate", "participants", "_kind", numerator=pl.col("_link")),
        ),
        internal=(
            "_rows",
            "_quar",
            "_part",
            "_link",
            "_kind",
            "quarantined",
            "linked",
            "quarantine_target",
            "link_target",
        ),
    )


def _link_to_flow(
    m: Monitoring, book, k: dict[str, str], sites: list[str], quarters: list[str], groups: list[str]
) -> None:
    """Courses = the flow's courses; a site's, group's or year's starters = matched + unmatched + others."""
    if "courses" in k:
        book.identity({f"mon.S|{TOTAL}|{TOTAL}": 1.0, k["courses"]: -1.0}, "courses = new starts")
    if "courses" not in k or "linked" not in k:
        return
    others = f"mon.others|{TOTAL}"
    book.difference(others, k["courses"], k["linked"])  # later courses and the not linked
    splits = [
        ("Site", "site", sites, lambda s: f"mon.S|{s}|{TOTAL}"),
        ("Sub-target group", "delmaalgruppe", groups, lambda g: f"mon.mix|{g}|{TOTAL}"),
    ]
    years = sorted({q[:4] for q in quarters})
    for year in years:
        members = [q for q in quarters if q.startswith(year)]
        key = f"mon.S|{TOTAL}|{year}"
        book.values.setdefault(key, sum(book.values[f"mon.S|{TOTAL}|{q}"] for q in members))
        if key not in {h.key for h in book.hidden}:
            book.hidden.append(Hidden(key, book.values[key]))
        book.identity({key: 1.0, **{f"mon.S|{TOTAL}|{q}": -1.0 for q in members}}, "a year's new starts")
    splits.append(("Year of start", "start_cohort", years, lambda y: f"mon.S|{TOTAL}|{y}"))
    for attribute, dimension, levels, started in splits:
        rest = []
        for level in levels:
            m_key = comparison_key("M", attribute, dimension, level)
            u_key = comparison_key("U", attribute, dimension, level)
            s_key = started(level)
            if not (m_key in book.values and u_key in book.values and s_key in book.values):
                return
            value = book.values[s_key] - book.values[m_key] - book.values[u_key]
            if value < 0:
                return
            name = f"mon.others|{dimension}={level}"
            _hidden(book, name, value)
            book.identity(
                {s_key: 1.0, m_key: -1.0, u_key: -1.0, name: -1.0}, "starters = matched + unmatched + others"
            )
            rest.append(name)
        book.identity({others: 1.0, **{r: -1.0 for r in rest}}, f"the others, by {dimension}")


def _cell(value: object, suppressed: bool) -> str:
    if suppressed:
        return "x"
    if value is None:
        return ""
    return f"{int(value):,}".replace(",", "\u202f")


def _strings(controlled: Controlled, name: str) -> pl.DataFrame:
    """Return a controlled two-way table as the page's strings ("x" where suppressed)."""
    frame, mask = controlled.frames[name], controlled.masks[name]
    first = frame.columns[0]
    out = {first: frame[first].to_list()}
    for c in frame.columns[1:]:
        hidden = mask[c].to_list() if c in mask.columns else [False] * frame.height
        out[c] = [_cell(v, h) for v, h in zip(frame[c].to_list(), hidden, strict=True)]
    return pl.DataFrame(out, schema={c: pl.String for c in frame.columns})


def _with_total_row(table: pl.DataFrame, programme: pl.DataFrame, column: str) -> pl.DataFrame:
    """Return a site x quarter table of strings with the programme's row.

    (from the programme table) below it.
    """
    by_quarter = dict(zip(programme["quarter"].to_list(), programme[column].to_list(), strict=True))
    row = {table.columns[0]: TOTAL, **{c: by_quarter.get(c, "") for c in table.columns[1:]}}
    return pl.concat([table, pl.DataFrame([row], schema=table.schema)])


def public_tables(m: Monitoring, controlled: Controlled, /) -> MonitoringTables:
    """Return the public page's tables from the joint controlled publication.

    Every count controlled there.
    """
    t: dict[str, pl.DataFrame] = {}
    withheld: list[str] = []
    programme = _strings(controlled, "monitoring_stock")
    for c in FLOWS:
        if f"monitoring_{c}" in controlled.frames:
            t[c] = _with_total_row(_strings(controlled, f"monitoring_{c}"), programme, c)
    t["programme_stock"] = programme.filter(pl.col("quarter") != TOTAL).select(
        "quarter", "active", "open_at_end"
    )
    phase = _strings(controlled, "monitoring_open_by_phase")
    t["open_by_phase"] = phase.with_columns(pl.col("phase").replace(PHASE_LABEL))
    ends = _strings(controlled, "monitoring_endings_by_phase")
    t["endings_by_phase"] = ends.with_columns(pl.col("phase").replace(PHASE_LABEL))
    t["mix"] = _strings(controlled, "monitoring_mix")
    targets, tmask = controlled.frames["monitoring_targets"], controlled.masks["monitoring_targets"]
    t["targets"] = targets.with_columns(
        citizens=pl.Series(
            [_cell(v, h) for v, h in zip(targets["citizens"], tmask["citizens"], strict=True)],
            dtype=pl.String,
        )
    )
    d, dmask = controlled.frames["monitoring_delivery"], controlled.masks["monitoring_delivery"]

    def shown(column: str, text) -> pl.Series:  # noqa: ANN001 - "x" where withheld, like every other table
        hidden = dmask[column].to_list() if column in dmask.columns else [False] * d.height
        values = ["x" if h else "" if v is None else text(v) for v, h in zip(d[column], hidden, strict=True)]
        return pl.Series(column, values, dtype=pl.String)

    percent = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    t["delivery"] = d.with_columns(
        quarantine=shown("quarantine_rate", percent).alias("quarantine"),
        link=shown("link_rate", percent).alias("link"),
        rows_in=shown("rows_in", lambda v: str(int(v))),
        participants=shown("participants", lambda v: str(int(v))),
        quarantine_above=shown("quarantine_above", lambda v: "yes" if v else "no"),
        link_below=shown("link_below", lambda v: "yes" if v else "no"),
    )
    t["slipping"] = controlled.frames["monitoring_slipping"]
    for name, what in (
        ("monitoring_stock", "the programme's active or open courses"),
        ("monitoring_mix", "the sub-target-group mix"),
        ("monitoring_endings_by_phase", "ended courses by phase"),
    ):
        cells = controlled.masks[name]
        hidden = int(sum(cells[c].sum() for c in cells.columns)) if cells.width else 0
        if hidden:
            withheld.append(
                f"{hidden} cells of {what} (x: a small count, or one that published totals would give away)"
            )
    return MonitoringTables(PUBLIC, t, tuple(withheld), min_persons=controlled.rules.min_persons)


def controlled_alone(m: Monitoring, /, *, rules: Rules | None = None) -> Controlled:
    """Control the monitoring's tables on their own (no effect report beside them).

    What is published is always the report's joint control (:func:`analysis.publish.effect_report.publish`),
    which adds the report's tables and the ties to its sample flow; this is the same declaration without
    them, for checking the page and its identities on a monitoring alone.
    """
    from analysis.publish.cti_tables import _Book

    book, choices = _Book(), []
    tables = declare_monitoring(m, book, {}, choices)
    publication = Publication(tuple(tables), tuple(book.identities), tuple(book.hidden), tuple(choices))
    return flags_after_control(control(publication, rules=rules or Rules()), m)


#: Delivery flags and the rate each one compares with its target.
RATE_FLAGS = {"quarantine_above": "quarantine_rate", "link_below": "link_rate"}


def flags_after_control(controlled: Controlled, m: Monitoring, /) -> Controlled:
    """Withhold every delivery flag whose rate control withheld, and derive the slipping table from the rest.

    "Quarantine above target" beside a withheld quarantine rate says the hidden rate exceeds the target, a
    bound on the small count that was withheld (with 20 rows in and a 10 % target, 3 or 4 quarantined):
    such a flag is withheld with its rate (null, and named in the row's suppressed cells), left out of the
    row's ``flags`` text, and the slipping table (which counts a site's quality misses and lists its recent
    flags) is computed from the published flags only. A table without quantities of its own adds nothing
    the audit would need to see, so this runs after control and leaves the audit as it was.
    """
    if "monitoring_delivery" not in controlled.frames:
        return controlled
    frame, mask = controlled.frames["monitoring_delivery"], controlled.masks["monitoring_delivery"]
    withheld = {
        flag: mask[rate] if rate in mask.columns else pl.Series(flag, [False] * frame.height)
        for flag, rate in RATE_FLAGS.items()
    }
    frame = frame.with_columns(
        [pl.when(withheld[flag]).then(None).otherwise(pl.col(flag)).alias(flag) for flag in RATE_FLAGS]
    ).with_columns(flags=delivery_flags())
    mask = mask.with_columns(
        [(withheld[flag] & controlled.frames["monitoring_delivery"][flag].is_not_null()).alias(flag)
         for flag in RATE_FLAGS]
    )
    frames, masks = dict(controlled.frames), dict(controlled.masks)
    frames["monitoring_delivery"], masks["monitoring_delivery"] = frame, mask
    if "monitoring_slipping" in frames:
        published = replace(m, delivery=frame)
        columns = frames["monitoring_slipping"].columns
        frames["monitoring_slipping"] = slipping_sites(published).select(columns)
    return replace(controlled, frames=frames, masks=masks)
