"""The OSC server over a real UDP socket: replies, bad input, garbage, a real `redrum serve`."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from osc_server import OscServer
from redrum_kit import synth
from redrum_kit.engine import Engine
from redrum_kit.workspace import models_dir

from conftest import write


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

    def reply(self, progress=None):
        """The next reply; progress messages on the way are appended to `progress` (or skipped)."""
        while True:
            data, _ = self.sock.recvfrom(65536)
            msg = OscMessage(data)
            if msg.address == "/redrum/progress":
                if progress is not None:
                    progress.append(list(msg.params))
                continue
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
    _, status, body = c.call("/redrum/library/list", 4, "", "my samples", "HAT OPEN")    # kit and words
    assert status == "ok" and [i["name"] for i in json.loads(body)["items"]] == ["hat_open-01"]


@pytest.mark.parametrize("address,args,needle", [
    ("/redrum/nope", [1], "unknown command"),
    ("/redrum/ping", [], "request id"),
    ("/redrum/ping", [1.5], "request id"),
    ("/redrum/library/list", [4, 12], "must be a string"),
    ("/redrum/library/list", [5, "banjo"], "unknown class"),
    ("/redrum/library/list", [6, "", "", 3], "must be a string"),
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


def test_redrum_serve_runs_and_stops_cleanly(tmp_path, home):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    target = write(tmp_path / "snare.wav", synth.oneshot("snare", 3, 44100))
    exe = os.path.join(os.path.dirname(sys.executable), "redrum")
    proc = subprocess.Popen([exe, "serve", "--osc-port", str(port), "--no-gradio", "--device", "cpu",
                             "--allow-root", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "OSC server on udp://127.0.0.1" in proc.stdout.readline()
        c = Client(port)
        assert c.call("/redrum/ping", 1)[:2] == [1, "ok"]
        c.sock.settimeout(60)
        c.send_raw(message("/redrum/layer", 2, str(target), 0.04, "", "snare"))
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)           # while the layer job runs: it finishes and is answered
    rid, status, body = c.reply()
    assert proc.wait(timeout=60) == 0
    assert rid == 2 and (status == "ok" and Path(json.loads(body)["path"]).is_file() or "cancelled" in body)
    assert not [p for p in (home / "renders").rglob("*") if p.name.startswith(".")]   # no partial files


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


# -- jobs: operations that write audio ------------------------------------------------

@pytest.fixture
def jobs(tmp_path, home):
    """A server whose clients may use files under tmp_path (and the workspace) only."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    engine = Engine(device="cpu", allow_roots=[allowed], max_queue=4)
    srv = OscServer(engine, "127.0.0.1", 0).start()
    yield srv, allowed
    engine.close(cancel_running=True)
    srv.stop()


