"""What each quarantine reason means, in Danish (for the sites) and English (for SBST staff).

One place words every rule: a reason's label, its rule (generated from ``analysis.ingest.rules``, so the
text cannot drift from the check), the sentence about one row that names the cell, and advice specific to the
failure (an impossible date such as ``31-02-2024`` is told something else than an unknown format or a
two-digit year). ``validate`` uses the English sentence for the quarantine's ``message``; the feedback
workbook and the steward view use either language.

A row is referred to as the site sees it: CSV line (header = line 1) or Excel sheet and row; a cell adds the
column letter and the site's own header text when they are known (``Columns``).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from analysis.ingest import rules

LANGUAGES = ("da", "en")
DANISH, ENGLISH = LANGUAGES

MONTHS_DA = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober",
             "november", "december")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")

#: Field names (definite form, indefinite form) per language, by canonical column.
FIELDS = {
    DANISH: {"cpr": ("CPR-nummeret", "CPR-nummer"), "start_date": ("startdatoen", "startdato"),
             "end_date": ("slutdatoen", "slutdato"), "delmaalgruppe": ("delmålgruppen", "delmålgruppe"),
             "completed": ("feltet 'Gennemført'", "gennemført (ja/nej)")},
    ENGLISH: {"cpr": ("the CPR number", "CPR number"), "start_date": ("the start date", "start date"),
              "end_date": ("the end date", "end date"),
              "delmaalgruppe": ("the delmålgruppe code", "delmålgruppe"),
              "completed": ("the completed flag", "completed (yes/no)")},
}
#: The header a site should use for each column (the mock world's and most sites' spelling).
STANDARD_HEADERS = {"cpr": "CPR-nr.", "start_date": "Startdato", "end_date": "Slutdato",
                    "delmaalgruppe": "Delmålgruppe", "completed": "Gennemført"}


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def format_date(day: date | None, /) -> str:
    """``15-03-2024``: the form the sites are asked to write (both languages)."""
    return "" if day is None else day.strftime("%d-%m-%Y")


def long_date(day: date, /, *, language: str) -> str:
    """``20. januar 2027`` / ``20 January 2027``."""
    if language == DANISH:
        return f"{day.day}. {MONTHS_DA[day.month - 1]} {day.year}"
    return f"{day.day} {MONTHS_EN[day.month - 1]} {day.year}"


def quarter_bounds(label: str, /) -> tuple[date, date]:
    """First and last day of quarter ``"2024Q3"``."""
    match = re.fullmatch(r"(\d{4})Q([1-4])", label or "")
    if not match:
        raise ValueError(f"quarter {label!r} is not of the form YYYYQn (e.g. 2024Q3)")
    year, number = int(match[1]), int(match[2])
    first = date(year, 3 * number - 2, 1)
    last = date(year + (number == 4), (3 * number) % 12 + 1, 1) - timedelta(days=1)
    return first, last


def quarter_name(label: str, /, *, language: str) -> str:
    """``3. kvartal 2026`` / ``Q3 2026``."""
    year, number = label[:4], label[-1]
    return f"{number}. kvartal {year}" if language == DANISH else f"Q{number} {year}"


def next_quarter(label: str, /) -> str:
    """Return the quarter after ``label``."""
    year, number = int(label[:4]), int(label[-1])
    return f"{year + number // 4}Q{number % 4 + 1}"


# --- where a row and a cell are, as the site sees them ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Columns:
    """The site's header row and where each canonical column is in it (from ``RawSubmission``)."""

    header: tuple[str, ...] = ()
    positions: Mapping[str, int] = field(default_factory=dict)

    def header_of(self, column: str, /) -> str | None:
        """Return the site's own header text of ``column`` (None when the file has no such column)."""
        position = self.positions.get(column)
        return self.header[position] if position is not None and position < len(self.header) else None

    def letter_of(self, column: str, /) -> str | None:
        """Return Excel's column letter of ``column`` in the site's file."""
        position = self.positions.get(column)
        return None if position is None else column_letter(position)


def column_letter(position: int, /) -> str:
    """Excel's letter for the 0-based column ``position`` (0 -> A, 26 -> AA)."""
    letters, number = "", position + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def site_line(row: Mapping, /) -> int | None:
    """Return the number the site sees: CSV line or sheet row (None for rows read before they were kept)."""
    for key in ("file_line", "sheet_row"):
        if row.get(key) is not None:
            return int(row[key])
    return None


