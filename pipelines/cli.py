"""``cti``: generate the mock world, run the pipeline on the embedded Dagster instance, rotate the key, start the UI.

Each command builds one :class:`pipelines.settings.Settings` from its options (and the ``CTI_*`` variables
for what the options leave open) and passes it on; nothing is written back to the environment. Commands
that change the data directory check the key first (before any file is read, archived or written), then take
the data directory's run lock (``pipelines.runlock``) and mark runs left STARTED by a killed process failed.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import typer

from pipelines.settings import DEFAULT_PERSONS, FULL_POPULATION, KeySource, MockSource, Settings

EXIT_CODES = """Exit status: 0 everything ran; 1 finished, but some partitions failed (named on the console and in
the reports); 2 refused before anything ran (bad option, configuration, key or inbox); 3 a stage failed, so
the later stages did not run; 4 another cti command is using the data directory; 130 / 143 stopped by
Ctrl-C (SIGINT) / SIGTERM (what was left unfinished is printed, its runs are marked failed)."""

app = typer.Typer(
    help="CTI register-linkage pipeline (SBST). Runs on a local Dagster instance under $CTI_DATA_DIR.\n\n"
         + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="The configuration tables (sites, code lists): where they come from, and a check.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")

DataDirOption = typer.Option(
    None,
    "--data-dir",
    envvar="CTI_DATA_DIR",
    help="Data directory (inbox, registers, reports, Dagster instance). Default: ./data.",
)
ConfigDirOption = typer.Option(
    None,
    "--config-dir",
    envvar="CTI_CONFIG_DIR",
    help="Deployment configuration tables (sites.csv, delmaalgrupper.csv, ...). Default: the packaged ones.",
)
UserOption = typer.Option(
    None, "--user", envvar="CTI_USER", help="Who started the runs (tag cti/user in the UI). Default: login name."
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` (one readable paragraph, no trace) and return the exit to raise."""
    typer.secho(message, fg="red", err=True)
    return typer.Exit(code)


def _persons(value: str) -> int:
    if value.lower() == "full":
        return FULL_POPULATION
    try:
        persons = int(value.replace("_", ""))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number of persons (or 'full')") from None
    if persons < 1_000:
        raise typer.BadParameter("use at least 1000 persons so every site gets participants")
    return persons


def _world_settings(config_file: Path | None, assignments: list[str]) -> dict:
    """The mock world's other settings: a JSON or TOML file, then ``--set name=value`` on top.

    Names are ``WorldConfig`` fields; dotted names reach into ``effects`` and ``site_capacity_overrides``
    (``effects.self_support_pp=0``, ``site_capacity_overrides.Aarhus=20``). A value is read as JSON when it
    parses (numbers, true/false, quoted text), else as text (``enrolment=population``). The values are
    checked by ``WorldConfig.from_mapping`` when the world is generated.
    """
    import json
    import tomllib

    mapping: dict = {}
    if config_file is not None:
        try:
            text = config_file.read_text(encoding="utf-8")
            mapping = tomllib.loads(text) if config_file.suffix.lower() == ".toml" else json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise typer.BadParameter(f"cannot read {config_file}: {error}", param_hint="--world-config") from None
        if not isinstance(mapping, dict):
            raise typer.BadParameter(f"{config_file} must hold a table of settings", param_hint="--world-config")
    for assignment in assignments:
        name, sep, raw = assignment.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{assignment!r} is not name=value (e.g. site_capacity=20)", param_hint="--set")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        *parents, leaf = name.strip().split(".")
        target = mapping
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise typer.BadParameter(f"{name!r}: {parent!r} is not a group of settings", param_hint="--set")
        target[leaf] = value
    return mapping


WorldConfigOption = typer.Option(
    None, "--world-config", help="JSON or TOML file of mock-world settings (any WorldConfig field; effects nested)."
)
WorldSetOption = typer.Option(
    [], "--set", help="A mock-world setting, name=value (repeatable; e.g. site_capacity=20, effects.employed_pp=0)."
)


def _settings(data_dir: Path | None, config_dir: Path | None) -> Settings:
    """The settings of this command: its options first, then the ``CTI_*`` environment (nothing is written)."""
    import os
    import warnings

    import dagster as dg

    from pipelines.configuration import ConfigDir

    # Partitioned asset checks are a Dagster preview feature we rely on deliberately; keep the console calm.
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    try:
        settings = Settings.from_env(os.environ, data_dir=data_dir)
    except ValueError as error:
        raise _fail(str(error)) from None
    if config_dir is not None:
        settings = replace(settings, config=ConfigDir(config_dir.expanduser().resolve()))
    return settings


