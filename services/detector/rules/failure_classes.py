"""What a final SIP status means for the caller: one table, shared by ``call_failed`` and the categories.

Keeping the table declarative (status -> class, then class -> category and
severity) means a reviewer can audit the whole mapping at a glance and a
new status is one line, not a new branch.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from callqual.schemas import CallCategory, Severity

FailureClass = Literal[
    "auth",  # 401/407 as the *final* answer: the challenge was never satisfied
    "forbidden",  # 403: credentials or ACL rejected
    "not_found",  # the dialled address does not exist / is incomplete
    "unreachable",  # the callee could not be reached in time
    "codec",  # no common media format / unsupported body
    "server",  # 5xx: a server or gateway failed
    "busy",  # user outcome
    "cancelled",  # user outcome: caller hung up while ringing
    "declined",  # user outcome: callee rejected
    "redirect",  # 3xx: the call continues elsewhere, not a failure
    "other",  # any other 4xx/6xx
]

FAILURE_CLASS_BY_STATUS: Mapping[int, FailureClass] = MappingProxyType(
    {
        401: "auth",
        407: "auth",
        403: "forbidden",
        404: "not_found",
        484: "not_found",
        604: "not_found",
        408: "unreachable",
        410: "unreachable",
        480: "unreachable",
        415: "codec",
        488: "codec",
        606: "codec",
        486: "busy",
        600: "busy",
        487: "cancelled",
        603: "declined",
    }
)

#: Fallback by status class when the exact code is not in the table.
FAILURE_CLASS_BY_HUNDRED: Mapping[int, FailureClass] = MappingProxyType(
    {3: "redirect", 4: "other", 5: "server", 6: "other"}
)

#: Final responses a UA answers with a new INVITE in the same Call-ID (RFC 3261 22.2 challenges,
#: 8.1.3.4 redirects, RFC 4028 422 Session Interval Too Small, RFC 3261 14.1 491 Request Pending):
#: no failure by themselves, so they are judged only once the retry window has passed.
RETRIED_BY_UA: frozenset[int] = frozenset({401, 407, 422, 491, *range(300, 400)})

#: Outcomes the callee or caller chose: normal, no alert unless configured.
USER_OUTCOMES: frozenset[FailureClass] = frozenset({"busy", "cancelled", "declined"})

#: Severity of the ``call_failed`` alert per class.
SEVERITY_BY_CLASS: Mapping[FailureClass, Severity] = MappingProxyType(
    {
        "auth": "warning",
        "forbidden": "warning",
        "not_found": "info",
        "unreachable": "warning",
        "codec": "warning",
        "server": "critical",
        "busy": "info",
        "cancelled": "info",
        "declined": "info",
        "redirect": "info",
        "other": "warning",
    }
)

#: Call category per class. Only busy, cancelled and declined are the callee's
#: (or caller's) own choice; ``not_found`` (404/484/604) is a misdial or, just as
#: often, a routing or number-plan fault, which is what an operator must look at,
#: so it counts against the network like ``other``, the conservative choice for
#: an unknown code.
CATEGORY_BY_CLASS: Mapping[FailureClass, CallCategory | None] = MappingProxyType(
    {
        "auth": "failed_auth",
        "forbidden": "failed_auth",
        "not_found": "failed_network",
        "unreachable": "failed_network",
        "codec": "failed_network",
        "server": "failed_network",
        "other": "failed_network",
        "busy": "failed_user",
        "cancelled": "failed_user",
        "declined": "failed_user",
        "redirect": None,
    }
)


def failure_class(status: int | None) -> FailureClass | None:
    """The class of a final status, or None for success/provisional/unknown."""
    if status is None or status < 300 or status > 699:
        return None
    return FAILURE_CLASS_BY_STATUS.get(status) or FAILURE_CLASS_BY_HUNDRED[status // 100]
