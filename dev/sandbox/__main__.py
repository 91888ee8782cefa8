"""python -m dev.sandbox [--port 7443] [--state-dir .local] [--latency S] [--set KEY=VALUE]

Each party on its own origin (dev/sandbox/origins.py): --port is the control origin's (index
page, /_sandbox/); with --port 0 every origin takes a free port."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from dev.sandbox.server import DEFAULT_STATE_DIR, Sandbox, start_sandbox


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dev.sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=7443)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="keeps the CA (certs/) and signing keys across runs",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every stand-in answer"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sandbox setting, e.g. ENTRA_CLIENT_SECRET=... (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser.parse_args(argv)


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {pair!r}")
        settings[key] = value
    return settings


def print_urls(sandbox: Sandbox) -> None:
    print(f"Sandbox index and controls on {sandbox.url}  (Ctrl-C to stop)")
    print(f"  REQUESTS_CA_BUNDLE={sandbox.ca_file}")
    for name, stand_in in sorted(sandbox.stand_ins.items()):
        print(f"  [{name}] {stand_in.title}  at {stand_in.origin}")
        for label, url in stand_in.describe().items():
            print(f"      {label}: {url}")
    print(f"  control: {sandbox.url}/_sandbox/  (requests, reset, config, faults, ca.pem)")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        sandbox = start_sandbox(
            port=args.port,
            state_dir=args.state_dir,
            latency=args.latency,
            settings=_settings(args.set),
        )
    except OSError as exc:
        print(f"cannot listen (control port {args.port}, see dev/sandbox/origins.py): {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    print_urls(sandbox)
    stopped = threading.Event()
    # SIGTERM (dev.procs.stop) ends as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
