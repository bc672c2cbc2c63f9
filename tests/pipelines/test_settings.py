"""One settings object, read from the environment in one place, never written back; the layout owns paths."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.configuration import PACKAGED, ConfigDir
from pipelines.layout import Layout
from pipelines.settings import ExtractSource, KeySource, MockSource, Settings


def test_settings_from_the_environment(tmp_path: Path) -> None:
    env = {"CTI_DATA_DIR": str(tmp_path / "d"), "CTI_PERSONS": "20_000", "CTI_SEED": "3", "CTI_WORKERS": "3",
           "CTI_CONFIG_DIR": str(tmp_path / "cfg"), "CTI_DAGSTER_STORAGE": "postgres"}
    settings = Settings.from_env(env)
    assert settings.layout == Layout.at(tmp_path / "d")
    assert settings.source == MockSource(persons=20_000, seed=3)
    assert settings.key == KeySource()  # the key itself is never part of the settings
    assert settings.config.path == (tmp_path / "cfg").resolve() and settings.partition_workers() == 3
    assert settings.storage == "postgres"
    extracts = Settings.from_env({"CTI_EXTRACTS_DIR": str(tmp_path / "x")}, data_dir=tmp_path)
    assert extracts.source == ExtractSource((tmp_path / "x").resolve())
    key_file = Settings.from_env({"CTI_PSEUDONYM_KEY_FILE": str(tmp_path / "k")})
    assert key_file.key == KeySource(variable=None, file=(tmp_path / "k").resolve())


@pytest.mark.parametrize(("env", "message"), [
    ({"CTI_REGISTER_SOURCE": "extracts"}, "needs CTI_EXTRACTS_DIR"),
    ({"CTI_REGISTER_SOURCE": "sql"}, "must be 'mock' or 'extracts'"),
    ({"CTI_PERSONS": "many"}, "CTI_PERSONS must be a whole number"),
])
def test_bad_settings_say_what_to_do(env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_a_generated_world_keeps_its_size_and_seed(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path)
    layout.manifest.parent.mkdir(parents=True)
    layout.manifest.write_text(json.dumps({"persons": 8000, "seed": 3}))
    settings = Settings.from_env({"CTI_PERSONS": "100000"}, data_dir=tmp_path)
    assert settings.source == MockSource(persons=8000, seed=3)


def test_nothing_writes_cti_variables_into_the_environment() -> None:
    """The settings travel as objects: no module assigns os.environ (the worker sizes its thread pools)."""
    root = Path(__file__).parents[2]
    offenders = []
    for path in [*root.glob("pipelines/*.py"), *root.glob("assets/*.py"), *root.glob("analysis/**/*.py")]:
        text = path.read_text()
        for pattern in ("os.environ[", "os.environ.update", "os.environ.setdefault", "os.putenv"):
            if pattern in text and path.name != "worker.py":
                offenders.append(f"{path.relative_to(root)}: {pattern}")
    assert offenders == []


def test_the_layout_owns_the_paths(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path)
    assert layout.asset_file(("quarantine",), store="restricted", partition="2024-01-01|aarhus") == (
        tmp_path / "restricted" / "assets" / "quarantine" / "2024-01-01" / "aarhus.parquet")
    assert layout.asset_file(("courses",)) == tmp_path / "assets" / "courses.parquet"
    assert layout.asset_dir(("stays",), store="registers") == tmp_path / "registers" / "stays"
    assert layout.feedback_dir(restricted=True) == tmp_path / "restricted" / "reports" / "feedback"
    assert all(p.is_relative_to(tmp_path) for p in layout.derived())


def test_a_deployment_table_replaces_the_packaged_one_and_the_rest_fall_back(tmp_path: Path) -> None:
    (tmp_path / "sites.csv").write_text("site,name,kom,joined\nnyborg,Nyborg Kommune,450,2025-01-01\n")
    config = ConfigDir(tmp_path)
    assert config.site_ids() == ("nyborg",)
    assert config.source("delmaalgrupper") == PACKAGED / "delmaalgrupper.csv"
    assert config.check() == [] and ConfigDir().check() == []


def test_config_check_names_every_problem(tmp_path: Path) -> None:
    (tmp_path / "sites.csv").write_text("site,name,kom,joined\nNy Borg,,45,2025-13-01\n"
                                        "aarhus,A,751,2024-01-01\naarhus,B,751,2024-01-01\n")
    (tmp_path / "delmaalgrupper.csv").write_text("code,label,valid_from,valid_to\n"
                                                 "OVG,x,2025-01-01,2024-01-01\nab,y,,\n")
    (tmp_path / "dream_codes.csv").write_text("code,label\n111,x\n")
    problems = [str(p) for p in ConfigDir(tmp_path).check()]
    expected = ["sites.csv row 1: site id 'Ny Borg'", "sites.csv row 1: name is empty",
                "sites.csv row 1: kom '45'", "sites.csv row 1: joined '2025-13-01'",
                "sites.csv row 3: site 'aarhus' appears twice",
                "delmaalgrupper.csv row 1: valid_to 2024-01-01 is before valid_from",
                "delmaalgrupper.csv row 2: code 'ab'", "delmaalgrupper.csv row 2: valid_from None",
                "dream_codes.csv: lacks column(s) family"]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected)


def test_cti_config_check_explains_validity_and_fails_on_problems(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pipelines.cli", "config", "check"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    ok = subprocess.run(command, capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and "configuration ok" in ok.stdout
    assert "quarantined as 'unknown_delmaalgruppe'" in ok.stdout and "valid_from" in ok.stdout
    (tmp_path / "sites.csv").write_text("site,name,kom,joined\nx,X,999,not a date\n")
    bad = subprocess.run([*command, "--config-dir", str(tmp_path)], capture_output=True, text=True, env=env)
    assert (bad.returncode == 1 and "sites.csv row 1: joined 'not a date'" in bad.stderr
            and "Traceback" not in bad.stderr)
    assert f"read from {tmp_path.resolve() / 'sites.csv'}" in bad.stdout


def test_config_check_refuses_a_course_plan_the_quarantine_rule_does_not_use(tmp_path: Path) -> None:
    import polars as pl

    table = ConfigDir().table("monitoring_targets").with_columns(
        max=pl.when(pl.col("measure") == "planned_months").then(pl.lit("12"))
        .when(pl.col("measure") == "phase_months").then(pl.lit("4")).otherwise(pl.col("max")),
        min=pl.when(pl.col("measure") == "phase_months").then(pl.lit("4")).otherwise(pl.col("min")))
    table.write_csv(tmp_path / "monitoring_targets.csv")
    problems = [str(p) for p in ConfigDir(tmp_path).check()]
    assert any("differ from the quarantine rule" in p and "analysis/ingest/rules.py" in p for p in problems)
    assert ConfigDir().check() == []
