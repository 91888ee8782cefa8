"""Register the sandbox's EHRs in the app through its own config API, so `make run` is clickable.

Idempotent: an endpoint already active is left alone. The Epic-like endpoint is approved by the
sandbox's approver through the same EHR sign-in a person would do (scripted here); every step is
in the audit trail like any admin's. Each EHR is registered at the FHIR base on its own origin
(dev/sandbox/origins.py), and that origin may frame the app's pages (``launch.ehr_origins``), as
a Hyperspace activity or a PowerChart MPage does; an endpoint left from a run before the EHRs
had their own origins (another FHIR base under the same id) is registered again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import quote

import requests

from dev.sandbox.ehr.portals import play_standalone_sign_in

CERNER_TENANT = "ec2458f2-1e24-41c8-b71b-0e701af7583d"
SANDBOX_ENDPOINT_IDS = ["epic-sandbox-test", "cerner-sandbox-test"]
APPROVER = {"oid": "1c1a00a9-0000-4000-8000-00000000a901", "display_name": "Priya Analyst"}


def sandbox_endpoints(origins: Mapping[str, str]) -> list[dict]:
    """The two sandbox endpoints, from the EHRs' origins (``{"epic": ..., "cerner": ...}``)."""
    return [
        {
            "id": "epic-sandbox-test",
            "fhir_base_url": f"{origins['epic']}/epic/api/FHIR/R4",
            "vendor": "epic",
            "environment": "test",
            "organization": "Sandbox Health",
            "client_id": "evc-epic-jwt",
            "client_auth": {"method": "private_key_jwt", "alg": "RS384"},
            "approver": APPROVER,
            "launch": {"ehr_origins": [origins["epic"]]},
            "writeback": _writeback("evc-epic-jwt"),
        },
        {
            "id": "cerner-sandbox-test",
            "fhir_base_url": f"{origins['cerner']}/cerner/r4/{CERNER_TENANT}",
            "vendor": "cerner",
            "environment": "test",
            "organization": "Sandbox Health",
            "client_id": "evc-cerner-test",
            "client_auth": {
                "method": "client_secret_basic",
                "secret_setting": "EHR_SECRET_CERNER",
            },
            "launch": {"ehr_origins": [origins["cerner"]]},
            # Launches use a client secret; write-back a backend client of its own (as at
            # Oracle Health, where a system account app is registered apart from the user app).
            "writeback": _writeback("evc-cerner-jwt"),
        },
    ]


def _writeback(backend_client: str) -> dict:
    """EHR write-back on, through SMART Backend Services with our RS384 key (docs/writeback.md)."""
    auth = {"method": "backend_services", "client_id": backend_client, "alg": "RS384"}
    return {"enabled": True, "auth": auth}


def seed(
    app_url: str, origins: Mapping[str, str], ca_file: str, token: Callable[[str], str]
) -> list[str]:
    """Make both sandbox endpoints active; returns one line per endpoint saying what was done.
    ``origins``: where the EHR stand-ins are (``Sandbox.origins``, or the fixed ones);
    ``ca_file``: the sandbox's CA, which the app's certificate is from too."""
    api = f"{app_url}/api/config/endpoints"
    admin = _session(token("admin"), ca_file)
    lines = []
    registered = {e["id"]: e for e in admin.get(api, timeout=30).json()["items"]}
    taken = {e["fhir_base_url"]: e["id"] for e in registered.values()}
    for body in sandbox_endpoints(origins):
        eid = body["id"]
        current = registered.get(eid)
        if current is not None and current["fhir_base_url"] != body["fhir_base_url"]:
            etag = admin.get(f"{api}/{eid}", timeout=30).headers["ETag"]
            admin.delete(f"{api}/{eid}", headers={"If-Match": etag}, timeout=30)
            taken.pop(current["fhir_base_url"], None)
            current = None
        if current is None and body["fhir_base_url"] in taken:
            lines.append(f"{eid}: base URL already registered as {taken[body['fhir_base_url']]}")
            continue
        if current is None:
            current = admin.post(api, json=body, timeout=60).json()
        elif _writeback_differs(current, body):
            etag = admin.get(f"{api}/{eid}", timeout=30).headers["ETag"]  # from a run before it
            patch = {"writeback": body["writeback"]}
            current = admin.patch(
                f"{api}/{eid}", json=patch, headers={"If-Match": etag}, timeout=60
            ).json()
        elif current["status"] != "active":
            current = admin.post(f"{api}/{eid}/validate", timeout=60).json()
        if current.get("status") == "awaiting_approval":
            current = _approve(api, eid, ca_file, token)
        lines.append(f"{eid}: {current.get('status', current.get('code'))}")
    return lines