def _configured(settings: Settings) -> bool:
    import os

    if settings.key.file is not None:
        return settings.key.file.exists()
    return bool(os.environ.get(settings.key.variable or ""))


def _with_key(settings: Settings, *, demo_key: bool) -> tuple[Settings, str]:
    """The settings with a usable key source and the key's id, checked against the data directory.

    Runs before any file of the data directory is read, archived or written: a missing, weak or different key
    stops the command here. ``demo_key`` creates a random local key file for the mock world, but never for a
    data directory whose pseudonyms were made with another key.
    """
    from analysis.ingest import pseudonym
    from pipelines import keys
    from pipelines.storage import write_text

    layout = settings.layout
    if not _configured(settings):
        existing = keys.data_key_ids(layout)
        if not demo_key or (existing and not layout.demo_key.exists()):
            raise _fail(keys.missing_key_message(layout, settings.key))
        settings = replace(settings, key=KeySource(variable=None, file=layout.demo_key))
        if not layout.demo_key.exists():
            write_text(layout.demo_key, secrets.token_hex(32))
            layout.demo_key.chmod(0o600)
        typer.secho(
            "!" * 78 + f"\n! DEMO KEY: CTI_PSEUDONYM_KEY was not set, so a random local key from\n!   {layout.demo_key}\n"
            "! is used. Fine for the mock world; NEVER for real data (see README, Security).\n" + "!" * 78,
            fg="yellow", err=True,
        )
    try:
        secret = keys.read_secret(settings.key)
        if secret is None:
            raise keys.KeyRefused(keys.missing_key_message(layout, settings.key))
        key_id = pseudonym.key_id(secret)
        keys.require_same_key(layout, key_id)
    except keys.KeyRefused as error:
        raise _fail(str(error)) from None
    return settings, key_id


@contextmanager
def _exclusive(settings: Settings, command: str) -> Iterator[None]:
    """Hold the data directory's run lock and clean up after a predecessor that was killed."""
    from pipelines import runlock
    from pipelines.instance import get_instance

    settings.layout.root.mkdir(parents=True, exist_ok=True)
    try:
        lock = runlock.RunLock(settings.layout, command=command).__enter__()
    except runlock.Busy as busy:
        raise _fail(str(busy), 4) from None
    try:
        if lock.previous is not None:
            typer.secho(f"note: the previous {lock.previous.describe()} ended without releasing the data "
                        "directory (killed or crashed); its lock is released.", fg="yellow", err=True)
        stale = runlock.mark_stale_runs(get_instance(settings.layout, storage=settings.storage))
        if stale:
            typer.secho(f"note: {len(stale)} run(s) left unfinished by a process that is gone are marked failed: "
                        + "; ".join(stale[:5]) + ("; ..." if len(stale) > 5 else ""), fg="yellow", err=True)
        yield
    finally:
        lock.__exit__(None, None, None)


def _who(user: str | None) -> str:
    import getpass

    try:
        return user or getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return "unknown"


def _generate(settings: Settings, *, persons: int, seed: int, force: bool, world_settings: dict | None = None) -> str:
    from pipelines import world

    try:
        return world.generate(settings, persons=persons, seed=seed, force=force, world=world_settings)
    except world.ForeignInbox as error:
        raise _fail(str(error)) from None
    except ValueError as error:  # an unknown world setting or a value out of range: said before anything is written
        raise _fail(f"mock-world settings: {error}") from None


