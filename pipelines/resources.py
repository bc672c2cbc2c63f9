"""Resources: where data lives, the pseudonymisation key, configuration tables, the register source.

Paths and secrets arrive as resource fields set from ``dg.EnvVar``; nothing reads the environment at import.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

CONFIG_DIR = Path(__file__).parent / "config"


def read_config(name: str) -> pl.DataFrame:
    """Read one of the packaged configuration tables (``pipelines/config/<name>.csv``) as text columns."""
    return pl.read_csv(CONFIG_DIR / f"{name}.csv", infer_schema=False)


class ProjectPaths(dg.ConfigurableResource):
    """The data directory and the well-known places under it."""

    data_dir: str

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def restricted(self) -> Path:
        return self.root / "restricted"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def world(self) -> Path:
        """Where the mock world keeps its truth file (read by tests and the report's validation section)."""
        return self.root / "world"


class PseudonymKey(dg.ConfigurableResource):
    """The secret key for HMAC-SHA256 pseudonyms, from ``CTI_PSEUDONYM_KEY``.

    Only ``key_id`` (a fingerprint) is ever stored or shown; the key itself stays in memory.
    """

    key: str

    def secret(self) -> bytes:
        """Return the key bytes, refusing keys that are missing or too short."""
        from analysis.ingest import pseudonym

        value = self.key.encode("utf-8")
        pseudonym.check_key(value)
        return value

    @property
    def key_id(self) -> str:
        from analysis.ingest import pseudonym

        return pseudonym.key_id(self.secret())


class CodeLists(dg.ConfigurableResource):
    """Configuration tables that change over time (delmålgruppe codes, sites, register code families).

    ``config_dir`` defaults to the packaged tables; point it elsewhere to use an updated code list.
    """

    config_dir: str = str(CONFIG_DIR)

    def table(self, name: str) -> pl.DataFrame:
        """Return configuration table ``name`` (``<config_dir>/<name>.csv``), all columns as text."""
        return pl.read_csv(Path(self.config_dir) / f"{name}.csv", infer_schema=False)


class RegisterSource(dg.ConfigurableResource):
    """Where the register extracts come from: the generated mock world, or real extracts on disk.

    ``kind="mock"`` generates the mock world (``persons``, ``seed``); ``kind="extracts"`` reads
    ``<extracts_dir>/<register>/<year>.parquet`` files already shaped like ``analysis.schema.REGISTERS``
    (and ``<extracts_dir>/cpr_key.parquet``). Swapping the source is the only change real data needs.
    """

    kind: str = "mock"
    persons: int = 100_000
    seed: int = 0
    first_year: int = 2019
    last_year: int = 2026
    extracts_dir: str = ""

    def world(self):
        """The mock world's person-level state (cached per process)."""
        if self.kind != "mock":
            raise ValueError("the mock world exists only for RegisterSource(kind='mock')")
        return _mock_world(self.persons, self.seed, self.first_year, self.last_year)

    def years(self) -> range:
        return range(self.first_year, self.last_year + 1)

    def frames(self, register: str):
        """Yield ``(year, frame)`` for every year of ``register``, one year in memory at a time."""
        from analysis import mockworld
        from analysis.schema import REGISTERS

        schema = REGISTERS[register]
        if self.kind == "mock":
            world = self.world()
            for year in self.years():
                yield year, mockworld.register_year(world, register, year)
        elif self.kind == "extracts":
            for path in sorted((Path(self.extracts_dir) / register).glob("*.parquet")):
                frame = pl.read_parquet(path)
                missing = [c for c in schema.names() if c not in frame.columns]
                if missing:
                    raise ValueError(f"{path}: register {register!r} lacks columns {missing}")
                yield int(path.stem), frame.select([pl.col(c).cast(t) for c, t in schema.items()])
        else:
            raise ValueError(f"RegisterSource.kind must be 'mock' or 'extracts', not {self.kind!r}")

    def cpr_key(self) -> pl.DataFrame:
        """The restricted CPR -> PNR bridge."""
        from analysis import mockworld

        if self.kind == "mock":
            return mockworld.cpr_key(self.world())
        return pl.read_parquet(Path(self.extracts_dir) / "cpr_key.parquet")


_WORLDS: dict[tuple, object] = {}


def _mock_world(persons: int, seed: int, first_year: int, last_year: int):
    from analysis import mockworld

    key = (persons, seed, first_year, last_year)
    if key not in _WORLDS:
        _WORLDS.clear()  # one world per process: a 5.9M-person world is ~1 GiB
        config = mockworld.WorldConfig(persons=persons, seed=seed, first_year=first_year, last_year=last_year)
        _WORLDS[key] = mockworld.build_world(
            config,
            sites=read_config("sites"),
            delmaalgrupper=read_config("delmaalgrupper"),
            dream_codes=read_config("dream_codes"),
            hfaudd_levels=read_config("hfaudd_levels"),
        )
    return _WORLDS[key]
