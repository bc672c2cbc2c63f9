"""Every inbox entry is accounted for, and a CPR in a file name never leaves restricted/."""

import json
import os
from pathlib import Path

import pytest

from analysis.masking import is_masked
from pipelines import inbox
from pipelines.configuration import ConfigDir

SITES = ConfigDir().site_ids()
QUARTERS = ("2024Q1", "2024Q2", "2025Q1")
GOOD = b"CPR;Startdato;Delmaalgruppe\r\n6101901238;01-02-2024;GRL\r\n"


def _drop(root: Path, relative: str, content: bytes = GOOD) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(("relative", "kind"), [
    ("2024Q1/nowhere.csv", "unknown_site"),
    ("2024Q1/aarhus .csv", "unknown_site"),
    ("2025Q5/aarhus.csv", "not_a_quarter_folder"),
    ("misc/aarhus.csv", "not_a_quarter_folder"),
    ("backup_2025Q1/aarhus.csv", "not_a_quarter_folder"),
    ("2023Q4/aarhus.csv", "quarter_out_of_range"),
    ("2031Q1/aarhus.csv", "quarter_out_of_range"),
    ("2024Q1/old/aarhus.csv", "nested_folder"),
    ("2024Q1/aarhus.pdf", "unsupported_type"),
    ("2024Q1/~$aarhus.xlsx", "hidden"),
    ("aarhus.csv", "loose_file"),
])
def test_every_entry_that_is_not_a_submission_is_listed_with_what_to_do(tmp_path: Path, relative: str,
                                                                        kind: str) -> None:
    _drop(tmp_path, "2024Q1/aarhus.csv")
    _drop(tmp_path, relative)
    account = inbox.account(tmp_path, SITES, quarters=QUARTERS)
    assert [(f.quarter, f.site) for f in account.files] == [("2024Q1", "aarhus")]
    [stray] = account.strays
    assert stray.kind == kind and not stray.ingested
    assert stray.reason and stray.action
    frame = account.to_frame()
    assert frame.height == 1 and frame["kind"][0] == kind and frame["action"][0] == stray.action


def test_a_space_after_the_site_id_gets_a_hint() -> None:
    account = inbox.classify([("2024Q1", True), ("2024Q1/aarhus .csv", False)], SITES, quarters=QUARTERS)
    assert "did you mean aarhus.csv" in account.strays[0].reason and "a space" in account.strays[0].reason


def test_a_cpr_in_a_file_name_is_masked_everywhere_outside_restricted(tmp_path: Path) -> None:
    box, archive = tmp_path / "inbox", tmp_path / "restricted" / "received"
    _drop(box, "2024Q1/esbjerg_6701901236.csv")
    account = inbox.account(box, SITES, quarters=QUARTERS)
    [item] = account.files
    assert item.site == "esbjerg" and item.name == "esbjerg_XXXXXXXXXX.csv"
    [note] = account.strays
    assert note.kind == "cpr_in_name" and note.ingested and "6701901236" not in note.entry
    [receipt] = inbox.receive(box, archive, quarter="2024Q1", site="esbjerg", sites=SITES)
    assert receipt.filename == "esbjerg_XXXXXXXXXX.csv"
    stored = json.loads(next(archive.rglob("*.json")).read_text())
    assert stored["filename"] == "esbjerg_XXXXXXXXXX.csv"  # what every later table reads
    assert stored["original_filename"] == "esbjerg_6701901236.csv"  # kept only in restricted/
    assert all(is_masked(str(v)) for v in account.to_frame().row(0))


def test_scan_never_crashes_on_odd_folders(tmp_path: Path) -> None:
    for relative in ("backup_2025Q1/aarhus.csv", "2023Q4/aarhus.csv", "2025Q5/x.csv", "misc/y.csv",
                     "2024Q2/odense.csv"):
        _drop(tmp_path, relative)
    assert [(f.quarter, f.site) for f in inbox.scan(tmp_path, SITES)] == [("2024Q2", "odense")]


def test_a_file_already_received_is_recognised_and_a_redelivered_old_version_is_not(tmp_path: Path) -> None:
    box, archive = tmp_path / "inbox", tmp_path / "archive"
    path = _drop(box, "2024Q1/aarhus.csv")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    [item] = inbox.scan(box, SITES)
    assert not inbox.already_received(archive, item)
    inbox.receive(box, archive, quarter="2024Q1", site="aarhus", sites=SITES)
    assert inbox.already_received(archive, item)
    _drop(box, "2024Q1/aarhus.csv", GOOD + b"7102851236;01-03-2024;GRL\r\n")
    os.utime(path, (1_700_000_100, 1_700_000_100))
    inbox.receive(box, archive, quarter="2024Q1", site="aarhus", sites=SITES)
    _drop(box, "2024Q1/aarhus.csv", GOOD)  # the first version again, delivered after the second
    os.utime(path, (1_700_000_200, 1_700_000_200))
    assert not inbox.already_received(archive, inbox.scan(box, SITES)[0])
