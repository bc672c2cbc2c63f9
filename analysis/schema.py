"""Column contracts shared by the mock world, the ingest and the effect models.

Register extracts are shaped like the Danish originals (DST/Sundhedsdatastyrelsen column names) so that
real extracts can replace the mock world by changing the source only. Every register is keyed by ``PNR``:
an integer person key of the register provider (DST's encrypted PNR plays this role in real extracts).
The only bridge from a CPR number to ``PNR`` is the restricted key file ``CPR_KEY``, which the pipeline
turns into ``pseudonym -> PNR`` once (see ``analysis.ingest.pseudonym``); after that, joins use integers.
"""

from __future__ import annotations

import polars as pl

# --- register extracts: one parquet file per register per year -------------------------------------------

#: BEF-like yearly population snapshot (status 1 January of ``AAR``).
POPULATION = pl.Schema(
    {
        "PNR": pl.Int64,
        "AAR": pl.Int16,
        "KOEN": pl.Int8,  # 1 man, 2 woman
        "FOED_DAG": pl.Date,
        "IE_TYPE": pl.Int8,  # 1 Danish origin, 2 immigrant, 3 descendant
        "OPR_LAND": pl.String,  # ISO-3166 alpha-3 origin country ("DNK", "GRL", ...)
        "KOM": pl.Int16,  # 3-digit municipality code
    }
)

#: DREAM-like weekly benefit codes in long, sparse form: one row per person-week *with* a benefit.
#: A week without a row is a self-supporting week (DREAM's blank code).
BENEFITS = pl.Schema(
    {
        "PNR": pl.Int64,
        "UGE_START": pl.Date,  # Monday of the ISO week
        "YDELSESKODE": pl.String,  # 3-character DREAM code, families in pipelines/config/dream_codes.csv
    }
)

#: eIndkomst/AMR-like monthly employment, sparse: one row per person-month in employment.
EMPLOYMENT = pl.Schema(
    {
        "PNR": pl.Int64,
        "MAANED": pl.Date,  # first day of the month
        "BESKAEFTIGET": pl.Int8,  # 1 employed in the month
        "LOEN": pl.Float64,  # earnings in the month, DKK
    }
)

#: LPR-like hospital contacts, filed by the year of admission.
HEALTH = pl.Schema(
    {
        "PNR": pl.Int64,
        "RECNUM": pl.Int64,  # contact id
        "C_PATTYPE": pl.Int8,  # 0 inpatient, 2 outpatient, 3 emergency
        "C_ADIAG": pl.String,  # action diagnosis, ICD-10 with D prefix ("DF20", "DS52")
        "D_INDDTO": pl.Date,
        "D_UDDTO": pl.Date,
        "V_SENGDAGE": pl.Int32,  # bed days (0 for outpatient/emergency)
    }
)

#: UDDA-like highest completed education, yearly snapshot with validity dates.
EDUCATION = pl.Schema(
    {
        "PNR": pl.Int64,
        "AAR": pl.Int16,
        "HFAUDD": pl.String,  # education code, levels in pipelines/config/hfaudd_levels.csv
        "HF_VFRA": pl.Date,
        "HF_VTIL": pl.Date,
    }
)

#: KOTRE-like enrolment spells, filed by the year the spell starts.
ENROLMENT = pl.Schema(
    {
        "PNR": pl.Int64,
        "UDD": pl.String,  # education code being studied
        "ELEV3_VFRA": pl.Date,
        "ELEV3_VTIL": pl.Date,
    }
)

#: Institution stays that end in a critical transition, filed by the year of discharge (``UDDATO``). Real
#: extracts assemble it from Ankestyrelsen's register of §110 shelter and §107/§108 residential stays, LPR
#: psychiatric inpatient stays and Kriminalforsorgen's prison stays; the discharge is the transition CTI
#: is built for, so it is what the comparison group is matched on (``analysis.estimate.matching``).
STAYS = pl.Schema(
    {
        "PNR": pl.Int64,
        "OPHOLD_TYPE": pl.String,  # "BOF" shelter/residential (§107-110), "PSY" psych. ward, "KRF" prison
        "INDDATO": pl.Date,  # admission
        "UDDATO": pl.Date,  # discharge
    }
)

#: Codes of ``STAYS.OPHOLD_TYPE``.
STAY_TYPES: tuple[str, ...] = ("BOF", "PSY", "KRF")

