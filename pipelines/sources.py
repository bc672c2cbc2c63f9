"""Where the register extracts come from: one interface, a real and a mock implementation.

The register assets (``assets/registers.py``) ask a :class:`RegisterSource` for each register's yearly
frames and for the restricted CPR -> PNR bridge; which implementation they get is decided by the settings
(``pipelines.settings``), not by a flag inside the resource (project_fully_featured's pattern: one API, a
production and a local implementation). Real extracts are a change of source, never of code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl

from analysis.schema import REGISTERS
from pipelines.configuration import ConfigDir


class RegisterSource(dg.ConfigurableResource):
    """The interface: registers year by year, the CPR bridge, a description, and the planted truth if any."""

    def frames(self, register: str) -> Iterator[tuple[int, pl.DataFrame]]:
        """Yield ``(year, frame)`` for every year of ``register``, one year in memory at a time."""
        raise NotImplementedError

    def cpr_key(self) -> pl.DataFrame:
        """Return the restricted CPR -> PNR bridge (columns of ``analysis.schema.CPR_KEY``)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the report's run section and the asset metadata."""
        raise NotImplementedError

    def truth(self, truth_file: Path) -> dict | None:
        """Return the planted effects, where the source knows them (the mock world), else None."""
        return None


class ExtractRegisters(RegisterSource):
    """Real extracts: ``<extracts_dir>/<register>/<year>.parquet`` and ``<extracts_dir>/cpr_key.parquet``."""

    extracts_dir: str

    def frames(self, register: str) -> Iterator[tuple[int, pl.DataFrame]]:
        """Yield ``(year, frame)`` from ``<register>/<year>.parquet``; ValueError when a column is missing."""
        schema = REGISTERS[register]
        for path in sorted((Path(self.extracts_dir) / register).glob("*.parquet")):
            frame = pl.read_parquet(path)
            missing = [c for c in schema.names() if c not in frame.columns]
            if missing:
                raise ValueError(f"{path}: register {register!r} lacks columns {missing}")
            yield int(path.stem), frame.select([pl.col(c).cast(t) for c, t in schema.items()])

    def cpr_key(self) -> pl.DataFrame:
        """Return the bridge read from ``cpr_key.parquet`` (restricted: raw CPR)."""
        return pl.read_parquet(Path(self.extracts_dir) / "cpr_key.parquet")

    def describe(self) -> str:
        """Return ``register extracts in <extracts_dir>``."""
        return f"register extracts in {self.extracts_dir}"


class MockRegisters(RegisterSource):
    """The generated mock world (``analysis.mockworld``), with the project's configuration tables."""

    persons: int = 100_000
    seed: int = 0
    first_year: int = 2019
    last_year: int = 2026
    config_dir: str = ""
    #: the other ``WorldConfig`` settings as canonical JSON (``pipelines.settings.MockSource.world``)
    world_settings: str = ""

    def world(self):
        """Return the world's person-level state (built once per process and kept: it is deterministic)."""
        return _mock_world(self.persons, self.seed, self.first_year, self.last_year, self.config_dir,
                           self.world_settings)

    def frames(self, register: str) -> Iterator[tuple[int, pl.DataFrame]]:
        """Yield ``(year, frame)`` of ``register`` generated from the world, first year to last."""
        from analysis import mockworld

        world = self.world()
        for year in range(self.first_year, self.last_year + 1):
            yield year, mockworld.register_year(world, register, year)

    def cpr_key(self) -> pl.DataFrame:
        """Return the mock world's CPR -> PNR bridge (synthetic CPR numbers)."""
        from analysis import mockworld

        return mockworld.cpr_key(self.world())

    def describe(self) -> str:
        """Return ``mock world (<persons> persons, seed <seed>)``."""
        return f"mock world ({self.persons:,} persons, seed {self.seed})"

    def truth(self, truth_file: Path) -> dict | None:
        """Return the planted effects from ``truth_file`` (None when it does not exist)."""
        return json.loads(truth_file.read_text())["effects"] if truth_file.exists() else None


_WORLDS: dict[tuple, object] = {}


def _mock_world(persons: int, seed: int, first_year: int, last_year: int, config_dir: str,
                world_settings: str = ""):
    from analysis import mockworld

    key = (persons, seed, first_year, last_year, config_dir, world_settings)
    if key not in _WORLDS:
        _WORLDS.clear()  # one world per process: a 5.9M-person world is ~1 GiB
        config = ConfigDir(Path(config_dir) if config_dir else None)
        world_config = mockworld.WorldConfig.from_mapping({
            "first_year": first_year, "last_year": last_year,
            **(json.loads(world_settings) if world_settings else {}), "persons": persons, "seed": seed})
        _WORLDS[key] = mockworld.build_world(
            world_config, sites=config.table("sites"), delmaalgrupper=config.table("delmaalgrupper"),
            dream_codes=config.table("dream_codes"), hfaudd_levels=config.table("hfaudd_levels"),
        )
    return _WORLDS[key]
