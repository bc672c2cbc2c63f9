"""Names of every asset check the expectation suites produce (one place; assets and tests import these)."""

from __future__ import annotations

# --- registers (one schema and one values check per register; see expectations.registers) ---------------
REGISTER_SCHEMA = "{register}_schema"
REGISTER_VALUES = "{register}_values"

# --- ingest -----------------------------------------------------------------------------------------------
RAW_SUBMISSION_STRUCTURE = "raw_submission_structure"
VALIDATED_ROWS_CLEAN = "validated_rows_clean"
ROW_CONSERVATION = "row_conservation"
NO_CPR_AFTER_PSEUDONYMISATION = "no_cpr_after_pseudonymisation"
COURSES_KEYS = "courses_keys"
COURSES_COMPLETION = "courses_completion_matches_end"

# --- linkage ----------------------------------------------------------------------------------------------
PERSON_INDEX_UNIQUE = "person_index_unique"
LINK_RATE = "link_rate_minimum"
OUTCOME_PANEL_KEYS = "outcome_panel_keys"
OUTCOME_PANEL_VALUES = "outcome_panel_values"

# --- effects ----------------------------------------------------------------------------------------------
BALANCE_AFTER_MATCHING = "balance_after_matching"
ESTIMATES_SANE = "estimates_sane"
GROUP_TIME_SANE = "group_time_att_sane"

# --- monitoring and public budget (plain checks, not GX suites: expectations.monitoring / .som) ---------
MONITORING_RECONCILES = "monitoring_reconciles_with_courses"
MONITORING_TARGETS_COMPLETE = "monitoring_targets_complete"
SOM_PRICES_COMPLETE = "som_prices_complete_and_dated"
SOM_OUTCOMES_VALUED = "som_every_priced_outcome_valued"


def register_schema(register: str) -> str:
    """Check name of the blocking schema check of ``register`` (e.g. ``"population_schema"``)."""
    return REGISTER_SCHEMA.format(register=register)


def register_values(register: str) -> str:
    """Check name of the (warning) value check of ``register`` (e.g. ``"population_values"``)."""
    return REGISTER_VALUES.format(register=register)
