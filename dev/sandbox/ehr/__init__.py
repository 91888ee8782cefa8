"""EHR stand-ins: an Epic-like one at ``/epic`` and an Oracle Health (Cerner)-like one at
``/cerner``, both from the generic SMART on FHIR EHR in ``base.py``. See README.md here."""

from dev.sandbox.ehr.base import EhrStandIn, Launch
from dev.sandbox.ehr.cerner import CernerStandIn
from dev.sandbox.ehr.clients import SmartClient
from dev.sandbox.ehr.epic import EpicStandIn

__all__ = ["CernerStandIn", "EhrStandIn", "EpicStandIn", "Launch", "SmartClient"]
