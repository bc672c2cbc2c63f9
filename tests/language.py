"""A check that a text meant for a Danish municipality holds no English (imported as ``language``).

``ENGLISH`` lists common English words and the pipeline's own English vocabulary that are not Danish
words. Words both languages share (``i``, ``at``, ``for``, ``to``, ``end``, ``have``, ``data``, ``status``,
``problem``, ``register``, ``format``, ``person``, ``note``, ``start``, ``type``, ``total``, ``version``...)
are left out, so Danish text never trips it. Reason codes (``cpr_wrong_length``) are caught by their
snake_case shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ENGLISH = frozenset("""
a about accepted across after all also an and any are as at be been before but by can cannot case cell cells
check checks citizen code codes column columns completed conflict conflicts contact correct corrected could
cover date dates day days deadline delete did digits do due duplicate duplicates each empty ensures every
failed field fields file files fill first fix following for found from generated has header help here how if
in instruction invalid is it its keep kind last latest length line lines linked longer masked message messages
missing month months more most must new next no none not nothing now number numbers of on only or other our
outstanding overlapping overview participant participants please population quarantined quarter quarters read
readable reason reasons received remove report resend restricted right row rows rule rules same see sheet
sheets should shows since site sites so step steward submission submissions summary text than thank that the
then there these they this those to topic totals unknown unlinked until up use used valid was we were what
when where which with would write wrong year years yes you your
""".split()) - {"i", "at", "for", "by", "kind", "a", "an", "as", "so", "in", "to"}
#: Short function words that are English only.
ENGLISH |= {"the", "and", "of", "is", "are", "with", "please"}

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CODE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")


def english_in(text: str, /, *, allowed: Iterable[str] = ()) -> list[str]:
    """English words and snake_case codes in ``text`` (``allowed``: names such as site ids and file names)."""
    for name in allowed:
        text = text.replace(name, " ")
    codes = _CODE.findall(text)
    words = [w for w in _WORD.findall(_CODE.sub(" ", text)) if w.lower() in ENGLISH]
    return codes + words
