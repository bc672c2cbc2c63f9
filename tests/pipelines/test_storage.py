import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from pipelines.storage import atomic_path, write_json, write_parquet


def test_write_parquet_roundtrip_and_leaves_no_temp_files(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "æøå"]})
    path = write_parquet(tmp_path / "sub" / "f.parquet", frame)
    assert pl.read_parquet(path).equals(frame)
    assert [p.name for p in path.parent.iterdir()] == ["f.parquet"]


def test_lazy_frames_are_streamed_to_parquet(tmp_path: Path) -> None:
    lazy = pl.LazyFrame({"a": list(range(10))}).filter(pl.col("a") > 4)
    path = write_parquet(tmp_path / "f.parquet", lazy)
    assert pl.read_parquet(path)["a"].to_list() == [5, 6, 7, 8, 9]


def test_failed_write_keeps_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    write_json(path, {"version": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text().strip().endswith("}") and '"version": 1' in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_identical_frames_give_byte_identical_parquet(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [3, 1, 2], "s": ["a", None, "c"]})
    first = write_parquet(tmp_path / "1.parquet", frame).read_bytes()
    second = write_parquet(tmp_path / "2.parquet", frame).read_bytes()
    assert first == second


def test_process_killed_mid_write_leaves_previous_file_readable(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    write_parquet(path, pl.DataFrame({"a": [1]}))
    script = textwrap.dedent(
        f"""
        import polars as pl, sys
        from pipelines.storage import atomic_path
        with atomic_path(__import__("pathlib").Path({str(path)!r})) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"PAR1")
                print("writing", flush=True)
                while True:
                    handle.write(b"x" * 1024)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    assert pl.read_parquet(path)["a"].to_list() == [1]
    # The next run succeeds and replaces the file; the killed run's temp file is the only debris.
    write_parquet(path, pl.DataFrame({"a": [2]}))
    assert pl.read_parquet(path)["a"].to_list() == [2]