def location(row: Mapping, /, *, language: str) -> str:
    """``linje 17`` (CSV), ``arket 'Forløb', række 30`` (Excel), or ``datarække 16`` when unknown."""
    _check_language(language)
    if row.get("sheet") and row.get("sheet_row") is not None:
        return (f"arket '{row['sheet']}', række {row['sheet_row']}" if language == DANISH
                else f"sheet '{row['sheet']}', row {row['sheet_row']}")
    if row.get("file_line") is not None:
        return f"linje {row['file_line']}" if language == DANISH else f"line {row['file_line']}"
    return f"datarække {row['source_row']}" if language == DANISH else f"data row {row['source_row']}"


def _in_cell(row: Mapping, column: str, columns: Columns | None, language: str) -> str:
    """`` i celle B17 ('Startdato')``, `` i kolonnen 'Startdato'`` or nothing when the header is unknown."""
    if columns is None:
        return ""
    header, letter, line = columns.header_of(column), columns.letter_of(column), site_line(row)
    named = f" ('{header}')" if header else ""
    if letter and line is not None:
        return f" i celle {letter}{line}{named}" if language == DANISH else f" in cell {letter}{line}{named}"
    if header:
        return f" i kolonnen '{header}'" if language == DANISH else f" in column '{header}'"
    return ""


def cell_refs(row: Mapping, reasons: Sequence[str], columns: Columns | None, /) -> str:
    """List the cells to correct, e.g. ``B17, C17`` (empty when the columns are unknown)."""
    if columns is None or site_line(row) is None:
        return ""
    wanted = []
    for reason in reasons:
        wanted += _REASON_COLUMNS.get(reason, ())
        if reason == "missing_required_field":
            wanted += [c for c in ("cpr", "start_date", "delmaalgruppe") if row.get(c) is None]
        if reason == "date_unparseable":
            wanted += [c for c in ("start_date", "end_date") if _unreadable_date(row, c)]
    letters = []
    for column in dict.fromkeys(wanted):
        letter = columns.letter_of(column)
        if letter:
            letters.append(f"{letter}{site_line(row)}")
    return ", ".join(letters)


_REASON_COLUMNS = {
    "cpr_wrong_length": ("cpr",), "cpr_invalid_date": ("cpr",),
    "end_before_start": ("start_date", "end_date"),
    "start_in_future": ("start_date",), "course_too_long": ("start_date", "end_date"),
    "unknown_delmaalgruppe": ("delmaalgruppe",), "completed_unparseable": ("completed",),
    "duplicate_in_file": ("cpr", "start_date"),
}


def _unreadable_date(row: Mapping, column: str) -> bool:
    parsed = {"start_date": "start_parsed", "end_date": "end_parsed"}[column]
    return row.get(column) is not None and row.get(parsed) is None


# --- dates: why a text is not a date ------------------------------------------------------------------------

_DMY = re.compile(r"(\d{1,2})([-./])(\d{1,2})\2(\d{1,4})")
_YMD = re.compile(r"(\d{4})([-./])(\d{1,2})\2(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?")


@dataclass(frozen=True, slots=True)
class DateIssue:
    """Why a text could not be read as a date.

    ``kind``: ``impossible_day`` (31-02-2024, 2024-02-30), ``impossible_month`` (15-13-2024),
    ``month_first`` (03/15/2024: the month before the day), ``two_digit_year`` (31-02-24: a two-digit year on
    a date that does not exist), ``bad_year`` (15-03-0024, 15-03-124), ``number`` (a number that is no Excel
    date in range), ``no_separators`` (15032024) or ``unknown_format`` (primo 12/2025, 15-03-2024?).
    """

    kind: str
    day: int | None = None
    month: int | None = None
    year: int | None = None
    suggestion: date | None = None  # what the site probably meant
    serial_date: date | None = None  # a number read as an Excel serial day


def _real(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day) if rules.MIN_YEAR <= year <= rules.MAX_YEAR else None
    except ValueError:
        return None


def _embedded(text: str) -> date | None:
    for match in _DMY.finditer(text):
        if len(match[4]) == 4 and (found := _real(int(match[4]), int(match[3]), int(match[1]))):
            return found
    for match in _YMD.finditer(text):
        if found := _real(int(match[1]), int(match[3]), int(match[4])):
            return found
    return None


