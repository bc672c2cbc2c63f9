import json
from pathlib import Path

import dagster as dg
import polars as pl

from analysis.schema import REGISTERS
from assets import registers
from pipelines.sources import ExtractRegisters, MockRegisters
from pipelines.storage import ParquetIOManager


def test_register_assets_write_one_file_per_register_and_year(tmp_path: Path) -> None:
    result = dg.materialize(
        registers.assets,
        resources={
            "io_manager": ParquetIOManager(base_dir=str(tmp_path)),
            "register_source": MockRegisters(persons=2_000, seed=1, first_year=2023, last_year=2024),
        },
    )
    assert result.success
    for name, schema in REGISTERS.items():
        files = sorted(p.name for p in (tmp_path / "registers" / name).glob("*.parquet"))
        assert files == ["2023.parquet", "2024.parquet"], name
        assert pl.read_parquet(tmp_path / "registers" / name / "2024.parquet").schema == schema
    # The CPR bridge lives only in the restricted store.
    assert (tmp_path / "restricted" / "assets" / "cpr_key.parquet").exists()
    materialization = result.asset_materializations_for_node("population")[0]
    assert materialization.metadata["rows"].value == 4_000


def test_extract_source_reads_real_shaped_files(tmp_path: Path) -> None:
    source = MockRegisters(persons=1_000, seed=2, first_year=2024, last_year=2024)
    extracts = tmp_path / "extracts"
    for name in REGISTERS:
        for year, frame in source.frames(name):
            (extracts / name).mkdir(parents=True, exist_ok=True)
            frame.write_parquet(extracts / name / f"{year}.parquet")
    real = ExtractRegisters(extracts_dir=str(extracts))
    [(year, frame)] = list(real.frames("health"))
    assert year == 2024 and frame.schema == REGISTERS["health"]


def test_mock_world_command_writes_registers_inbox_and_truth(tmp_path: Path) -> None:
    from support import settings_for

    from pipelines import world

    settings = settings_for(tmp_path / "data", persons=3_000, seed=5)
    cti_env = settings.layout.root
    summary = world.generate(settings, persons=3_000, seed=5)
    assert "3,000 persons" in summary
    truth = json.loads((cti_env / "world" / "truth.json").read_text())
    inbox_files = sorted(p.relative_to(cti_env / "inbox") for p in (cti_env / "inbox").rglob("*.*"))
    assert len(inbox_files) == len(truth["submissions"]) > 0
    assert {p.parts[0] for p in inbox_files} >= {"2024Q1", "2026Q3"}
    # A second call with the same settings does nothing; the world on disk is reused.
    assert "already present" in world.generate(settings, persons=3_000, seed=5)
