"""The key in operation: read from its source with the key rules, one key id per data directory."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from support import TEST_KEY

from analysis.ingest import pseudonym
from analysis.linkage.panel import link_participants
from pipelines import keys
from pipelines.layout import Layout
from pipelines.resources import PseudonymKey
from pipelines.settings import KeySource

OTHER_KEY = "other-key-" + "fedcba9876543210" * 3


def test_a_key_file_may_end_with_one_newline_but_nothing_else_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text(TEST_KEY + "\n")
    assert keys.read_secret(KeySource(None, path)) == TEST_KEY.encode()
    path.write_text(TEST_KEY + "  \n")
    with pytest.raises(keys.KeyRefused,
                       match=f"from file {path} is refused: the key starts or ends with whitespace"):
        keys.read_secret(KeySource(None, path))
    assert keys.read_secret(KeySource(None, tmp_path / "missing")) is None


@pytest.mark.parametrize("value", ["short", " " * 40, TEST_KEY + " ", "x" * 40])
def test_a_weak_key_in_the_variable_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(keys.KeyRefused, match="environment variable CTI_PSEUDONYM_KEY is refused") as error:
        keys.read_secret(KeySource(), env={"CTI_PSEUDONYM_KEY": value})
    assert value.strip() not in str(error.value) or not value.strip()
    assert keys.read_secret(KeySource(), env={}) is None


def test_the_resource_applies_the_same_rules(tmp_path: Path) -> None:
    with pytest.raises(keys.KeyRefused, match="only whitespace"):
        PseudonymKey(key=" " * 40).secret()
    assert PseudonymKey(key=TEST_KEY).secret() == TEST_KEY.encode()


def _layout_with_courses(tmp_path: Path, key_id: str) -> Layout:
    layout = Layout.at(tmp_path)
    path = layout.asset_file(("pseudonymised_courses",), partition="2024-01-01|aarhus")
    path.parent.mkdir(parents=True)
    pl.DataFrame({"pseudonym": ["a" * 64], "key_id": [key_id]}).write_parquet(path)
    return layout


def test_a_different_key_is_refused_naming_both_ids(tmp_path: Path) -> None:
    old, new = pseudonym.key_id(TEST_KEY.encode()), pseudonym.key_id(OTHER_KEY.encode())
    layout = _layout_with_courses(tmp_path, old)  # data made before the record existed: read from the assets
    assert keys.data_key_ids(layout) == (old,)
    keys.require_same_key(layout, old)
    with pytest.raises(keys.KeyRefused) as error:
        keys.require_same_key(layout, new)
    assert old in str(error.value) and new in str(error.value) and "cti rotate-key" in str(error.value)
    keys.record(layout, old)
    assert keys.recorded(layout).key_id == old and keys.data_key_ids(layout) == (old,)


def test_the_missing_key_message_never_suggests_a_new_key_for_existing_data(tmp_path: Path) -> None:
    empty = keys.missing_key_message(Layout.at(tmp_path / "new"), KeySource())
    assert "token_hex" in empty and "CTI_PSEUDONYM_KEY is not set" in empty
    layout = _layout_with_courses(tmp_path / "old", pseudonym.key_id(TEST_KEY.encode()))
    existing = keys.missing_key_message(layout, KeySource())
    assert "token_hex" not in existing and "Do not generate a new one" in existing
    assert pseudonym.key_id(TEST_KEY.encode()) in existing


def test_linking_pseudonyms_of_two_keys_is_refused() -> None:
    courses = pl.DataFrame({"pseudonym": ["a"], "key_id": ["aaaaaaaaaaaa"], "site": ["x"],
                            "start_date": [None], "first_reported": ["2024Q1"]})
    index = pl.DataFrame({"pseudonym": ["b"], "person_id": [1], "key_id": ["bbbbbbbbbbbb"]})
    with pytest.raises(ValueError, match="different keys .*aaaaaaaaaaaa.*bbbbbbbbbbbb"):
        link_participants(courses, index)


def test_consolidating_partitions_of_two_keys_is_refused() -> None:
    from analysis.ingest.courses import consolidate_courses

    columns = ("pseudonym", "site", "quarter", "start_date", "end_date", "delmaalgruppe", "completed", "sex",
               "birth_date", "sha256", "received")
    rows = pl.DataFrame({c: [None, None] for c in columns}).with_columns(key_id=pl.Series(["k1", "k2"]))
    with pytest.raises(ValueError, match="2 key ids \\(k1, k2\\)"):
        consolidate_courses(rows)


def test_the_asset_refuses_another_key_before_writing(tmp_path: Path) -> None:
    """A run launched from the UI or a sensor with another key stops in ``pseudonymised_courses``."""
    from support import settings_for

    from assets.ingest import pseudonymised_courses
    from pipelines.definitions import build_resources

    settings = settings_for(tmp_path / "data", key=OTHER_KEY)
    layout = settings.layout
    keys.record(layout, pseudonym.key_id(TEST_KEY.encode()))
    resources = build_resources(settings)
    rows = pl.DataFrame({"cpr_norm": ["6101901238"], "source_row": [1]})
    with pytest.raises(dg.Failure, match="key mismatch"):
        list(pseudonymised_courses(validated_rows=rows, pseudonym_key=resources["pseudonym_key"],
                                   layout=resources["layout"]))
    assert not layout.asset_dir(("pseudonymised_courses",)).exists()
    assert keys.recorded(layout).key_id == pseudonym.key_id(TEST_KEY.encode())


def test_the_person_index_carries_the_key_id_and_refuses_another_key(tmp_path: Path) -> None:
    from support import settings_for

    from assets.linkage import person_index
    from pipelines.definitions import build_resources

    settings = settings_for(tmp_path / "data")
    resources = build_resources(settings)
    cpr_key = pl.DataFrame({"CPR": ["6101901238", "7102851236"], "PNR": [1, 2]})
    output = next(iter(person_index(cpr_key=cpr_key, pseudonym_key=resources["pseudonym_key"],
                                    layout=resources["layout"])))
    assert output.value["key_id"].unique().to_list() == [pseudonym.key_id(TEST_KEY.encode())]
    assert keys.recorded(settings.layout).key_id == pseudonym.key_id(TEST_KEY.encode())
    other = build_resources(settings_for(tmp_path / "data", key=OTHER_KEY))
    with pytest.raises(dg.Failure, match="key mismatch"):
        next(iter(person_index(cpr_key=cpr_key, pseudonym_key=other["pseudonym_key"],
                               layout=other["layout"])))


def test_every_pseudonym_bearing_table_carries_the_key_id() -> None:
    from analysis.schema import PERSON_INDEX

    kid = "aaaaaaaaaaaa"
    courses = pl.DataFrame({"pseudonym": ["p1", "p2"], "key_id": [kid, kid], "site": ["x", "x"],
                            "start_date": [None, None], "first_reported": ["2024Q1", "2024Q1"]})
    index = pl.DataFrame({"pseudonym": ["p1"], "person_id": [1], "key_id": [kid]})
    linked = link_participants(courses, index)
    assert "key_id" in linked.linked.columns and linked.unlinked["key_id"].to_list() == [kid]
    assert "key_id" in PERSON_INDEX
    from analysis.ingest.courses import _conflicts

    schema = {"pseudonym": pl.String, "key_id": pl.String, "site": pl.String, "start_date": pl.Date,
              "end_date": pl.Date, "course_id": pl.String, "_groups": pl.UInt32}
    assert "key_id" in _conflicts(pl.DataFrame(schema=schema)).columns
