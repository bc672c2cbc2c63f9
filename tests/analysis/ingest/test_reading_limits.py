"""Hostile files: bounded work per file, no file content in messages, stray control bytes never spread."""

import io
import re
import zipfile

import pytest
from openpyxl import Workbook

from analysis.ingest.submissions import ReadLimits, SubmissionError, _Budget, _sheet_rows, read_submission
from analysis.masking import mask_text

HEADER = "CPR;Startdato;Slutdato;Delmålgruppe;Gennemført"


def _rows(n: int) -> list[str]:
    return [f"{61 + i % 28:02d}0190-{i % 10_000:04d};01-02-2024;;GRL;" for i in range(n)]


def _csv(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def test_a_file_without_header_row_fails_without_quoting_its_first_line() -> None:
    content = _csv(_rows(3))  # the first line is a data row: CPR, date, empty, code, empty
    with pytest.raises(SubmissionError) as error:
        read_submission(content, filename="aarhus.csv")
    message = str(error.value)
    assert message.startswith("aarhus.csv: the header row is probably missing: the first line has 5 field(s)")
    first = _rows(1)[0]
    assert not any(field and field in message for field in first.split(";")), message  # no value quoted
    assert mask_text(message) == message  # nothing CPR-shaped either


def test_unknown_header_names_are_described_not_quoted() -> None:
    with pytest.raises(SubmissionError) as error:
        read_submission(b"Navn;Adresse\r\nPeter Hansen;Vejen 1\r\n", filename="a.csv")
    assert "no column for cpr" in str(error.value) and "2 field(s) (2 text)" in str(error.value)
    assert "Navn" not in str(error.value) and "Peter" not in str(error.value)


def test_a_cpr_in_the_file_name_is_masked_in_messages() -> None:
    with pytest.raises(SubmissionError) as error:
        read_submission(b"", filename="esbjerg_6701901236.csv")
    assert "6701901236" not in str(error.value) and "esbjerg_XXXXXXXXXX.csv" in str(error.value)


def _xlsx_declaring(ref: str, rows: list[list]) -> bytes:
    """A workbook whose sheet declares the dimension ``ref`` (as some exports do), holding only ``rows``."""
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.startswith("xl/worksheets/sheet"):
                data = re.sub(rb"<dimension ref=\"[^\"]*\" ?/>", f"<dimension ref=\"{ref}\"/>".encode(), data)
            target.writestr(info, data)
    return out.getvalue()


def test_an_xlsx_declaring_column_xfd_is_read_at_its_real_width() -> None:
    rows = [["CPR", "Startdato", "Slutdato", "Delmålgruppe", "Gennemført"]] + [
        [f"{61 + i % 28:02d}0190{i % 10_000:04d}", "01-02-2024", None, "GRL", None] for i in range(300)]
    content = _xlsx_declaring("A1:XFD1048576", rows)
    assert len(content) < 20_000
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    budget = _Budget(ReadLimits(), "x.xlsx")
    widths = {len(r) for r in _sheet_rows(sheet, budget)}
    assert max(widths) == 5, widths  # not padded to 16,384 cells per row (rows end at their last stored cell)
    assert budget.cells <= 301 * 5
    raw = read_submission(content, filename="x.xlsx", limits=ReadLimits(max_cells=10_000))
    assert raw.rows.height == 300


@pytest.mark.parametrize(("limits", "why"), [
    (ReadLimits(max_bytes=1_000), "1,000"),
    (ReadLimits(max_rows=100), "more than 100 rows"),
    (ReadLimits(max_columns=4), "5 columns (at most 4"),
    (ReadLimits(max_cells=400), "more than 400 cells"),
    (ReadLimits(max_seconds=0), "took longer than 0 s"),
])
@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_file_beyond_a_bound_fails_with_the_bound_named(limits: ReadLimits, why: str, kind: str) -> None:
    lines = [HEADER, *_rows(200)]
    if kind == "csv":
        content, name = _csv(lines), "big.csv"
    else:
        content, name = _xlsx_declaring("A1:E201", [line.split(";") for line in lines]), "big.xlsx"
    with pytest.raises(SubmissionError, match="too large to read") as error:
        read_submission(content, filename=name, limits=limits)
    assert why in str(error.value) and name in str(error.value)


def test_a_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b" " * 3_000_000)
    with pytest.raises(SubmissionError, match="unpacks to 3,000,000 bytes"):
        read_submission(out.getvalue(), filename="bomb.xlsx", limits=ReadLimits(max_unzipped_bytes=1_000_000))


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ReadLimits(max_rows=0)


@pytest.mark.parametrize("position", [10, 5_000, 40_000])
def test_stray_control_bytes_anywhere_are_removed_and_counted(position: int) -> None:
    content = bytearray(_csv([HEADER, *_rows(2_000)]))
    assert len(content) > 40_000
    while content[position] in b"\r\n;":
        position += 1
    content[position:position] = b"\x00\x01\x1b"
    raw = read_submission(bytes(content), filename="odense.csv")
    assert raw.rows.height == 2_000
    assert "3 control character(s) removed" in raw.notes
    text = "".join(str(v) for row in raw.rows.iter_rows() for v in row)
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text)


def test_a_binary_file_is_still_recognised_after_its_first_4_kb() -> None:
    content = _csv([HEADER, *_rows(200)]) + bytes(range(32)) * 2_000
    with pytest.raises(SubmissionError, match="not a text"):
        read_submission(content, filename="a.csv")
