"""One vendor's view of the demo chart (data.py): lookups by key or FHIR id, and the FHIR R4
resources (Patient, Practitioner, Appointment, Encounter, ...) under a base URL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from dev.sandbox.ehr.data import (
    CLINICIANS,
    DEPARTMENTS,
    PATIENTS,
    SLOTS,
    VENDORS,
    Clinician,
    Department,
    Patient,
    Slot,
    department,
    today,
)


def _find(items: Iterable[Any], vendor: str, key_or_id: str) -> Any:
    for item in items:
        if key_or_id in (item.key, item.ids.get(vendor)):
            return item
    return None


class Chart:
    """One vendor's view of the demo chart, with FHIR ids and R4 resources under ``base_url``."""

    def __init__(self, vendor: str, base_url: str = "") -> None:
        if vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {VENDORS}")
        self.vendor = vendor
        self.base_url = base_url

    # -- lookups by key or FHIR id -------------------------------------------------------------
    def clinician(self, key_or_id: str) -> Clinician | None:
        return _find(CLINICIANS, self.vendor, key_or_id)

    def patient(self, key_or_id: str) -> Patient | None:
        return _find(PATIENTS, self.vendor, key_or_id)

    def slot(self, key_or_id: str) -> Slot | None:
        return _find(SLOTS, self.vendor, key_or_id)

    def slot_by_encounter(self, encounter_id: str) -> Slot | None:
        return next((s for s in SLOTS if s.encounter_ids[self.vendor] == encounter_id), None)

    def department(self, key_or_id: str) -> Department | None:
        return _find(DEPARTMENTS, self.vendor, key_or_id)

    def slots(self, clinician: str | None = None, patient: str | None = None) -> list[Slot]:
        """Today's appointments, by time, of a clinician and / or a patient (keys or ids)."""
        doc = self.clinician(clinician) if clinician else None
        pat = self.patient(patient) if patient else None
        if (clinician and doc is None) or (patient and pat is None):
            return []
        found = [
            s
            for s in SLOTS
            if (doc is None or s.clinician == doc.key) and (pat is None or s.patient == pat.key)
        ]
        return sorted(found, key=lambda s: s.at)

    def id_of(self, item: Clinician | Patient | Slot | Department) -> str:
        return item.ids[self.vendor]

    # -- FHIR R4 resources ---------------------------------------------------------------------
    def resource(self, resource_type: str, fhir_id: str, day: dt.date | None = None) -> Any:
        """The resource as JSON, or None when this chart has no such resource."""
        day = day or today()
        if resource_type == "Patient" and (p := self.patient(fhir_id)) and self.id_of(p) == fhir_id:
            return self.patient_resource(p)
        if resource_type == "Practitioner" and (c := self.clinician(fhir_id)):
            return self.practitioner_resource(c) if self.id_of(c) == fhir_id else None
        if resource_type == "Appointment" and (s := self.slot(fhir_id)):
            return self.appointment_resource(s, day) if self.id_of(s) == fhir_id else None
        if resource_type == "Encounter" and (s := self.slot_by_encounter(fhir_id)):
            return self.encounter_resource(s, day)
        if resource_type == "Location" and (d := self.department(fhir_id)):
            return self.location_resource(d) if self.id_of(d) == fhir_id else None
        return None

    def _meta(self) -> dict[str, Any]:
        return {"versionId": "1", "lastUpdated": f"{today().isoformat()}T06:00:00Z"}

    def patient_resource(self, p: Patient) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "id": self.id_of(p),
            "meta": self._meta(),
            "identifier": [
                {
                    "use": "usual",
                    "type": {"text": "MRN"},
                    "system": f"urn:oid:2.16.840.1.113883.3.sandbox.{self.vendor}.mrn",
                    "value": p.mrn,
                }
            ],
            "active": True,
            "name": [{"use": "official", "text": p.name, "family": p.family, "given": [p.given]}],
            "telecom": [{"system": "phone", "value": p.phone, "use": "mobile"}],
            "gender": p.gender,
            "birthDate": p.birth_date,
        }

    def practitioner_resource(self, c: Clinician) -> dict[str, Any]:
        return {
            "resourceType": "Practitioner",
            "id": self.id_of(c),
            "meta": self._meta(),
            "identifier": [
                {
                    "use": "usual",
                    "type": {"text": "EHR user id"},
                    "system": f"urn:oid:2.16.840.1.113883.3.sandbox.{self.vendor}.user",
                    "value": c.usernames[self.vendor],
                }
            ],
            "active": True,
            "name": [
                {
                    "use": "usual",
                    "text": c.name,
                    "family": c.family,
                    "given": [c.given],
                    "prefix": ["Dr."],
                }
            ],
            "telecom": [{"system": "email", "value": c.upn, "use": "work"}],
        }

    def location_resource(self, d: Department) -> dict[str, Any]:
        return {
            "resourceType": "Location",
            "id": self.id_of(d),
            "meta": self._meta(),
            "status": "active",
            "name": d.name,
            "mode": "instance",
        }

    def _ref(self, resource_type: str, item: Any, display: str | None = None) -> dict[str, Any]:
        ref: dict[str, Any] = {"reference": f"{resource_type}/{self.id_of(item)}"}
        if display:
            ref["display"] = display
        return ref

    def appointment_resource(self, s: Slot, day: dt.date) -> dict[str, Any]:
        doc, pat = self.clinician(s.clinician), self.patient(s.patient)
        assert doc and pat
        dept = department(doc.department)
        return {
            "resourceType": "Appointment",
            "id": self.id_of(s),
            "meta": self._meta(),
            "status": "booked",
            "serviceType": [{"text": "Virtual visit"}],
            "appointmentType": {"text": "Video visit"},
            "description": s.reason,
            "start": _instant(s.start(day)),
            "end": _instant(s.end(day)),
            "minutesDuration": s.minutes,
            "participant": [
                {
                    "actor": self._ref("Practitioner", doc, doc.name),
                    "required": "required",
                    "status": "accepted",
                },
                {
                    "actor": self._ref("Patient", pat, pat.name),
                    "required": "required",
                    "status": "accepted",
                },
                {
                    "actor": self._ref("Location", dept, dept.name),
                    "required": "required",
                    "status": "accepted",
                },
            ],
        }

    def encounter_resource(self, s: Slot, day: dt.date) -> dict[str, Any]:
        doc, pat = self.clinician(s.clinician), self.patient(s.patient)
        assert doc and pat
        dept = department(doc.department)
        return {
            "resourceType": "Encounter",
            "id": s.encounter_ids[self.vendor],
            "meta": self._meta(),
            "status": "planned",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "VR",
                "display": "virtual",
            },
            "subject": self._ref("Patient", pat, pat.name),
            "participant": [{"individual": self._ref("Practitioner", doc, doc.name)}],
            "appointment": [self._ref("Appointment", s)],
            "period": {"start": _instant(s.start(day)), "end": _instant(s.end(day))},
            "location": [{"location": self._ref("Location", dept, dept.name)}],
        }

    def search_bundle(self, resources: list[dict[str, Any]], self_url: str) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources),
            "link": [{"relation": "self", "url": self_url}],
            "entry": [
                {
                    "fullUrl": f"{self.base_url}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in resources
            ],
        }


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