def date_issue(text: str, /) -> DateIssue:
    """Classify a date text that ``validate.parse_dates`` could not read."""
    value = text.strip()
    if match := _YMD.fullmatch(value):
        year, month, day, digits, day_first = int(match[1]), int(match[3]), int(match[4]), 4, False
    elif match := _DMY.fullmatch(value):
        day, month, digits, day_first = int(match[1]), int(match[3]), len(match[4]), True
        year = int(match[4]) + (2000 if digits == 2 else 0)
    else:
        match = None
    if match:
        if digits not in (2, 4) or not rules.MIN_YEAR <= year <= rules.MAX_YEAR:
            return DateIssue("bad_year", day, month, year)
        two = digits == 2
        if not 1 <= month <= 12:
            swapped = _real(year, day, month) if day_first and 1 <= day <= 12 else None
            if swapped:
                return DateIssue("month_first", day, month, year, suggestion=swapped)
            return DateIssue("two_digit_year" if two else "impossible_month", day, month, year)
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            return DateIssue("two_digit_year" if two else "impossible_day", day, month, year)
        return DateIssue("unknown_format", day, month, year, suggestion=_real(year, month, day))
    if re.fullmatch(r"\d+(\.0+)?", value):
        digits_only = value.split(".")[0]
        guess = None
        if len(digits_only) == 8:
            guess = _real(int(digits_only[4:]), int(digits_only[2:4]), int(digits_only[:2])) or _real(
                int(digits_only[:4]), int(digits_only[4:6]), int(digits_only[6:]))
        elif len(digits_only) == 6:
            guess = _real(2000 + int(digits_only[4:]), int(digits_only[2:4]), int(digits_only[:2]))
        if guess:
            return DateIssue("no_separators", suggestion=guess)
        number = int(digits_only)
        serial = date(*rules.EXCEL_EPOCH) + timedelta(days=number) if number < 2_958_000 else None
        return DateIssue("number", serial_date=serial)
    return DateIssue("unknown_format", suggestion=_embedded(value))


def _month_days(issue: DateIssue, language: str) -> str:
    if issue.month is not None and 1 <= issue.month <= 12 and issue.year is not None:
        days = calendar.monthrange(issue.year, issue.month)[1]
        month = (MONTHS_DA if language == DANISH else MONTHS_EN)[issue.month - 1]
        return (f"{month} {issue.year} har {days} dage" if language == DANISH
                else f"{month} {issue.year} has {days} days")
    return f"måned {issue.month} findes ikke" if language == DANISH else f"there is no month {issue.month}"


def _excel_range(language: str) -> str:
    first = date(*rules.EXCEL_EPOCH) + timedelta(days=rules.EXCEL_MIN)
    last = date(*rules.EXCEL_EPOCH) + timedelta(days=rules.EXCEL_MAX)
    return f"{format_date(first)} til {format_date(last)}" if language == DANISH else \
        f"{format_date(first)} to {format_date(last)}"


def date_formats(language: str, /) -> str:
    """Name the date formats read, from ``rules.DATE_FORMATS``: ``DD-MM-ÅÅÅÅ, DD.MM.ÅÅÅÅ, ...``."""
    year = "ÅÅÅÅ" if language == DANISH else "YYYY"
    shown = []
    for fmt in rules.DATE_FORMATS:
        text = fmt.split("T")[0].split(" ")[0].replace("%d", "DD").replace("%m", "MM").replace("%Y", year)
        if text not in shown:
            shown.append(text)
    return ", ".join(shown)