def groove(path, seed=1, seconds=2.0, sr=44100):
    """A short drum loop: kick on the beats, snare on 2 and 4, hats on eighths, from synth kit `seed`."""
    y = np.zeros(int(seconds * sr), np.float32)
    beat = int(0.5 * sr)
    for i in range(int(seconds * 2)):
        hit = synth.oneshot("kick" if i % 2 == 0 else "snare", seed, sr)[:beat]
        y[i * beat:i * beat + len(hit)] += hit
        hat = 0.4 * synth.oneshot("hat_closed", seed, sr)[:beat // 2]
        for h in (0, beat // 2):
            y[i * beat + h:i * beat + h + len(hat)] += hat[:len(y) - i * beat - h]
    return write(path, 0.5 * y / np.abs(y).max(), sr)


def test_layer_round_trip_writes_a_new_file_in_the_workspace(jobs, home):
    srv, allowed = jobs
    target = write(allowed / "snare.wav", synth.oneshot("snare", 3, 44100))
    c = Client(srv.address[1])
    progress = []
    c.send_raw(message("/redrum/layer", 11, str(target), 0.04, "", "snare"))
    rid, status, body = c.reply(progress)
    assert (rid, status) == (11, "ok"), body
    result = json.loads(body)
    out = Path(result["path"])
    assert out.is_file() and out.parent == home / "renders" and out.stat().st_size > 1000
    assert result["class"] == "snare" and 1 <= len(result["layers"]) <= 16
    assert abs(sum(l["weight"] for l in result["layers"]) - 1) < 0.2       # a mix, not a sum of everything
    assert progress and all(p[0] == 11 and 0 <= p[1] <= 1 for p in progress)
    # the same request again: a second, distinct file; the first is untouched
    before = out.read_bytes()
    _, status, body = c.call("/redrum/layer", 12, str(target), 0.04, "", "snare")
    assert status == "ok" and json.loads(body)["path"] != str(out) and out.read_bytes() == before


def test_transform_round_trip_model_and_replace(jobs):
    srv, allowed = jobs
    source, target = groove(allowed / "src.wav", seed=5), groove(allowed / "tgt.wav", seed=9)
    c = Client(srv.address[1])
    out = allowed / "mine.wav"
    rid, status, body = c.call("/redrum/transform", "t1", str(source), str(target), str(out))
    assert status == "ok", body
    assert json.loads(body)["path"] == str(out) and out.is_file()
    assert isinstance(json.loads(body)["guessed"], list)             # the drums the model made up, if any
    assert abs(sf.info(out).duration - 2.0) < 0.01                   # the target's length
    _, status, body = c.call("/redrum/transform", "t2", str(source), str(target), "", "replace")
    assert status == "ok" and Path(json.loads(body)["path"]).is_file()
    _, status, body = c.call("/redrum/transform", "t4", str(source), str(target), "", "replace", "kick", 1)
    assert status == "ok", body                                      # the source's kicks doubled on the target's
    assert (json.loads(body)["only"], json.loads(body)["double"]) == (["kick"], True)
    _, status, text = c.call("/redrum/transform", "t5", str(source), str(target), "", "model", "kick")
    assert status == "error" and "use method replace" in text and len(text.splitlines()) == 1
    t = np.arange(88200) / 44100                                    # a held tone: sound, but no drum hit
    tone = write(allowed / "tone.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, t / 0.5)).astype(np.float32))
    rid, status, text = c.call("/redrum/transform", "t3", str(source), str(tone), str(allowed / "none.wav"))
    assert (rid, status, text) == ("t3", "error", "tone.wav: no drum events found")
    assert not (allowed / "none.wav").exists() and c.call("/redrum/ping", "p")[1] == "ok"


def test_transcribe_and_kit_render_round_trip(jobs):
    srv, allowed = jobs
    target = groove(allowed / "loop.wav")
    c = Client(srv.address[1])
    _, status, body = c.call("/redrum/transcribe", 1, str(target))
    assert status == "ok", body
    result = json.loads(body)
    assert Path(result["path"]).suffix == ".mid" and len(result["events"]) >= 4
    _, status, body = c.call("/redrum/kit/render", 2, result["path"], "default")
    assert status == "ok", body
    rendered = json.loads(body)
    assert sf.info(rendered["path"]).duration > 1.0 and sf.info(rendered["path"]).channels == rendered["channels"]
    assert 50 <= result["tempo"] <= 220 and result["tempo_from"] == "estimate"
    _, status, body = c.call("/redrum/transcribe", 3, str(target), str(allowed / "at-project.mid"), 93.5)
    assert status == "ok", body                                  # the DAW's project tempo for the MIDI file
    assert (json.loads(body)["tempo"], json.loads(body)["tempo_from"]) == (93.5, "given")
    for bad, needle in ((5.0, "tempo must be from 20 to 999 bpm"), ("fast", "tempo must be a number")):
        _, status, text = c.call("/redrum/transcribe", 4, str(target), str(allowed / "bad.mid"), bad)
        assert status == "error" and needle in text and len(text.splitlines()) == 1
        assert not (allowed / "bad.mid").exists()
    assert c.call("/redrum/ping", "p")[1] == "ok"


@pytest.mark.parametrize("args,needle", [
    (["/etc/passwd", 0.04], "outside the folders"),
    (["{allowed}/none.wav", 0.04], "no such file"),
    (["{allowed}/snare.wav", 2.0], "threshold"),
    (["{allowed}/snare.wav", "x"], "must be a number"),
    (["{allowed}/snare.wav", 0.04, "/tmp/elsewhere.wav"], "outside the folders"),
    (["{allowed}/snare.wav", 0.04, "{allowed}/exists.wav"], "already exists"),
    (["{allowed}/snare.wav", 0.04, "{allowed}/out.mp3"], "write .wav or .flac"),
    (["{allowed}/notaudio.wav", 0.04], "notaudio.wav"),
])
def test_bad_job_requests_get_one_error_reply_and_write_nothing(jobs, home, args, needle):
    srv, allowed = jobs
    write(allowed / "snare.wav", synth.oneshot("snare", 3, 44100))
    (allowed / "notaudio.wav").write_text("hello")
    (allowed / "exists.wav").write_bytes(b"mine")
    before = sorted(p.name for p in allowed.iterdir())
    c = Client(srv.address[1])
    args = [a.format(allowed=allowed) if isinstance(a, str) else a for a in args]
    args += [""] * (3 - len(args))                                  # target, threshold, out_path, class
    rid, status, text = c.call("/redrum/layer", 5, *args, "snare")
    assert (rid, status) == (5, "error") and needle in text and "\n" not in text
    assert sorted(p.name for p in allowed.iterdir()) == before and (allowed / "exists.wav").read_bytes() == b"mine"
    assert not list((home / "renders").glob("*")) if (home / "renders").exists() else True


def test_full_queue_is_a_busy_reply_and_cancel_works(jobs):
    srv, allowed = jobs
    engine = srv.engine
    target = write(allowed / "snare.wav", synth.oneshot("snare", 3, 44100))
    gate = threading.Event()
    blocker = engine.submit("layer", listener=lambda f: gate.wait(30), target=str(target), cls="snare")
    c = Client(srv.address[1])
    c.send_raw(message("/redrum/layer", "queued", str(target), 0.04, "", "snare"))
    for _ in range(50):                                   # wait until the server has queued it
        if engine.status()["queued"] >= 1:
            break
        time.sleep(0.1)
    others = [engine.submit("layer", target=str(target), cls="snare") for _ in range(2)]
    _, status, text = Client(srv.address[1]).call("/redrum/layer", "one-too-many", str(target), 0.04, "", "snare")
    assert status == "error" and text.startswith("busy")
    canceller = Client(srv.address[1])
    _, status, body = canceller.call("/redrum/cancel", 1, "queued")
    assert status == "ok" and json.loads(body)["id"]
    gate.set()
    rid, status, text = c.reply()
    assert (rid, status) == ("queued", "error") and "cancelled" in text
    for job in (blocker, *others):
        assert job.wait(60) and job.state == "done"
    _, status, body = canceller.call("/redrum/status", 2)
    assert status == "ok" and json.loads(body)["queued"] == 0


def test_replies_go_to_a_registered_reply_port(jobs):
    srv, _ = jobs
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(10)
    c = Client(srv.address[1])
    c.send_raw(message("/redrum/reply_port", 1, listener.getsockname()[1]))
    data, _ = listener.recvfrom(65536)                  # the registration's reply already goes there
    assert list(OscMessage(data).params)[:2] == [1, "ok"]
    c.send_raw(message("/redrum/ping", 2))
    data, _ = listener.recvfrom(65536)
    assert list(OscMessage(data).params)[:2] == [2, "ok"]
    c.send_raw(message("/redrum/reply_port", 3, 70000))
    data, _ = listener.recvfrom(65536)  # a bad port is refused; the reply goes to the registered one
    assert list(OscMessage(data).params)[1] == "error"
    listener.close()


def test_clients_outside_the_allowed_ranges_are_dropped():
    engine = Engine(device="cpu")
    srv = OscServer(engine, "127.0.0.1", 0, allow_clients=["192.168.1.0/24"])
    try:
        assert srv.client_allowed("127.0.0.1") and srv.client_allowed("192.168.1.77")
        assert not srv.client_allowed("192.168.2.1") and not srv.client_allowed("10.0.0.1")
    finally:
        srv.udp.server_close()


def test_eight_clients_twenty_requests_each_no_reply_lost(jobs):
    srv, allowed = jobs
    target = write(allowed / "snare.wav", synth.oneshot("snare", 3, 44100))
    answers: dict[int, list] = {}

    def client(k):
        c = Client(srv.address[1])
        got = []
        for i in range(20):
            rid = k * 100 + i
            if i == 10:
                c.send_raw(message("/redrum/layer", rid, str(target), 0.04, "", "snare"))
            else:
                c.send_raw(message("/redrum/ping" if i % 2 else "/redrum/status", rid))
            got.append(c.reply())
        answers[k] = got

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(answers) == list(range(8))
    for k, got in answers.items():
        assert [g[0] for g in got] == [k * 100 + i for i in range(20)]
        assert all(g[1] == "ok" or g[2].startswith("busy") for g in got)


def test_bench_osc_prints_percentiles_and_ratios(capsys):
    from redrum_kit.cli import main
    assert main(["bench", "osc", "--repeats", "1", "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "ping" in out and "udp_echo_reference" in out and "p99" in out and "pings/s" in out


def test_concurrent_layer_jobs_run_as_one_batch_with_the_same_results(tmp_path, home):
    """What the engine does on a GPU (forced here on the CPU): queued layer jobs share one pass
    through the model, and each gets exactly what it would have got alone."""
    allowed = tmp_path / "in"
    target = write(allowed / "snare.wav", synth.oneshot("snare", 3, 44100))
    other = write(allowed / "snare2.wav", synth.oneshot("snare", 8, 44100))
    engine = Engine(device="cpu", allow_roots=[allowed], batch=True)
    gate = threading.Event()
    blocker = engine.submit("layer", listener=lambda f: gate.wait(30), target=str(target), cls="snare")
    while blocker.state != "running":                 # the worker holds it; the rest queue behind
        time.sleep(0.01)
    requests = [dict(target=str(target), cls="snare"), dict(target=str(other), cls="snare"),
                dict(target=str(target), cls="snare", sliders={0: 2.0}),
                dict(target=str(allowed / "missing.wav"), cls="snare")]
    jobs = [engine.submit("layer", **r) for r in requests]
    cancelled = engine.submit("layer", target=str(target), cls="snare")
    cancelled.cancel()
    gate.set()
    for job in (blocker, *jobs, cancelled):
        assert job.wait(60)
    assert [j.state for j in jobs] == ["done", "done", "done", "error"] and cancelled.state == "cancelled"
    assert "no such file" in jobs[3].error
    assert all(j.result["batch"] == 3 for j in jobs[:3])
    alone = Engine(device="cpu", allow_roots=[allowed], batch=False)
    for job, r in zip(jobs[:3], requests[:3]):
        ref = alone.layer(**r)
        assert [l["path"] for l in job.result["layers"]] == [l["path"] for l in ref["layers"]]
        assert np.allclose([l["weight"] for l in job.result["layers"]], [l["weight"] for l in ref["layers"]], atol=1e-5)
    engine.close()


def test_a_user_model_folder_overrides_the_shipped_checkpoints(tmp_path, monkeypatch):
    from redrum_kit import layering, transform, workspace
    mine = tmp_path / "models"
    mine.mkdir()
    (mine / "layering-snare.safetensors").write_bytes((workspace.models_dir() / "layering-snare.safetensors").read_bytes())
    monkeypatch.setenv("REDRUM_MODELS", str(mine))
    assert layering.checkpoint_path("snare") == mine / "layering-snare.safetensors"
    assert transform.checkpoint_path() == workspace.models_dir() / "stage2.safetensors"   # not in mine: shipped


def test_a_running_transform_reports_progress_and_can_be_cancelled(jobs, home):
    srv, allowed = jobs
    source, target = groove(allowed / "src.wav", seed=5), groove(allowed / "long.wav", seed=9, seconds=60.0)
    c = Client(srv.address[1])
    c.sock.settimeout(120)
    c.send_raw(message("/redrum/transform", "long", str(source), str(target)))
    while True:                                            # wait until the model is working on windows
        data, _ = c.sock.recvfrom(65536)
        msg = OscMessage(data)
        if msg.address == "/redrum/progress" and 0.2 < msg.params[1] < 0.9:
            break
        assert msg.address == "/redrum/progress"
    _, status, _ = Client(srv.address[1]).call("/redrum/cancel", 1, "long")
    assert status == "ok"
    rid, status, text = c.reply()
    assert (rid, status) == ("long", "error") and "cancelled" in text
    assert not list((home / "renders").glob("*")) if (home / "renders").exists() else True


def test_layer_with_refine_over_osc(jobs):
    srv, allowed = jobs
    target = write(allowed / "snare.wav", synth.oneshot("snare", 3, 44100))
    _, status, body = Client(srv.address[1]).call("/redrum/layer", 1, str(target), 0.04, "", "snare", 1)
    assert status == "ok" and Path(json.loads(body)["path"]).is_file()
