import io
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis import mockworld
from analysis.schema import QUARANTINE_REASONS, REGISTERS
from pipelines.configuration import ConfigDir


def _config(name: str) -> pl.DataFrame:
    return ConfigDir().table(name)


def _world(persons: int = 20_000, seed: int = 0) -> mockworld.World:
    return mockworld.build_world(
        mockworld.WorldConfig(persons=persons, seed=seed, bad_row_share=0.06),
        sites=_config("sites"),
        delmaalgrupper=_config("delmaalgrupper"),
        dream_codes=_config("dream_codes"),
        hfaudd_levels=_config("hfaudd_levels"),
    )


@pytest.fixture(scope="module")
def world() -> mockworld.World:
    return _world()


@pytest.fixture(scope="module")
def truth(world: mockworld.World) -> dict:
    return mockworld.truth(world)


@pytest.mark.parametrize("register", sorted(REGISTERS))
def test_registers_match_their_schema_exactly(world: mockworld.World, register: str) -> None:
    frame = mockworld.register_year(world, register, 2024)
    assert frame.schema == REGISTERS[register]
    assert frame.height > 0
    assert frame["PNR"].null_count() == 0


def test_register_codes_are_valid(world: mockworld.World) -> None:
    pop = mockworld.register_year(world, "population", 2023)
    assert set(pop["KOEN"].unique()) == {1, 2}
    assert set(pop["IE_TYPE"].unique()) <= {1, 2, 3}
    assert {"DNK", "GRL"} <= set(pop["OPR_LAND"].unique())
    assert set(_config("sites")["kom"].cast(pl.Int16)) <= set(pop["KOM"].unique())
    benefits = mockworld.register_year(world, "benefits", 2023)
    assert set(benefits["YDELSESKODE"].unique()) <= set(_config("dream_codes")["code"])
    assert (benefits["UGE_START"].dt.weekday() == 1).all()  # ISO weeks start on Monday
    health = mockworld.register_year(world, "health", 2023)
    assert set(health["C_PATTYPE"].unique()) == {0, 2, 3}
    assert health.filter(pl.col("C_PATTYPE") != 0)["V_SENGDAGE"].max() == 0
    assert (health["D_UDDTO"] >= health["D_INDDTO"]).all()
    assert health["RECNUM"].n_unique() == health.height
    education = mockworld.register_year(world, "education", 2023)
    assert set(education["HFAUDD"].unique()) <= set(_config("hfaudd_levels")["hfaudd"])


def test_registers_hold_no_months_after_the_reference_date(world: mockworld.World) -> None:
    employment = mockworld.register_year(world, "employment", 2026)
    assert employment["MAANED"].max() <= date(2026, 9, 1)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    from pipelines.storage import write_parquet

    a = _world(5_000, 1)
    first_files = [f.content for f in mockworld.submissions(a)]
    time.sleep(1.1)  # Excel files carry save timestamps unless the generator fixes them
    b, c = _world(5_000, 1), _world(5_000, 2)
    for register in ("benefits", "health"):
        first = write_parquet(tmp_path / "a.parquet", mockworld.register_year(a, register, 2024)).read_bytes()
        second = write_parquet(
            tmp_path / "b.parquet", mockworld.register_year(b, register, 2024)
        ).read_bytes()
        third = write_parquet(tmp_path / "c.parquet", mockworld.register_year(c, register, 2024)).read_bytes()
        assert first == second and first != third
    assert first_files == [f.content for f in mockworld.submissions(b)]
    assert mockworld.cpr_key(a).equals(mockworld.cpr_key(b))


def test_years_can_be_generated_in_any_order(world: mockworld.World) -> None:
    late_first = mockworld.register_year(world, "employment", 2025)
    mockworld.register_year(world, "employment", 2019)
    assert mockworld.register_year(world, "employment", 2025).equals(late_first)


def _monthly_self_support(world: mockworld.World) -> pl.DataFrame:
    benefits = pl.concat([mockworld.register_year(world, "benefits", y) for y in range(2020, 2027)])
    on_benefit = benefits.select("PNR", month=pl.col("UGE_START").dt.truncate("1mo")).unique()
    return on_benefit


