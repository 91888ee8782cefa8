"""Finds personal data in clear: the sandbox's patients and clinicians, in any text we keep.

``needles()`` builds what to look for from the sandbox's own chart (dev/sandbox/ehr/data.py), so a
patient added there is looked for here without anyone copying a list:
- names: given, family and full, in any case, also "Family, Given" and "Family^Given" (HL7);
- birth dates: ISO, compact (HL7 TS, also with a time after it), US and European orders with
  any of - / . or space, and with the month's name or its abbreviation;
- phone numbers: any grouping of the national digits with spaces, dashes, dots or parentheses,
  with or without +1 / 1 in front, digits only, URL-encoded (%2B);
- MRNs, FHIR ids (patient, appointment, encounter, practitioner, Epic's DSTU2 id), and the
  appointment's reason (clinical text).

A ``Scanner`` looks through texts, every table of an account under a prefix (every property),
every queue (raw and base64-decoded), and log lines, and says where each finding is. Keyed hashes
and sealed values are opaque by design: names are not looked for inside long random-looking
tokens (a three-letter given name occurs by chance in hex and base64), but identifiers and phone
numbers are, since those do not occur there by chance.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import fnmatch
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from dev.sandbox.ehr import data

PATIENT_NAME, CLINICIAN_NAME = "patient name", "clinician name"
BIRTH_DATE, PHONE, MRN, FHIR_ID, REASON = "birth date", "phone", "mrn", "fhir id", "visit reason"

_SEP = r"[\s().^/-]{0,3}"  # between a phone number's digits (^: HL7 XTN components)
_ID_EDGE = r"A-Za-z0-9._-"  # FHIR ids are [A-Za-z0-9.-]{1,64}: a match must stand alone
# Long runs of base64 / hex / base64url characters with a digit in them: keyed hashes, sealed
# values, signed tokens, ETags. A name is not searched inside one (see the module docstring).
_OPAQUE = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_OPAQUE_MIN = 16
# lib/sealing.py's format: s1.<key id>.<base64url(nonce + ciphertext + tag)>
SEALED_VALUE = re.compile(r"(?<![A-Za-z0-9])s1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16,}")


@dataclass(frozen=True)
class Needle:
    kind: str  # PATIENT_NAME, BIRTH_DATE, ...
    label: str  # whose and which, e.g. "rivera: family name"
    pattern: re.Pattern[str]
    in_opaque: bool = True  # also inside long random-looking tokens

    def find(self, text: str, masked: str) -> Iterator[re.Match[str]]:
        return self.pattern.finditer(text if self.in_opaque else masked)


@dataclass(frozen=True)
class Finding:
    where: str  # "table privacyVisits (pk, rk).property", "queue visit-events #id", "log x:12"
    kind: str
    label: str
    excerpt: str  # the match with a little context

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} ({self.label}): ...{self.excerpt}..."


@dataclass(frozen=True)
class Allowed:
    """A kind of needle that may appear in one place, and why (e.g. a clinician's name where
    the admin needs it). ``where`` and ``label`` are globs over the finding's."""

    kind: str
    where: str
    why: str
    label: str = "*"

    def covers(self, finding: Finding) -> bool:
        return (
            finding.kind == self.kind
            and fnmatch.fnmatchcase(finding.where, self.where)
            and fnmatch.fnmatchcase(finding.label, self.label)
        )


# -- the needles -------------------------------------------------------------------------------


def name_pattern(*words: str) -> re.Pattern[str]:
    """The words in this order, any case, separated by what names are written with (space,
    comma, caret, underscore, dot, dash), and not part of a longer word."""
    body = r"[\s,^_.-]{1,3}".join(re.escape(w) for w in words)
    return re.compile(rf"(?<![A-Za-z]){body}(?![A-Za-z])", re.IGNORECASE)


