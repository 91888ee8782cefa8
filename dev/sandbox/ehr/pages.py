"""HTML pages of the EHR stand-ins: schedule (provider), portal (patient), standalone sign-in,
errors. Plain HTML with inline CSS, no external resources; one small script (the schedule's live
write-back status).

The schedule and the portal open the launch as the EHR is set up to (``?open=``): ``top`` (the
whole window navigates), ``iframe`` (inside the EHR's page, as an Epic Hyperspace activity or a
Cerner MPage / PowerChart view does: the button's form targets the frame), or ``popup`` (a new
window: the form targets ``_blank``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;color:#1b1b1b}"
    ".banner{background:#fff4ce;padding:.5rem .75rem;border-radius:4px;font-size:.9rem}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.45rem .6rem;"
    "border-bottom:1px solid #ddd;vertical-align:top}nav a{margin-right:.8rem}"
    "nav a.on{font-weight:700}button{padding:.45rem .8rem;border:1px solid #0b5cad;"
    "border-radius:4px;background:#0b6bcb;color:#fff;cursor:pointer}"
    "button.who{display:block;width:100%;text-align:left;margin:.4rem 0;background:#fff;"
    "color:#1b1b1b;border-color:#8a8886}button.who small{display:block;color:#605e5c}"
    "td.writeback{color:#605e5c;font-size:.9rem}code{font-size:.85rem}"
    "button.siu{background:#fff;color:#0b5cad;margin:.1rem 0;font-size:.85rem}"
)


def page(title: str, vendor_title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<p class='banner'>Local sandbox: {escape(vendor_title)}. Not Epic, not Oracle Health; "
        "fictional people only.</p>"
        f"{body}</body></html>"
    )


OPEN_MODES = ("top", "iframe", "popup")
_TARGET = {"top": "", "iframe": " target='activity'", "popup": " target='_blank'"}


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    detail: str


@dataclass(frozen=True)
class Row:
    """One appointment line of the schedule or the portal."""

    appointment_id: str
    time: str
    who: str  # the patient (schedule) or the clinician (portal)
    reason: str
    status: str
    connection: str | None  # written back by the connector, when it has


def _picker(people: Sequence[Person], selected: str, param: str, path: str, mode: str) -> str:
    links = "".join(
        f"<a href='{escape(path)}?{param}={escape(p.key)}&amp;open={mode}' "
        f"data-testid='{param}-{escape(p.key)}'"
        f"{' class=on' if p.key == selected else ''}>{escape(p.name)}</a>"
        for p in people
    )
    modes = "".join(
        f"<a href='{escape(path)}?{param}={escape(selected)}&amp;open={m}' data-testid='open-{m}'"
        f"{' class=on' if m == mode else ''}>{m}</a>"
        for m in OPEN_MODES
    )
    return f"<nav>{links}</nav><nav>Open the launch: {modes}</nav>"


def _activity(mode: str) -> str:
    """The frame an embedded launch opens in (Hyperspace activity, PowerChart view)."""
    if mode != "iframe":
        return ""
    return (
        "<h2>Virtual visit activity</h2><iframe name='activity' data-testid='activity' "
        "title='Virtual visit' allow='camera; microphone; display-capture' "
        "style='width:100%;height:30rem;border:1px solid #8a8886'></iframe>"
    )


def _rows(
    rows: Sequence[Row],
    action: str,
    hidden: dict[str, str],
    who: str,
    status: bool,
    mode: str = "top",
    messages: str | None = None,
) -> str:
    """``messages``: where the interface engine's buttons post (the schedule page only)."""
    if not rows:
        return "<p>No appointments today.</p>"
    fixed = "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>" for k, v in hidden.items()
    )
    lines = []
    for r in rows:
        # WRITE-BACK SPOT: the connection status the connector wrote back (telehealth status
        # for Epic, Appointment status for Cerner) is shown in this cell. The write-back
        # feature records it through EhrStandIn.connection_status[appointment id].
        cell = (
            f"<td class='writeback' data-testid='connection-{escape(r.appointment_id)}'>"
            f"{escape(r.connection) if r.connection else '&mdash;'}</td>"
            if status
            else ""
        )
        lines.append(
            f"<tr data-appointment='{escape(r.appointment_id)}'><td>{escape(r.time)}</td>"
            f"<td>{escape(r.who)}</td><td>{escape(r.reason)}</td><td>{escape(r.status)}</td>"
            f"{cell}<td><form method='post' action='{escape(action)}'{_TARGET[mode]}>{fixed}"
            f"<input type='hidden' name='appointment' value='{escape(r.appointment_id)}'>"
            f"<button type='submit' data-testid='begin-{escape(r.appointment_id)}'>"
            "Begin virtual visit</button></form></td>"
            f"{_message_buttons(messages, r.appointment_id, hidden) if messages else ''}</tr>"
        )
    status_head = "<th>Connection status</th>" if status else ""
    messages_head = "<th>Interface engine (SIU)</th>" if messages else ""
    return (
        f"<table><thead><tr><th>Time (UTC)</th><th>{escape(who)}</th><th>Reason</th>"
        f"<th>Status</th>{status_head}<th></th>{messages_head}</tr></thead>"
        f"<tbody>{''.join(lines)}"
        "</tbody></table>"
    )


