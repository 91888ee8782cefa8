"""One retry policy for every outbound caller (EHRs, Graph; Communication Services next).

A policy says which answers are worth another try, how many tries there are in all, the longest
Retry-After we are willing to honour, how long we may wait across all retries, and the backoff
when the server names no delay. Each caller keeps its own numbers (a launch has a person
waiting; a queue worker does not) but the same rules, so "how long can this call take" has one
answer per caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from lib.web.http import whole_number


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Parse Retry-After: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if (seconds := whole_number(value)) is not None:
        return float(seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    statuses: frozenset[int] = frozenset({429, 503})
    attempts: int = 3  # tries in all, the first one included
    max_retry_after: float = 5.0  # a server asking for longer is answered at once, not waited for
    total_wait: float = 10.0  # seconds of waiting across all retries of one call
    backoff: float = 1.0  # wait before retry n without Retry-After: backoff * 2**(n-1), capped
    backoff_cap: float = 1.0
    connection_errors: bool = False  # retry when no answer came at all (idempotent callers)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def retries_status(self, status: int) -> bool:
        return status in self.statuses

    def wait_before(self, retry: int, retry_after: str | None, waited: float) -> float | None:
        """Seconds to wait before retry number `retry` (1-based); None: stop and answer now."""
        if retry >= self.attempts:
            return None
        asked = retry_after_seconds(retry_after)
        if asked is not None and asked > self.max_retry_after:
            return None
        wait = (
            asked if asked is not None else min(self.backoff * 2 ** (retry - 1), self.backoff_cap)
        )
        if waited + wait > self.total_wait:
            return None
        return wait


# An EHR call (discovery, token, FHIR read) on a person's launch: two quick retries at most.
EHR_RETRIES = RetryPolicy(attempts=3, max_retry_after=5.0, total_wait=10.0)
# Graph: 504 too, and a lost connection is retried (createOrGet and GET are idempotent).
GRAPH_RETRIES = RetryPolicy(
    statuses=frozenset({429, 503, 504}),
    attempts=3,
    max_retry_after=10.0,
    total_wait=10.0,
    backoff=1.0,
    backoff_cap=4.0,
    connection_errors=True,
)
