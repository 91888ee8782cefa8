"""The phone page: each fictional patient's texts as their phone's messages app shows them, with
a reply box (STOP, START, HELP or anything else goes back to the sender as SMSReceived).

Sandbox-only, no Communication Services counterpart. No scripts or outside resources; links in
texts are clickable so a newcomer can follow a join link from the "phone".
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from dev.sandbox.ehr.data import PATIENTS
from dev.sandbox.standin import html_response

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from dev.sandbox.acs.texts import Text, TextStore

_LINK = re.compile(r"https?://[^\s<>\"]+")
_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#eef1f5;color:#1b1f24}
main{max-width:26rem;margin:1rem auto;background:#fff;border-radius:1.2rem;padding:1rem;
box-shadow:0 2px 8px #0002}h1{font-size:1.1rem;margin:.2rem 0 1rem}
.bubble{max-width:80%;padding:.5rem .8rem;border-radius:1rem;margin:.3rem 0;white-space:pre-wrap;
overflow-wrap:anywhere}.in{background:#e5e5ea}.out{background:#0b84ff;color:#fff;margin-left:auto}
.out a{color:#fff}.meta{font-size:.7rem;color:#667;margin:0 .3rem .6rem}.out+.meta{text-align:right}
form{display:flex;gap:.4rem;margin-top:1rem}input[type=text]{flex:1;padding:.5rem;border-radius:1rem;
border:1px solid #ccd}
button{border-radius:1rem;border:0;background:#0b84ff;color:#fff;padding:.5rem .9rem}
li{margin:.4rem 0}.empty{color:#667}
"""


def _people() -> dict[str, str]:
    return {p.phone: p.name for p in PATIENTS}


def _page(title: str, body: str) -> Response:
    doc = (
        f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport "
        f"content='width=device-width'><title>{html.escape(title)}</title><style>{_STYLE}"
        f"</style><main>{body}</main></html>"
    )
    response = html_response(doc)
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def index(store: TextStore, base: str) -> Response:
    people = _people()
    phones = sorted(set(people) | set(store.phones()))
    items = "".join(
        f"<li><a href='{base}/{quote(p)}'>{html.escape(people.get(p, 'Unknown'))}</a> "
        f"<small>{html.escape(p)}</small> ({len(store.conversation(p))} texts)</li>"
        for p in phones
    )
    return _page("Phones", f"<h1>Patients' phones (sandbox)</h1><ul>{items}</ul>")


def conversation(store: TextStore, base: str, phone: str) -> Response:
    name = _people().get(phone, "Unknown")
    bubbles = "".join(_bubble(t) for t in store.conversation(phone)) or (
        "<p class=empty>No texts yet.</p>"
    )
    form = (
        f"<form method=post action='{base}/{quote(phone)}/reply'>"
        "<input type=text name=message placeholder='Text message (try STOP)' required "
        "maxlength=320 autocomplete=off><button>Send</button></form>"
    )
    back = f"<p><a href='{base}'>All phones</a> · <a href='{base}/{quote(phone)}'>Refresh</a></p>"
    title = f"{name} · {phone}"
    return _page(title, f"<h1>{html.escape(title)}</h1>{bubbles}{form}{back}")


def _bubble(text: Text) -> str:
    side = "out" if text.direction == "outbound" else "in"
    body = _LINK.sub(
        lambda m: f"<a href='{m.group(0)}'>{m.group(0)}</a>", html.escape(text.message, quote=True)
    )
    party = text.sender if side == "out" else "you"
    state = "" if side == "in" else f" · {text.status}"
    return (
        f"<div class='bubble {side}'>{body}</div>"
        f"<div class=meta>{html.escape(party)} · {text.to_json()['time'][11:16]} UTC"
        f"{html.escape(state)}</div>"
    )