#: (message, advice) per kind of unreadable date; ``{Name}``/``{name}`` is the field, ``{cell}`` where it is.
_DATE_TEXTS = {
    DANISH: {
        "impossible": ("{Name} '{text}'{cell} er ikke en dato, der findes: {month_days}.",
                       "Ret {name} til den rigtige dag og måned; formatet er i orden."),
        "month_first": ("{Name} '{text}'{cell} har måneden før dagen (der er ingen måned {month}).",
                        "Skriv dagen først: {suggestion} (DD-MM-ÅÅÅÅ)."),
        "two_digit_year": ("{Name} '{text}'{cell} kan ikke læses: året står med to cifre, og {month_days}.",
                           "Skriv datoen med firecifret årstal som DD-MM-ÅÅÅÅ, fx 15-03-2024, og kontrollér "
                           "dag og måned."),
        "bad_year": ("{Name} '{text}'{cell} har årstallet {year}, som ikke kan være rigtigt.",
                     "Skriv året med fire cifre, fx 2024."),
        "number": ("{Name} '{text}'{cell} er et tal og ikke en dato.{serial}",
                   "Formatér cellen som dato i Excel, eller skriv datoen som DD-MM-ÅÅÅÅ."),
        "no_separators": ("{Name} '{text}'{cell} står uden skilletegn, så dag, måned og år kan ikke skelnes "
                          "sikkert.", "Skriv datoen med bindestreger: {suggestion}."),
        "unknown_format": ("{Name} '{text}'{cell} kan ikke læses som en dato{meant}.",
                           "Skriv kun datoen, som DD-MM-ÅÅÅÅ; ord som 'primo' og tegn som '?' kan ikke "
                           "læses. Vi kan læse {formats} og Excel-datoer."),
        "serial": " Læst som Excel-datotal er det {serial_date}, uden for {excel_range}.",
        "meant": " (mente I {suggestion}?)",
    },
    ENGLISH: {
        "impossible": ("{Name} '{text}'{cell} is not a date that exists: {month_days}.",
                       "Correct {name} to the right day and month; the format is fine."),
        "month_first": ("{Name} '{text}'{cell} has the month before the day (there is no month {month}).",
                        "Write the day first: {suggestion} (DD-MM-YYYY)."),
        "two_digit_year": ("{Name} '{text}'{cell} cannot be read: the year has two digits and {month_days}.",
                           "Write the date with a four-digit year as DD-MM-YYYY, e.g. 15-03-2024, and check "
                           "the day and month."),
        "bad_year": ("{Name} '{text}'{cell} has the year {year}, which cannot be right.",
                     "Write the year with four digits, e.g. 2024."),
        "number": ("{Name} '{text}'{cell} is a number, not a date.{serial}",
                   "Format the cell as a date in Excel, or write the date as DD-MM-YYYY."),
        "no_separators": ("{Name} '{text}'{cell} has no separators, so day, month and year cannot be told "
                          "apart safely.", "Write the date with hyphens: {suggestion}."),
        "unknown_format": ("{Name} '{text}'{cell} cannot be read as a date{meant}.",
                           "Write only the date, as DD-MM-YYYY; words such as 'primo' and marks such as '?' "
                           "cannot be read. Readable: {formats} and Excel dates."),
        "serial": " Read as an Excel date number it is {serial_date}, outside {excel_range}.",
        "meant": " (did you mean {suggestion}?)",
    },
}


def _date_sentence(row: Mapping, column: str, columns: Columns | None, language: str) -> tuple[str, str]:
    """(message, advice) for one unreadable date cell."""
    text, issue = row[column], date_issue(row[column])
    texts = _DATE_TEXTS[language]
    name = FIELDS[language][column][0]
    values = {
        "Name": _cap(name), "name": name, "text": text, "cell": _in_cell(row, column, columns, language),
        "month_days": _month_days(issue, language), "month": issue.month, "year": issue.year,
        "suggestion": format_date(issue.suggestion), "formats": date_formats(language),
    }
    values["serial"] = texts["serial"].format(serial_date=format_date(issue.serial_date),
                                              excel_range=_excel_range(language)) if issue.serial_date else ""
    values["meant"] = texts["meant"].format(**values) if issue.suggestion else ""
    kind = "impossible" if issue.kind in ("impossible_day", "impossible_month") else issue.kind
    message, advice = texts[kind]
    return message.format(**values), advice.format(**values)


# --- the rules and their labels -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReasonText:
    """How a reason is named, the rule behind it and what the site does about it in general."""

    label: str
    rule: str
    advice: str


def _codes_text(codes: pl.DataFrame | None, language: str, *, on: date | None = None) -> str:
    """``OVG (Overgang ...), PSY (...)``: the codes (valid on ``on``, if given), with their end dates."""
    if codes is None or not codes.height:
        return "se kodelisten" if language == DANISH else "see the code list"
    items = []
    for row in codes.iter_rows(named=True):
        start = _parse_iso(row.get("valid_from"))
        end = _parse_iso(row.get("valid_to"))
        if on is not None and ((start and on < start) or (end and on > end)):
            continue
        until = ""
        if end and on is None:
            until = (f", til og med {format_date(end)}" if language == DANISH
                     else f", until {format_date(end)}")
        label = (row.get("label") or "").strip()
        items.append(f"{row['code']}: {label}{until}" if label else f"{row['code']}{until}")
    return "; ".join(items) if items else ("ingen" if language == DANISH else "none")


