"""The OSC server (UDP, python-osc for the wire format).

Protocol (see README): every command's first argument is a request id chosen
by the client; the server answers the sender (or the port it registered with
/redrum/reply_port) with
    /redrum/reply <id> "ok" <json>      or      /redrum/reply <id> "error" <message>
and, while a long job runs, /redrum/progress <id> <fraction>.

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
PROGRESS = "/redrum/progress"
MAX_REPLY = 6000       # bytes of JSON in a reply (DAW clients read 8 KiB datagrams)


class BadRequest(RedrumError):
    """Arguments of the wrong number or type."""


def _str_arg(args: list, i: int, name: str, default: str | None = None) -> str | None:
    """Argument i as a string; missing or "" gives `default` when one is set."""
    if len(args) <= i or (default is not None and args[i] == ""):
        if default is not None:
            return default
        raise BadRequest(f"missing argument {name}")
    if not isinstance(args[i], str):
        raise BadRequest(f"argument {name} must be a string, got {type(args[i]).__name__}")
    return args[i]


def _num_arg(args: list, i: int, name: str, default: float | None = None) -> float:
    if len(args) <= i:
        if default is not None:
            return default
        raise BadRequest(f"missing argument {name}")
    if isinstance(args[i], bool) or not isinstance(args[i], (int, float)):
        raise BadRequest(f"argument {name} must be a number, got {type(args[i]).__name__}")
    return args[i]


def _optional(value: str | None) -> str | None:
    return value or None


def compact(result: dict, limit: int = MAX_REPLY) -> dict:
    """A result small enough for one datagram that any OSC client can read: the layer's whole
    library list is left out, and if still too long, long lists become their lengths."""
    out = {k: v for k, v in result.items() if k != "library"}
    if len(json.dumps(out)) > limit:
        out = {k: (len(v) if isinstance(v, list) and len(v) > 16 else v) for k, v in out.items()}
        out["shortened"] = True
    return out


class OscServer:
    """Serve `engine` on UDP `host:port`; `start()` runs in a background thread.

    Quick commands are answered in the datagram's thread; operations that write audio
    become engine jobs: the server sends `/redrum/progress <id> <fraction>` while the
    job runs and the reply when it ends (a full queue is an immediate "busy" error).
    """

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 9000,
                 allow_clients: list[str] | None = None, job_timeout: float = 900.0):
        self.engine = engine
        self.allowed = [ipaddress.ip_network(c, strict=False) for c in (allow_clients or [])]
        self.job_timeout = job_timeout
        self.reply_ports: dict[tuple[str, int], int] = {}     # (host, sending port) -> port to answer
        self.requests: dict[tuple[str, Any], str] = {}        # (host, request id) -> engine job id
        self._lock = threading.Lock()
        self._inflight = 0                                    # jobs whose reply is still to be sent
        self._idle = threading.Condition(self._lock)
        self.handlers: dict[str, Callable[[list, tuple, Any], dict]] = {
            "/redrum/ping": lambda args, client, rid: self.engine.ping(),
            "/redrum/status": self._status,
            "/redrum/cancel": self._cancel,
            "/redrum/reply_port": self._reply_port,
            "/redrum/library/list": lambda args, client, rid: self.engine.library_list(
                _optional(_str_arg(args, 0, "class", "")), _optional(_str_arg(args, 1, "kit", "")),
                _optional(_str_arg(args, 2, "name", ""))),
            "/redrum/pad/trigger": self._pad_trigger,
        }
        self.jobs: dict[str, Callable[[list], tuple[str, dict]]] = {
            "/redrum/transform": lambda a: ("transform", {
                "source": _str_arg(a, 0, "source_path"), "target": _str_arg(a, 1, "target_path"),
                "out": _optional(_str_arg(a, 2, "out_path", "")), "method": _str_arg(a, 3, "method", "model"),
                "only": _str_arg(a, 4, "only", ""), "double": bool(_num_arg(a, 5, "double", 0))}),
            "/redrum/interpolate": lambda a: ("interpolate", {
                "a": _str_arg(a, 0, "a_path"), "b": _str_arg(a, 1, "b_path"), "steps": _num_arg(a, 2, "steps", 8),
                "out_dir": _optional(_str_arg(a, 3, "out_dir", "")), "space": _str_arg(a, 4, "space", "latent")}),
            "/redrum/layer": lambda a: ("layer", {
                "target": _str_arg(a, 0, "target_path"), "threshold": _num_arg(a, 1, "threshold", 0.04),
                "out": _optional(_str_arg(a, 2, "out_path", "")), "cls": _optional(_str_arg(a, 3, "class", "")),
                "refine": bool(_num_arg(a, 4, "refine", 0))}),
            "/redrum/transcribe": lambda a: ("transcribe", {
                "audio_path": _str_arg(a, 0, "audio_path"), "out": _optional(_str_arg(a, 1, "out_path", "")),
                "tempo": _num_arg(a, 2, "tempo", 0) or None}),          # 0: estimated from the recording
            "/redrum/kit/render": lambda a: ("render", {
                "pattern": _str_arg(a, 0, "midi_path"), "kit": _str_arg(a, 1, "kit_name", "default"),
                "out": _optional(_str_arg(a, 2, "out_path", ""))}),
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

    # -- quick commands ----------------------------------------------------------

    def _status(self, args, client, rid) -> dict:
        if args:
            return self.engine.job(self._job_of(client, args[0])).to_json()
        return self.engine.status()

    def _pad_trigger(self, args, client, rid) -> dict:
        if not args or isinstance(args[0], bool) or not isinstance(args[0], (int, str)):
            raise BadRequest("argument pad must be a MIDI note (int) or a pad name")
        return self.engine.pad_trigger(args[0], _num_arg(args, 1, "velocity", 100),
                                       _str_arg(args, 2, "kit", "default"))

    def _cancel(self, args, client, rid) -> dict:
        if not args:
            raise BadRequest("missing argument: the request id of the job to cancel")
        return self.engine.cancel(self._job_of(client, args[0]))

    def _reply_port(self, args, client, rid) -> dict:
        port = _num_arg(args, 0, "port")
        if int(port) != port or not 1 <= port <= 65535:
            raise BadRequest(f"port must be a whole number from 1 to 65535, got {port}")
        with self._lock:
            self.reply_ports[(client[0], client[1])] = int(port)
        return {"reply_port": int(port)}

    def _job_of(self, client, request_id) -> str:
        with self._lock:
            job_id = self.requests.get((client[0], request_id))
        if job_id is None:
            raise BadRequest(f"no job started by request {request_id!r} from this client")
        return job_id

    def reply_address(self, client) -> tuple[str, int]:
        with self._lock:
            return client[0], self.reply_ports.get((client[0], client[1]), client[1])

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
        started: list = []      # the job, once submitted (its reply is then awaited by stop())
        try:
            if not args or not isinstance(args[0], (int, str)) or isinstance(args[0], bool):
                raise BadRequest("the first argument must be a request id (int or string)")
            if address in self.jobs:
                reply = self._run_job(address, args, sock, client, started)
            elif address in self.handlers:
                reply = ("ok", json.dumps(self.handlers[address](args[1:], client, request_id)))
            else:
                raise BadRequest(f"unknown command {address}")
        except RedrumError as exc:
            reply = ("error", str(exc))
        except Exception as exc:
            log.exception("handler %s failed", address)
            reply = ("error", f"internal error: {type(exc).__name__}: {exc}")
        # looked up now: a /redrum/reply_port request is answered on the port it registers
        self.send(sock, self.reply_address(client), REPLY, [request_id, *reply])
        if started:
            self._replied()

    def _replied(self) -> None:
        """A job's reply is out (or could not be made): `stop()` waits for all of them."""
        with self._lock:
            self._inflight = max(0, self._inflight - 1)
            self._idle.notify_all()

    def _run_job(self, address: str, args: list, sock, client, started: list) -> tuple[str, str]:
        request_id = args[0]
        to = self.reply_address(client)
        kind, kwargs = self.jobs[address](args[1:])

        def progress(fraction: float) -> None:
            self.send(sock, to, PROGRESS, [request_id, float(fraction)])

        job = self.engine.submit(kind, listener=progress, **kwargs)
        with self._lock:
            self._inflight += 1
            self.requests[(client[0], request_id)] = job.id
            if len(self.requests) > 1000:                  # forget the oldest
                for key in list(self.requests)[:500]:
                    del self.requests[key]
        log.info("%s from %s: job %s", address, client[0], job.id)
        started.append(job)
        if not job.wait(self.job_timeout):
            job.cancel()
            return "error", f"timed out after {self.job_timeout:.0f} s (job {job.id} cancelled)"
        if job.state == "done":
            return "ok", json.dumps(compact(dict(job.result, job=job.id)))
        return "error", job.error or job.state

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
        """Stop taking datagrams, send the replies of jobs still in hand (close the engine first:
        it cancels what is queued and lets the running job finish), then close the socket."""
        self.udp.shutdown()
        with self._lock:
            self._idle.wait_for(lambda: self._inflight == 0, timeout=30)
        self.udp.server_close()
