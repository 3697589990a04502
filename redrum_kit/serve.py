"""`redrum serve`: the OSC server on the shared engine, until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from redrum_kit.engine import Engine
from redrum_kit.errors import RedrumError


def serve(args) -> int:
    from osc_server import OscServer
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the first reply: a stop is never lost
        signal.signal(sig, lambda *_: stop.set())
    engine = Engine(device=args.device)
    try:
        server = OscServer(engine, args.osc_host, args.osc_port).start()
    except OSError as exc:
        raise RedrumError(f"cannot listen on {args.osc_host}:{args.osc_port} ({exc.strerror or exc})") from None
    host, port = server.address[:2]
    print(f"redrum-kit OSC server on udp://{host}:{port} (device {engine.device}); Ctrl-C stops it", flush=True)
    if not args.no_gradio:
        print("the browser app is not part of this version yet; OSC only", flush=True)
    stop.wait()
    server.stop()
    print("stopped", file=sys.stderr)
    return 0
