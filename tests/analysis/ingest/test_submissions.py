import io
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from analysis.ingest.submissions import SubmissionError, read_submission
from analysis.ingest.validate import conservation_ok, validate_rows
from pipelines.configuration import ConfigDir

HEADER = "CPR-nr.;Startdato;Slutdato;Delmålgruppe;Gennemført"
ROWS = ["610190-1235;01-02-2024;;GRL;", "710285-2346;15.03.2024;10.12.2024;OVG;Ja"]
CODES = ConfigDir().table("delmaalgrupper")


def _csv(encoding: str, sep: str = ";", rows=ROWS, header=HEADER) -> bytes:
    text = "\r\n".join([header.replace(";", sep)] + [r.replace(";", sep) for r in rows]) + "\r\n"
    return text.encode(encoding)


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-8", "utf-8-sig"])
@pytest.mark.parametrize("sep", [";", ","])
def test_every_encoding_and_separator_reads_the_same(encoding: str, sep: str) -> None:
    raw = read_submission(_csv(encoding, sep), filename="aarhus.csv")
    assert raw.rows["cpr"].to_list() == ["610190-1235", "710285-2346"]
    assert raw.rows["source_row"].to_list() == [1, 2]
    assert raw.header_map["Delmålgruppe"] == "delmaalgruppe"  # æøå survived the decoding
    assert raw.delimiter == sep
    assert raw.encoding == {"cp1252": "cp1252", "latin-1": "cp1252", "utf-8": "utf-8", "utf-8-sig": "utf-8-sig"}[encoding]


@pytest.mark.parametrize(
    "header",
    [
        "CPR;Start dato;Slut dato;Målgruppe;Afsluttet (ja/nej)",
        "Personnummer;Opstart;Ophørsdato;Delmaalgruppe;Fuldført",
        "cpr_nr;startdato;slutdato;delmålgruppe (kode);gennemfort",
    ],
)
def test_header_variants_map_to_canonical_columns(header: str) -> None:
    raw = read_submission(_csv("utf-8", header=header), filename="x.csv")
    assert sorted(raw.header_map.values()) == ["completed", "cpr", "delmaalgruppe", "end_date", "start_date"]


def _xlsx(sheets: dict[str, list[list]]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_excel_with_a_guide_sheet_first_and_real_dates() -> None:
    content = _xlsx({
        "Vejledning": [["Sådan udfylder du arket"]],
        "Forløb": [["CPR", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført"],
                   [6101901235, datetime(2024, 2, 1), None, "GRL", None], [None, None, None, None, None]],
    })
    raw = read_submission(content, filename="odense.xlsx")
    assert raw.sheet == "Forløb" and raw.blank_lines_skipped == 1
    assert raw.rows.row(0, named=True) | {} == {"source_row": 1, "cpr": "6101901235", "start_date": "2024-02-01",
                                               "end_date": None, "delmaalgruppe": "GRL", "completed": None}


@pytest.mark.parametrize(
    ("content", "filename", "words"),
    [
        (b"", "a.csv", "empty"),
        (b"   \r\n", "a.csv", "empty"),
        (b"\x00\x01\x02garbage\xff" * 100, "a.csv", "not a text"),
        (b"Navn;Dato\r\nPeter;1\r\n", "a.csv", "no column for cpr"),
        (b"PK\x03\x04broken zip", "a.xlsx", "could not be opened"),
        (b"CPR;Startdato\r\n", "a.xlsx", "not an Excel workbook"),
    ],
)
def test_unreadable_files_get_a_stewards_message(content: bytes, filename: str, words: str) -> None:
    with pytest.raises(SubmissionError) as error:
        read_submission(content, filename=filename)
    assert filename in str(error.value) and words.lower() in str(error.value).lower()


def test_header_only_file_has_no_rows() -> None:
    assert read_submission(_csv("utf-8", rows=[]), filename="a.csv").rows.height == 0


def test_truncated_file_keeps_what_is_there() -> None:
    content = _csv("utf-8")[:-12]  # cut in the middle of the last row
    raw = read_submission(content, filename="a.csv")
    result = validate_rows(raw.rows, quarter="2024Q1", site="x", codes=CODES, today=date(2024, 3, 31))
    assert conservation_ok(result) and result.rows_in == 2


def _ingest(content: bytes) -> None:
    try:
        raw = read_submission(content, filename="fuzz.csv")
    except SubmissionError:
        return
    result = validate_rows(raw.rows, quarter="2024Q1", site="x", codes=CODES, today=date(2024, 3, 31))
    assert conservation_ok(result)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2_000))
def test_random_bytes_never_crash(content: bytes) -> None:
    _ingest(content)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_good_files_never_crash(data) -> None:
    content = bytearray(_csv(data.draw(st.sampled_from(["utf-8", "cp1252", "utf-8-sig"]))))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(content) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            content[position] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del content[position]
        else:
            content.insert(position, data.draw(st.sampled_from(list(b";,\r\n\"x0-9"))))
    _ingest(bytes(content))


def test_a_huge_file_is_read_in_one_pass() -> None:
    rows = [f"{61 + i % 28:02d}0190-{i % 10_000:04d};01-02-2024;;GRL;" for i in range(50_000)]
    raw = read_submission(_csv("cp1252", rows=rows), filename="big.csv")
    result = validate_rows(raw.rows, quarter="2024Q1", site="x", codes=CODES, today=date(2024, 3, 31))
    assert conservation_ok(result) and result.rows_in == 50_000
