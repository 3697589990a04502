"""`redrum serve`: the OSC server and the browser app on one shared engine, until SIGINT/SIGTERM.

Shutdown: no new requests; queued jobs are cancelled (their clients get an
error reply), the running one finishes and its reply goes out; outputs are
only ever renamed into place whole, so nothing partial is left.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from redrum_kit.engine import Engine
from redrum_kit.errors import RedrumError

log = logging.getLogger("redrum.serve")


def allowed_roots(given: list[str] | None) -> list[Path]:
    roots = [Path(r).expanduser() for r in given] if given else [Path.home()]
    for r in roots:
        if not r.is_dir():
            raise RedrumError(f"--allow-root {r}: not a folder")
    return roots


def check_clients(given: list[str] | None) -> list[str]:
    for c in given or []:
        try:
            ipaddress.ip_network(c, strict=False)
        except ValueError:
            raise RedrumError(f"--allow-client {c}: not an address range (write e.g. 192.168.1.0/24)") from None
    return list(given or [])


def serve(args) -> int:
    from osc_server import OscServer
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not 1 <= args.max_queue <= 1000:
        raise RedrumError("--max-queue must be between 1 and 1000")
    if not 1 <= args.max_seconds <= 7200:
        raise RedrumError("--max-seconds must be between 1 and 7200")
    if args.models:
        if not Path(args.models).is_dir():
            raise RedrumError(f"--models {args.models}: not a folder")
        os.environ["REDRUM_MODELS"] = str(Path(args.models).resolve())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the first reply: a stop is never lost
        signal.signal(sig, lambda *_: stop.set())
    engine = Engine(device=args.device, allow_roots=allowed_roots(args.allow_root),
                    max_queue=args.max_queue, max_seconds=args.max_seconds)
    try:
        server = OscServer(engine, args.osc_host, args.osc_port, check_clients(args.allow_client)).start()
    except OSError as exc:
        raise RedrumError(f"cannot listen on {args.osc_host}:{args.osc_port} ({exc.strerror or exc})") from None
    host, port = server.address[:2]
    print(f"redrum-kit OSC server on udp://{host}:{port} (device {engine.device}); Ctrl-C stops it", flush=True)
    app = None
    if not args.no_gradio:
        try:
            from gradio_app import launch
            app = launch(engine, port=args.gradio_port)
            print(f"redrum-kit browser app on http://127.0.0.1:{args.gradio_port}", flush=True)
        except RedrumError:
            server.stop()
            raise
    stop.wait()
    print("stopping: finishing the running job", file=sys.stderr, flush=True)
    engine.close()
    server.stop()
    if app is not None:
        app.close()
    print("stopped", file=sys.stderr)
    return 0
