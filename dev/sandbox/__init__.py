"""Local HTTPS stand-ins for every outside party the connector talks to.

    from dev.sandbox import start_sandbox
    sandbox = start_sandbox()            # background thread, returns once listening
    sandbox.url, sandbox.ca_file         # https://127.0.0.1:PORT, CA PEM for REQUESTS_CA_BUNDLE
    sandbox.entra.authority              # each stand-in is an attribute
    sandbox.epic.fhir_base, sandbox.cerner.mint_launch()   # EHRs: see dev/sandbox/ehr/README.md
    sandbox.journal / .faults / .set_latency() / .reset() / .stop()

Command line: ``python -m dev.sandbox [--port 7443] [--state-dir .local]``.
"""

from dev.sandbox.server import Sandbox, discover_stand_ins, start_sandbox
from dev.sandbox.standin import StandIn
from dev.sandbox.state import Fault, Journal, JournalEntry, SandboxState

__all__ = [
    "Fault",
    "Journal",
    "JournalEntry",
    "Sandbox",
    "SandboxState",
    "StandIn",
    "discover_stand_ins",
    "start_sandbox",
]
