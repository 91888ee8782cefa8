"""Demo chart shared by the EHR stand-ins: clinicians, patients, today's appointments, encounters.

Everything is fictional. The clinicians are the demo clinicians of ``directory.py`` (same keys:
a clinician is also a Teams meeting organizer). Ids are fixed per vendor so tests can name them:
Epic-like FHIR ids look like ``eXYZ...``, Cerner-like ones are numeric. Appointments happen
*today* (the local date, re-evaluated on every request) at fixed UTC times, status ``booked``,
each with a planned virtual Encounter.

``Chart(vendor, base_url)`` in chart.py is one vendor's view: lookups by FHIR id, R4 resources.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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


def department(key: str) -> Department:
    found = next((d for d in DEPARTMENTS if d.key == key), None)
    assert found is not None, key
    return found
