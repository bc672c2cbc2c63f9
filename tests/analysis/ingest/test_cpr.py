from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.ingest.cpr import normalise_cpr, normalise_cpr_value

# Synthetic numbers only: day + 60 (days 61-91) can never be a real person's CPR.


@pytest.mark.parametrize(
    ("value", "normalised", "birth", "sex"),
    [
        ("610190-1235", "6101901235", date(1990, 1, 1), 1),
        ("6101901235", "6101901235", date(1990, 1, 1), 1),
        (" 610190 1235 ", "6101901235", date(1990, 1, 1), 1),
        ("6101901235.0", "6101901235", date(1990, 1, 1), 1),  # Excel number exported as float text
        ("911299-0002", "9112990002", date(1999, 12, 31), 2),  # day 91 = 31 + 60
        ("610110-4002", "6101104002", date(2010, 1, 1), 2),  # digit 7 = 4, YY <= 36 -> 2000s
        ("610150-4002", "6101504002", date(1950, 1, 1), 2),  # digit 7 = 4, YY > 36 -> 1900s
        ("610150-5002", "6101505002", date(2050, 1, 1), 2),  # digit 7 = 5, YY <= 57 -> 2000s
        ("610160-6002", "6101606002", date(1860, 1, 1), 2),  # digit 7 = 6, YY > 57 -> 1800s
        ("610120-9002", "6101209002", date(2020, 1, 1), 2),  # digit 7 = 9, YY <= 36 -> 2000s
    ],
)
def test_valid_numbers_normalise_with_century_and_sex(value, normalised, birth, sex) -> None:
    result = normalise_cpr_value(value)
    assert (result.normalised, result.birth_date, result.sex, result.issue) == (normalised, birth, sex, None)


@pytest.mark.parametrize(
    ("value", "issue"),
    [
        ("", "missing_required_field"),
        (None, "missing_required_field"),
        ("61019012", "cpr_wrong_length"),
        ("61019012355", "cpr_wrong_length"),
        ("abcdefghij", "cpr_wrong_length"),
        ("6113901235", "cpr_invalid_date"),  # month 13
        ("9202901235", "cpr_invalid_date"),  # day 92 - 60 = 32
        ("8902901235", "cpr_invalid_date"),  # 29 February 1990 does not exist
        ("3201901235", "cpr_invalid_date"),  # day 32 without replacement
    ],
)
def test_invalid_numbers_get_a_reason(value, issue) -> None:
    result = normalise_cpr_value(value)
    assert result.issue == issue and result.normalised is None


def test_nine_digits_are_repaired_only_when_that_gives_a_date() -> None:
    # "0101900001" fails modulus 11 and is born 1990: every real CPR issued before 2007 passes modulus 11,
    # so this repaired number cannot belong to anyone.
    repaired = normalise_cpr_value("101900001")
    assert repaired.normalised == "0101900001" and "cpr_repaired_leading_zero" in repaired.warning
    assert normalise_cpr_value("913900001").issue == "cpr_wrong_length"  # "0913..." has month 13


def test_mod11_failure_is_only_a_warning() -> None:
    result = normalise_cpr_value("6101901235")
    assert result.issue is None and "cpr_mod11_failed" in result.warning


def test_vectorised_and_scalar_agree() -> None:
    values = ["610190-1235", "6113901235", "", "101900001", "x"]
    frame = normalise_cpr(pl.DataFrame({"cpr": values}))
    for value, row in zip(values, frame.iter_rows(named=True), strict=True):
        scalar = normalise_cpr_value(value)
        assert ((row["cpr_norm"], row["cpr_issue"], row["cpr_warning"])
                == (scalar.normalised, scalar.issue, scalar.warning))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=20), st.from_regex(r"[6-9][0-9]{5}-?[0-9]{4}", fullmatch=True)))
def test_normalisation_never_crashes_and_is_idempotent(value) -> None:
    first = normalise_cpr_value(value)
    if first.normalised is not None:
        again = normalise_cpr_value(first.normalised)
        assert again.normalised == first.normalised and again.issue is None
        assert again.birth_date == first.birth_date and again.sex == first.sex


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[6-8][0-9]0[1-9][0-9]{2}[0-9]{4}", fullmatch=True))
def test_formatting_variants_normalise_identically(digits) -> None:
    variants = [digits, f"{digits[:6]}-{digits[6:]}", f" {digits[:6]} {digits[6:]} ", f"{digits}.0"]
    assert len({normalise_cpr_value(v).normalised for v in variants}) == 1