def _parse_iso(value) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def reason_texts(language: str, /, *, codes: pl.DataFrame | None = None) -> dict[str, ReasonText]:
    """Label, rule and general advice of every quarantine reason (``analysis.schema.QUARANTINE_REASONS``)."""
    _check_language(language)
    yes, no = rules.YES, rules.NO
    replacement = rules.CPR_REPLACEMENT_DAY_OFFSET
    if language == DANISH:
        return {
            "missing_required_field": ReasonText(
                "Manglende oplysning",
                "CPR-nummer, startdato og delmålgruppe skal udfyldes i hver række; slutdato og gennemført "
                "udfyldes, når forløbet er slut.",
                "Udfyld de tomme felter i rækken."),
            "cpr_wrong_length": ReasonText(
                "CPR-nummer med forkert antal cifre",
                "Et CPR-nummer har 10 cifre (DDMMÅÅ-XXXX), med eller uden bindestreg.",
                "Ret CPR-nummeret, så det har 10 cifre. Formatér kolonnen som tekst i Excel, så et "
                "foranstillet 0 ikke forsvinder."),
            "cpr_invalid_date": ReasonText(
                "CPR-nummer uden gyldig fødselsdato",
                "De første 6 cifre i et CPR-nummer er fødselsdatoen (DDMMÅÅ); erstatningsnumre, hvor dagen "
                f"er lagt {replacement} til, godtages.",
                "Ret CPR-nummeret; kontrollér især, om to cifre er byttet om."),
            "date_unparseable": ReasonText(
                "Dato kan ikke læses",
                f"Datoer skrives som {date_formats(language)}; år med to cifre læses som 20ÅÅ, og "
                f"Excel-datoer godtages fra {_excel_range(language)}.",
                "Skriv datoen som DD-MM-ÅÅÅÅ, fx 15-03-2024."),
            "end_before_start": ReasonText(
                "Slutdato før startdato",
                "Slutdatoen må ikke ligge før startdatoen.",
                "Ret start- eller slutdatoen; kontrollér, om de er byttet om."),
            "start_in_future": ReasonText(
                "Startdato efter kvartalets udløb",
                "Et forløb indberettes i det kvartal, hvor det starter, eller senere: startdatoen må ikke "
                "ligge efter kvartalets sidste dag.",
                "Ret startdatoen, eller indberet forløbet i det kvartal, hvor det starter."),
            "course_too_long": ReasonText(
                "Forløbet er for langt",
                f"Et CTI-forløb varer {rules.COURSE_MONTHS} måneder. Forløb på op til "
                f"{rules.MAX_COURSE_MONTHS} måneder godtages (én fase på {rules.COURSE_TOLERANCE_MONTHS} "
                "måneder ekstra); et længere forløb er oftest en datofejl, fx et forkert årstal.",
                "Kontrollér start- og slutdatoen. Er forløbet virkelig så langt, så skriv til os."),
            "unknown_delmaalgruppe": ReasonText(
                "Ukendt delmålgruppe",
                f"Delmålgruppen skal være en kode fra kodelisten, som gælder på forløbets startdato: "
                f"{_codes_text(codes, language)}.",
                "Brug en kode fra kodelisten, som gælder på startdatoen."),
            "completed_unparseable": ReasonText(
                "Gennemført er hverken ja eller nej",
                f"Gennemført angives som ja ({', '.join(yes[:4])}) eller nej ({', '.join(no[:3])}) og står "
                "tom, mens forløbet er i gang.",
                "Skriv Ja eller Nej."),
            "duplicate_in_file": ReasonText(
                "Borgeren står flere gange",
                "Hver borger og startdato må kun stå én gang i filen. Helt ens rækker fjerner vi selv.",
                "Behold én række med de rigtige oplysninger, og slet de andre."),
            "not_a_data_row": ReasonText(
                "Sum- eller totalrække",
                "Filen må kun indeholde forløb: ingen rækker med i alt, total, antal eller sum.",
                "Fjern sum- og totalrækker fra filen."),
        }
    return {
        "missing_required_field": ReasonText(
            "Required field empty",
            "CPR number, start date and delmålgruppe are required on every row; end date and completed are "
            "filled in when the course ends.",
            "Fill in the empty fields of the row."),
        "cpr_wrong_length": ReasonText(
            "CPR number has the wrong length",
            "A CPR number has 10 digits (DDMMYY-SSSS), with or without the hyphen.",
            "Correct the CPR number to 10 digits. Format the column as text in Excel so a leading 0 is "
            "kept."),
        "cpr_invalid_date": ReasonText(
            "CPR number is not a valid date",
            f"The first 6 digits of a CPR number are the birth date (DDMMYY); replacement numbers with "
            f"{replacement} added to the day are accepted.",
            "Correct the CPR number; check for two swapped digits."),
        "date_unparseable": ReasonText(
            "Date cannot be read",
            f"Dates are written as {date_formats(language)}; two-digit years are read as 20YY, and Excel "
            f"dates are accepted from {_excel_range(language)}.",
            "Write the date as DD-MM-YYYY, e.g. 15-03-2024."),
        "end_before_start": ReasonText(
            "End date before start date",
            "The end date may not be before the start date.",
            "Correct the start or end date; check whether they were swapped."),
        "start_in_future": ReasonText(
            "Start date after the quarter",
            "A course is reported in the quarter it starts or later: the start date may not be after the "
            "quarter's last day.",
            "Correct the start date, or report the course in the quarter it starts."),
        "course_too_long": ReasonText(
            "Course too long",
            f"A CTI course lasts {rules.COURSE_MONTHS} months. Courses of up to {rules.MAX_COURSE_MONTHS} "
            f"months are accepted (one more phase of {rules.COURSE_TOLERANCE_MONTHS} months); a longer one "
            "is most often a date error such as a wrong year.",
            "Check the start and end dates. If the course really is that long, write to us."),
        "unknown_delmaalgruppe": ReasonText(
            "Unknown delmålgruppe",
            f"The delmålgruppe must be a code from the code list that is valid on the course's start date: "
            f"{_codes_text(codes, language)}.",
            "Use a code from the code list that is valid on the start date."),
        "completed_unparseable": ReasonText(
            "Completed is not yes/no",
            f"Completed is yes ({', '.join(yes[:4])}) or no ({', '.join(no[:3])}), and empty while the "
            "course is ongoing.",
            "Write Ja or Nej."),
        "duplicate_in_file": ReasonText(
            "Same person twice in the file",
            "Each person and start date may appear once in the file. Identical rows are removed "
            "automatically.",
            "Keep one row with the right content and delete the others."),
        "not_a_data_row": ReasonText(
            "Totals row",
            "The file may only hold courses: no rows of totals, counts or sums.",
            "Remove totals and summary rows from the file."),
    }