@app.command("mock-world")
def mock_world(
    persons: str = typer.Option(
        str(DEFAULT_PERSONS), "--persons", help="Population size, or 'full' for 5.9 million (Denmark)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    data_dir: Path | None = DataDirOption,
    config_dir: Path | None = ConfigDirOption,
    force: bool = typer.Option(False, "--force", help="Regenerate even if a world with these settings exists."),
    world_config: Path | None = WorldConfigOption,
    assignments: list[str] = WorldSetOption,
) -> None:
    """Generate the mock registers, the restricted CPR key, the inbox submissions and truth.json.

    Every mock-world setting (``analysis.mockworld.WorldConfig``: programme size, enrolment, effects, dip,
    recovery, ...) can be given in a file (--world-config) or one by one (--set); the rest keep their
    defaults. Refuses a data directory whose inbox or archive holds files the mock world did not write.
    """
    settings = _settings(data_dir, config_dir)
    size = _persons(persons)
    chosen = _world_settings(world_config, assignments)
    with _exclusive(settings, "cti mock-world"):
        typer.echo(_generate(settings, persons=size, seed=seed, force=force, world_settings=chosen))


def _check_scope(settings: Settings, quarter: list[str], site: list[str]) -> None:
    from pipelines.partitions import quarter_key

    for label in quarter:
        try:
            quarter_key(label)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--quarter") from None
    known = settings.config.site_ids()
    unknown = sorted(set(site) - set(known))
    if unknown:
        raise typer.BadParameter(f"unknown site {', '.join(unknown)}; sites: {', '.join(known)}", param_hint="--site")


@app.command("run", epilog=EXIT_CODES)
def run(
    data_dir: Path | None = DataDirOption,
    config_dir: Path | None = ConfigDirOption,
    persons: str = typer.Option(
        str(DEFAULT_PERSONS), "--persons", help="Mock-world size used if no world exists yet ('full' = 5.9M)."
    ),
    seed: int = typer.Option(0, "--seed", help="Mock-world seed used if no world exists yet."),
    demo_key: bool = typer.Option(
        False, "--demo-key", help="If CTI_PSEUDONYM_KEY is unset, create/use a random local demo key file."
    ),
    quarter: list[str] = typer.Option(
        [], "--quarter", help="(Re)ingest only this quarter, e.g. 2025Q1 (repeatable); default: every quarter."
    ),
    site: list[str] = typer.Option([], "--site", help="(Re)ingest only this site id (repeatable); default: every site."),
    ingest_only: bool = typer.Option(
        False, "--ingest-only", help="Ingest, then consolidate the courses; no linkage, effects or reports."),
    user: str = UserOption,
    world_config: Path | None = WorldConfigOption,
    assignments: list[str] = WorldSetOption,
) -> None:
    """Materialise every asset on the local instance: mock world if absent, ingest, linkage, effects, report.

    --persons, --seed, --world-config and --set shape a mock world that does not exist yet; a world on disk
    keeps its own configuration (``cti mock-world --force`` makes a new one).
    """
    from pipelines import runner, world

    settings = _settings(data_dir, config_dir)
    _check_scope(settings, quarter, site)
    size = _persons(persons)
    chosen = _world_settings(world_config, assignments)
    settings, _ = _with_key(settings, demo_key=demo_key)
    command = "cti run" + (" --ingest-only" if ingest_only else "") + "".join(f" --quarter {q}" for q in quarter) + \
        "".join(f" --site {s}" for s in site)
    with _exclusive(settings, command):
        if isinstance(settings.source, MockSource) and not world.exists(settings):
            typer.echo(_generate(settings, persons=size, seed=seed, force=False, world_settings=chosen))
            settings = settings.with_generated_world()
        elif chosen and isinstance(settings.source, MockSource):
            typer.echo("note: a mock world is already present and keeps its configuration; --world-config/--set "
                       "are ignored (`cti mock-world --force` with them makes a new world)")
        scope = " ".join([*(f"quarter={q}" for q in quarter), *(f"site={s}" for s in site)]) or "all"
        report = runner.run_all(settings, echo=typer.echo, tags={"cti/user": _who(user), "cti/scope": scope},
                                quarters=tuple(quarter), sites=tuple(site), downstream=not ingest_only)
    sys.exit(report.exit_code)


@app.command("rotate-key", epilog=EXIT_CODES)
def rotate_key(
    old_key_id: str = typer.Option(..., "--old-key-id", help="The key id the data carry now (as a confirmation)."),
    data_dir: Path | None = DataDirOption,
    config_dir: Path | None = ConfigDirOption,
    ingest_only: bool = typer.Option(
        False, "--ingest-only", help="Re-pseudonymise and consolidate the courses only; `cti run` does the rest."),
    user: str = UserOption,
) -> None:
    """Re-pseudonymise the whole history with a new key (CTI_PSEUDONYM_KEY or CTI_PSEUDONYM_KEY_FILE).

    Every received file is ingested again from the restricted archive with the new key; every output derived
    from the old pseudonyms (assets/, reports/, restricted/reports/) is removed first, so no old pseudonym
    survives, and the new key id is recorded. Old and new pseudonyms are unlinkable by design.
    """
    import shutil

    from analysis.ingest import pseudonym
    from pipelines import inbox, keys, runner

    settings = _settings(data_dir, config_dir)
    layout = settings.layout
    try:
        secret = keys.read_secret(settings.key)
    except keys.KeyRefused as error:
        raise _fail(str(error)) from None
    if secret is None:
        raise _fail(f"set the NEW key first: {settings.key.describe()} is not set (the old key is not needed).")
    new_id = pseudonym.key_id(secret)
    existing = keys.data_key_ids(layout)
    if not existing:
        raise _fail(f"nothing to rotate: {layout.root} holds no pseudonyms yet; run `cti run` with the new key.")
    if old_key_id not in existing:
        raise _fail(f"the data in {layout.root} carry key id {', '.join(existing)}, not {old_key_id}; nothing was changed.")
    if existing == (new_id,):
        raise _fail(f"the new key has the same key id ({new_id}) as the data: it is the same key; nothing to do.")
    archived = inbox.partitions_in_archive(layout.received)
    missing = sorted({p.parent.name + " " + p.stem for p in layout.asset_dir(("pseudonymised_courses",)).glob("*/*.parquet")}
                     - {_partition_dir(q) + " " + s for q, s in archived})
    if missing:
        raise _fail(f"cannot re-pseudonymise: {len(missing)} partition(s) have no received file in {layout.received} "
                    f"({', '.join(missing[:5])}); restore the archive first. Nothing was changed.")
    with _exclusive(settings, "cti rotate-key"):
        for place in (layout.root / "assets", layout.reports, layout.steward_reports(restricted=True)):
            shutil.rmtree(place, ignore_errors=True)  # every output made from the old pseudonyms
        keys.record(layout, new_id, previous=tuple(k for k in existing if k != new_id))
        typer.echo(f"key rotation: key id {', '.join(existing)} -> {new_id}; outputs of the old key removed; "
                   f"re-ingesting {len(archived)} partition(s) from {layout.received}")
        report = runner.run_all(settings, echo=typer.echo,
                                tags={"cti/user": _who(user), "cti/scope": "all", "cti/rotation": new_id},
                                downstream=not ingest_only)
    sys.exit(report.exit_code)


def _partition_dir(label: str) -> str:
    from pipelines.partitions import quarter_key

    return quarter_key(label)


@app.command("prepare-instance")
def prepare_instance(data_dir: Path | None = DataDirOption, config_dir: Path | None = ConfigDirOption) -> None:
    """Create the Dagster instance of the data directory, register the configured sites, mark stale runs failed."""
    from pipelines import runlock
    from pipelines.instance import get_instance
    from pipelines.partitions import sync_sites

    settings = _settings(data_dir, config_dir)
    settings.layout.root.mkdir(parents=True, exist_ok=True)
    instance = get_instance(settings.layout, storage=settings.storage)
    new = sync_sites(instance, settings.config.site_ids())
    stale = runlock.mark_stale_runs(instance)
    typer.echo(f"instance: {settings.layout.dagster_home}" + (f"; sites added: {', '.join(new)}" if new else "")
               + (f"; {len(stale)} stale run(s) marked failed" if stale else ""))


@app.command("ui")
def ui(
    data_dir: Path | None = DataDirOption,
    config_dir: Path | None = ConfigDirOption,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(3000, "--port"),
) -> None:
    """Start the Dagster UI and daemon (dg dev) on the data directory, with the same key `cti run` uses.

    Without CTI_PSEUDONYM_KEY the demo key file is given to the code location (as ``make run`` uses it), so
    ingest, backfills and sensor runs launched in the UI work. ``dg dev`` runs in its own process group;
    Ctrl-C or SIGTERM stops the whole group.
    """
    from pipelines import ui as ui_module

    settings = _settings(data_dir, config_dir)
    settings, key_id = _with_key(settings, demo_key=True)
    prepare_instance(data_dir=settings.layout.root, config_dir=settings.config.path)
    raise typer.Exit(ui_module.serve(settings, host=host, port=port, key_id=key_id, echo=typer.echo))


@config_app.command("check")
def config_check(config_dir: Path | None = ConfigDirOption) -> None:
    """Validate every configuration table and say where each is read from; exit 1 if any is unusable."""
    from pipelines.configuration import TABLES, VALIDITY, ConfigDir

    config = ConfigDir(config_dir.expanduser().resolve() if config_dir else None)
    typer.echo(f"configuration directory: {config.path or '(none: the packaged defaults)'}")
    for name, spec in TABLES.items():
        typer.echo(f"  {name + '.csv':22} {spec.description}\n  {'':22} read from {config.source(name)}")
    typer.echo("\nvalid_from / valid_to (delmaalgrupper.csv): " + VALIDITY)
    problems = config.check()
    for problem in problems:
        typer.secho(f"problem: {problem}", fg="red", err=True)
    typer.echo(f"\n{len(problems)} problem(s)" if problems else "\nconfiguration ok")
    raise typer.Exit(1 if problems else 0)


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for ``python -m pipelines.cli``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