def test_selection_and_ashenfelter_dip_are_visible(world: mockworld.World) -> None:
    months = _monthly_self_support(world)
    part = world.participants.select("PNR", start=pl.col("start").dt.truncate("1mo"))
    offsets = pl.DataFrame({"e": list(range(-36, 0))})
    grid = part.join(offsets, how="cross").with_columns(
        month=pl.col("start").dt.offset_by(pl.format("{}mo", pl.col("e")))
    )
    grid = grid.join(months.with_columns(benefit=pl.lit(1)), on=["PNR", "month"], how="left", validate="1:1")
    grid = grid.with_columns(self_support=pl.col("benefit").is_null().cast(pl.Float64))
    early = grid.filter(pl.col("e").is_between(-36, -13))["self_support"].mean()
    dip = grid.filter(pl.col("e").is_between(-6, -1))["self_support"].mean()
    # Population self-support over 2021-2023 (everyone, every month).
    population = 1 - months.filter(pl.col("month").dt.year().is_between(2021, 2023)).height / (
        world.config.persons * 36
    )
    assert early < population - 0.15, (
        early,
        population,
    )  # selection: participants are far below the population
    assert dip < early - 0.08, (dip, early)  # the dip before start
    # The crisis leaves a register trace just before start: a psychiatric admission or an emergency contact.
    health = pl.concat([mockworld.register_year(world, "health", y) for y in (2023, 2024, 2025, 2026)])
    marker = (
        health.filter(pl.col("C_PATTYPE").is_in([0, 3]))
        .join(part, on="PNR", validate="m:1")
        .filter(pl.col("D_INDDTO").dt.truncate("1mo") == pl.col("start").dt.offset_by("-1mo"))
    )
    assert marker["PNR"].n_unique() == part.height


def test_partial_recovery_without_cti_and_selection_in_truth(truth: dict) -> None:
    part = truth["selection"]["participants"]
    pop = truth["selection"]["population"]
    ss = part["self_support"]
    assert ss["dip_6_1"] < ss["post_12_24"] < ss["pre_36_13"]  # counterfactual recovers only part of the dip
    assert ss["pre_36_13"] < pop["self_support"]["pre_36_13"] - 0.15
    assert part["psych_admissions"]["pre_36_13"] > 1.5 * pop["psych_admissions"]["pre_36_13"]
    assert part["mean_edu_rank"] < pop["mean_edu_rank"] - 0.5
    assert part["non_danish_share"] > 1.5 * pop["non_danish_share"]


def test_the_effect_touches_only_participants_after_start() -> None:
    base = _world(5_000, 4)
    none = mockworld.build_world(
        mockworld.WorldConfig(persons=5_000, seed=4, effects=mockworld.PlantedEffects(0.0, 0.0, 0.0)),
        sites=_config("sites"),
        delmaalgrupper=_config("delmaalgrupper"),
        dream_codes=_config("dream_codes"),
        hfaudd_levels=_config("hfaudd_levels"),
    )
    assert base.participants.drop("multiplier").equals(none.participants.drop("multiplier"))
    starts = base.participants.select("PNR", start=pl.col("start").dt.truncate("1mo"))
    for register, day in (("benefits", "UGE_START"), ("employment", "MAANED"), ("health", "D_INDDTO")):
        frames = []
        for world in (base, none):
            frame = pl.concat([mockworld.register_year(world, register, y) for y in (2023, 2024, 2025)])
            frame = frame.join(starts, on="PNR", how="left", validate="m:1")
            untouched = pl.col("start").is_null() | (pl.col(day).dt.truncate("1mo") <= pl.col("start"))
            frames.append(frame.filter(untouched).drop("start"))
        assert frames[0].drop("RECNUM", strict=False).equals(frames[1].drop("RECNUM", strict=False)), register
    assert mockworld.truth(none)["effects"]["self_support"]["att_months_12_24"] == pytest.approx(
        0.0, abs=1e-12
    )


def test_participants_differ_from_the_population(world: mockworld.World, truth: dict) -> None:
    info = truth["participants"]
    assert 50 <= info["count"] <= 200  # 20k persons -> 4-8 per thousand
    assert info["greenlandic_share"] > 1.5 * info["population_greenlandic_share"]
    assert 0.7 <= info["completed_share"] <= 0.9
    assert set(info["by_site"]) == set(_config("sites")["site"])
    assert world.participants["start"].min() >= date(2024, 1, 1)
    assert world.participants["start"].max() <= date(2026, 9, 30)


def test_truth_states_the_planted_effect(truth: dict) -> None:
    ss = truth["effects"]["self_support"]
    assert truth["planted_effects"]["self_support_pp"] == pytest.approx(0.08)
    assert ss["att_by_event_month"]["0"] == pytest.approx(0.0, abs=1e-12)
    assert 0.05 < ss["att_months_12_24"] < 0.12
    emp = truth["effects"]["employed"]
    assert truth["planted_effects"]["employed_pp"] == pytest.approx(0.04)
    assert 0.02 < emp["att_months_12_24"] < 0.06
    em = truth["effects"]["emergency_contacts"]
    assert em["att_months_12_24"] < 0
    # Heterogeneity: completers gain more than non-completers.
    by_completion = ss["by_completed_months_12_24"]
    assert by_completion["true"]["att"] > 2 * by_completion["false"]["att"] > 0