# --- one row ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RowText:
    """What the site reads about one quarantined row."""

    labels: str  # the reasons' labels, "; "-joined
    message: str  # what is wrong, naming the cells
    advice: str  # what to do about it
    cells: str  # e.g. "B17, C17" (empty when the columns are unknown)


def _months_between(start: date, end: date) -> int:
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - (end.day < start.day)


#: The sentence about one row, per reason; the placeholders are filled by :func:`row_text`.
_ROW_TEXTS = {
    DANISH: {
        "missing_required_field": "{Name}{cell} er {empty}.",
        "cpr_wrong_length": "CPR-nummeret{cell_cpr} har {digits} cifre; det skal have 10 "
                            "(DDMMÅÅ-XXXX).{nine}",
        "nine": " Et foranstillet 0 mangler måske, men med 0 foran er de første 6 cifre ikke en dato.",
        "cpr_invalid_date": "De første 6 cifre i CPR-nummeret{cell_cpr} er ikke en gyldig fødselsdato{why}.",
        "no_month": ": måned {month} findes ikke", "no_day": ": dag {day} findes ikke",
        "no_such_day": ": den dag findes ikke",
        "end_before_start": "Slutdatoen {end}{cell_end} ligger før startdatoen {start}{cell_start}.",
        "start_in_future": "Startdatoen {start}{cell_start} ligger efter kvartalets sidste dag{quarter_end}.",
        "course_too_long": "Forløbet varer fra {start}{cell_start} til {end}{cell_end}, {months} måneder; et "
                           "CTI-forløb varer {nominal} måneder, og vi godtager op til {maximum}.",
        "code_unknown": "Delmålgruppen '{code}'{cell_code} findes ikke på kodelisten.",
        "code_not_valid": "Koden '{code}'{cell_code} gælder kun for forløb, der starter {span}; forløbet "
                          "starter {start}.",
        "span": "fra {valid_from}", "span_to": " til og med {valid_to}",
        "start_early": "Er startdatoen rigtig? (Et år med to cifre som '24-03-15' læses som 24-03-2015.)",
        "code_advice": "Brug en kode, der gælder på startdatoen: {valid}.",
        "no_code": "Ingen kode gælder på startdatoen {start}; kontrollér startdatoen.",
        "completed_unparseable": "'{completed}'{cell_completed} er hverken ja eller nej.",
        "duplicate_in_file": "Samme CPR-nummer og startdato står også i {unit} {others} med andet indhold.",
        "duplicate_unknown": "Samme CPR-nummer og startdato står flere gange i filen, med andet indhold.",
        "line": "linje", "row": "række", "lines": "linje", "rows": "række",
        "not_a_data_row": "Rækken er en sum- eller totalrække ('{first}'), ikke et forløb.",
        "fill": "Udfyld {fields}.", "and": " og ",
        "unknown": "Ukendt fejl ({reason}).",
    },
    ENGLISH: {
        "missing_required_field": "{Name}{cell} is {empty}.",
        "cpr_wrong_length": "The CPR number{cell_cpr} has {digits} digits; it must have 10 "
                            "(DDMMYY-SSSS).{nine}",
        "nine": " A leading 0 may be missing, but with a 0 in front the first 6 digits are no date.",
        "cpr_invalid_date": "The first 6 digits of the CPR number{cell_cpr} are not a valid birth date{why}.",
        "no_month": ": there is no month {month}", "no_day": ": there is no day {day}",
        "no_such_day": ": that day does not exist",
        "end_before_start": "The end date {end}{cell_end} is before the start date {start}{cell_start}.",
        "start_in_future": "The start date {start}{cell_start} is after the quarter's last day{quarter_end}.",
        "course_too_long": "The course runs from {start}{cell_start} to {end}{cell_end}, {months} months; a "
                           "CTI course lasts {nominal} months and up to {maximum} are accepted.",
        "code_unknown": "The delmålgruppe '{code}'{cell_code} is not on the code list.",
        "code_not_valid": "The code '{code}'{cell_code} is only valid for courses starting {span}; this "
                          "course starts {start}.",
        "span": "from {valid_from}", "span_to": " until {valid_to}",
        "start_early": "Is the start date right? (A two-digit year such as '24-03-15' reads as 24-03-2015.)",
        "code_advice": "Use a code valid on the start date: {valid}.",
        "no_code": "No code is valid on the start date {start}; check the start date.",
        "completed_unparseable": "'{completed}'{cell_completed} is neither yes nor no.",
        "duplicate_in_file": "The same CPR number and start date also appear on {unit} {others} with "
                             "different content.",
        "duplicate_unknown": "The same CPR number and start date appear more than once, with different "
                             "content.",
        "line": "line", "row": "row", "lines": "lines", "rows": "rows",
        "not_a_data_row": "The row is a totals or summary row ('{first}'), not a course.",
        "fill": "Fill in the {fields}.", "and": " and ",
        "unknown": "Unknown problem ({reason}).",
    },
}


