"""Crash-safe files and the project's parquet IO manager.

Every artefact is written to a temporary file in the target directory, flushed to disk and renamed over the
old one (``os.replace`` is atomic on POSIX), so a run killed mid-write leaves the previous good version
readable. This is the project's only writer: everything that writes a file calls one of these functions.
"""

from __future__ import annotations

import json
import os
import tempfile
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from pipelines.layout import GENERAL, REGISTERS, RESTRICTED, Layout

#: Asset metadata key naming the store an asset lives in (see ``ParquetIOManager``).
STORE_KEY = "cti/store"
#: Asset metadata: the asset may legitimately not exist (a register real extracts lack, outcome tables whose
#: partitions all failed); an input reading it then receives ``None`` instead of failing.
OPTIONAL_KEY = "cti/optional"

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "statistics": True, "row_group_size": 1_000_000}


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; fsync and rename it over ``path`` once the block succeeds.

    When the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, content: bytes) -> Path:
    """Write ``content`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as sorted, indented JSON atomically (sorted so reruns are byte-identical)."""
    return write_text(path,
                      json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def write_parquet(path: Path, frame: pl.DataFrame | pl.LazyFrame) -> Path:
    """Write a frame to parquet atomically; a lazy frame is streamed with ``sink_parquet``."""
    with atomic_path(path) as tmp:
        if isinstance(frame, pl.LazyFrame):
            frame.sink_parquet(tmp, **PARQUET_OPTIONS)
        else:
            frame.write_parquet(tmp, **PARQUET_OPTIONS)
    return Path(path)


def write_table(folder: Path, name: str, frame: pl.DataFrame, /, *, csv: bytes) -> dict[str, bytes]:
    """Write a published table as ``name.parquet`` and ``name.csv`` (``csv``: its bytes) in ``folder``.

    Returns each file's bytes by extension, for an output-checking bundle.
    """
    path = write_parquet(folder / f"{name}.parquet", frame)
    write_bytes(folder / f"{name}.csv", csv)
    return {"csv": csv, "parquet": path.read_bytes()}


@dataclass(frozen=True, slots=True)
class YearlyFrames:
    """A register produced one year at a time; the IO manager writes one parquet file per year.

    ``frames`` is consumed once, so a population-sized register never has to be in memory whole.
    """

    frames: Iterable[tuple[int, pl.DataFrame]]


def _wants_lazy(typing_type: Any) -> bool:
    """Whether an input annotation asks for a lazy frame (``pl.LazyFrame`` or ``pl.LazyFrame | None``)."""
    return typing_type is pl.LazyFrame or pl.LazyFrame in typing.get_args(typing_type)


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores polars frames as parquet where :class:`pipelines.layout.Layout` says.

    Assets whose metadata sets ``cti/store = restricted`` go to the restricted store (they may hold raw
    CPR); ``cti/store = registers`` assets are :class:`YearlyFrames`, one file per year. Multi-partition keys
    become nested directories. Inputs annotated ``pl.LazyFrame`` are scanned lazily; an unpartitioned asset
    reading a partitioned one gets the partitions that exist, concatenated in partition order. An asset
    marked ``cti/optional`` that has no files loads as ``None``.
    """

    base_dir: str

    @property
    def layout(self) -> Layout:
        """The :class:`Layout` of ``base_dir``."""
        return Layout.at(self.base_dir)

    @staticmethod
    def _metadata(context: dg.OutputContext | dg.InputContext) -> dict:
        if isinstance(context, dg.OutputContext):
            return dict(context.definition_metadata or {})
        upstream = context.upstream_output
        return dict((upstream.definition_metadata if upstream is not None else None) or {})

    def _store(self, context: dg.OutputContext | dg.InputContext) -> str:
        return self._metadata(context).get(STORE_KEY, GENERAL)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Persist ``obj`` (DataFrame, LazyFrame, YearlyFrames or None)."""
        if obj is None:
            return
        key, store = context.asset_key.path, self._store(context)
        if isinstance(obj, YearlyFrames):
            rows: dict[str, int] = {}
            for year, frame in obj.frames:
                write_parquet(self.layout.register_dir(key[-1]) / f"{year}.parquet", frame)
                rows[str(year)] = frame.height
            context.add_output_metadata({"rows_by_year": rows, "rows": sum(rows.values())})
            return
        if not isinstance(obj, pl.DataFrame | pl.LazyFrame):
            raise TypeError(f"ParquetIOManager stores polars frames, got {type(obj).__name__}")
        partition = context.asset_partition_key if context.has_asset_partitions else None
        write_parquet(self.layout.asset_file(key, store=store, partition=partition), obj)

    def _files(self, context: dg.InputContext) -> list[Path]:
        key, store = context.asset_key.path, self._store(context)
        if store == REGISTERS:
            return self.layout.register_files(key[-1])
        if context.has_asset_partitions:
            candidates = [self.layout.asset_file(key, store=store, partition=k)
                          for k in context.asset_partition_keys]
            return [f for f in candidates if f.exists()]
        single = self.layout.asset_file(key, store=store)
        return [single] if single.exists() else []

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | pl.LazyFrame | None:
        """Load the upstream frame (lazily if the input is annotated ``pl.LazyFrame``)."""
        files = self._files(context)
        if not files:
            if self._metadata(context).get(OPTIONAL_KEY):
                return None
            where = self.layout.asset_dir(context.asset_key.path, store=self._store(context))
            raise FileNotFoundError(
                f"no stored data for {context.asset_key.to_user_string()} under {where}; materialise it first"
            )
        scan = pl.scan_parquet(files)
        return scan if _wants_lazy(context.dagster_type.typing_type) else scan.collect()


__all__ = ["OPTIONAL_KEY", "PARQUET_OPTIONS", "REGISTERS", "RESTRICTED", "STORE_KEY", "ParquetIOManager",
           "YearlyFrames", "atomic_path", "write_bytes", "write_json", "write_parquet", "write_text"]