def _writeback_differs(current: dict, body: dict) -> bool:
    have = current.get("writeback") or {}
    client = (have.get("auth") or {}).get("client_id")
    return not have.get("enabled") or client != body["writeback"]["auth"]["client_id"]


DEMO_REMINDERS = (10, 2)  # minutes before the start: a demo sees its reminders soon


def seed_sms(
    app_url: str,
    ca_file: str,
    token: Callable[[str], str],
    endpoint_ids: list[str],
    *,
    number: str,
    certificate: str,
    reminders: tuple[int, ...] = DEMO_REMINDERS,
) -> list[str]:
    """Texts on for ``endpoint_ids`` as an admin switches them on (docs/sms.md): both consent
    statements, ``number`` linked to them, texts enabled with ``reminders``, and the interface
    engine's ``certificate`` uploaded for the test environment. Idempotent (ETags as read)."""
    api = f"{app_url}/api/config/sms"
    admin = _session(token("admin"), ca_file)

    def put(url: str, body: dict) -> requests.Response:
        etag = admin.get(url, timeout=30).headers.get("ETag")
        return admin.put(url, json=body, headers={"If-Match": etag} if etag else {}, timeout=30)

    put(f"{api}/consent", {"sends_on_behalf_of_organization": True, "attendees_consented": True})
    listed = admin.get(f"{api}/numbers", timeout=30).json()["items"]
    etag = next((n["etag"] for n in listed if n["number"] == number and n["etag"]), None)
    linked = admin.put(
        f"{api}/numbers/{quote(number)}",
        json={"endpoints": endpoint_ids},
        headers={"If-Match": etag} if etag else {},
        timeout=30,
    )
    lines = [f"SMS number {number}: {'linked' if linked.ok else linked.text[:200]}"]
    for eid in endpoint_ids:
        url = f"{api}/endpoints/{eid}"
        etag = admin.get(url, timeout=30).headers.get("ETag", "")
        body = {
            "enabled": True,
            "organization_name": "Sandbox Health",
            "reminder_offsets_minutes": list(reminders),
            "quiet_hours": {"start": "00:00", "end": "00:00"},  # none: the demo runs any hour
        }
        on = admin.patch(url, json=body, headers={"If-Match": etag}, timeout=30)
        lines.append(f"SMS {eid}: {'on' if on.ok else on.text[:200]}")
    uploaded = put(f"{api}/certificates/test", {"certificate": certificate})
    lines.append(f"scheduling certificate (test): {'uploaded' if uploaded.ok else uploaded.text}")
    return lines


def _approve(api: str, eid: str, ca_file: str, token: Callable[[str], str]) -> dict:
    approver = _session(token("approver"), ca_file)
    started = approver.post(f"{api}/{eid}/approval", timeout=30).json()
    play_standalone_sign_in(started["authorize_url"], ca_file)
    return approver.get(f"{api}/{eid}", timeout=30).json()


def _session(bearer: str, ca_file: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = ca_file  # the app's certificate is from the sandbox's CA, like every party's
    s.headers["Authorization"] = f"Bearer {bearer}"
    return s