def _cpr_date_problem(cpr: str, words: Mapping[str, str]) -> str:
    digits = re.sub(r"\D", "", cpr)
    if len(digits) < 4:
        return ""
    day, month = int(digits[:2]), int(digits[2:4])
    real_day = day - rules.CPR_REPLACEMENT_DAY_OFFSET if day > rules.CPR_REPLACEMENT_DAY_OFFSET else day
    if not 1 <= month <= 12:
        return words["no_month"].format(month=month)
    if not 1 <= real_day <= 31:
        return words["no_day"].format(day=day)
    return words["no_such_day"]


def _code_sentences(row: Mapping, values: dict, codes: pl.DataFrame | None,
                    language: str) -> tuple[list[str], str]:
    words = _ROW_TEXTS[language]
    code, start = values["code"], row.get("start_parsed")
    known = None
    if codes is not None and codes.height:
        found = codes.filter(pl.col("code").str.strip_chars().str.to_uppercase() == code.upper())
        known = found.row(0, named=True) if found.height else None
    if known is None:
        sentences = [words["code_unknown"].format(**values)]
    else:
        valid_from, valid_to = _parse_iso(known.get("valid_from")), _parse_iso(known.get("valid_to"))
        span = words["span"].format(valid_from=format_date(valid_from))
        span += words["span_to"].format(valid_to=format_date(valid_to)) if valid_to else ""
        sentences = [words["code_not_valid"].format(**{**values, "span": span})]
        if start and valid_from and start < valid_from:
            sentences.append(words["start_early"])
    valid = _codes_text(codes, language, on=start)
    if valid in ("ingen", "none"):
        return sentences, words["no_code"].format(start=format_date(start))
    return sentences, words["code_advice"].format(valid=valid)