def phone_pattern(e164: str) -> re.Pattern[str]:
    """A North American number (+1 NXX NXX XXXX) however it is grouped or prefixed."""
    national = e164.removeprefix("+").removeprefix("1")
    if not (e164.startswith("+1") and len(national) == 10 and national.isdigit()):
        raise ValueError(f"not a North American E.164 number: {e164}")
    digits = _SEP.join(national)
    return re.compile(rf"(?<!\d)(?:(?:\+|%2B)?1{_SEP})?{digits}(?!\d)", re.IGNORECASE)


def date_pattern(day: date) -> re.Pattern[str]:
    """A date in the ways systems and people write one (see the module docstring)."""
    y, m, d = f"{day.year:04d}", day.month, day.day
    mm, dd = rf"0?{m}", rf"0?{d}"
    month = calendar.month_name[m]
    names = rf"(?:{month}|{month[:3]}\.?)"
    sep = r"[-/. ]"
    forms = [
        rf"{y}{sep}{mm}{sep}{dd}(?!\d)",  # 1984-03-12, 1984/3/12
        rf"{y}{m:02d}{d:02d}",  # 19840312 (HL7 DT / TS: a time may follow)
        rf"{mm}{sep}{dd}{sep}{y}(?!\d)",  # 03/12/1984 (US)
        rf"{dd}{sep}{mm}{sep}{y}(?!\d)",  # 12.03.1984 (Europe)
        rf"{names}\s{{1,2}}{dd},?\s{{1,2}}{y}(?!\d)",  # March 12, 1984
        rf"{dd}[\s-]{{1,2}}{names}[\s-]{{1,2}}{y}(?!\d)",  # 12 Mar 1984, 12-Mar-1984
    ]
    return re.compile(rf"(?<!\d)(?:{'|'.join(forms)})", re.IGNORECASE)


def id_pattern(value: str) -> re.Pattern[str]:
    """An identifier exactly, standing alone (not part of a longer id)."""
    return re.compile(rf"(?<![{_ID_EDGE}]){re.escape(value)}(?![{_ID_EDGE}])", re.IGNORECASE)


def _names(kind: str, who: str, given: str, family: str) -> list[Needle]:
    return [
        Needle(kind, f"{who}: full name", name_pattern(given, family), in_opaque=False),
        Needle(kind, f"{who}: full name, family first", name_pattern(family, given), False),
        Needle(kind, f"{who}: given name", name_pattern(given), in_opaque=False),
        Needle(kind, f"{who}: family name", name_pattern(family), in_opaque=False),
    ]


def _ids(kind: str, who: str, ids: dict[str, str]) -> list[Needle]:
    return [Needle(kind, f"{who}: {vendor} id", id_pattern(v)) for vendor, v in ids.items()]


def needles() -> list[Needle]:
    """Everything identifying in the sandbox's chart."""
    found: list[Needle] = []
    for p in data.PATIENTS:
        born = date_pattern(date.fromisoformat(p.birth_date))
        found += _names(PATIENT_NAME, p.key, p.given, p.family)
        found += [
            Needle(BIRTH_DATE, f"{p.key}: birth date", born),
            Needle(PHONE, f"{p.key}: phone", phone_pattern(p.phone)),
            Needle(MRN, f"{p.key}: mrn", id_pattern(p.mrn)),
            Needle(FHIR_ID, f"{p.key}: Epic DSTU2 id", id_pattern(p.epic_dstu2_id)),
        ]
        found += _ids(FHIR_ID, f"patient {p.key}", p.ids)
    for c in data.CLINICIANS:
        found += _names(CLINICIAN_NAME, c.key, c.given, c.family)
        found += _ids(FHIR_ID, f"practitioner {c.key}", c.ids)
    for s in data.SLOTS:
        found += _ids(FHIR_ID, f"appointment {s.key}", s.ids)
        found += _ids(FHIR_ID, f"encounter {s.key}", s.encounter_ids)
        found.append(Needle(REASON, f"appointment {s.key}: reason", id_pattern(s.reason), False))
    return found


# -- looking -----------------------------------------------------------------------------------


