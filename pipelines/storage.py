"""Crash-safe files and the project's parquet IO manager.

Every artefact is written to a temporary file in the target directory and renamed over the old one
(``os.replace`` is atomic on POSIX), so a run killed mid-write leaves the previous good version readable.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

#: Asset metadata key naming the store an asset lives in (see ``ParquetIOManager``).
STORE_KEY = "cti/store"
RESTRICTED = "restricted"
REGISTERS = "registers"

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "statistics": True, "row_group_size": 1_000_000}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, content: bytes) -> Path:
    """Write ``content`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as sorted, indented JSON atomically (sorted so reruns are byte-identical)."""
    return write_text(path, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def write_parquet(path: Path, frame: pl.DataFrame | pl.LazyFrame) -> Path:
    """Write a frame to parquet atomically; a lazy frame is streamed with ``sink_parquet``."""
    with atomic_path(path) as tmp:
        if isinstance(frame, pl.LazyFrame):
            frame.sink_parquet(tmp, **PARQUET_OPTIONS)
        else:
            frame.write_parquet(tmp, **PARQUET_OPTIONS)
    return path


@dataclass(frozen=True, slots=True)
class YearlyFrames:
    """A register produced one year at a time; the IO manager writes one parquet file per year.

    ``frames`` is consumed once, so a population-sized register never has to be in memory whole.
    """

    frames: Iterable[tuple[int, pl.DataFrame]]


def register_dir(data_dir: Path, name: str) -> Path:
    """Directory holding one register's per-year parquet files."""
    return data_dir / REGISTERS / name


def scan_register(data_dir: Path, name: str) -> pl.LazyFrame:
    """Lazily scan every year of a register."""
    directory = register_dir(data_dir, name)
    files = sorted(directory.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"register {name!r} has no files under {directory}; run `cti mock-world` or point "
            "CTI_DATA_DIR at a directory with real extracts (see README)"
        )
    return pl.scan_parquet(files)


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores polars frames as parquet under the data directory.

    Layout: ``<base_dir>/assets/<asset>/<partition...>.parquet``; assets whose metadata sets
    ``cti/store = restricted`` go under ``<base_dir>/restricted/assets/`` (they may hold raw CPR);
    ``cti/store = registers`` assets are :class:`YearlyFrames` written to ``<base_dir>/registers/<asset>/``.
    Multi-partition keys become nested directories. Inputs annotated ``pl.LazyFrame`` are scanned lazily;
    a non-partitioned asset reading a partitioned one gets the concatenation of the partitions that exist.
    """

    base_dir: str

    def _store(self, context: dg.OutputContext | dg.InputContext) -> str | None:
        metadata = context.definition_metadata if isinstance(context, dg.OutputContext) else None
        if metadata is None and isinstance(context, dg.InputContext) and context.upstream_output is not None:
            metadata = context.upstream_output.definition_metadata
        return (metadata or {}).get(STORE_KEY)

    def _asset_dir(self, context: dg.OutputContext | dg.InputContext) -> Path:
        base = Path(self.base_dir)
        store = self._store(context)
        key = context.asset_key.path
        if store == REGISTERS:
            return register_dir(base, key[-1])
        root = base / RESTRICTED / "assets" if store == RESTRICTED else base / "assets"
        return root.joinpath(*key)

    @staticmethod
    def _partition_file(asset_dir: Path, partition_key: str) -> Path:
        return asset_dir.joinpath(*partition_key.split("|")).with_suffix(".parquet")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Persist ``obj`` (DataFrame, LazyFrame, YearlyFrames or None)."""
        if obj is None:
            return
        asset_dir = self._asset_dir(context)
        if isinstance(obj, YearlyFrames):
            rows: dict[str, int] = {}
            for year, frame in obj.frames:
                write_parquet(asset_dir / f"{year}.parquet", frame)
                rows[str(year)] = frame.height
            context.add_output_metadata({"rows_by_year": rows, "rows": sum(rows.values())})
            return
        if not isinstance(obj, pl.DataFrame | pl.LazyFrame):
            raise TypeError(f"ParquetIOManager stores polars frames, got {type(obj).__name__}")
        if context.has_asset_partitions:
            path = self._partition_file(asset_dir, context.asset_partition_key)
        else:
            path = asset_dir.with_suffix(".parquet")
        write_parquet(path, obj)

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | pl.LazyFrame:
        """Load the upstream frame (lazily if the input is annotated ``pl.LazyFrame``)."""
        asset_dir = self._asset_dir(context)
        lazy = context.dagster_type.typing_type is pl.LazyFrame
        if self._store(context) == REGISTERS:
            files = sorted(asset_dir.glob("*.parquet"))
        elif context.has_asset_partitions:
            candidates = [self._partition_file(asset_dir, k) for k in context.asset_partition_keys]
            files = [f for f in candidates if f.exists()]
        else:
            files = [asset_dir.with_suffix(".parquet")]
        if not files or not all(f.exists() for f in files):
            raise FileNotFoundError(
                f"no stored data for {context.asset_key.to_user_string()} under {asset_dir}; "
                "materialise it first"
            )
        scan = pl.scan_parquet(files)
        return scan if lazy else scan.collect()
