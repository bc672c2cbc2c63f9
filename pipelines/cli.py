"""``cti``: generate the mock world, run the pipeline on the embedded Dagster instance, check the configuration.

Each command builds one :class:`pipelines.settings.Settings` from its options (and the ``CTI_*`` variables
for what the options leave open) and passes it on; nothing is written back to the environment.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import replace
from pathlib import Path

import typer

from pipelines.settings import DEFAULT_PERSONS, FULL_POPULATION, KeySource, MockSource, Settings

app = typer.Typer(
    help="CTI register-linkage pipeline (SBST). Runs on a local Dagster instance under $CTI_DATA_DIR.",
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


def _settings(data_dir: Path | None, config_dir: Path | None) -> Settings:
    """The settings of this command: its options first, then the ``CTI_*`` environment."""
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
        typer.secho(str(error), fg="red", err=True)
        raise typer.Exit(2) from None
    if config_dir is not None:
        settings = replace(settings, config=ConfigDir(config_dir.expanduser().resolve()))
    settings.layout.root.mkdir(parents=True, exist_ok=True)
    return settings


def _with_key(settings: Settings, *, demo_key: bool) -> Settings:
    """The settings with a usable key source; for the demo only, a random local key file."""
    import os

    from pipelines.storage import write_text

    if os.environ.get(settings.key.variable or "") or settings.key.file is not None:
        return settings
    if not demo_key:
        typer.secho(
            "CTI_PSEUDONYM_KEY is not set. Set it to a secret of at least 32 characters, e.g.\n"
            "  export CTI_PSEUDONYM_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')\n"
            "or use --demo-key for the mock-world demo.",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    key_file = settings.layout.demo_key
    if not key_file.exists():
        write_text(key_file, secrets.token_hex(32))
        key_file.chmod(0o600)
    typer.secho(
        "!" * 78 + f"\n! DEMO KEY: CTI_PSEUDONYM_KEY was not set, so a random local key from\n!   {key_file}\n"
        "! is used. Fine for the mock world; NEVER for real data (see README, SECURITY).\n" + "!" * 78,
        fg="yellow",
        err=True,
    )
    return replace(settings, key=KeySource(variable=None, file=key_file))


@app.command("mock-world")
def mock_world(
    persons: str = typer.Option(
        str(DEFAULT_PERSONS), "--persons", help="Population size, or 'full' for 5.9 million (Denmark)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    data_dir: Path | None = DataDirOption,
    config_dir: Path | None = ConfigDirOption,
    force: bool = typer.Option(False, "--force", help="Regenerate even if a world with these settings exists."),
) -> None:
    """Generate the mock registers, the restricted CPR key, the inbox submissions and truth.json."""
    from pipelines import world

    settings = _settings(data_dir, config_dir)
    typer.echo(world.generate(settings, persons=_persons(persons), seed=seed, force=force))


@app.command("run")
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
    ingest_only: bool = typer.Option(False, "--ingest-only", help="Stop after ingest (no linkage, effects, report)."),
    user: str = typer.Option(
        None, "--user", envvar="CTI_USER", help="Who started the runs (tag cti/user in the UI). Default: login name."
    ),
) -> None:
    """Materialise every asset on the local instance: mock world if absent, ingest, linkage, effects, report."""
    import getpass

    from pipelines import runner, world
    from pipelines.partitions import quarter_key

    settings = _settings(data_dir, config_dir)
    for label in quarter:
        try:
            quarter_key(label)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--quarter") from None
    known = settings.config.site_ids()
    unknown = sorted(set(site) - set(known))
    if unknown:
        raise typer.BadParameter(f"unknown site {', '.join(unknown)}; sites: {', '.join(known)}", param_hint="--site")
    settings = _with_key(settings, demo_key=demo_key)
    if isinstance(settings.source, MockSource) and not world.exists(settings):
        typer.echo(world.generate(settings, persons=_persons(persons), seed=seed, force=False))
        settings = settings.with_generated_world()
    scope = " ".join([*(f"quarter={q}" for q in quarter), *(f"site={s}" for s in site)]) or "all"
    try:
        who = user or getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        who = "unknown"
    ok = runner.run_all(settings, echo=typer.echo, tags={"cti/user": who, "cti/scope": scope},
                        quarters=tuple(quarter), sites=tuple(site), downstream=not ingest_only)
    sys.exit(0 if ok else 1)


@app.command("prepare-instance")
def prepare_instance(data_dir: Path | None = DataDirOption, config_dir: Path | None = ConfigDirOption) -> None:
    """Create the Dagster instance of the data directory and register the configured sites (for ``make ui``)."""
    from pipelines.instance import get_instance
    from pipelines.partitions import sync_sites

    settings = _settings(data_dir, config_dir)
    instance = get_instance(settings.layout, storage=settings.storage)
    new = sync_sites(instance, settings.config.site_ids())
    typer.echo(f"instance: {settings.layout.dagster_home}" + (f"; sites added: {', '.join(new)}" if new else ""))


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
