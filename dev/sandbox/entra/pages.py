"""The few HTML pages of the Entra stand-in: pick a demo user, auto-post, errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from dev.sandbox.directory import DemoUser

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;color:#1b1b1b}"
    ".banner{background:#fff4ce;padding:.5rem .75rem;border-radius:4px;font-size:.9rem}"
    "button{display:block;width:100%;text-align:left;margin:.4rem 0;padding:.6rem .8rem;"
    "border:1px solid #8a8886;border-radius:4px;background:#fff;cursor:pointer;font-size:1rem}"
    "button.hint{border:2px solid #0078d4}button small{display:block;color:#605e5c}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        "<p class='banner'>Local sandbox Entra ID. Not Microsoft; demo people only.</p>"
        f"{body}</body></html>"
    )


def sign_in_page(
    action: str, request_id: str, app_name: str, users: Iterable[DemoUser], hint: str | None
) -> str:
    buttons = "".join(
        f"<button type='submit' name='user' value='{escape(u.key)}' "
        f"data-testid='signin-{escape(u.key)}'"
        f"{' class=hint autofocus' if u.key == hint else ''}>"
        f"Sign in as {escape(u.name)}<small>{escape(u.upn)} - {escape(u.description)}</small>"
        "</button>"
        for u in users
    )
    body = (
        f"<h1>Sign in</h1><p>to continue to <strong>{escape(app_name)}</strong></p>"
        f"<form method='post' action='{escape(action)}'>"
        f"<input type='hidden' name='request_id' value='{escape(request_id)}'>{buttons}</form>"
    )
    return _page("Sign in to your account", body)


def form_post_page(redirect_uri: str, params: Mapping[str, str]) -> str:
    """response_mode=form_post: the browser posts the result to the app."""
    fields = "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>" for k, v in params.items()
    )
    body = (
        f"<form method='post' action='{escape(redirect_uri)}'>{fields}"
        "<noscript><button type='submit'>Continue</button></noscript></form>"
        "<script>document.forms[0].submit()</script>"
    )
    return _page("Working...", body)


def error_page(code: int, message: str) -> str:
    return _page(
        "Sign-in error",
        f"<h1>Sorry, but we're having trouble signing you in.</h1>"
        f"<p><strong>AADSTS{code}</strong>: {escape(message)}</p>",
    )


def signed_out_page() -> str:
    return _page("Signed out", "<h1>You signed out of your account</h1>")
