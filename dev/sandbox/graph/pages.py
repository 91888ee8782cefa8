"""The meeting page at a joinWebUrl: join, wait in the lobby, admit, leave.

Plain HTML with inline CSS; one small inline script polls the roster (a sandbox control route,
so it is never journaled or faulted) and reloads when it changed. No external resources.
"""

from __future__ import annotations

from html import escape

from dev.sandbox.graph.meetings import IN_MEETING, LEFT, LOBBY, OnlineMeeting, Participant

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;color:#1b1b1b}"
    ".banner{background:#fff4ce;padding:.5rem .75rem;border-radius:4px;font-size:.9rem}"
    ".state{padding:1rem;border-radius:6px;background:#f3f2f1;margin:1rem 0}"
    ".state.in-meeting{background:#dff6dd}.state.lobby{background:#e8ebfa}"
    "button{padding:.45rem .9rem;border:1px solid #4f52b2;border-radius:4px;background:#5b5fc7;"
    "color:#fff;cursor:pointer}button.leave{background:#c4314b;border-color:#a4262c}"
    "ul{padding-left:1.2rem}li{margin:.35rem 0}label{display:block;margin:.5rem 0}"
    "input[type=text]{padding:.35rem;width:16rem}small{color:#605e5c}"
)
_POLL = (
    "(function(){var b=document.body,v=b.dataset.version,u=b.dataset.roster;"
    "if(!u)return;setInterval(function(){fetch(u,{cache:'no-store'}).then(function(r)"
    "{return r.ok?r.json():null}).then(function(j){if(j&&String(j.version)!==v)"
    "location.reload()}).catch(function(){})},1500)})();"
)
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'"
)
_ROLE_LABEL = {"organizer": "organizer", "member": "organization", "guest": "guest"}


def _page(title: str, body: str, data: dict[str, str] | None = None, poll: bool = False) -> str:
    attrs = "".join(f" data-{k}='{escape(v)}'" for k, v in (data or {}).items())
    script = f"<script>{_POLL}</script>" if poll else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'><meta name='referrer' "
        f"content='no-referrer'><title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body{attrs}><p class='banner'>Local sandbox meeting. Not Microsoft Teams; no audio or "
        f"video.</p>{body}{script}</body></html>"
    )


def join_form(meeting: OnlineMeeting, action: str, context: str | None) -> str:
    hidden = f"<input type='hidden' name='context' value='{escape(context)}'>" if context else ""
    roles = "".join(
        f"<label><input type='radio' name='role' value='{r}'{' checked' if r == 'guest' else ''}"
        f" data-testid='role-{r}'> {label}</label>"
        for r, label in (
            ("organizer", "Organizer (the meeting's organizer)"),
            ("member", "Someone in the organization"),
            ("guest", "Guest without an account (for example a patient)"),
        )
    )
    body = (
        f"<h1>{escape(meeting.subject or 'Meeting')}</h1>"
        f"<form method='get' action='{escape(action)}'>{hidden}"
        "<label>Your name <input type='text' name='name' data-testid='name' "
        "autocomplete='off' maxlength='100'></label>"
        f"<fieldset><legend>Join as</legend>{roles}</fieldset>"
        "<p><button type='submit' data-testid='join'>Join now</button></p></form>"
    )
    return _page("Join meeting", body)


def participant_page(
    meeting: OnlineMeeting, person: Participant, base_path: str, roster_url: str, rejoin: str
) -> str:
    """``base_path``: this participant's page (its actions are ``{base_path}/admit|leave``)."""
    if person.state == LOBBY:
        status = (
            "<p><strong>Someone in the meeting should let you in soon.</strong></p>"
            "<p><small>You are in the lobby.</small></p>"
        )
    elif person.state == IN_MEETING:
        status = "<p><strong>You're in the meeting.</strong></p>"
    else:
        status = (
            "<p><strong>You left the meeting.</strong></p>"
            f"<p><a href='{escape(rejoin)}' data-testid='rejoin'>Rejoin</a></p>"
        )
    parts = [
        f"<h1>{escape(meeting.subject or 'Meeting')}</h1>",
        f"<p>You: <strong>{escape(person.name)}</strong> "
        f"<small>({_ROLE_LABEL.get(person.role, person.role)})</small></p>",
        f"<div class='state {escape(person.state)}' data-testid='state' "
        f"data-state='{escape(person.state)}'>{status}</div>",
    ]
    if person.state == IN_MEETING:
        inside = [p for p in meeting.roster if p.state == IN_MEETING]
        items = "".join(
            f"<li data-testid='in-meeting-{escape(p.id)}'>{escape(p.name)} "
            f"<small>({_ROLE_LABEL.get(p.role, p.role)})</small></li>"
            for p in inside
        )
        parts.append(f"<h2>In this meeting ({len(inside)})</h2><ul>{items}</ul>")
        if meeting.can_admit(person):
            parts.append(_lobby_list(meeting, base_path))
    if person.state != LEFT:
        parts.append(
            f"<form method='post' action='{escape(base_path)}/leave'>"
            "<button type='submit' class='leave' data-testid='leave'>Leave</button></form>"
        )
    return _page(
        "Meeting",
        "".join(parts),
        data={"version": str(meeting.version), "roster": roster_url},
        poll=person.state != LEFT,
    )


def _lobby_list(meeting: OnlineMeeting, base_path: str) -> str:
    waiting = [p for p in meeting.roster if p.state == LOBBY]
    if not waiting:
        return "<h2>Lobby</h2><p data-testid='lobby-empty'>Nobody is waiting.</p>"
    items = "".join(
        f"<li data-testid='lobby-{escape(p.id)}'>{escape(p.name)} "
        f"<small>({_ROLE_LABEL.get(p.role, p.role)})</small> "
        f"<form method='post' action='{escape(base_path)}/admit' style='display:inline'>"
        f"<input type='hidden' name='participant' value='{escape(p.id)}'>"
        f"<button type='submit' data-testid='admit-{escape(p.id)}'>Admit</button></form></li>"
        for p in waiting
    )
    return f"<h2>Waiting in the lobby ({len(waiting)})</h2><ul>{items}</ul>"


def message_page(title: str, message: str) -> str:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