REGISTERS: dict[str, pl.Schema] = {
    "population": POPULATION,
    "benefits": BENEFITS,
    "employment": EMPLOYMENT,
    "health": HEALTH,
    "education": EDUCATION,
    "enrolment": ENROLMENT,
    "stays": STAYS,
}

#: Restricted bridge from CPR to the register key. Lives only under ``restricted/``.
CPR_KEY = pl.Schema({"CPR": pl.String, "PNR": pl.Int64})

# --- ingest -----------------------------------------------------------------------------------------------

#: Canonical columns of a quarterly submission after header mapping (all still text, as delivered).
SUBMISSION_COLUMNS = ("cpr", "start_date", "end_date", "delmaalgruppe", "completed")

#: One consolidated course per person, site and start (output of the ``courses`` asset).
COURSES = pl.Schema(
    {
        "course_id": pl.String,  # stable hash of (pseudonym, site, start_date)
        "pseudonym": pl.String,  # HMAC-SHA256 hex of the normalised CPR message
        "key_id": pl.String,
        "site": pl.String,
        "start_date": pl.Date,
        "end_date": pl.Date,  # null while ongoing
        "delmaalgruppe": pl.String,
        "completed": pl.Boolean,  # null while ongoing
        "sex": pl.Int8,  # 1 man, 2 woman (from the CPR before it was dropped)
        "birth_date": pl.Date,
        "first_reported": pl.String,  # quarter key "2024Q1"
        "last_reported": pl.String,
    }
)

#: Dense integer person id for every linked pseudonym (``person_id`` == register ``PNR``).
PERSON_INDEX = pl.Schema({"pseudonym": pl.String, "person_id": pl.Int64, "key_id": pl.String})

#: Inbox entries that are not ingested as they are (``pipelines.inbox.account``): what the steward must do.
#: ``entry`` is the path relative to the inbox (masked; folders end with "/"); ``ingested`` is true for a file
#: that is ingested but needs attention (a CPR-shaped number in its name).
INBOX_ENTRIES = pl.Schema({"entry": pl.String, "quarter": pl.String, "site": pl.String, "kind": pl.String,
                           "ingested": pl.Boolean, "reason": pl.String, "action": pl.String})

# --- linkage / effect models ------------------------------------------------------------------------------

#: Person x month outcomes (the ``outcome_panel``). Shares are in [0, 1]; counts are Int64.
OUTCOME_PANEL = pl.Schema(
    {
        "person_id": pl.Int64,
        "month": pl.Date,  # first day of the month
        "self_support": pl.Float64,  # share of the month's weeks without a benefit code
        "unemployment_insurance": pl.Float64,
        "social_assistance": pl.Float64,
        "sickness_benefit": pl.Float64,
        "disability_pension": pl.Float64,
        "employed": pl.Int8,
        "earnings": pl.Float64,
        "enrolled": pl.Int8,
        "edu_level": pl.Int8,  # ISCED-like level of the highest completed education (0 unknown)
        "emergency_contacts": pl.Int64,
        "psych_admissions": pl.Int64,
        "bed_days": pl.Int64,
        # discharges from a stay (``STAYS``) that month, by type: the critical transition CTI is built for
        "shelter_exits": pl.Int64,  # OPHOLD_TYPE "BOF": shelter/residential (§107-110)
        "psych_ward_exits": pl.Int64,  # "PSY": psychiatric ward
        "prison_exits": pl.Int64,  # "KRF": prison
    }
)

#: Panel column per stay type (``STAYS.OPHOLD_TYPE``).
EXIT_COLUMNS: dict[str, str] = {"BOF": "shelter_exits", "PSY": "psych_ward_exits", "KRF": "prison_exits"}

#: Columns of the panel that describe eligibility, not an outcome CTI could change (not estimated).
MARKERS: tuple[str, ...] = tuple(EXIT_COLUMNS.values())

OUTCOMES: tuple[str, ...] = tuple(
    c for c in OUTCOME_PANEL.names() if c not in ("person_id", "month", *MARKERS)
)

#: Outcomes the report leads with (the planted effects of the mock world are stated on these).
HEADLINE_OUTCOMES: tuple[str, ...] = ("self_support", "employed", "emergency_contacts")

# --- quarantine reasons (machine-readable codes; the sentences live in analysis.ingest.validate) ---------

