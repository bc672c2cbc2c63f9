"""The knobs of the match (:class:`MatchConfig`); the defaults are the report's design."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """Knobs of the match; the defaults are the report's design."""

    neighbours: int = 5
    caliper: float = 0.2  # in standard deviations of the logit propensity score
    replacement: bool = True
    #: "mahalanobis": nearest on standardised features among candidates inside the propensity caliper
    #: (Rubin & Thomas 2000; tracks the shape of the dip, not only its summary); "propensity": nearest score.
    metric: str = "mahalanobis"
    exact: tuple[str, ...] = ("sex",)
    #: Exact match on "any of these counts > 0 in event month -1" (the *transition split*): a discharge from
    #: an institution stay in the month before the start is the critical transition itself (shelter exit,
    #: psychiatric discharge, prison release), so comparisons are persons in a transition at the same time.
    exact_transition: tuple[str, ...] = ("shelter_exits", "psych_ward_exits", "prison_exits")
    #: Inside the transition split, match exactly on the kind of transition too (which of the columns mark
    #: month -1: a shelter exit is compared with shelter exits, a prison release with prison releases), where
    #: it costs no participant: one whose kind stratum has no candidate inside the caliper is matched within
    #: the whole transition split instead (counted in the notes). Participants and the pool differ in their
    #: kind mix (take-up differs by kind), and the kind decides the month -1 register trace (a psychiatric
    #: admission or an emergency contact), which otherwise enters every outcome's pre-period unbalanced.
    exact_transition_kind: bool = True
    #: Used instead when the panel lacks the ``exact_transition`` columns or no participant has one at month
    #: -1 (extracts without a stays register): a hospital contact in the month before the start.
    transition_fallback: tuple[str, ...] = ("emergency_contacts", "psych_admissions")
    #: Also match on the outcome history inside the transition split (default: attributes only there; the
    #: history is always matched on for participants without a transition, and always in the balance table).
    history_in_transition: bool = False
    history_outcomes: tuple[str, ...] = (
        "self_support",
        "employed",
        "social_assistance",
        "sickness_benefit",
        "disability_pension",
        "emergency_contacts",
        "psych_admissions",
    )
    windows: tuple[tuple[int, int], ...] = ((-36, -25), (-24, -13), (-12, -4))
    dip_outcomes: tuple[str, ...] = (
        "self_support", "employed", "social_assistance", "sickness_benefit", "emergency_contacts",
        "psych_admissions",
    )
    dip_months: tuple[int, ...] = (-3, -2, -1)
    max_fit_controls: int = 200_000  # candidate rows in the propensity fit, over all cohorts
    seed: int = 0

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")
        if self.metric not in ("mahalanobis", "propensity"):
            raise ValueError(f"metric must be 'mahalanobis' or 'propensity', not {self.metric!r}")
        if not self.caliper > 0:
            raise ValueError(f"caliper must be > 0 standard deviations, got {self.caliper}")
        if any(a > b or b >= 0 for a, b in self.windows) or any(d >= 0 for d in self.dip_months):
            raise ValueError(
                "history windows and dip months must lie before the start month (event time < 0)"
            )

    @property
    def history_months(self) -> int:
        """How many months of history before the start month the features need."""
        return -min([a for a, _ in self.windows] + list(self.dip_months))
