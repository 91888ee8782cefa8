"""Azure Communication Services stand-in: SMS send (HMAC-checked), phone numbers (search and
purchase as long-running operations), Event Grid pushes (delivery reports, inbound texts) to the
connector's webhook, and a phone page. See README.md beside this file."""

from dev.sandbox.acs.standin import AcsStandIn
from dev.sandbox.acs.texts import Text, TextStore

__all__ = ["AcsStandIn", "Text", "TextStore"]
