"""The OSC server (UDP, python-osc for the wire format).

Protocol (see README): every command's first argument is a request id chosen
by the client; the server answers the sender with
    /redrum/reply <id> "ok" <json>      or      /redrum/reply <id> "error" <message>

Every datagram is handled inside one try: a malformed packet, a wrong
argument type or a failing handler produces an error reply (or, for bytes
that are not OSC at all, a log line), never a dead server.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socketserver
import threading
from typing import Any, Callable

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from redrum_kit.engine import Engine
from redrum_kit.errors import RedrumError

log = logging.getLogger("redrum.osc")
REPLY = "/redrum/reply"


class BadRequest(RedrumError):
    """Arguments of the wrong number or type."""


def _str_arg(args: list, i: int, name: str, default: str | None = None) -> str | None:
    if len(args) <= i:
        if default is not None:
            return default
        raise BadRequest(f"missing argument {name}")
    if not isinstance(args[i], str):
        raise BadRequest(f"argument {name} must be a string, got {type(args[i]).__name__}")
    return args[i]


class OscServer:
    """Serve `engine` on UDP `host:port`; `start()` runs in a background thread."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 9000,
                 allow_clients: list[str] | None = None):
        self.engine = engine
        self.allowed = [ipaddress.ip_network(c, strict=False) for c in (allow_clients or [])]
        self.handlers: dict[str, Callable[[list], dict]] = {
            "/redrum/ping": lambda args: self.engine.ping(),
            "/redrum/library/list": lambda args: self.engine.library_list(_str_arg(args, 0, "class", "")),
        }
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                server.handle_datagram(data, sock, self.client_address)

        socketserver.ThreadingUDPServer.allow_reuse_address = True
        self.udp = socketserver.ThreadingUDPServer((host, port), Handler)
        self.udp.daemon_threads = True
        self.address = self.udp.server_address
        self._thread: threading.Thread | None = None

    def client_allowed(self, host: str) -> bool:
        ip = ipaddress.ip_address(host)
        return ip.is_loopback or any(ip in net for net in self.allowed)

    def handle_datagram(self, data: bytes, sock, client) -> None:
        try:
            if not self.client_allowed(client[0]):
                log.warning("dropped a datagram from %s (not an allowed client)", client[0])
                return
            try:
                messages = [m.message for m in OscPacket(data).messages]
            except Exception as exc:  # python-osc raises more than ParseError on garbage
                log.warning("dropped a malformed datagram from %s: %s", client[0], exc)
                return
            for msg in messages:
                self._answer(msg.address, list(msg.params), sock, client)
        except Exception:  # the last line of defence: log, keep serving
            log.exception("error while handling a datagram from %s", client)

    def _answer(self, address: str, args: list, sock, client) -> None:
        request_id: Any = args[0] if args and isinstance(args[0], (int, str)) else ""
        try:
            if not args or not isinstance(args[0], (int, str)):
                raise BadRequest("the first argument must be a request id (int or string)")
            handler = self.handlers.get(address)
            if handler is None:
                raise BadRequest(f"unknown command {address}")
            reply = ("ok", json.dumps(handler(args[1:])))
        except RedrumError as exc:
            reply = ("error", str(exc))
        except Exception as exc:
            log.exception("handler %s failed", address)
            reply = ("error", f"internal error: {type(exc).__name__}: {exc}")
        self.send(sock, client, REPLY, [request_id, *reply])

    @staticmethod
    def send(sock, client, address: str, args: list) -> None:
        builder = OscMessageBuilder(address=address)
        for a in args:
            builder.add_arg(a)
        try:
            sock.sendto(builder.build().dgram, client)
        except OSError as exc:
            log.warning("could not reply to %s: %s", client, exc)

    def start(self) -> "OscServer":
        self._thread = threading.Thread(target=self.udp.serve_forever, name="osc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.udp.shutdown()
        self.udp.server_close()
