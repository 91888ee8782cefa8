"""The EHR's interface engine, as the sandbox plays it: builds SIU S12/S13/S14/S15/S17 and FHIR
Appointment messages for the demo appointments and signs them as docs/sms.md says (a detached
JWS over the exact body, `b64: false`, with `iat` and a fresh `jti`), with a key pair whose
certificate an admin uploads to the connector.

    python -m dev.sandbox.ehr.scheduling --url https://127.0.0.1:7071/api/scheduling/{endpoint}
        --event S12 --appointment APPT-1 --phone +15555550101 --start 2026-12-01T15:00
        [--certificate-out intake-cert.pem]

The key pair is kept in the sandbox's state folder (``scheduling-key.pem``), so the certificate
stays the one the admin uploaded across restarts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import time
from pathlib import Path
from typing import Any

from dev.sandbox.certs import certs_dir, self_signed, write_private

KEY_FILE = "scheduling-key.pem"
CERT_FILE = "scheduling-cert.pem"
SIU_EVENTS = ("S12", "S13", "S14", "S15", "S17")


def key_pair(state_dir: Path) -> tuple[Any, str]:
    """The interface engine's private key and its self-signed certificate (PEM), made once."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = certs_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        return key, cert_path.read_text()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, "sandbox-interface-engine", days=3650)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(key_path, pem)
    cert_path.write_text(cert.public_bytes(serialization.Encoding.PEM).decode())
    return key, cert_path.read_text()


def sign(body: bytes, key: Any, *, iat: int | None = None, jti: str | None = None) -> str:
    """The X-EVC-Signature value for ``body``."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    alg = "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = "ES384" if key.curve.name == "secp384r1" else "ES256"
    headers = {
        "b64": False,
        "crit": ["b64"],
        "iat": int(time.time()) if iat is None else iat,
        "jti": jti or secrets.token_urlsafe(16),
    }
    return jwt.api_jws.encode(body, key, algorithm=alg, headers=headers, is_payload_detached=True)


def hl7_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S+0000")


def siu(
    event: str,
    appointment: str,
    start: dt.datetime | None,
    minutes: int = 30,
    phone: str = "+15555550101",
    clinician: str = "reyes",
    control: str | None = None,
    sent: dt.datetime | None = None,
    patient: Any = None,
) -> bytes:
    """An SIU message as Epic Cadence / Cerner Scheduling interfaces send them (v2.5.1).
    ``patient``: a sandbox Patient for PID (default: Jordan Rivera)."""
    sent = sent or dt.datetime.now(dt.UTC)
    control = control or secrets.token_hex(6).upper()
    when = hl7_time(start) if start else ""
    digits = phone.removeprefix("+1")
    pid = "E4001^^^MRN||Rivera^Jordan||19840312|F"
    if patient is not None:
        born = patient.birth_date.replace("-", "")
        sex = patient.gender[:1].upper()
        pid = f"{patient.mrn}^^^MRN||{patient.family}^{patient.given}||{born}|{sex}"
    status = "CANCELLED" if event in ("S15", "S17") else "BOOKED"
    segments = [
        f"MSH|^~\\&|EHR|CLINIC|EVC|EVC|{hl7_time(sent)}||SIU^{event}^SIU_{event}|{control}|P|2.5.1",
        f"SCH||{appointment}|||||||{minutes}|min|^^{minutes}^{when}|||||||||||||{status}",
        f"PID|1||{pid}|||||^PRN^CP^^1^{digits[:3]}^{digits[3:]}",
        f"AIS|1||VIRTUAL^Virtual visit|{when}||{minutes}|min",
        f"AIP|1||{clinician}^Reyes^Ana|",
    ]
    return ("\r".join(segments) + "\r").encode()


def fhir_appointment(
    appointment: str,
    start: dt.datetime | None,
    minutes: int = 30,
    phone: str = "+15555550101",
    status: str = "booked",
    updated: dt.datetime | None = None,
) -> bytes:
    """A FHIR R4 Appointment with the patient's phone in a contained Patient."""
    body: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": appointment,
        "status": status,
        "meta": {"lastUpdated": (updated or dt.datetime.now(dt.UTC)).isoformat()},
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p",
                "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
            }
        ],
        "participant": [
            {"actor": {"reference": "#p"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/reyes"}, "status": "accepted"},
        ],
    }
    if start:
        body |= {
            "start": start.isoformat(),
            "minutesDuration": minutes,
            "end": (start + dt.timedelta(minutes=minutes)).isoformat(),
        }
    return json.dumps(body).encode()


def main(argv: list[str] | None = None) -> int:
    import requests

    from dev.sandbox.server import DEFAULT_STATE_DIR

    parser = argparse.ArgumentParser(
        prog="python -m dev.sandbox.ehr.scheduling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="the connector's /api/scheduling/{endpoint}")
    parser.add_argument("--event", choices=SIU_EVENTS, default="S12")
    parser.add_argument("--appointment", required=True, help="the FHIR Appointment id")
    parser.add_argument("--start", help="ISO time with offset; default: in 30 minutes")
    parser.add_argument("--phone", default="+15555550101")
    parser.add_argument("--fhir", action="store_true", help="send a FHIR Appointment instead")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--certificate-out", type=Path, help="write the certificate to upload")
    args = parser.parse_args(argv)
    key, cert = key_pair(args.state_dir)
    if args.certificate_out:
        args.certificate_out.write_text(cert)
    start = (
        dt.datetime.fromisoformat(args.start)
        if args.start
        else dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
    )
    if args.fhir:
        status = "cancelled" if args.event in ("S15", "S17") else "booked"
        body, ctype = (
            fhir_appointment(args.appointment, start, phone=args.phone, status=status),
            "application/fhir+json",
        )
    else:
        body, ctype = (
            siu(args.event, args.appointment, start, phone=args.phone),
            "application/hl7-v2",
        )
    answer = requests.post(
        args.url,
        data=body,
        timeout=30,
        headers={"Content-Type": ctype, "X-EVC-Signature": sign(body, key)},
    )
    print(answer.status_code, answer.text.replace("\r", "\n"))
    return 0 if answer.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
