"""``cti``: generate the mock world and run the pipeline on the embedded Dagster instance."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer

FULL_POPULATION = 5_900_000
DEFAULT_PERSONS = 100_000

app = typer.Typer(
    help="CTI register-linkage pipeline (SBST). Runs on a local Dagster instance under $CTI_DATA_DIR.",
    no_args_is_help=True,
    add_completion=False,
)

DataDirOption = typer.Option(
    None,
    "--data-dir",
    envvar="CTI_DATA_DIR",
    help="Data directory (inbox, registers, reports, Dagster instance). Default: ./data.",
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


def configure(data_dir: Path | None, *, persons: int | None = None, seed: int | None = None) -> Path:
    """Set the ``CTI_*`` environment of this process (the resources read it when a run starts)."""
    import warnings

    import dagster as dg

    # Partitioned asset checks are a Dagster preview feature we rely on deliberately; keep the console calm.
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    root = (data_dir or Path("data")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["CTI_DATA_DIR"] = str(root)
    os.environ.setdefault("CTI_REGISTER_SOURCE", "mock")
    os.environ.setdefault("CTI_EXTRACTS_DIR", "")
    if persons is not None:
        os.environ["CTI_PERSONS"] = str(persons)
    os.environ.setdefault("CTI_PERSONS", str(DEFAULT_PERSONS))
    if seed is not None:
        os.environ["CTI_SEED"] = str(seed)
    os.environ.setdefault("CTI_SEED", "0")
    return root


def ensure_key(root: Path, *, demo_key: bool) -> None:
    """Make sure ``CTI_PSEUDONYM_KEY`` is set; for the demo only, create a random local key file."""
    if os.environ.get("CTI_PSEUDONYM_KEY"):
        return
    if not demo_key:
        typer.secho(
            "CTI_PSEUDONYM_KEY is not set. Set it to a secret of at least 32 characters, e.g.\n"
            "  export CTI_PSEUDONYM_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')\n"
            "or use --demo-key for the mock-world demo.",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    key_file = root / "restricted" / "demo_pseudonym.key"
    if not key_file.exists():
        from pipelines.storage import write_text

        write_text(key_file, secrets.token_hex(32))
        key_file.chmod(0o600)
    os.environ["CTI_PSEUDONYM_KEY"] = key_file.read_text().strip()
    typer.secho(
        "!" * 78 + f"\n! DEMO KEY: CTI_PSEUDONYM_KEY was not set, so a random local key from\n!   {key_file}\n"
        "! is used. Fine for the mock world; NEVER for real data (see README, SECURITY).\n" + "!" * 78,
        fg="yellow",
        err=True,
    )


@app.command("mock-world")
def mock_world(
    persons: str = typer.Option(
        str(DEFAULT_PERSONS), "--persons", help="Population size, or 'full' for 5.9 million (Denmark)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    data_dir: Path | None = DataDirOption,
    force: bool = typer.Option(False, "--force", help="Regenerate even if a world with these settings exists."),
) -> None:
    """Generate the mock registers, the restricted CPR key, the inbox submissions and truth.json."""
    from pipelines import world

    root = configure(data_dir, persons=_persons(persons), seed=seed)
    summary = world.generate(root, persons=_persons(persons), seed=seed, force=force)
    typer.echo(summary)


@app.command("run")
def run(
    data_dir: Path | None = DataDirOption,
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
    from pipelines.partitions import SITE_IDS, quarter_key

    root = configure(data_dir)
    for label in quarter:
        try:
            quarter_key(label)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--quarter") from None
    unknown = sorted(set(site) - set(SITE_IDS))
    if unknown:
        raise typer.BadParameter(f"unknown site {', '.join(unknown)}; sites: {', '.join(SITE_IDS)}", param_hint="--site")
    ensure_key(root, demo_key=demo_key)
    if os.environ["CTI_REGISTER_SOURCE"] == "mock" and not world.exists(root):
        typer.echo(world.generate(root, persons=_persons(persons), seed=seed, force=False))
    scope = " ".join([*(f"quarter={q}" for q in quarter), *(f"site={s}" for s in site)]) or "all"
    try:
        who = user or getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        who = "unknown"
    tags = {"cti/user": who, "cti/scope": scope}
    ok = runner.run_all(root, echo=typer.echo, tags=tags, quarters=tuple(quarter), sites=tuple(site),
                        downstream=not ingest_only)
    sys.exit(0 if ok else 1)


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for ``python -m pipelines.cli``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
