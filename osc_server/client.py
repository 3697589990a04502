"""A small blocking OSC client for scripts, benchmarks and tests: one request, its reply.

    with OscClient(port=9000) as c:
        status, result = c.call("/redrum/layer", "/path/kick.wav")   # ("ok", {...}) or ("error", "message")
"""

from __future__ import annotations

import itertools
import json
import socket
import time

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

_ids = itertools.count(1)


def encode(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address=address)
    for a in args:
        builder.add_arg(a)
    return builder.build().dgram


class OscClient:
    def __init__(self, host: str = "127.0.0.1", port: int = 9000, timeout: float = 600.0):
        self.server = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.timeout = timeout

    def __enter__(self) -> "OscClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def call(self, address: str, *args, progress=None) -> tuple[str, object]:
        """Send with a fresh request id; wait for its reply (other datagrams are skipped;
        `progress(fraction)` gets the job's progress). -> (status, decoded JSON or message)."""
        request_id = f"c{next(_ids)}"
        self.sock.sendto(encode(address, request_id, *args), self.server)
        deadline = time.monotonic() + self.timeout
        while True:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                raise TimeoutError(f"no reply to {address} from {self.server[0]}:{self.server[1]} "
                                   f"within {self.timeout:g} s") from None
            msg = OscMessage(data)
            params = list(msg.params)
            if not params or params[0] != request_id:
                continue
            if msg.address == "/redrum/progress":
                if progress is not None:
                    progress(params[1])
                continue
            status, body = params[1], params[2]
            return status, (json.loads(body) if status == "ok" else body)