#: Reasons that quarantine a row (it does not become a course until the site corrects it).
QUARANTINE_REASONS: tuple[str, ...] = (
    "missing_required_field",  # CPR, start date or delmålgruppe empty
    "cpr_wrong_length",  # not 10 digits after removing hyphen/spaces (and 9 digits not repairable)
    "cpr_invalid_date",  # DDMMYY (day+60 allowed) with the century rule gives no real date
    "date_unparseable",  # start or end date in no known format
    "end_before_start",
    "start_in_future",  # start after the end of the reported quarter
    "course_too_long",  # end - start longer than the allowed course length (+ tolerance)
    "unknown_delmaalgruppe",  # code not in the code list, or not valid at the start date
    "completed_unparseable",  # completed flag not yes/no in any known spelling
    "duplicate_in_file",  # same CPR and start twice in one file with different content
    "not_a_data_row",  # a totals/summary line ("I alt", "Total", "Antal")
)

#: Notes that leave a row clean but are recorded with it.
ROW_WARNINGS: tuple[str, ...] = (
    "cpr_repaired_leading_zero",  # 9 digits, padded with a leading zero because that gives a valid date
    "cpr_mod11_failed",  # modulus-11 check fails: not an error since 2007
)

# --- effect tables (outputs of analysis/, persisted by assets/effects.py, read by the report) -----------
# Every estimate carries its n (persons). Rows of one outcome are what an outcome partition produces.

#: Covariate balance of the matched sample: standardised mean differences and variance ratios.
BALANCE = pl.Schema(
    {
        "covariate": pl.String,
        "mean_treated": pl.Float64,
        "mean_control_before": pl.Float64,  # all eligible candidates (before matching)
        "mean_control_after": pl.Float64,  # matched controls, weighted
        "smd_before": pl.Float64,
        "smd_after": pl.Float64,
        "var_ratio_before": pl.Float64,
        "var_ratio_after": pl.Float64,
    }
)

#: Matched comparison, raw means by event time: participants vs matched comparisons.
MATCHED_MEANS = pl.Schema(
    {
        "outcome": pl.String,
        "group": pl.String,  # "participants" | "comparisons"
        "event_time": pl.Int32,
        "mean": pl.Float64,
        "n": pl.Int64,  # persons observed at that event time
        # who contributes to the mean (analysis.estimate.did.contributor_stats): disclosure control only
        "n_positive": pl.Int64,
        "n_full": pl.Int64,
        "top2_share": pl.Float64,
    }
)

#: Event study on the matched sample (person + period fixed effects, SEs clustered by person).
EVENT_STUDY = pl.Schema(
    {
        "outcome": pl.String,
        "event_time": pl.Int32,  # the reference event time has estimate 0 and a null se
        "estimate": pl.Float64,
        "se": pl.Float64,
        "ci_lower": pl.Float64,
        "ci_upper": pl.Float64,
        "n_treated": pl.Int64,
        "n_controls": pl.Int64,
    }
)

#: Person-level influence functions of the event-study coefficients of months >= 0 (one outcome per
#: partition; rows with influence 0 are left out). For two coefficients, the sum over persons of the
#: product of their influences is their clustered covariance, also across outcomes (stacked by person):
#: the joint uncertainty the public-budget (SØM) calculation needs. No CPR, only register person ids.
EFFECT_INFLUENCE = pl.Schema(
    {
        "outcome": pl.String,
        "person_id": pl.Int64,
        "event_time": pl.Int32,
        "influence": pl.Float64,
    }
)

#: One pooled effect per outcome, design and subgroup (``dimension``/``level`` = "all"/"all" overall).
EFFECT_ESTIMATES = pl.Schema(
    {
        "outcome": pl.String,
        "design": pl.String,  # "matched_did" | "staggered_att" | "naive_before_after"
        "dimension": pl.String,  # "all" | "delmaalgruppe" | "site" | "completed" | "start_cohort"
        "level": pl.String,
        "estimate": pl.Float64,
        "se": pl.Float64,
        "ci_lower": pl.Float64,
        "ci_upper": pl.Float64,
        "n_treated": pl.Int64,
        "n_controls": pl.Int64,
        "mde": pl.Float64,  # minimum detectable effect (80 % power, 5 % two-sided) at this n
        "pretrend_p": pl.Float64,  # joint test of the pre-period coefficients (null where not applicable)
        "window": pl.String,  # pooled event months, e.g. "12..24"
    }
)

#: Callaway & Sant'Anna group-time ATTs per outcome (quarterly panel: cohort/period are quarter indices).
GROUP_TIME_ATT = pl.Schema(
    {
        "outcome": pl.String,
        "cohort": pl.Int32,
        "period": pl.Int32,
        "att": pl.Float64,
        "se": pl.Float64,
        "ci_lower": pl.Float64,
        "ci_upper": pl.Float64,
        "n_treated": pl.Int64,
    }
)