def _join_numbers(numbers: list[int], word: str) -> str:
    listed = [str(n) for n in numbers]
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + word + listed[-1]


def _special(reason: str, row: Mapping, values: dict, columns: Columns | None, codes: pl.DataFrame | None,
             language: str) -> tuple[list[str], str | None] | None:
    """Sentences and advice of the reasons whose wording depends on the row; None for the plain ones."""
    words, fields = _ROW_TEXTS[language], FIELDS[language]
    cpr = str(row.get("cpr") or "")
    if reason == "missing_required_field":
        empty = [c for c in ("cpr", "start_date", "delmaalgruppe") if row.get(c) is None]
        empty_word = {c: ("tomt" if c == "cpr" else "tom") if language == DANISH else "empty" for c in empty}
        sentences = [words[reason].format(Name=_cap(fields[c][0]), cell=_in_cell(row, c, columns, language),
                                          empty=empty_word[c]) for c in empty]
        return sentences, words["fill"].format(fields=words["and"].join(fields[c][1] for c in empty))
    if reason == "cpr_wrong_length":
        digits = len(re.sub(r"\D", "", cpr))
        nine = words["nine"] if digits == 9 else ""
        return [words[reason].format(**values, digits=digits, nine=nine)], None
    if reason == "cpr_invalid_date":
        return [words[reason].format(**values, why=_cpr_date_problem(cpr, words))], None
    if reason == "date_unparseable":
        found = [_date_sentence(row, c, columns, language) for c in ("start_date", "end_date")
                 if _unreadable_date(row, c)]
        return [message for message, _ in found], " ".join(hint for _, hint in found)
    if reason == "unknown_delmaalgruppe":
        return _code_sentences(row, values, codes, language)
    if reason == "duplicate_in_file":
        others = sorted(int(n) for n in (row.get("duplicate_lines") or []))
        if not others:
            return [words["duplicate_unknown"]], None
        unit = ("rows" if len(others) > 1 else "row") if row.get("sheet") else ("lines" if len(others) > 1
                                                                                 else "line")
        return [words[reason].format(unit=words[unit], others=_join_numbers(others, words["and"]))], None
    if reason == "not_a_data_row":
        first = next((str(row[c]) for c in ("cpr", "start_date", "end_date", "delmaalgruppe", "completed")
                      if row.get(c)), "")
        return [words[reason].format(first=first)], None
    return None


def row_text(row: Mapping, /, *, language: str, columns: Columns | None = None,
             codes: pl.DataFrame | None = None, quarter_end: date | None = None) -> RowText:
    """Label, message, advice and cells of one quarantine row.

    ``row`` holds the raw text columns (``cpr``, ``start_date``, ...), ``reasons``, the parsed dates
    ``start_parsed``/``end_parsed`` (None when unreadable), the location (``file_line``/``sheet``/
    ``sheet_row``, or ``source_row``) and, for ``duplicate_in_file``, ``duplicate_lines`` (the other rows).
    """
    texts, words = reason_texts(language, codes=codes), _ROW_TEXTS[language]
    reasons = list(row.get("reasons") or [])
    start, end = row.get("start_parsed"), row.get("end_parsed")
    values = {f"cell_{key}": _in_cell(row, column, columns, language) for key, column in
              (("cpr", "cpr"), ("start", "start_date"), ("end", "end_date"), ("code", "delmaalgruppe"),
               ("completed", "completed"))}
    values |= {"start": format_date(start), "end": format_date(end), "completed": row.get("completed") or "",
               "code": str(row.get("delmaalgruppe") or ""), "nominal": rules.COURSE_MONTHS,
               "maximum": rules.MAX_COURSE_MONTHS,
               "months": _months_between(start, end) if start and end else "",
               "quarter_end": f" ({format_date(quarter_end)})" if quarter_end else ""}
    messages: list[str] = []
    advice: list[str] = []
    for reason in reasons:
        special = _special(reason, row, values, columns, codes, language)
        if special is not None:
            sentences, hint = special
        elif reason in words:
            sentences, hint = [words[reason].format(**values)], None
        else:
            sentences, hint = [words["unknown"].format(reason=reason)], None
        messages += sentences
        hint = hint if hint is not None else (texts[reason].advice if reason in texts else "")
        if hint:
            advice.append(hint)
    labels = "; ".join(texts[r].label if r in texts else r for r in reasons)
    return RowText(labels, " ".join(messages), " ".join(dict.fromkeys(advice)),
                   cell_refs(row, reasons, columns))
