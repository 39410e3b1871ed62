"""Words callers use for the same thing as a business's own words ("shut" for "close",
"fee" for "cost", "weekday" for "Monday"), for query expansion in knowledge retrieval.

Each group is a set of words said for one thing; a word's related words are the others of
its groups. The groups are of what callers ask any business (hours, prices, booking,
directions, contact, payment, access), not of one trade; a business's own words belong in
its knowledge file's alternates.
"""

from __future__ import annotations

import functools
from typing import Final

_DAYS = "monday tuesday wednesday thursday friday"
_GROUPS: Final = (
    "hours open opening opens close closes closing closed shut shuts",
    f"week weekday weekdays weekly {_DAYS}",
    f"weeknight weeknights evening evenings late {_DAYS}",
    "weekend weekends saturday saturdays sunday sundays",
    "holiday holidays christmas thanksgiving easter",
    "price prices pricing cost costs fee fees charge charges expensive cheap "
    "affordable dollars rate rates",
    "book booking appointment appointments schedule scheduling reserve reservation "
    "availability available openings slot slots",
    "cancel cancels cancelled canceled cancelling cancellation missed noshow",
    "reschedule rescheduling change move postpone different",
    "late behind delayed running",
    "address located location directions where find street",
    "contact reach call phone number email",
    "pay paying payment payments card cards cash debit credit financing installments",
    "insurance insured coverage covered plan plans network",
    "parking park car garage lot",
    "bus buses train subway metro transit transport station",
    "wheelchair accessible accessibility access elevator stairs step disabled",
    "language languages speak speakers spanish",
    "kids kid children child son daughter pediatric",
    "doctor doctors staff team dentist dentists",
    "bring documents paperwork forms id",
    "emergency emergencies urgent pain painful hurts ache broken",
    "nervous anxious anxiety scared afraid sedation sleep",
    "new first initial",
)


@functools.cache
def _table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for group in _GROUPS:
        members = set(group.split())
        for word in members:
            table.setdefault(word, set()).update(members - {word})
    return {word: frozenset(others) for word, others in table.items()}


def related(word: str) -> frozenset[str]:
    """The words said for the same thing as ``word`` (lower case), without it."""
    return _table().get(word, frozenset())
