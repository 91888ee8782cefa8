"""Who makes a change (kept apart from audit.py so the admin API's cold import stays small)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """An Entra object id and a display name: an admin, an approver."""

    oid: str
    name: str
