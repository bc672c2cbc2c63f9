"""What each check a data steward sees means, in Danish (the steward view's default language).

Only the ingest and linkage checks are here: they are the ones a steward can act on. The methods checks
(balance after matching, sane estimates) belong to the analysts and stay out of the steward view.
"""

from __future__ import annotations

from expectations import names
from expectations.linkage import EDU_LEVELS, MIN_LINK_RATE

DANISH = {
    names.RAW_SUBMISSION_STRUCTURE: "Filen har alle kolonner, når overskrifterne er oversat, og hver række "
                                    "har et entydigt nummer.",
    names.VALIDATED_ROWS_CLEAN: "Godkendte rækker har et CPR-nummer på 10 cifre, en startdato og ingen "
                                "slutdato før startdatoen.",
    names.ROW_CONSERVATION: "Alle læste rækker er godkendt, sat til rettelse eller fjernet som helt ens "
                            "dubletter.",
    names.NO_CPR_AFTER_PSEUDONYMISATION: "Efter pseudonymiseringen står der ingen CPR-numre i data.",
    names.COURSES_KEYS: "Hvert forløb har et entydigt forløbs-id og en startdato.",
    names.COURSES_COMPLETION: "Gennemført er udfyldt for præcis de forløb, der er afsluttet (en indberetter "
                              "kan halte efter).",
    names.PERSON_INDEX_UNIQUE: "Hvert pseudonym hører til præcis én person i registrene.",
    names.LINK_RATE: f"Mindst {MIN_LINK_RATE * 100:.0f} % af deltagerne findes i befolkningsregistret.",
    names.OUTCOME_PANEL_KEYS: "Udfaldspanelet har én række pr. person og måned.",
    names.OUTCOME_PANEL_VALUES: "Andele ligger mellem 0 og 1, tællinger er ikke negative, og "
                                f"uddannelsesniveauet ligger mellem {EDU_LEVELS[0]} og {EDU_LEVELS[1]}.",
}
