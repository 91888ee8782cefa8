"""Where each party of the sandbox lives: its own loopback address, port and certificate.

In production every party is a different site (an EHR vendor, login.microsoftonline.com,
graph.microsoft.com, teams.microsoft.com), so the browser keeps their cookies apart and applies
CSP, SameSite, frame-ancestors and form-action between them. The sandbox gives each stand-in its
own loopback address (on Linux all of 127.0.0.0/8 is loopback; cookies are kept per host, not
per port, so distinct addresses are what make the parties different sites), its own port and a
leaf certificate whose SAN names that address. The control origin serves the index page and
``/_sandbox/...``; every party origin answers ``/_sandbox/...`` too, but only its own stand-in's
paths.

``make run`` uses the fixed ports below; tests and benchmarks bind each address on a free port.
A new stand-in takes the next free line of this table (Communication Services is reserved).
"""

from __future__ import annotations

from dataclasses import dataclass

CONTROL = "_control"


@dataclass(frozen=True)
class Place:
    address: str
    port: int  # the fixed port under make run


PLACES: dict[str, Place] = {
    CONTROL: Place("127.0.0.1", 7443),
    "epic": Place("127.0.0.2", 7444),
    "cerner": Place("127.0.0.3", 7445),
    "entra": Place("127.0.0.4", 7446),
    "graph": Place("127.0.0.5", 7447),
    "acs": Place("127.0.0.6", 7448),  # Communication Services (SMS, numbers, the phone page)
    "insights": Place("127.0.0.7", 7449),  # Application Insights ingestion (telemetry)
}


def place(name: str) -> Place:
    try:
        return PLACES[name]
    except KeyError:
        raise RuntimeError(
            f"stand-in {name!r} has no origin: add it to PLACES in dev/sandbox/origins.py"
        ) from None


def origin(address: str, port: int) -> str:
    return f"https://{address}:{port}"


def fixed_origin(name: str) -> str:
    """The origin of ``name`` under ``make run`` (fixed ports)."""
    p = place(name)
    return origin(p.address, p.port)
