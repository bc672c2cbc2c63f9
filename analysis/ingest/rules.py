"""The constants of the row rules, in one place: ``validate`` applies them, ``reasons`` words them.

Every sentence a site or a steward reads about a rule (``analysis.ingest.reasons``) is generated from these
values, so the text and the check cannot disagree (the course length once did: the Danish instruction said
9 months while the check allowed 366 days).
"""

from __future__ import annotations

#: A CTI course lasts 9 months: three phases of about 3 months (planning, trial, handover).
COURSE_MONTHS = 9
#: How much longer a course may run before it is taken for a date error: one more phase. A course that runs a
#: few weeks over is ordinary (the mock world's completed courses last 253-295 days, up to 9.7 months) and a
#: delayed handover phase is plausible; a course more than a whole phase over is far more often a wrong year
#: or a swapped start/end than a real course, and asking the site to check it costs one look.
COURSE_TOLERANCE_MONTHS = 3
#: Longest accepted course, start to end, in calendar months (``end <= start + MAX_COURSE_MONTHS``).
MAX_COURSE_MONTHS = COURSE_MONTHS + COURSE_TOLERANCE_MONTHS

#: Text date formats read (strftime codes), tried in this order, each only on text with a four-digit year.
DATE_FORMATS = ("%d-%m-%Y", "%d.%m.%Y", "%d/%m/%Y", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                "%Y.%m.%d")
#: Two-digit years, read as 2000-2099 (courses are recent).
SHORT_DATE_FORMATS = ("%d-%m-%y", "%d.%m.%y", "%d/%m/%y")
#: Years a date may have at all (a four-digit "0024" or "-2024" is not a course date).
MIN_YEAR, MAX_YEAR = 1900, 2100
#: Excel serial day numbers read as dates: 2000-01-01 .. 2050-12-31.
EXCEL_MIN, EXCEL_MAX = 36_526, 55_153
EXCEL_EPOCH = (1899, 12, 30)

#: Spellings of the completed flag (compared lower-cased, stripped).
YES = ("ja", "j", "1", "x", "yes", "y", "true", "sand", "gennemført", "gennemfort", "fuldført")
NO = ("nej", "n", "0", "no", "false", "falsk", "ikke gennemført", "afbrudt")
#: A cell starting with one of these words makes the row a totals/summary line, not a course.
TOTALS_WORDS = ("i alt", "ialt", "total", "totalt", "antal", "sum", "samlet")
TOTALS_PATTERN = r"(?i)^\s*(" + "|".join(TOTALS_WORDS) + r")\b"

#: Replacement CPR numbers (erstatningspersonnumre) add this to the day of birth.
CPR_REPLACEMENT_DAY_OFFSET = 60