def _message_buttons(action: str, appointment: str, hidden: dict[str, str]) -> str:
    """Send scheduling message (S12), Reschedule (S13), Cancel (S15): one signed SIU each."""
    fixed = "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>" for k, v in hidden.items()
    )
    buttons = "".join(
        f"<button type='submit' name='action' value='{a}' class='siu' "
        f"data-testid='siu-{a}-{escape(appointment)}'>{label}</button> "
        for a, label in (
            ("book", "Send scheduling message"),
            ("reschedule", "Reschedule"),
            ("cancel", "Cancel"),
        )
    )
    return (
        f"<td><form method='post' action='{escape(action)}'>{fixed}"
        f"<input type='hidden' name='appointment' value='{escape(appointment)}'>"
        f"{buttons}</form></td>"
    )


def schedule_page(
    vendor_title: str,
    path: str,
    clinicians: Sequence[Person],
    selected: Person,
    rows: Sequence[Row],
    action: str,
    launch_url: str,
    fhir_base: str,
    day: str,
    mode: str = "top",
    messages: str | None = None,
    sent: str | None = None,
) -> str:
    """``messages``: where the SIU buttons post; ``sent``: what the last one answered."""
    said = (
        f"<p class='banner' role='status' data-testid='siu-sent'>Sent {escape(sent)}</p>"
        if sent
        else ""
    )
    body = (
        f"<h1>Schedule: {escape(selected.name)}</h1><p>{escape(selected.detail)}, {escape(day)}</p>"
        f"{said}{_picker(clinicians, selected.key, 'clinician', path, mode)}"
        f"{_rows(rows, action, {'clinician': selected.key}, 'Patient', True, mode, messages)}"
        f"<p><small>Begin virtual visit opens <code>{escape(launch_url)}</code> with "
        f"<code>iss={escape(fhir_base)}</code> and a fresh launch token ({mode}).</small></p>"
        f"{_activity(mode)}{_LIVE_STATUS}"
    )
    return page(f"Schedule - {selected.name}", vendor_title, body)


# The schedule's one script: the connection status cells follow what write-back records
# (schedule/status.json, every 2 s), as an EHR's schedule refreshes, without reloading the page.
_LIVE_STATUS = r"""<script>
(function () {
  function refresh() {
    fetch(location.pathname.replace(/\/?$/, "/status.json"), {cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (found) {
        document.querySelectorAll("td.writeback").forEach(function (cell) {
          var id = cell.getAttribute("data-testid").replace("connection-", "");
          if (found[id] && cell.textContent !== found[id]) { cell.textContent = found[id]; }
        });
      }).catch(function () {});
  }
  setInterval(refresh, 2000);
})();
</script>"""


def portal_page(
    vendor_title: str,
    portal_name: str,
    path: str,
    patients: Sequence[Person],
    selected: Person,
    rows: Sequence[Row],
    action: str,
    launch_url: str,
    day: str,
    mode: str = "top",
) -> str:
    body = (
        f"<h1>{escape(portal_name)}: {escape(selected.name)}</h1>"
        f"<p>Your appointments today, {escape(day)}</p>"
        f"{_picker(patients, selected.key, 'patient', path, mode)}"
        f"{_rows(rows, action, {'patient': selected.key}, 'Clinician', False, mode)}"
        f"<p><small>Begin virtual visit opens <code>{escape(launch_url)}</code> "
        f"({mode}).</small></p>{_activity(mode)}"
    )
    return page(f"{portal_name} - {selected.name}", vendor_title, body)


def sign_in_page(
    vendor_title: str, action: str, request_id: str, client_name: str, people: Iterable[Person]
) -> str:
    buttons = "".join(
        f"<button type='submit' class='who' name='user' value='{escape(p.key)}' "
        f"data-testid='signin-{escape(p.key)}'>{escape(p.name)}<small>{escape(p.detail)}</small>"
        "</button>"
        for p in people
    )
    body = (
        f"<h1>Sign in</h1><p><strong>{escape(client_name)}</strong> asks to use your "
        "account.</p>"
        f"<form method='post' action='{escape(action)}'>"
        f"<input type='hidden' name='request_id' value='{escape(request_id)}'>{buttons}</form>"
    )
    return page("Sign in", vendor_title, body)


def error_page(vendor_title: str, error: str, description: str) -> str:
    return page(
        "Authorization error",
        vendor_title,
        f"<h1>Authorization error</h1><p><strong>{escape(error)}</strong>: "
        f"{escape(description)}</p>",
    )