def _read_file(sub: mockworld.SubmissionFile) -> list[list[str]]:
    """Data rows as text (header dropped, fully blank lines skipped) -- the truth's row convention."""
    if sub.filename.endswith(".xlsx"):
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(sub.content), read_only=True, data_only=True)
        rows = [[_cell(v) for v in r] for r in book["Forløb"].iter_rows(values_only=True)]
    else:
        text = sub.content.decode(sub.encoding)  # strict: the declared encoding must decode the bytes
        sep = ";" if text.splitlines()[0].count(";") else ","
        rows = [line.split(sep) for line in text.splitlines()]
    return [r for r in rows[1:] if any(cell.strip() for cell in r)]


def _cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "date"):  # openpyxl gives datetimes for cells with a date format
        return value.date().isoformat()
    return str(value)


def _header(sub: mockworld.SubmissionFile) -> str:
    if sub.filename.endswith(".xlsx"):
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(sub.content), read_only=True)
        return ";".join(str(v) for v in next(book["Forløb"].iter_rows(values_only=True)))
    return sub.content.decode(sub.encoding).splitlines()[0]


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _has_defect(row: list[str], reason: str, codes: set[str]) -> bool:
    cpr, start, end, group, _ = (cell.strip() for cell in row)
    if reason == "not_a_data_row":
        return cpr.lower().startswith("i alt")
    if reason == "cpr_wrong_length":
        return len(_digits(cpr)) not in (9, 10)
    if reason == "cpr_invalid_date":
        day, month = int(_digits(cpr)[:2]), int(_digits(cpr)[2:4])
        return len(_digits(cpr)) == 10 and (day > 91 or month > 12)
    if reason == "unknown_delmaalgruppe":
        return group not in codes
    if reason == "missing_required_field":
        return start == ""
    if reason == "date_unparseable":
        return start != "" and not start[0].isdigit() or start.endswith("?")
    if reason == "end_before_start":
        return end != "" and end != start
    return False


def test_truth_is_consistent_with_the_submission_files(world: mockworld.World, truth: dict) -> None:
    files = mockworld.submissions(world)
    codes = set(_config("delmaalgrupper")["code"])
    assert len(files) == len(truth["submissions"])
    for sub, record in zip(files, truth["submissions"], strict=True):
        assert (sub.quarter, sub.site, sub.filename, sub.version) == (
            record["quarter"],
            record["site"],
            record["filename"],
            record["version"],
        )
        rows = _read_file(sub)
        assert len(rows) == record["rows_total"]
        assert (
            record["good_rows"] + record["exact_duplicates"] + len(record["bad_rows"]) == record["rows_total"]
        )
        for bad in record["bad_rows"]:
            assert bad["reason"] in QUARANTINE_REASONS
            assert _has_defect(rows[bad["source_row"] - 1], bad["reason"], codes), (sub.filename, bad)
        flagged = {bad["source_row"] for bad in record["bad_rows"]}
        clean = [tuple(r) for i, r in enumerate(rows, start=1) if i not in flagged]
        assert len(clean) - len(set(clean)) == record["exact_duplicates"]
        assert all(r[3].strip() in codes for r in clean)
    kinds = {bad["reason"] for record in truth["submissions"] for bad in record["bad_rows"]}
    assert {
        "cpr_invalid_date",
        "cpr_wrong_length",
        "end_before_start",
        "unknown_delmaalgruppe",
        "missing_required_field",
        "date_unparseable",
        "not_a_data_row",
    } <= kinds
    assert sum(r["exact_duplicates"] for r in truth["submissions"]) > 0
    # Synthetic CPRs use day + 60, so none starts with 0 and Excel cannot drop a leading zero here:
    # the 9-digit repair is exercised by the ingest tests instead.
    assert sum(r["repaired_cpr"] for r in truth["submissions"]) == 0


def test_one_quarter_is_resubmitted_and_supersedes_the_first(world: mockworld.World, truth: dict) -> None:
    files = mockworld.submissions(world)
    pairs = [(f, r) for f, r in zip(files, truth["submissions"], strict=True) if r["version"] == 2]
    assert len(pairs) == 1
    second, record = pairs[0]
    first = next(f for f in files if (f.site, f.quarter, f.version) == (second.site, second.quarter, 1))
    assert record["supersedes"] == first.filename != second.filename
    assert second.received > first.received
    assert record["bad_rows"] == [] or all(b["reason"] == "not_a_data_row" for b in record["bad_rows"])


