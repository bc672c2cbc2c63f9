"""Suites for the register extracts: a blocking column contract and warning-level value checks."""

from __future__ import annotations

from datetime import date

import polars as pl

from analysis.schema import REGISTERS as REGISTER_SCHEMAS
from analysis.schema import STAY_TYPES
from expectations import names
from expectations.adapter import Gx, HasSchema, Suite

#: Codes of the register code lists (DST documentation; the mock world uses the same codes).
KOEN_CODES = (1, 2)
IE_TYPE_CODES = (1, 2, 3)
C_PATTYPE_CODES = (0, 2, 3)

#: Plausible dates. Birth dates reach back further than register events; UDDA/KOTRE close open spells
#: with 9999-12-31, so validity end dates may be far in the future.
FIRST_BIRTH = date(1900, 1, 1)
FIRST_EVENT = date(1950, 1, 1)
LAST_EVENT = date(2100, 12, 31)
OPEN_END = date(9999, 12, 31)

_DATE_RANGES: dict[str, tuple[date, date]] = {
    "FOED_DAG": (FIRST_BIRTH, LAST_EVENT),
    "UGE_START": (FIRST_EVENT, LAST_EVENT),
    "MAANED": (FIRST_EVENT, LAST_EVENT),
    "D_INDDTO": (FIRST_EVENT, LAST_EVENT),
    "D_UDDTO": (FIRST_EVENT, LAST_EVENT),
    "HF_VFRA": (FIRST_BIRTH, LAST_EVENT),
    "HF_VTIL": (FIRST_BIRTH, OPEN_END),
    "ELEV3_VFRA": (FIRST_BIRTH, LAST_EVENT),
    "ELEV3_VTIL": (FIRST_BIRTH, OPEN_END),
    "INDDATO": (FIRST_EVENT, LAST_EVENT),
    "UDDATO": (FIRST_EVENT, LAST_EVENT),
}

_CODE_SETS: dict[str, tuple[int, ...] | tuple[str, ...]] = {
    "KOEN": KOEN_CODES,
    "IE_TYPE": IE_TYPE_CODES,
    "C_PATTYPE": C_PATTYPE_CODES,
    "OPHOLD_TYPE": STAY_TYPES,
}

_NON_NEGATIVE = ("V_SENGDAGE", "LOEN")


def _value_expectations(schema: pl.Schema) -> list[Gx]:
    found: list[Gx] = [
        Gx("ExpectTableRowCountToBeBetween", min_value=1),
        Gx("ExpectColumnValuesToNotBeNull", column="PNR"),
    ]
    for column in schema.names():
        if column in _CODE_SETS:
            found.append(Gx("ExpectColumnValuesToBeInSet", column=column, value_set=list(_CODE_SETS[column])))
        if column in _DATE_RANGES:
            low, high = _DATE_RANGES[column]
            found.append(Gx("ExpectColumnValuesToBeBetween", column=column, min_value=low, max_value=high))
        if column in _NON_NEGATIVE:
            found.append(Gx("ExpectColumnValuesToBeBetween", column=column, min_value=0))
    return found


def register_suites(register: str, /) -> list[Suite]:
    """Suites of one register: a blocking schema check and a warning-level value check.

    Parameters
    ----------
    register
        A key of :data:`analysis.schema.REGISTERS` (``"population"``, ``"health"``, ...).
    """
    if register not in REGISTER_SCHEMAS:
        raise ValueError(f"unknown register {register!r}; use one of {sorted(REGISTER_SCHEMAS)}")
    schema = REGISTER_SCHEMAS[register]
    return [
        Suite(
            name=names.register_schema(register),
            expectations=[HasSchema(schema)],
            blocking=True,
            description=f"The {register} extract has every contract column with the contract dtype.",
        ),
        Suite(
            name=names.register_values(register),
            expectations=_value_expectations(schema),
            description=f"The {register} extract has rows, PNR is never null, codes and dates are valid.",
        ),
    ]


#: Suites per register name.
REGISTERS: dict[str, list[Suite]] = {register: register_suites(register) for register in REGISTER_SCHEMAS}
