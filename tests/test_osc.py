"""The OSC server over a real UDP socket: replies, bad input, garbage, a real `redrum serve`."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from osc_server import OscServer
from redrum_kit.engine import Engine


def message(address, *args):
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class Client:
    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(10)
        self.port = port

    def send_raw(self, data):
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def call(self, address, *args):
        self.send_raw(message(address, *args))
        return self.reply()

    def reply(self):
        data, _ = self.sock.recvfrom(65536)
        msg = OscMessage(data)
        assert msg.address == "/redrum/reply"
        return list(msg.params)


@pytest.fixture
def server(sample_folder):
    engine = Engine(device="cpu")
    engine.library.import_paths([sample_folder])
    srv = OscServer(engine, "127.0.0.1", 0).start()
    yield srv
    srv.stop()


def test_ping_and_library_list(server):
    c = Client(server.address[1])
    rid, status, body = c.call("/redrum/ping", 7)
    assert (rid, status) == (7, "ok") and "version" in json.loads(body)
    rid, status, body = c.call("/redrum/library/list", "req-2")
    assert (rid, status) == ("req-2", "ok")
    items = json.loads(body)["items"]
    assert len(items) == 8 and {"id", "path", "class", "kit"} <= set(items[0])
    cls = items[0]["class"]
    _, status, body = c.call("/redrum/library/list", 3, cls)
    assert status == "ok" and all(i["class"] == cls for i in json.loads(body)["items"])


@pytest.mark.parametrize("address,args,needle", [
    ("/redrum/nope", [1], "unknown command"),
    ("/redrum/ping", [], "request id"),
    ("/redrum/ping", [1.5], "request id"),
    ("/redrum/library/list", [4, 12], "must be a string"),
    ("/redrum/library/list", [5, "banjo"], "unknown class"),
])
def test_bad_requests_get_an_error_reply(server, address, args, needle):
    c = Client(server.address[1])
    rid, status, text = c.call(address, *args)
    assert status == "error" and needle in text


def test_garbage_datagrams_do_not_stop_the_server(server):
    c = Client(server.address[1])
    rng = random.Random(0)
    for i in range(2000):
        kind = i % 4
        if kind == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        elif kind == 1:
            data = b"/redrum/ping\x00\x00\x00\x00,i" + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 9)))
        elif kind == 2:
            data = b"#bundle\x00" + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        else:
            data = message("/redrum/ping")[: rng.randint(1, 16)]
        c.send_raw(data)
    # Well-formed but wrong messages got error replies; the ping's reply is found by its id.
    # UDP drops datagrams when a flood fills the socket buffer, so ping as a client would: again.
    c.sock.settimeout(1)
    deadline = time.time() + 60
    while time.time() < deadline:
        c.send_raw(message("/redrum/ping", 99))
        try:
            while True:
                reply = c.reply()
                if reply[0] == 99:
                    assert reply[1] == "ok"
                    return
                assert reply[1] == "error"
        except (socket.timeout, TimeoutError):
            continue
    pytest.fail("no reply to the ping after the garbage")


def test_redrum_serve_runs_and_stops_cleanly(tmp_path):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    exe = os.path.join(os.path.dirname(sys.executable), "redrum")
    proc = subprocess.Popen([exe, "serve", "--osc-port", str(port), "--no-gradio", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "OSC server on udp://127.0.0.1" in proc.stdout.readline()
        c = Client(port)
        assert c.call("/redrum/ping", 1)[:2] == [1, "ok"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_serve_on_a_busy_port_is_a_one_line_error():
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    exe = os.path.join(os.path.dirname(sys.executable), "redrum")
    try:
        proc = subprocess.run([exe, "serve", "--osc-port", str(port), "--no-gradio"], capture_output=True,
                              text=True, timeout=60)
    finally:
        blocker.close()
    assert proc.returncode == 1 and proc.stderr.strip().startswith("redrum: error: cannot listen")