def test_files_decode_in_their_declared_encoding_and_keep_danish_letters(world: mockworld.World) -> None:
    files = mockworld.submissions(world)
    declared = {f.encoding for f in files}
    assert {"cp1252", "latin-1", "utf-8", "utf-8-sig", None} <= declared
    for sub in files:
        if sub.encoding is None:
            assert sub.filename.endswith(".xlsx")
            continue
        assert sub.content.startswith(b"\xef\xbb\xbf") == (sub.encoding == "utf-8-sig")
        header = _header(sub)
        if sub.encoding in ("cp1252", "latin-1"):
            with pytest.raises(UnicodeDecodeError):  # really a single-byte file, not UTF-8 by accident
                sub.content.decode("utf-8")
        assert any(letter in header for letter in "æøå"), (sub.filename, header)
    xlsx = [f for f in files if f.filename.endswith(".xlsx")]
    assert xlsx and "Gennemført" in _header(xlsx[0])


def test_ongoing_courses_are_reported_again_with_their_end_date(world: mockworld.World) -> None:
    key = dict(mockworld.cpr_key(world).iter_rows())
    seen: dict[int, set[bool]] = {}
    for sub in mockworld.submissions(world):
        if sub.filename.endswith(".xlsx") or sub.version > 1:
            continue
        for row in _read_file(sub):
            pnr = key.get(_digits(row[0]))
            if pnr is not None:
                seen.setdefault(pnr, set()).add(row[2].strip() == "")
    both = [pnr for pnr, states in seen.items() if states == {True, False}]
    assert len(both) > 10


def test_synthetic_cprs_are_day_plus_60_and_match_sex(world: mockworld.World) -> None:
    key = mockworld.cpr_key(world)
    assert key["CPR"].n_unique() == key.height
    day = key["CPR"].str.slice(0, 2).cast(pl.Int32)
    assert day.is_between(61, 91).all()
    pop = mockworld.register_year(world, "population", 2024).join(key, on="PNR", validate="1:1")
    odd = pop["CPR"].str.slice(9, 1).cast(pl.Int32) % 2 == 1
    assert ((pop["KOEN"] == 1) == odd).all()
    born = pop.with_columns(
        dd=(pl.col("CPR").str.slice(0, 2).cast(pl.Int32) - 60),
        mm=pl.col("CPR").str.slice(2, 2).cast(pl.Int32),
    )
    assert (born["dd"] == born["FOED_DAG"].dt.day()).all() and (
        born["mm"] == born["FOED_DAG"].dt.month()
    ).all()


def test_too_small_world_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1,000 persons"):
        _world(500)
    with pytest.raises(ValueError, match="unknown register"):
        mockworld.register_year(_world(1_000), "tax", 2024)


def test_register_year_is_chunked_so_memory_stays_bounded(world: mockworld.World, monkeypatch) -> None:
    monkeypatch.setattr(mockworld, "CHUNK", 3_000)
    chunked = mockworld.register_year(world, "population", 2024)
    monkeypatch.setattr(mockworld, "CHUNK", 500_000)
    assert chunked.equals(mockworld.register_year(world, "population", 2024))
    assert np.all(np.diff(chunked["PNR"].to_numpy()) > 0)


def test_stays_mark_every_crisis_with_a_discharge_in_the_month_before_it(world: mockworld.World) -> None:
    stays = pl.concat([mockworld.register_year(world, "stays", y) for y in range(2019, 2027)])
    p = world.person
    crisis = pl.DataFrame({"PNR": p["PNR"], "crisis_month": p["crisis_month"], "kind": p["crisis_kind"]})
    crisis = crisis.filter(pl.col("crisis_month") >= 0)
    assert stays["PNR"].is_unique().all() and stays.height == crisis.height  # one stay per crisis, none else
    joined = stays.join(crisis, on="PNR", how="left", validate="1:1")
    month = (pl.col("UDDATO").dt.year() - 2019) * 12 + pl.col("UDDATO").dt.month() - 1
    assert joined.select((month == pl.col("crisis_month") - 1).all()).item()
    assert joined.select((pl.col("INDDATO") < pl.col("UDDATO")).all()).item()
    kinds = dict(zip(("OVG", "PSY", "FAE"), ("BOF", "PSY", "KRF"), strict=True))
    assert joined.select((pl.col("OPHOLD_TYPE") == pl.col("kind").replace_strict(kinds)).all()).item()
    # every participant starts in the month after the discharge: the transition CTI is built for
    starts = world.participants.select("PNR", start=pl.col("start").dt.truncate("1mo"))
    linked = starts.join(stays, on="PNR", how="left", validate="1:1")
    after_discharge = pl.col("UDDATO").dt.truncate("1mo").dt.offset_by("1mo") == pl.col("start")
    assert linked.select(after_discharge.all()).item()

