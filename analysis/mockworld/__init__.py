"""A deterministic mock of the Danish registers with a planted CTI effect, and the sites' inbox files.

Data-generating process (every number below is a field of ``WorldConfig``/``PlantedEffects``):

* Each person has a latent vulnerability ``z``; self-support, employment, earnings, hospital contacts and
  education depend on it (and on age, sex, origin, education), with a person-specific trend and common
  calendar effects (season, a COVID dip 2020-03..2021-02). Disability pension is absorbing from an onset
  month drawn mostly for older and vulnerable persons.
* Vulnerable persons have a *critical transition* (crisis) in some month ``c`` (shelter exit, psychiatric
  discharge, prison release). Outcomes worsen over the 12 months before ``c`` (the Ashenfelter dip) and
  recover half of the dip over the 12 months after it, without any intervention. The crisis leaves a
  register trace in the month before ``c``: a psychiatric admission (F-diagnosis) or an emergency contact
  in the hospital register, and the discharge from the institution stay it ends (shelter/residential,
  psychiatric ward, prison) in the stays register, which only crisis persons have.
* Participants are crisis persons living in a CTI site municipality whose crisis falls after the site
  joined (2024-01/2024-08) and before the reference date, taken up with a probability that is higher for
  Greenlandic and other non-Danish background. Each site enrols at most ``site_capacity`` of them per
  calendar quarter (``enrolment="capacity"``, the default: about 700 participants over 2024-2026 at any
  population size above a few hundred thousand, as the real programme's few CTI workers per site; with
  ``enrolment="population"`` everyone who takes it up). CTI starts in the crisis month. Non-participants
  with a crisis (other municipalities, earlier years, not taken up, over capacity) form a natural
  comparison group.
* The planted effect (``PlantedEffects``) acts only on participants after start, on the probability/rate
  scale, ramping linearly from 0 at start to full at month 12, larger for completers and varying by
  sub-target group. ``truth()`` reports the realised average effect on the treated from the model's own
  expected values (before sampling noise), so estimators can be checked against it.

Generation is vectorised over persons in chunks and seeded per (register family, year, chunk), so any
register-year can be produced on its own, in any order, with bounded memory at 5.9 million persons. Draws
use common random numbers (uniforms fixed per cell, inverse-CDF Poisson counts, counter-based hashes for
contact details), so setting the effects to zero changes nothing but the participants' post-start months.

``analysis.mockworld.panel`` builds the linkage's outcome panel straight from the world (the registers' own
draw functions; equal to the linked registers cell by cell with ``draws="registers"``), which the Monte
Carlo harness ``scripts/validate.py`` uses for hundreds of replications. ``WorldConfig.from_mapping`` /
``to_mapping`` / ``identity`` give every setting a validated, hashable text form.
"""


from analysis.mockworld.inbox import BAD_KINDS, RESUBMISSION, submissions
from analysis.mockworld.model import emergency_rates, labour_probabilities
from analysis.mockworld.registers import cpr_key, register_year
from analysis.mockworld.truth import effects_truth, truth
from analysis.mockworld.world import (
    CHUNK,
    ENROLMENT_MODES,
    GENERATOR_VERSION,
    OUTCOME_MODEL_FIELDS,
    PlantedEffects,
    SubmissionFile,
    World,
    WorldConfig,
    build_world,
    with_outcome_model,
)

__all__ = [
    "BAD_KINDS", "CHUNK", "ENROLMENT_MODES", "GENERATOR_VERSION", "OUTCOME_MODEL_FIELDS", "RESUBMISSION",
    "PlantedEffects", "SubmissionFile", "World", "WorldConfig", "build_world", "cpr_key", "effects_truth",
    "emergency_rates", "labour_probabilities", "register_year", "submissions", "truth", "with_outcome_model",
]
