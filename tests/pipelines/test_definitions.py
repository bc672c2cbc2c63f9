import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from pipelines.configuration import ConfigDir
from pipelines.definitions import defs
from pipelines.instance import ensure_dagster_home, instance_yaml
from pipelines.layout import Layout
from pipelines.partitions import QUARTERS, quarter_key, quarter_label

ROOT = Path(__file__).parents[2]


def test_workspace_loads_the_single_definitions_object() -> None:
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    assert module == "pipelines.definitions"
    definitions = defs()
    assert isinstance(definitions, dg.Definitions)
    # resolves every asset, job, sensor and schedule: a broken wire fails here
    repo = definitions.get_repository_def()
    assert repo.get_all_jobs()


def test_quarter_labels_round_trip() -> None:
    for key in QUARTERS.get_partition_keys()[:8]:
        assert quarter_key(quarter_label(key)) == key
    assert quarter_label("2024-01-01") == "2024Q1"
    assert quarter_key("2026Q3") == "2026-07-01"


def test_sites_come_from_configuration() -> None:
    assert 6 <= len(ConfigDir().site_ids()) <= 8


def test_instance_has_telemetry_off_and_sqlite_by_default(tmp_path: Path) -> None:
    home = ensure_dagster_home(Layout.at(tmp_path), storage="sqlite")
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["telemetry"]["enabled"] is False
    assert "storage" not in config  # SQLite under DAGSTER_HOME


def test_postgres_storage_is_configuration_only() -> None:
    config = yaml.safe_load(instance_yaml("postgres"))
    assert config["telemetry"]["enabled"] is False
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["hostname"] == {"env": "DAGSTER_PG_HOST"} and db["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_cli_help_explains_every_option() -> None:
    for command in ([], ["mock-world"], ["run"]):
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *command, "--help"],
            capture_output=True, text=True, check=True, env={"COLUMNS": "200", "PATH": ""},
        ).stdout
        assert "Usage" in out
    run_help = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--help"],
        capture_output=True, text=True, check=True, env={"COLUMNS": "200", "PATH": ""},
    ).stdout
    for option in ("--data-dir", "--persons", "--seed", "--demo-key"):
        assert option in run_help


def test_run_without_key_stops_before_reading_data(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, env={"PATH": "", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "CTI_PSEUDONYM_KEY is not set" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "d" / "registers").exists()


def test_the_readme_materialize_selections_build_a_job() -> None:
    """Each README `dagster asset materialize --select` line names whole assets (no part of a multi-asset)."""
    import re
    import shlex

    text = (ROOT / "README.md").read_text()
    lines = [line for line in text.splitlines() if "dagster asset materialize" in line]
    assert lines
    repo = defs().get_repository_def()
    for line in lines:
        argv = shlex.split(line.strip().strip("`"))
        selection = argv[argv.index("--select") + 1].split(",")
        keys = dg.AssetSelection.from_coercible(selection).resolve(repo.asset_graph)
        assert keys, line
        job = repo.get_implicit_job_def_for_assets(list(keys))
        job.get_subset(asset_selection=set(keys))  # DagsterInvalidSubsetError on a part of a multi-asset
        if "--partition" in argv:
            partition = argv[argv.index("--partition") + 1]
            assert all(
                partition in repo.asset_graph.get(k).partitions_def.get_partition_keys() for k in keys
            ), line
        assert not re.search(r"\boutcome_effects\b", " ".join(selection))
