"""One settings object, built once: by the CLI from its options, or by the Definitions from the environment.

Everything a run needs to know about its deployment is here: the data directory, where the registers come
from, where the pseudonymisation key comes from (never the key itself), the configuration directory and
how many worker processes ``cti run`` may use. :meth:`Settings.from_env` is the only place that reads
``CTI_*`` variables; nothing writes them. The settings are passed on explicitly (to the Definitions, to the
worker processes), so a value set on the command line cannot be lost on the way.

=====================  =========================================================================
variable               meaning
=====================  =========================================================================
CTI_DATA_DIR           data directory (default ``./data``)
CTI_EXTRACTS_DIR       real register extracts (``<register>/<year>.parquet``); unset: the mock world
CTI_REGISTER_SOURCE    ``mock`` or ``extracts`` (optional; ``extracts`` needs CTI_EXTRACTS_DIR)
CTI_PERSONS, CTI_SEED  size and seed of a mock world not generated yet (a generated one keeps its own)
CTI_PSEUDONYM_KEY      the secret key (read by the key resource when a run starts, never stored)
CTI_PSEUDONYM_KEY_FILE a file holding the key instead (e.g. the demo key of ``cti run --demo-key``)
CTI_CONFIG_DIR         deployment configuration tables (default: the packaged ones)
CTI_WORKERS            worker processes of ``cti run`` (default: one per core, at most 2)
CTI_DAGSTER_STORAGE    ``sqlite`` (default) or ``postgres`` for a new instance
=====================  =========================================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipelines.configuration import ConfigDir
from pipelines.layout import Layout

KEY_VARIABLE = "CTI_PSEUDONYM_KEY"
KEY_FILE_VARIABLE = "CTI_PSEUDONYM_KEY_FILE"
DEFAULT_PERSONS = 100_000
FULL_POPULATION = 5_900_000


@dataclass(frozen=True, slots=True)
class MockSource:
    """Registers from the generated mock world: its size and seed, and any other ``WorldConfig`` settings.

    ``world`` holds the other settings (``analysis.mockworld.WorldConfig`` fields, ``effects`` nested) as
    canonical JSON text, so the settings stay hashable and pass unchanged to worker processes; empty means
    the defaults. :meth:`config` builds the configuration the world is generated from.
    """

    persons: int = DEFAULT_PERSONS
    seed: int = 0
    first_year: int = 2019
    last_year: int = 2026
    world: str = ""

    def config(self):
        """Return the whole mock-world configuration (``analysis.mockworld.WorldConfig``).

        ValueError for an unknown setting or a value out of range.
        """
        from analysis.mockworld import WorldConfig

        settings = json.loads(self.world) if self.world else {}
        return WorldConfig.from_mapping({"first_year": self.first_year, "last_year": self.last_year,
                                         **settings, "persons": self.persons, "seed": self.seed})

    def with_world(self, mapping: Mapping, /) -> MockSource:
        """Return a copy with the ``WorldConfig`` settings of ``mapping`` (persons, seed, years taken out)."""
        rest = {k: v for k, v in mapping.items() if k not in ("persons", "seed", "first_year", "last_year")}
        return replace(self, persons=int(mapping.get("persons", self.persons)),
                       seed=int(mapping.get("seed", self.seed)),
                       first_year=int(mapping.get("first_year", self.first_year)),
                       last_year=int(mapping.get("last_year", self.last_year)),
                       world=json.dumps(rest, sort_keys=True, separators=(",", ":")) if rest else "")

    def describe(self) -> str:
        """Return ``mock world (<persons> persons, seed <seed>[; <other settings>])``."""
        extra = f"; {self.world}" if self.world else ""
        return f"mock world ({self.persons:,} persons, seed {self.seed}{extra})"


@dataclass(frozen=True, slots=True)
class ExtractSource:
    """Registers from real extracts on disk, shaped like ``analysis.schema.REGISTERS``."""

    directory: Path

    def describe(self) -> str:
        """Return ``register extracts in <directory>``."""
        return f"register extracts in {self.directory}"


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the pseudonymisation key is read from when a run starts: an environment variable or a file."""

    variable: str | None = KEY_VARIABLE
    file: Path | None = None

    def describe(self) -> str:
        """Return where the key comes from as messages say it (``file ...``, ``environment variable ...``)."""
        return f"file {self.file}" if self.file is not None else f"environment variable {self.variable}"


def _workers(env: Mapping[str, str]) -> int | None:
    # the old name still works
    name = "CTI_WORKERS" if env.get("CTI_WORKERS", "").strip() else "CTI_OUTCOME_WORKERS"
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        return max(1, int(value))
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    try:
        return int(value.replace("_", "")) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    """A deployment's settings (see the module docstring for the variables behind each field)."""

    layout: Layout
    source: MockSource | ExtractSource = field(default_factory=MockSource)
    key: KeySource = field(default_factory=KeySource)
    config: ConfigDir = field(default_factory=ConfigDir)
    #: worker processes for ``cti run``'s partitions (None: one per core, at most 2)
    workers: int | None = None
    storage: str = "sqlite"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, /, *,
                 data_dir: str | Path | None = None) -> Settings:
        """Build the settings from ``CTI_*`` variables (``env`` defaults to this process's environment)."""
        env = os.environ if env is None else env
        layout = Layout.at(data_dir or env.get("CTI_DATA_DIR") or "data")
        extracts = env.get("CTI_EXTRACTS_DIR", "").strip()
        kind = env.get("CTI_REGISTER_SOURCE", "").strip() or ("extracts" if extracts else "mock")
        if kind == "extracts":
            if not extracts:
                raise ValueError("CTI_REGISTER_SOURCE=extracts needs CTI_EXTRACTS_DIR "
                                 "(the directory of the extracts)")
            source: MockSource | ExtractSource = ExtractSource(Path(extracts).expanduser().resolve())
        elif kind == "mock":
            source = MockSource(persons=_int(env, "CTI_PERSONS", DEFAULT_PERSONS),
                                seed=_int(env, "CTI_SEED", 0))
        else:
            raise ValueError(f"CTI_REGISTER_SOURCE must be 'mock' or 'extracts', not {kind!r}")
        key_file = env.get(KEY_FILE_VARIABLE, "").strip()
        key = (KeySource(None, Path(key_file).expanduser().resolve())
               if key_file and not env.get(KEY_VARIABLE) else KeySource())
        config_dir = env.get("CTI_CONFIG_DIR", "").strip()
        storage = env.get("CTI_DAGSTER_STORAGE", "").strip() or "sqlite"
        settings = cls(layout, source, key,
                       ConfigDir(Path(config_dir).expanduser().resolve() if config_dir else None),
                       _workers(env), storage)
        return settings.with_generated_world()

    def with_generated_world(self) -> Settings:
        """Return these settings with the configuration a mock world on disk was made with (its manifest)."""
        if isinstance(self.source, MockSource) and self.layout.manifest.exists():
            made = json.loads(self.layout.manifest.read_text())
            mapping = made.get("config") or {"persons": int(made["persons"]), "seed": int(made["seed"])}
            return replace(self, source=self.source.with_world(mapping))
        return self

    def partition_workers(self) -> int:
        """Partitions (submissions, outcomes) run side by side: the setting, else one per core up to 2."""
        return self.workers if self.workers is not None else max(1, min(2, os.cpu_count() or 1))
