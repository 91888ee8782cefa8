"""Print a bearer token for the local admin API, minted by the running sandbox's Entra.

    python -m dev.token --role admin|approver|reader [--user NAME] [--expires-in S]

It asks the running sandbox (``POST /entra/{tenant}/_mint``) rather than signing with the key
file: the sandbox knows its own issuer URL (port) and its current signing key, so the token
always validates against the JWKS the app fetches, even after a key rotation or a state-dir
mix-up. The sandbox must be running (``make run`` or ``python -m dev.sandbox``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import requests

from dev.procs import ROOT
from dev.sandbox.certs import CA_CERT_NAME, certs_dir
from dev.sandbox.directory import CONNECTOR_API_AUDIENCE, ROLE_VALUES, TENANT_ID
from dev.sandbox.origins import fixed_origin

DEFAULT_URL = fixed_origin("entra")  # the Entra stand-in's origin under make run
DEFAULT_STATE_DIR = ROOT / ".local"


class MintError(RuntimeError):
    pass


def mint_token(
    role: str,
    user: str | None = None,
    expires_in: int | None = None,
    url: str = DEFAULT_URL,
    state_dir: Path = DEFAULT_STATE_DIR,
    audience: str = CONNECTOR_API_AUDIENCE,
    timeout: float = 10.0,
) -> str:
    """An access token with ``roles`` = [Connector.<Role>] for ``user`` (default: the role's
    demo user), signed by the sandbox at ``url`` whose CA lives under ``state_dir``."""
    ca_file = certs_dir(Path(state_dir)) / CA_CERT_NAME
    if not ca_file.exists():
        raise MintError(f"no sandbox CA at {ca_file}: is the sandbox using another --state-dir?")
    body: dict[str, object] = {"role": role, "audience": audience}
    if user:
        body["user"] = user
    if expires_in is not None:
        body["expires_in"] = expires_in
    try:
        # verify= per request: it wins over REQUESTS_CA_BUNDLE from the environment.
        resp = requests.post(
            f"{url.rstrip('/')}/entra/{TENANT_ID}/_mint",
            json=body,
            verify=str(ca_file),
            timeout=timeout,
        )
    except requests.ConnectionError as exc:
        raise MintError(
            f"no sandbox answers at {url}: start it with `make run` or `python -m dev.sandbox`"
        ) from exc
    if resp.status_code != 200:
        raise MintError(f"sandbox refused ({resp.status_code}): {_describe(resp)}")
    return resp.json()["access_token"]


def _describe(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("error_description") or resp.json())
    except ValueError:
        return resp.text[:200]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.token",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--role", required=True, choices=sorted(ROLE_VALUES))
    parser.add_argument("--user", help="demo user key, object id or UPN (default: per role)")
    parser.add_argument("--expires-in", type=int, help="seconds; negative gives an expired token")
    parser.add_argument("--audience", default=CONNECTOR_API_AUDIENCE)
    parser.add_argument("--url", default=DEFAULT_URL, help="the sandbox Entra ID's origin")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="the sandbox's state dir (for its CA)",
    )
    args = parser.parse_args(argv)
    try:
        token = mint_token(
            args.role, args.user, args.expires_in, args.url, args.state_dir, args.audience
        )
    except MintError as exc:
        print(f"dev.token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
