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
    assert raw.encoding == {"cp1252": "cp1252", "latin-1": "cp1252", "utf-8": "utf-8",
                            "utf-8-sig": "utf-8-sig"}[encoding]


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
    assert raw.rows.row(0, named=True) | {} == {"source_row": 1, "file_line": None, "sheet": "Forløb",
                                               "sheet_row": 2, "cpr": "6101901235",
                                               "start_date": "2024-02-01", "end_date": None,
                                               "delmaalgruppe": "GRL", "completed": None}


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


def _line_of(content: bytes, text: str) -> int:
    """The 1-based line of ``content`` holding ``text``, counted the way an editor does (CRLF, LF, CR)."""
    lines = content.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return next(i for i, line in enumerate(lines, start=1) if text in line)


def test_csv_rows_carry_the_line_the_site_sees() -> None:
    # blank lines above the header, blank rows inside, a quoted field over two lines, and a form feed inside
    # a field (str.splitlines would have split the row there)
    content = ("\r\n;;;;\r\n" + HEADER + "\r\n"
               "610190-1235;01-02-2024;;GRL;\r\n;;;;\r\n"
               '710285-2346;"15-03-2024";"10-12-2024";"OVG\nnote";Ja\r\n'
               "620190-1235;01-03-2024;;PS\x0cY;\r\n\r\n"
               "630190-1235;primo 12/2025;;GRL;\r\n").encode("utf-8")
    raw = read_submission(content, filename="aarhus.csv")
    assert raw.rows["source_row"].to_list() == [1, 2, 3, 4]  # the pipeline's numbering is unchanged
    cprs = ("610190-1235", "710285-2346", "620190-1235", "630190-1235")
    expected = [_line_of(content, cpr) for cpr in cprs]
    assert raw.rows["file_line"].to_list() == expected == [4, 6, 8, 10]
    assert raw.rows["sheet"].null_count() == 4 and raw.rows["sheet_row"].null_count() == 4
    assert raw.rows["delmaalgruppe"][2] == "PSY"  # one row, not two (the form feed removed as a control byte)
    assert raw.header == ("CPR-nr.", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført")
    assert raw.positions == {"cpr": 0, "start_date": 1, "end_date": 2, "delmaalgruppe": 3, "completed": 4}


def test_xlsx_rows_carry_sheet_and_excel_row_on_a_sheet_that_is_not_the_first() -> None:
    from openpyxl import load_workbook

    book = Workbook()
    book.active.title = "Vejledning"
    book.active.append(["Udfyld arket 'Forløb'. Én række pr. borger."])
    sheet = book.create_sheet("Forløb")
    # four empty rows above the header, and the table starts in column B
    headers = ("CPR", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført")
    for column, header in zip("BCDEF", headers, strict=True):
        sheet[f"{column}5"] = header
    sheet.append([None, "610190-1235", "01-02-2024", None, "GRL", None])  # row 6
    sheet.append([])  # row 7 blank
    sheet["B9"], sheet["C9"], sheet["E9"] = "710285-2346", "31-02-2024", "OVG"
    buffer = io.BytesIO()
    book.save(buffer)
    content = buffer.getvalue()
    raw = read_submission(content, filename="odense.xlsx")
    assert raw.sheet == "Forløb"
    assert raw.rows.select("source_row", "sheet", "sheet_row", "file_line").rows() == [
        (1, "Forløb", 6, None), (2, "Forløb", 9, None)]
    reopened = load_workbook(io.BytesIO(content))["Forløb"]  # the row number is where Excel shows the value
    for cpr, row in raw.rows.select("cpr", "sheet_row").rows():
        assert reopened[f"B{row}"].value == cpr
    assert raw.positions["cpr"] == 1  # column B


def test_unreadable_files_say_why_in_a_reason_code() -> None:
    with pytest.raises(SubmissionError) as error:
        read_submission(b"Navn;Dato\r\nPeter;1\r\n", filename="a.csv")
    assert error.value.reason == "header_columns_missing"
    assert error.value.details["missing"] == "cpr,start_date,delmaalgruppe"
    with pytest.raises(SubmissionError) as error:
        read_submission(_xlsx({"Ark1": [["Navn", "Dato"], ["Peter", 1]]}), filename="b.xlsx")
    assert error.value.reason == "header_columns_missing" and error.value.details["sheet"] == "Ark1"
    with pytest.raises(SubmissionError) as error:
        read_submission(b"", filename="c.csv")
    assert error.value.reason == "empty" and error.value.details == {"filename": "c.csv"}


def test_the_columns_record_masks_digit_runs_in_unknown_headers() -> None:
    import json

    from analysis.ingest.submissions import columns_record

    raw = read_submission(_csv("utf-8", header=HEADER + ";Note 6101901235", rows=[r + ";x" for r in ROWS]),
                          filename="a.csv")
    record = json.loads(columns_record(raw))
    assert record["header"][:2] == ["CPR-nr.", "Startdato"] and record["header"][5] == "Note XXXXXXXXXX"
    assert record["positions"]["completed"] == 4
