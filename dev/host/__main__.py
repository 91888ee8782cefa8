"""The command line of the local host:

    python -m dev.host [--app-dir DIR] [--port 7071] [--host 127.0.0.1]
                       [--settings local.settings.json] [--no-timers]
                       [--cert server-cert.pem --key server-key.pem]

Stops on Ctrl-C or SIGTERM, waiting a few seconds for functions still running.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from dev.host.local_host import DEFAULT_PORT, LocalHost
from dev.host.settings import local_http_port

log = logging.getLogger("dev.host")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dev.host", description="Run a Python Azure Functions app locally."
    )
    parser.add_argument("--app-dir", default=".", help="folder with function_app.py, host.json")
    parser.add_argument("--port", type=int, help="default: Host.LocalHttpPort or 7071; 0: any")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--settings", help="settings file (default APP_DIR/local.settings.json)")
    parser.add_argument("--no-timers", action="store_true", help="do not fire timer triggers")
    parser.add_argument("--cert", help="serve https with this certificate (PEM, chain first)")
    parser.add_argument("--key", help="the certificate's private key (PEM); with --cert")
    args = parser.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("azure").setLevel(logging.WARNING)  # one line per storage call otherwise
    app_dir = Path(args.app_dir)
    settings = Path(args.settings) if args.settings else app_dir / "local.settings.json"
    port = args.port if args.port is not None else local_http_port(settings) or DEFAULT_PORT
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    tls = (Path(args.cert), Path(args.key)) if args.cert else None
    host = LocalHost(app_dir, port, args.host, settings, timers=not args.no_timers, tls=tls)
    host.start()
    try:
        while not stopping.wait(1):
            pass
    finally:
        log.info("Stopping the host")
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
