"""The steward view asset on three quarters of hand-made deliveries, through the real ingest and linkage.

Each round puts that quarter's files in the inbox (with the delivery time as modification time), ingests
them, consolidates and links, and materialises ``steward_view_html``; the workbooks are then opened with
openpyxl as a site would. The memory lives in ``layout.feedback_state`` between the runs.
"""

import io
import os
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from deliveries import CPRS, UNREGISTERED, deliveries
from language import english_in
from openpyxl import load_workbook

from pipelines.audit import cpr_like
from pipelines.layout import RESTRICTED
from pipelines.partitions import ANALYSIS_JOB, INGEST_JOB, REPORT_JOB, submission_key

LINKAGE = ["courses", "course_conflicts", "submission_log", "person_index", "linked_courses",
           "unlinked_participants", "link_rate"]


def _world_cprs(settings) -> dict[str, str]:
    """Map the fixture's CPR numbers onto persons of the mock world (the unregistered one onto nobody)."""
    key = pl.read_parquet(settings.layout.asset_file(("cpr_key",), store=RESTRICTED))["CPR"].sort().to_list()
    known = set(key)
    spread = key[:: max(1, len(key) // 20)]
    mapping = {fixture: f"{real[:6]}-{real[6:]}" for fixture, real in zip(CPRS, spread, strict=False)}
    absent = next(f"66{m:02d}90-1230" for m in range(1, 13) if f"66{m:02d}901230" not in known)
    return {**mapping, UNREGISTERED: absent}


class Pipeline:
    """One data directory driven round by round."""

    def __init__(self, data: Path) -> None:
        import dagster as dg
        from support import instance_with_sites, settings_for

        from pipelines import world
        from pipelines.definitions import build_definitions

        self.dg = dg
        self.settings = settings_for(data, persons=3_000, seed=5)
        world.generate(self.settings, persons=3_000, seed=5)
        # our deliveries, not the world's
        for path in sorted(self.settings.layout.inbox.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        self.cprs = _world_cprs(self.settings)
        self.deliveries = deliveries(lambda c: self.cprs[c])
        self.instance = instance_with_sites(self.settings)
        self.defs = build_definitions(self.settings)

    def deliver(self, before: str) -> None:
        """Put every delivery received before ``before`` in the inbox, and (re)ingest its partitions."""
        wanted = [d for d in self.deliveries if d[4] < before]
        for quarter, _, filename, content, received in wanted:
            path = self.settings.layout.inbox / quarter / filename
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                stamp = datetime.fromisoformat(received).timestamp()
                os.utime(path, (stamp, stamp))
        ingest = self.defs.resolve_job_def(INGEST_JOB)
        for quarter, site in sorted({(d[0], d[1]) for d in wanted}):
            key = submission_key(quarter, site)
            assert ingest.execute_in_process(instance=self.instance, partition_key=key).success
        keys = [self.dg.AssetKey(k) for k in LINKAGE]
        assert self.defs.resolve_job_def(ANALYSIS_JOB).execute_in_process(
            instance=self.instance, asset_selection=keys).success
        self.report()

    def report(self) -> None:
        assert self.defs.resolve_job_def(REPORT_JOB).execute_in_process(
            instance=self.instance, asset_selection=[self.dg.AssetKey("steward_view_html")]).success

    def workbook(self, site: str, *, restricted: bool = True):
        return load_workbook(self.settings.layout.feedback_dir(restricted=restricted) / f"{site}.xlsx")

    def state(self) -> pl.DataFrame:
        return pl.read_parquet(self.settings.layout.feedback_state)


@pytest.fixture(scope="module")
def rounds(tmp_path_factory: pytest.TempPathFactory):
    pipeline = Pipeline(tmp_path_factory.mktemp("steward") / "data")
    snapshots = []
    for before in ("2024-07-01", "2024-10-01", "2025-01-01"):
        pipeline.deliver(before)
        snapshots.append({site: {r: pipeline.workbook(site, restricted=r) for r in (False, True)}
                          for site in ("aarhus", "odense")} | {"state": pipeline.state()})
    return pipeline, snapshots


def _rows(book) -> list[dict]:
    sheet = book["Rækker der skal rettes"]
    header = [c.value for c in sheet[1]]
    return [dict(zip(header, (c.value for c in row), strict=True)) for row in sheet.iter_rows(min_row=2)
            if row[0].value != "Intet at rette."]


def _cover(book) -> dict[str, str]:
    return {row[0].value: row[1].value for row in book["Forside"].iter_rows(min_row=2)}


def test_new_outstanding_and_corrected_across_three_rounds(rounds) -> None:
    pipeline, snapshots = rounds
    cpr = pipeline.cprs
    by_round = [{r["CPR-nummer"]: (r["Status"], r["Udestående siden"]) for r in _rows(s["aarhus"][True])}
                for s in snapshots]
    assert by_round[0] == {cpr["710285-2346"]: ("Ny", "2024K1"), cpr["620190-1236"]: ("Ny", "2024K1")}
    assert by_round[1] == {cpr["710285-2346"]: ("Udestående", "2024K1"),
                           cpr["620190-1236"]: ("Udestående", "2024K1"), cpr["630190-1237"]: ("Ny", "2024K2")}
    assert by_round[2] == {cpr["620190-1236"]: ("Udestående", "2024K1"),  # the corrected row is gone
                           cpr["630190-1237"]: ("Udestående", "2024K2"), cpr["670190-1231"]: ("Ny", "2024K3")}
    cover = _cover(snapshots[2]["aarhus"][True])
    assert cover["Rettet siden sidste tilbagemelding"] == "1 række og 1 problem med filen – tak"
    assert cover["Frist for næste fil"] == ("Filen for 4. kvartal 2024 skal være modtaget senest "
                                           "30. januar 2025.")
    conflicts = snapshots[2]["aarhus"][True]["Forløbskonflikter"].iter_rows(min_row=2)
    assert [row[0].value for row in conflicts] == ["Udestående"]
    unlinked = [(r[0].value, r[1].value)
                for r in snapshots[2]["odense"][True]["Ikke fundet i CPR"].iter_rows(min_row=2)]
    assert unlinked == [("Udestående", "2024K1")]


def test_the_memory_is_deterministic_on_rerun(rounds) -> None:
    pipeline, snapshots = rounds
    pipeline.report()
    assert pipeline.state().equals(snapshots[2]["state"])
    assert cpr_like("\n".join(str(v) for row in pipeline.state().rows() for v in row)) == []


def _csv_line(content: bytes, cpr: str) -> int:
    lines = content.decode("cp1252").replace("\r\n", "\n").split("\n")
    return next(i for i, line in enumerate(lines, start=1) if line.startswith(cpr + ";"))


def test_row_references_match_the_delivered_files(rounds) -> None:
    pipeline, snapshots = rounds
    contents = {(d[0], d[2]): d[3] for d in pipeline.deliveries}
    checked = 0
    for snapshot in snapshots:
        for row in _rows(snapshot["aarhus"][True]):
            quarter = row["Kvartal"].replace("K", "Q")
            assert row["Linje/række"] == _csv_line(contents[(quarter, row["Fil"])], row["CPR-nummer"]), row
            checked += 1
    assert checked == 8
    (row,) = _rows(snapshots[0]["odense"][True])
    assert (row["Fil"], row["Ark"], row["Linje/række"], row["Celle"]) == ("odense.xlsx", "Forløb", 3, "B3")
    delivered = load_workbook(io.BytesIO(contents[("2024Q1", "odense.xlsx")]))
    assert delivered.sheetnames.index("Forløb") == 1  # the data sheet is not the first
    assert delivered["Forløb"]["A3"].value == row["CPR-nummer"]
    assert delivered["Forløb"]["B3"].value == "2024-02-30"


def test_the_workbooks_are_danish_and_the_general_ones_hold_no_cpr(rounds) -> None:
    pipeline, snapshots = rounds
    allowed = ["aarhus_rettet", "aarhus", "odense", "kofoeds_skole", ".csv", ".xlsx"]
    for snapshot in snapshots:
        for site in ("aarhus", "odense"):
            for restricted, book in snapshot[site].items():
                cells = [c.value for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
                texts = list(book.sheetnames) + [str(v) for v in cells if v is not None]
                assert [w for t in texts for w in english_in(t, allowed=allowed)] == [], (site, restricted)
                if not restricted:
                    assert cpr_like("\n".join(texts)) == []
    sheets = ["Forside", "Rækker der skal rettes", "Forløbskonflikter", "Ikke fundet i CPR", "Fejltyper",
              "Indberetninger"]
    assert snapshots[0]["aarhus"][True].sheetnames == sheets
    page = (pipeline.settings.layout.reports / "steward_view.html").read_text()
    assert "Aktuelt kvartal: 3. kvartal 2024" in page and "<details>" in page
