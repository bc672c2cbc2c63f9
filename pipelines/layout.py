"""Where everything lives under the data directory: the one owner of paths.

Every other module asks a :class:`Layout` ("where does X live?") instead of joining path segments itself,
so the layout can change in one place. ``$CTI_DATA_DIR`` (default ``./data``) holds::

    inbox/<YYYY>Q<n>/<site>[_...].csv|.xlsx      the sites' deliveries (raw CPR, as delivered)
    registers/<register>/<year>.parquet          register extracts (mock world or real)
    assets/<asset>[/<partition>...].parquet      every asset without CPR (pseudonyms, ids, counts)
    restricted/assets/...                        assets that hold raw CPR (raw submissions, quarantine)
    restricted/received/<quarter>/<site>/        content-addressed archive of every file ever received
    restricted/reports/                          steward view and feedback with raw CPR
    restricted/feedback/feedback_state.parquet   what feedback each site got, round by round (no CPR)
    reports/                                     effect report, its tables (tables/, one xlsx), general
                                                 steward view, feedback, monitoring page (public) and its
                                                 tables (monitoring_tables/), SØM workbook
    restricted/reports/monitoring.html           the monitoring page with exact counts (internal, for SBST),
                                                 its tables in restricted/reports/monitoring_tables/
    world/manifest.json, world/truth.json        the mock world's configuration and planted truth
    dagster_home/                                the Dagster instance (runs, event log, schedules)
    run.lock                                     held by the ``cti`` command using the directory
    bench/, validate/                            benchmark and Monte Carlo results

Only ``inbox/`` and ``restricted/`` may hold raw CPR (``RAW_CPR_DIRS``). Assets get the same places from the
``layout`` resource (``pipelines.resources.LayoutResource``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Top-level folders that hold raw CPR by design: the delivered files and the restricted store.
RAW_CPR_DIRS = ("restricted", "inbox")

#: Stores an asset can live in (asset metadata ``cti/store``; default: the general store).
GENERAL, RESTRICTED, REGISTERS = "general", "restricted", "registers"


class Places:
    """Every well-known place under the data directory ``self.root`` (for the Layout and the resource)."""

    __slots__ = ()

    # --- inputs ---------------------------------------------------------------------------------------------
    @property
    def inbox(self) -> Path:
        """The sites' deliveries, by quarter (raw CPR, as delivered)."""
        return self.root / "inbox"

    def register_dir(self, register: str, /) -> Path:
        """Directory of one register's per-year parquet files."""
        return self.root / "registers" / register

    def register_files(self, register: str, /) -> list[Path]:
        """Every year of ``register`` on disk, sorted by year."""
        return sorted(self.register_dir(register).glob("*.parquet"))

    # --- restricted -----------------------------------------------------------------------------------------
    @property
    def restricted(self) -> Path:
        """The restricted store: everything that holds raw CPR."""
        return self.root / "restricted"

    @property
    def received(self) -> Path:
        """Archive of every received file, by quarter and site (content-addressed, with receipts)."""
        return self.restricted / "received"

    @property
    def demo_key(self) -> Path:
        """The random local pseudonymisation key of the mock-world demo (``cti run --demo-key``)."""
        return self.restricted / "demo_pseudonym.key"

    # --- assets ---------------------------------------------------------------------------------------------
    def asset_dir(self, key: tuple[str, ...] | list[str], /, *, store: str = GENERAL) -> Path:
        """Where an asset lives: its directory (partitioned) or, with ``.parquet`` added, its file."""
        if store == REGISTERS:
            return self.register_dir(key[-1])
        base = self.restricted / "assets" if store == RESTRICTED else self.root / "assets"
        return base.joinpath(*key)

    def asset_file(self, key: tuple[str, ...] | list[str], /, *, store: str = GENERAL,
                   partition: str | None = None) -> Path:
        """Return the parquet file of an asset (or of one partition: multi-partition keys become folders)."""
        directory = self.asset_dir(key, store=store)
        if partition is None:
            return directory.with_suffix(".parquet")
        return directory.joinpath(*partition.split("|")).with_suffix(".parquet")

    @property
    def key_record(self) -> Path:
        """The key id (a fingerprint, never the key) the pseudonyms in the data directory were made with."""
        return self.root / "assets" / "key_id.json"

    # --- reports --------------------------------------------------------------------------------------------
    @property
    def reports(self) -> Path:
        """Published reports (no CPR, disclosure-controlled)."""
        return self.root / "reports"

    @property
    def report_tables(self) -> Path:
        """The published reports' tables (CSV and parquet)."""
        return self.reports / "tables"

    def steward_reports(self, *, restricted: bool) -> Path:
        """Where the steward view and the feedback files go (the restricted version shows raw CPR)."""
        return self.restricted / "reports" if restricted else self.reports

    def feedback_dir(self, *, restricted: bool, language: str = "da") -> Path:
        """Return where the sites' feedback workbooks go (Danish; SBST's English copies: ``en/``)."""
        base = self.steward_reports(restricted=restricted) / "feedback"
        return base if language == "da" else base / language

    @property
    def feedback_state(self) -> Path:
        """Return the memory of the feedback each site got, round and item (fingerprints, no CPR)."""
        return self.restricted / "feedback" / "feedback_state.parquet"

    def monitoring_page(self, *, restricted: bool) -> Path:
        """Return the monitoring page: public (disclosure-controlled) or internal (exact, restricted)."""
        return (self.restricted / "reports" if restricted else self.reports) / "monitoring.html"

    def monitoring_tables(self, *, restricted: bool) -> Path:
        """Return where the monitoring page's tables go as CSV/parquet (the internal ones under restricted/).

        A folder of their own: ``reports/tables/`` is the effect report's, which removes any file there it
        did not write (and has monitoring tables of its own, controlled jointly with the report).
        """
        return self.steward_reports(restricted=restricted) / "monitoring_tables"

    @property
    def effect_report(self) -> Path:
        """Return the effect report (the dated copy beside it: :meth:`dated_effect_report`)."""
        return self.reports / "effect_report.html"

    def dated_effect_report(self, day: str, /) -> Path:
        """Return the effect report's copy of day ``day`` (``YYYY-MM-DD``)."""
        return self.reports / f"effect_report_{day}.html"

    @property
    def report_workbook(self) -> Path:
        """Return the workbook of every table the effect report publishes (numeric cells)."""
        return self.reports / "effect_report_tables.xlsx"

    @property
    def output_checking(self) -> Path:
        """Return the output-checking bundle of the effect report (each file with its checks)."""
        return self.reports / "output_checking.json"

    @property
    def som_workbook(self) -> Path:
        """Return the workbook of the effect paths in SØM's form (per outcome and year)."""
        return self.reports / "som_effects.xlsx"

    # --- the mock world -------------------------------------------------------------------------------------
    @property
    def world(self) -> Path:
        """The mock world's manifest and planted truth."""
        return self.root / "world"

    @property
    def manifest(self) -> Path:
        """The settings a mock world was generated with."""
        return self.world / "manifest.json"

    @property
    def truth(self) -> Path:
        """The mock world's planted truth (read only by tests and the report's validation section)."""
        return self.world / "truth.json"

    #: Derived outputs that belong to one world: a new world removes them so nothing stale remains.
    def derived(self) -> tuple[Path, ...]:
        """Return the outputs a new mock world removes."""
        return (self.root / "assets", self.restricted / "assets", self.received, self.inbox, self.reports,
                self.restricted / "reports", self.feedback_state.parent)

    # --- operation ------------------------------------------------------------------------------------------
    @property
    def dagster_home(self) -> Path:
        """The Dagster instance (runs, event log, schedules)."""
        return self.root / "dagster_home"

    @property
    def run_lock(self) -> Path:
        """Held (``flock``) by the ``cti`` command using the data directory; says who holds it."""
        return self.root / "run.lock"

    @property
    def bench(self) -> Path:
        """Benchmark results."""
        return self.root / "bench"

    @property
    def validate(self) -> Path:
        """Monte Carlo validation results."""
        return self.root / "validate"


@dataclass(frozen=True, slots=True)
class Layout(Places):
    """The layout of one data directory (a plain, picklable value: the CLI, runner and scripts use it)."""

    root: Path

    @classmethod
    def at(cls, data_dir: str | Path) -> Layout:
        """Return the layout of ``data_dir`` (made absolute, so it means the same in every worker)."""
        return cls(Path(data_dir).expanduser().resolve())
