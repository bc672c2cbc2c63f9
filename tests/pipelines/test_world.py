"""The mock world never overwrites or deletes a file it did not write."""

import json
from pathlib import Path

import pytest
from support import settings_for

from pipelines import world

REAL = b"CPR;Startdato;Delmaalgruppe\r\n6101901238;01-02-2024;GRL\r\n"


def test_an_inbox_with_files_the_world_did_not_write_is_refused(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", persons=1_000)
    real = settings.layout.inbox / "2024Q1" / "aarhus.csv"
    real.parent.mkdir(parents=True)
    real.write_bytes(REAL)
    with pytest.raises(world.ForeignInbox, match="1 file\\(s\\) the mock world did not write \\(2024Q1/aarhus.csv\\)"):
        world.generate(settings, persons=1_000, seed=1)
    assert real.read_bytes() == REAL
    assert not settings.layout.manifest.exists() and not (settings.layout.root / "registers").exists()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    settings = settings_for(tmp_path_factory.mktemp("world") / "data", persons=1_000, seed=1)
    world.generate(settings, persons=1_000, seed=1)
    return settings


def test_the_world_records_what_it_wrote_and_may_regenerate_its_own_files(generated) -> None:
    made = json.loads(generated.layout.manifest.read_text())
    files = sorted(p.relative_to(generated.layout.inbox).as_posix() for p in generated.layout.inbox.rglob("*")
                   if p.is_file())
    assert sorted(made["inbox_files"]) == files and len(files) == made["submission_files"]
    assert world.foreign_files(generated) == []


@pytest.mark.parametrize("change", ["new_file", "edited_file", "archived_file"])
def test_regeneration_is_refused_when_a_real_delivery_is_present(generated, change: str) -> None:
    inbox, layout = generated.layout.inbox, generated.layout
    target = inbox / "2024Q2" / "odense_rettet.csv"
    edited = sorted(inbox.rglob("*.csv"))[0]
    before = edited.read_bytes()
    receipt = layout.received / "2024Q1" / "aarhus" / "abc.json"
    try:
        if change == "new_file":
            target.write_bytes(REAL)
        elif change == "edited_file":
            edited.write_bytes(REAL)
        else:
            receipt.parent.mkdir(parents=True)
            receipt.write_text(json.dumps({"sha256": "0" * 64}))
        with pytest.raises(world.ForeignInbox, match="nothing was changed"):
            world.generate(generated, persons=1_000, seed=2, force=True)
        assert (target.read_bytes() == REAL) if change == "new_file" else True
        assert json.loads(layout.manifest.read_text())["seed"] == 1  # the old world is untouched
    finally:
        target.unlink(missing_ok=True)
        edited.write_bytes(before)
        receipt.unlink(missing_ok=True)
