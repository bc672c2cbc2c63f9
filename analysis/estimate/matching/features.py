"""What a person is matched on at a month: outcome history, the dip, attributes and the transition marker.

Features of a panel row evaluated at month ``at`` (for participants their own start month, for candidates
the cohort's month): means of the history outcomes over event-month windows, each dip month, age, sex,
origin, municipality type and education level in month -1. The *transition split* is whether any of the
transition columns is > 0 in month -1, the *kind* of transition which of them are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.estimate.matching.arrays import PanelArrays, month_index
from analysis.estimate.matching.config import MatchConfig

#: Municipality types for the coarse urbanity covariate; any other code is "other".
CAPITAL_KOM = frozenset({101, 147})
LARGE_CITY_KOM = frozenset({751, 461, 851})

#: Attribute columns of :func:`person_attributes` the features use.
_ATTRIBUTES = ("person_id", "sex", "birth_date", "greenlandic", "immigrant", "kom_type")


def kom_type(kom: pl.Expr) -> pl.Expr:
    """Coarse municipality type: 0 capital (København, Frederiksberg), 1 large city, 2 other."""
    return (
        pl.when(kom.is_in(list(CAPITAL_KOM))).then(0).when(kom.is_in(list(LARGE_CITY_KOM))).then(1).otherwise(2)
    ).cast(pl.Int8)


def person_attributes(population: pl.LazyFrame, persons: pl.DataFrame, /) -> pl.DataFrame:
    """Time-invariant attributes per person from the population register's latest snapshot.

    Returns person_id, sex (1/2), birth_date, greenlandic, immigrant (immigrant or descendant, not
    Greenlandic), kom_type. ``persons`` holds the ``person_id`` set to keep (semi-joined before anything).
    """
    ids = persons.select(pl.col("person_id").cast(pl.Int64)).unique().lazy()
    return (
        population.join(ids, left_on="PNR", right_on="person_id", how="semi")
        .sort("PNR", "AAR")
        .group_by("PNR")
        .agg(pl.all().last())
        .select(
            person_id=pl.col("PNR").cast(pl.Int64),
            sex=pl.col("KOEN").cast(pl.Int8),
            birth_date=pl.col("FOED_DAG"),
            greenlandic=(pl.col("OPR_LAND") == "GRL").cast(pl.Int8),
            immigrant=((pl.col("IE_TYPE") > 1) & (pl.col("OPR_LAND") != "GRL")).cast(pl.Int8),
            kom_type=kom_type(pl.col("KOM").cast(pl.Int64)),
        )
        .sort("person_id")
        .collect(engine="streaming")
    )


def attribute_arrays(arrays: PanelArrays, persons: pl.DataFrame, /) -> dict[str, np.ndarray]:
    """Return the attributes of ``persons`` (:func:`person_attributes`) in the row order of ``arrays``.

    Returns sex, greenlandic, immigrant, kom_type and birth_month (a :func:`month_index`) as float arrays.
    """
    missing = [c for c in _ATTRIBUTES if c not in persons.columns]
    if missing:
        raise ValueError(
            f"persons lacks columns {missing} (see analysis.estimate.matching.person_attributes)"
        )
    frame = pl.DataFrame({"person_id": arrays.ids}).join(
        persons.select(_ATTRIBUTES).unique("person_id"), on="person_id", how="left", validate="1:1"
    )
    if frame["sex"].null_count():
        raise ValueError(f"{frame['sex'].null_count()} panel persons have no attributes in persons")
    out = {c: frame[c].cast(pl.Float64).to_numpy() for c in ("sex", "greenlandic", "immigrant", "kom_type")}
    out["birth_month"] = frame.select(month_index("birth_date"))["birth_date"].to_numpy().astype(float)
    return out


def history_count(config: MatchConfig, /) -> int:
    """Return the number of leading feature columns that describe outcome history (the rest: attributes)."""
    history = len(config.history_outcomes) * len(config.windows)
    return history + len(config.dip_outcomes) * len(config.dip_months)


def feature_names(config: MatchConfig, /) -> list[str]:
    """Names of the feature columns, in the order of :func:`feature_matrix` (the balance table's rows)."""
    names = [f"{o} {a}..{b}" for o in config.history_outcomes for a, b in config.windows]
    names += [f"{o} {d}" for o in config.dip_outcomes for d in config.dip_months]
    return names + ["age", "age squared", "sex", "greenlandic", "immigrant", "capital", "large city",
                    "education level -1"]


def feature_matrix(arrays: PanelArrays, attrs: dict[str, np.ndarray], rows: np.ndarray, at: np.ndarray, /, *,
                   config: MatchConfig) -> np.ndarray:
    """Features (rows x :func:`feature_names`) of panel ``rows`` evaluated at month positions ``at``."""
    cols = [arrays.window_mean(o, rows, at, a, b) for o in config.history_outcomes for a, b in config.windows]
    cols += [arrays.values[o][rows, at + d] for o in config.dip_outcomes for d in config.dip_months]
    age = (arrays.first + at - attrs["birth_month"][rows]) / 12.0
    edu = arrays.values["edu_level"][rows, at - 1] if "edu_level" in arrays.values else np.zeros(rows.size)
    cols += [age, age**2 / 100.0, (attrs["sex"][rows] == 2).astype(float), attrs["greenlandic"][rows],
             attrs["immigrant"][rows], (attrs["kom_type"][rows] == 0).astype(float),
             (attrs["kom_type"][rows] == 1).astype(float), edu]
    return np.column_stack(cols).astype(float)


def transition_marked(arrays: PanelArrays, rows: np.ndarray, at: np.ndarray, columns: tuple[str, ...],
                      /) -> np.ndarray:
    """Whether any of ``columns`` is > 0 in the month before ``at`` (all False without columns)."""
    return sum((arrays.values[o][rows, at - 1] for o in columns), np.zeros(rows.size)) > 0


def transition_kind(arrays: PanelArrays, rows: np.ndarray, at: np.ndarray, columns: tuple[str, ...],
                    /) -> np.ndarray:
    """Which of ``columns`` are > 0 in the month before ``at``, as a bit code (bit i: column i; 0: none).

    With the stays columns this is the kind of transition (shelter exit, psychiatric discharge, prison
    release); with the hospital fallback, an emergency contact or a psychiatric admission.
    """
    code = np.zeros(rows.size, dtype=np.int64)
    for bit, column in enumerate(columns):
        code |= (arrays.values[column][rows, at - 1] > 0).astype(np.int64) << bit
    return code


@dataclass(frozen=True, slots=True)
class FeatureRows:
    """Panel rows evaluated at a month each: their features, transition split and kind of transition."""

    rows: np.ndarray  # panel row positions
    at: np.ndarray  # month (column position) each row is evaluated at
    features: np.ndarray  # rows x features (feature_matrix)
    split: np.ndarray  # bool: a transition in the month before ``at``
    kind: np.ndarray  # transition_kind: which transition columns mark that month (0 without a transition)

    @classmethod
    def build(cls, arrays: PanelArrays, attrs: dict[str, np.ndarray], rows: np.ndarray, at: np.ndarray, /, *,
              config: MatchConfig, transition: tuple[str, ...]) -> FeatureRows:
        """Features and transition split of ``rows`` at ``at`` (``transition``: the marker columns)."""
        kind = transition_kind(arrays, rows, at, transition)
        return cls(rows, at, feature_matrix(arrays, attrs, rows, at, config=config), kind > 0, kind)