def mask_opaque(text: str) -> str:
    """The text with long random-looking tokens blanked out (same length, so offsets hold)."""

    def blank(m: re.Match[str]) -> str:
        token = m[0]
        opaque = len(token) >= _OPAQUE_MIN and any(c.isdigit() for c in token)
        return "#" * len(token) if opaque else token

    return _OPAQUE.sub(blank, text)


def _excerpt(text: str, match: re.Match[str]) -> str:
    return text[max(0, match.start() - 30) : match.end() + 30].replace("\n", " ")


def decoded(content: str) -> str | None:
    """A queue message's body as the host reads it (base64), when it is base64 of UTF-8."""
    try:
        return base64.b64decode(content, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class Scanner:
    def __init__(self, looking_for: Iterable[Needle] | None = None,
                 allowed: Iterable[Allowed] = ()) -> None:  # fmt: skip
        self.needles = list(needles() if looking_for is None else looking_for)
        self.allowed = list(allowed)
        self.looked_at: dict[str, int] = {}  # what was scanned: "tables", "rows", ... -> count
        self.sealed: dict[str, int] = {}  # sealed values seen, by table or queue

    def _count(self, what: str, n: int = 1) -> None:
        self.looked_at[what] = self.looked_at.get(what, 0) + n

    def text(self, text: str, where: str) -> list[Finding]:
        masked = mask_opaque(text)
        found = [
            Finding(where, n.kind, n.label, _excerpt(text, m))
            for n in self.needles
            for m in n.find(text, masked)
        ]
        return [f for f in found if not any(a.covers(f) for a in self.allowed)]

    def lines(self, lines: Iterable[str], where: str) -> list[Finding]:
        found: list[Finding] = []
        for number, line in enumerate(lines, 1):
            self._count("log lines")
            found += self.text(line, f"log {where}:{number}")
        return found

    def entity(self, table: str, row: dict[str, Any]) -> list[Finding]:
        key = f"({row.get('PartitionKey')}, {row.get('RowKey')})"
        found: list[Finding] = []
        for name, value in row.items():
            self._count("properties")
            value = getattr(value, "value", value)  # EntityProperty
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            text = str(value)
            if sealed := len(SEALED_VALUE.findall(text)):
                self.sealed[table] = self.sealed.get(table, 0) + sealed
            found += self.text(text, f"table {table} {key}.{name}")
        return found

    def tables(self, service: Any, prefix: str) -> list[Finding]:
        """Every table whose name starts with ``prefix``, every row, every property."""
        found: list[Finding] = []
        for table in service.list_tables():
            if not table.name.lower().startswith(prefix.lower()):
                continue
            self._count("tables")
            for row in service.get_table_client(table.name).list_entities():
                self._count("rows")
                found += self.entity(table.name, dict(row))
        return found

    def telemetry(self, items: Iterable[dict[str, Any]]) -> list[Finding]:
        """Application Insights items as exported (their JSON, every field and tag)."""
        found: list[Finding] = []
        for number, item in enumerate(items, 1):
            self._count("telemetry items")
            kind = str(item.get("name", "")).rsplit(".", 1)[-1]
            found += self.text(json.dumps(item, sort_keys=True), f"telemetry {kind} #{number}")
        return found

    def message(self, queue: str, message_id: str, content: str) -> list[Finding]:
        self._count("messages")
        where = f"queue {queue} #{message_id}"
        body = decoded(content)
        return self.text(content, where) + (self.text(body, where) if body else [])

    def queues(self, service: Any) -> list[Finding]:
        """Every queue of the account (poison queues too), every message, read without taking it:
        peeked (at most 32 a queue: callers drain nothing, so stop consumers first for more)."""
        found: list[Finding] = []
        for queue in service.list_queues():
            self._count("queues")
            client = service.get_queue_client(queue.name)
            for message in client.peek_messages(max_messages=32):
                found += self.message(queue.name, message.id, message.content)
        return found


def report(findings: list[Finding]) -> str:
    """Findings for an assertion message: one a line, the first 40."""
    lines = [str(f) for f in findings[:40]]
    more = len(findings) - len(lines)
    return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))
