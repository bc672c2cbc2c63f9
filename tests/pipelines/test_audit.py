from pathlib import Path

import polars as pl
import pytest

from pipelines.audit import cpr_like, scan_cpr, scan_secret


@pytest.mark.parametrize(
    "text",
    ["cpr 610190-1235 here", "6101901235", "x=101901235;", "[\"6101901235\"]", "711290-4321"],
)
def test_cpr_shaped_strings_are_found(text: str) -> None:
    assert cpr_like(text)


@pytest.mark.parametrize(
    "text",
    [
        "1732406400.123",  # an epoch timestamp: day 17, month 32 is no date
        "a1b2c3d4e5f6a7b8c9d06101901235ff",  # digits inside a hex digest
        "2024-01-01",
        "person 123456",
        "17640000000000000000",
    ],
)
def test_ordinary_numbers_are_not_cpr(text: str) -> None:
    assert cpr_like(text) == []


def test_scan_opens_parquet_and_skips_restricted(tmp_path: Path) -> None:
    pl.DataFrame({"x": ["ok", "6101901235"]}).write_parquet(tmp_path / "leak.parquet")
    (tmp_path / "restricted").mkdir()
    pl.DataFrame({"cpr": ["6101901235"]}).write_parquet(tmp_path / "restricted" / "q.parquet")
    (tmp_path / "fine.json").write_text('{"rows": 12}')
    findings = scan_cpr(tmp_path)
    assert [str(f.path) for f in findings] == ["leak.parquet"]
    assert "6101901235" not in repr(findings)  # findings never echo the value


def test_secret_scan(tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_text("nothing to see")
    (tmp_path / "bad.txt").write_text("key=canary-secret-value")
    assert scan_secret(tmp_path, "canary-secret-value") == [Path("bad.txt")]


def test_sqlite_cells_are_scanned_one_by_one(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "events.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table t (a text, b text)")
        # Adjacent timestamps concatenate into a 10-digit run in the raw page; cell by cell they are harmless.
        connection.execute("insert into t values ('2026-11-24 02:12:44.080822', '2026-11-24 02:12:44.8838')")
    assert scan_cpr(tmp_path) == []
    with sqlite3.connect(db) as connection:
        connection.execute("insert into t values ('{\"cpr\": \"6101901235\"}', null)")
    assert [str(f.path) for f in scan_cpr(tmp_path)] == ["events.db"]


@pytest.mark.parametrize("text",
                         ["610190 1238", "610190\u20131238", "61 01 90 12 38", "esbjerg_6701901236.csv"])
def test_cpr_numbers_with_any_separator_are_found(text: str) -> None:
    assert cpr_like(text)
