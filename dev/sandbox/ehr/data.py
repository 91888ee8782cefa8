"""Demo chart shared by the EHR stand-ins: clinicians, patients, today's appointments, encounters.

Everything is fictional. The clinicians are the demo clinicians of ``directory.py`` (same keys:
a clinician is also a Teams meeting organizer). Ids are fixed per vendor so tests can name them:
Epic-like FHIR ids look like ``eXYZ...``, Cerner-like ones are numeric. Appointments happen
*today* (the local date, re-evaluated on every request) at fixed UTC times, status ``booked``,
each with a planned virtual Encounter.

``Chart(vendor, base_url)`` is one vendor's view: lookups by FHIR id and FHIR R4 resources.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dev.sandbox import directory

VENDORS = ("epic", "cerner")


@dataclass(frozen=True)
class Department:
    key: str
    name: str
    ids: dict[str, str]  # vendor -> Location FHIR id
    epic_department_id: str  # Epic `loginDepartment`


@dataclass(frozen=True)
class Clinician:
    key: str  # as in directory.USERS
    given: str
    family: str
    department: str
    ids: dict[str, str]  # vendor -> Practitioner FHIR id
    usernames: dict[str, str]  # vendor -> EHR login (Epic user id, Cerner username)

    @property
    def name(self) -> str:
        return f"Dr. {self.given} {self.family}"

    @property
    def upn(self) -> str:
        person = directory.user(self.key)
        return person.upn if person else ""


@dataclass(frozen=True)
class Patient:
    key: str
    given: str
    family: str
    gender: str
    birth_date: str
    phone: str  # 555-01xx: reserved for fiction
    mrn: str
    ids: dict[str, str]  # vendor -> Patient FHIR id
    epic_dstu2_id: str  # Epic `__epic.dstu2.patient`

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"


@dataclass(frozen=True)
class Slot:
    """A daily appointment with its encounter; times are UTC on today's local date."""

    key: str
    clinician: str
    patient: str
    at: dt.time
    minutes: int
    reason: str
    ids: dict[str, str]  # vendor -> Appointment FHIR id
    encounter_ids: dict[str, str]  # vendor -> Encounter FHIR id

    def start(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, self.at, tzinfo=dt.UTC)

    def end(self, day: dt.date) -> dt.datetime:
        return self.start(day) + dt.timedelta(minutes=self.minutes)


DEPARTMENTS = (
    Department(
        "family",
        "Riverside Family Medicine",
        {"epic": "e4W4rmGe9QzuGm2Dy4NBqVA3", "cerner": "32216049"},
        "10501101",
    ),
    Department(
        "cardio",
        "Harbor Heart Clinic",
        {"epic": "e2rYNTBtVsZTI5P7h1ZkUJA3", "cerner": "32216051"},
        "10501102",
    ),
    Department(
        "peds",
        "Meadow Children's Clinic",
        {"epic": "eVwcq2vmN4p1Vv7b1dpQnGw3", "cerner": "32216053"},
        "10501103",
    ),
)

CLINICIANS = (
    Clinician(
        "reyes",
        "Ada",
        "Reyes",
        "family",
        {"epic": "eM5CWtq15N0WJeuCet5bJlQ3", "cerner": "12742400"},
        {"epic": "AREYES", "cerner": "AR012742"},
    ),
    Clinician(
        "okafor",
        "Chidi",
        "Okafor",
        "cardio",
        {"epic": "eYg1-mGcMDUqUcgmOh1rB8w3", "cerner": "12742403"},
        {"epic": "COKAFOR", "cerner": "CO012743"},
    ),
    Clinician(
        "lindqvist",
        "Maja",
        "Lindqvist",
        "peds",
        {"epic": "eTplvxE1Jd0Eb4Uqp4Lp6DA3", "cerner": "12742406"},
        {"epic": "MLINDQVIST", "cerner": "ML012744"},
    ),
)

PATIENTS = (
    Patient(
        "rivera",
        "Jordan",
        "Rivera",
        "female",
        "1984-03-12",
        "+15555550101",
        "E4001",
        {"epic": "erXuFYUfucBZaryVksYEcMg3", "cerner": "12724066"},
        "Tbt3KuCY0B5PSrJvCu2j-PlK.aiHsu2xUjUM8bWpetXoB",
    ),
    Patient(
        "whitfield",
        "Samuel",
        "Whitfield",
        "male",
        "1957-11-02",
        "+15555550102",
        "E4002",
        {"epic": "eq081-VQEgP8drUUqCWzHfw3", "cerner": "12724067"},
        "TnOZ.elPXC6zcBNFMcFA7A5KZbYxo2.4T-LylRk4GoW4B",
    ),
    Patient(
        "nakamura",
        "Emi",
        "Nakamura",
        "female",
        "2016-06-21",
        "+15555550103",
        "E4003",
        {"epic": "eAB3mDIBBcyUKviyzrxsnAw3", "cerner": "12724068"},
        "TUKRxL29bxE9lyAcdTIyrWC6Ln5gZ-z7CLr2r-2SY964B",
    ),
    Patient(
        "haddad",
        "Omar",
        "Haddad",
        "male",
        "1972-09-30",
        "+15555550104",
        "E4004",
        {"epic": "egqBHVfQlt4Bw3XGXoxVxHg3", "cerner": "12724069"},
        "TGpNpzEDq.7tDgi1eFAIrgHpjgbTz5cdvhVZOhvvmXGQB",
    ),
)

SLOTS = (
    Slot(
        "reyes-0900",
        "reyes",
        "rivera",
        dt.time(9, 0),
        30,
        "Follow-up: blood pressure",
        {"epic": "eWLhfjXHp4RUczv1sbGLvqA3", "cerner": "4817552"},
        {"epic": "eGmO0h.1.UQQ3IgTvGQl7Eg3", "cerner": "97953477"},
    ),
    Slot(
        "reyes-0930",
        "reyes",
        "whitfield",
        dt.time(9, 30),
        30,
        "Medication review",
        {"epic": "eXBlqS4sUQTRmh5BnmkPzYQ3", "cerner": "4817553"},
        {"epic": "eMNjZbcsLiVlS.Qm3n9eTIw3", "cerner": "97953478"},
    ),
    Slot(
        "okafor-1000",
        "okafor",
        "haddad",
        dt.time(10, 0),
        30,
        "Cardiology consult",
        {"epic": "e0KGcwzv8wlOuVKbUU8pXmA3", "cerner": "4817554"},
        {"epic": "eQb3V0lUxX2GkW8TSjQ4l9w3", "cerner": "97953479"},
    ),
    Slot(
        "lindqvist-1400",
        "lindqvist",
        "nakamura",
        dt.time(14, 0),
        20,
        "Well-child check (video)",
        {"epic": "e8cAGzW2C1wJ4s.RwcQlYxg3", "cerner": "4817555"},
        {"epic": "eI5Tqm1Vb0KqKZgf3VwMt7A3", "cerner": "97953480"},
    ),
)


def today() -> dt.date:
    """The local date: the schedule always shows today, also in a sandbox left running."""
    return dt.datetime.now().date()


def _find(items: Iterable[Any], vendor: str, key_or_id: str) -> Any:
    for item in items:
        if key_or_id in (item.key, item.ids.get(vendor)):
            return item
    return None


def department(key: str) -> Department:
    found = next((d for d in DEPARTMENTS if d.key == key), None)
    assert found is not None, key
    return found


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
