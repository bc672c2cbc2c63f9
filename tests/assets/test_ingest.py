"""Ingest assets on a small mock world: every bad row quarantined with its reason, every good row clean."""

import json
import os
import shutil
import time
from pathlib import Path

import polars as pl
import pytest

from pipelines.partitions import submission_key


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory):
    from support import instance_with_sites, settings_for

    from pipelines import runner, world
    from pipelines.definitions import build_definitions
    from pipelines.partitions import INGEST_JOB

    data = tmp_path_factory.mktemp("ingest") / "data"
    settings = settings_for(data, persons=6_000, seed=11, key="ingest-test-key-" + "ab" * 16)
    world.generate(settings, persons=6_000, seed=11)
    instance = instance_with_sites(settings)
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)
    results = {}
    for key in runner.submission_partitions(settings):
        results[str(key)] = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
    return data, results, job, instance, settings


def _frames(data: Path, asset: str, restricted: bool) -> pl.DataFrame:
    root = data / ("restricted/assets" if restricted else "assets") / asset
    return pl.concat([pl.read_parquet(p) for p in sorted(root.rglob("*.parquet"))], how="diagonal_relaxed")


def test_every_partition_ingests(ingested) -> None:
    _, results, _, _, _ = ingested
    assert results and all(r.success for r in results.values())


def test_mock_world_bad_rows_are_quarantined_with_the_right_reason(ingested) -> None:
    data, _, _, _, _ = ingested
    truth = json.loads((data / "world" / "truth.json").read_text())
    quarantine = _frames(data, "quarantine", restricted=True)
    clean = _frames(data, "validated_rows", restricted=True)
    for record in truth["submissions"]:
        mine = quarantine.filter((pl.col("site") == record["site"])
                                 & (pl.col("filename") == record["filename"])
                                 & (pl.col("quarter") == record["quarter"]))
        rows = mine.select("source_row", pl.col("reasons").list.join(",")).iter_rows(named=True)
        got = {(r["source_row"], r["reasons"]) for r in rows} if mine.height else set()
        expected = {(b["source_row"], b["reason"]) for b in record["bad_rows"]}
        assert {row for row, _ in got} == {row for row, _ in expected}, record["filename"]
        for row, reason in expected:
            assert any(r == row and reason in reasons.split(",") for r, reasons in got), (
                record["filename"], row, reason)
        good = clean.filter((pl.col("site") == record["site"]) & (pl.col("filename") == record["filename"])
                            & (pl.col("quarter") == record["quarter"]))
        assert good.height == record["good_rows"], record["filename"]


def test_no_raw_cpr_after_pseudonymisation(ingested) -> None:
    data, _, _, _, _ = ingested
    rows = _frames(data, "pseudonymised_courses", restricted=False)
    assert "cpr" not in rows.columns and "cpr_norm" not in rows.columns
    assert rows["pseudonym"].str.contains(r"^[0-9a-f]{64}$").all()
    from pipelines.audit import scan_cpr

    assert scan_cpr(data) == []


def test_reingesting_the_same_file_changes_nothing(ingested) -> None:
    data, _, job, instance, _ = ingested
    key = submission_key("2024Q3", "aarhus")
    target = data / "assets" / "pseudonymised_courses" / "2024-07-01" / "aarhus.parquet"
    assert target.exists()
    before = target.read_bytes()
    assert job.execute_in_process(instance=instance, partition_key=key).success
    assert target.read_bytes() == before
    assert len(list((data / "restricted" / "received" / "2024Q3" / "aarhus").glob("*.json"))) == 1


def test_a_resubmission_supersedes_and_history_is_kept(ingested) -> None:
    data, _, job, instance, _ = ingested
    folder = data / "inbox" / "2024Q4"
    original = folder / "odense.xlsx"
    assert original.exists()
    # The site sends a corrected file under the same name: it replaces the old one in the inbox.
    corrected = folder / "odense_corrected.csv"
    # Synthetic (day + 60) rows: both versions number their rows from 1, which must not trip the checks.
    corrected.write_text(
        "CPR;Startdato;Slutdato;Delmålgruppe;Gennemført\n610190-1235;01-10-2024;;GRL;\n710285-2346;02-10-2024;;OVG;\n",
        encoding="utf-8",
    )
    stamp = time.time() + 60
    os.utime(corrected, (stamp, stamp))
    key = submission_key("2024Q4", "odense")
    assert job.execute_in_process(instance=instance, partition_key=key).success
    rows = pl.read_parquet(data / "restricted" / "assets" / "raw_submission" / "2024-10-01"
                           / "odense.parquet")
    assert rows.filter(~pl.col("superseded"))["filename"].unique().to_list() == ["odense_corrected.csv"]
    assert set(rows["filename"]) >= {"odense.xlsx"}
    receipts = list((data / "restricted" / "received" / "2024Q4" / "odense").glob("*.json"))
    assert len(receipts) == 2
    corrected.unlink()


def test_an_unreadable_file_fails_only_its_partition(ingested) -> None:
    data, _, job, instance, settings = ingested
    folder = data / "inbox" / "2025Q1"
    bad = folder / "randers.csv"
    shutil.copy(bad, folder.parent / "randers_backup.csv")
    bad.write_bytes(b"\x00\x01PK\x03\x04garbage" * 50)
    try:
        result = job.execute_in_process(instance=instance, partition_key=submission_key("2025Q1", "randers"),
                                        raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.step_failure_data.error.message
        assert "randers.csv" in message and "Traceback" not in message
        other = job.execute_in_process(instance=instance, partition_key=submission_key("2025Q1", "aarhus"))
        assert other.success
        # The report learns of the failure from the run storage and names it with the reason.
        from analysis.publish.provenance import provenance
        from pipelines.run_status import ingest_failures

        failures = ingest_failures(instance)
        assert failures.select("quarter", "site").rows() == [("2025Q1", "randers")]
        table = provenance(_frames(data, "submission_stats", False), _frames(data, "received_files", False),
                           settings.config.table("sites"), failures=failures)
        row = table.filter((pl.col("site") == "randers") & (pl.col("quarter") == "2025Q1")).row(0, named=True)
        assert row["status"] == "failed" and "randers.csv" in row["reason"]
        assert table.filter(pl.col("status") == "failed").height == 1
        # The site re-delivers its earlier good file: it is the current version again, and the rerun
        # clears it.
        shutil.copy(folder.parent / "randers_backup.csv", bad)
        stamp = time.time() + 120
        os.utime(bad, (stamp, stamp))
        assert job.execute_in_process(instance=instance,
                                      partition_key=submission_key("2025Q1", "randers")).success
        assert ingest_failures(instance).height == 0
    finally:
        shutil.move(folder.parent / "randers_backup.csv", bad)