#: Aggregations of the group-time ATTs; ``key`` is the event time, cohort or period (null for simple).
STAGGERED_AGGREGATES = pl.Schema(
    {
        "outcome": pl.String,
        "aggregation": pl.String,  # "simple" | "dynamic" | "group" | "calendar"
        "key": pl.Int32,
        "att": pl.Float64,
        "se": pl.Float64,
        "ci_lower": pl.Float64,
        "ci_upper": pl.Float64,
        "n_treated": pl.Int64,
    }
)

# --- sensitivity of the matched design (analysis.estimate.sensitivity; issue #21) -------------------------
# Each row carries the persons behind it: ``n_treated``/``n_controls`` at the window's first month (the
# event study's n there) and ``persons_min``/``controls_min``, the fewest at any month of the window (for
# disclosure control: every month's coefficient rests on at least that many).

#: Pre-trend tests of the event study: which months, the reference they are relative to, the test.
PRETREND_TESTS = pl.Schema(
    {
        "outcome": pl.String,
        "test": pl.String,  # "pre_dip" | "dip" | "pre_dip_binned" ...
        "first_month": pl.Int32,
        "last_month": pl.Int32,
        "excluded": pl.String,  # months left out of the test, e.g. "-1" (the transition month)
        "reference_first": pl.Int32,  # the event study's reference: the mean of these months is 0
        "reference_last": pl.Int32,
        "bins": pl.Int32,  # averaged windows tested (null: every month)
        "chi2": pl.Float64,
        "df": pl.Int32,
        "p_value": pl.Float64,
        "n_treated": pl.Int64,
        "n_controls": pl.Int64,
    }
)

#: Effects by CTI phase: the mean event-study coefficient over the phase's months (the event study's
#: reference), with its clustered standard error.
PHASE_EFFECTS = pl.Schema(
    {
        "outcome": pl.String,
        "phase": pl.String,  # "phase_1" (months 1-3) | "phase_2" | "phase_3" | "after" (10-24)
        "first_month": pl.Int32,
        "last_month": pl.Int32,
        "estimate": pl.Float64,
        "se": pl.Float64,
        "ci_lower": pl.Float64,
        "ci_upper": pl.Float64,
        "n_treated": pl.Int64,
        "n_controls": pl.Int64,
        "persons_min": pl.Int64,
        "controls_min": pl.Int64,
    }
)

#: Placebo: the pooled DiD with every start moved ``shift`` months earlier, on months before the real start
#: only (placebo months = real months + shift).
PLACEBO_EFFECTS = pl.Schema(
    {
        "outcome": pl.String,
        "shift": pl.Int32,
        "post_first": pl.Int32,  # placebo months of the "post" window (real = placebo - shift)
        "post_last": pl.Int32,
        "pre_first": pl.Int32,
        "pre_last": pl.Int32,
        "estimate": pl.Float64,
        "se": pl.Float64,
        "ci_lower": pl.Float64,
        "ci_upper": pl.Float64,
        "n_treated": pl.Int64,
        "n_controls": pl.Int64,
        "mde": pl.Float64,
    }
)

#: Honest DiD (Rambachan & Roth relative magnitudes) for the pooled post effect: one row for the
#: conventional interval (``m_bar`` null) and one per M-bar.
HONEST_DID = pl.Schema(
    {
        "outcome": pl.String,
        "m_bar": pl.Float64,
        "estimate": pl.Float64,  # conventional estimate of the pooled effect (the mean of the target bins)
        "id_lower": pl.Float64,
        "id_upper": pl.Float64,
        "ci_lower": pl.Float64,
        "ci_upper": pl.Float64,
        "breakdown_m_bar": pl.Float64,  # smallest M-bar at which the robust CI covers 0 (null: beyond search)
        "max_pre_step": pl.Float64,
        "first_month": pl.Int32,  # the target window (whole bins)
        "last_month": pl.Int32,
        "bin_months": pl.Int32,  # months per bin
        "reference_first": pl.Int32,
        "reference_last": pl.Int32,
        "pre_bins": pl.Int32,
        "post_bins": pl.Int32,
        "n_treated": pl.Int64,
        "n_controls": pl.Int64,
        "persons_min": pl.Int64,
        "controls_min": pl.Int64,
    }
)
