"""The DAW scripts against the real OSC server, with the DAW's API emulated: Reaper's
`reaper_python` by a recording stub, Bitwig's `host` by a Node stub whose OSC uses real UDP.
Each test asserts the script inserted the file the server produced."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from osc_server import OscServer
from redrum_kit import synth
from redrum_kit.engine import Engine

from conftest import write
from test_osc import groove

DAW = Path(__file__).resolve().parent.parent / "osc_server" / "daw"


@pytest.fixture
def server(tmp_path, home):
    engine = Engine(device="cpu", allow_roots=[tmp_path])
    srv = OscServer(engine, "127.0.0.1", 0).start()
    yield srv
    engine.close(cancel_running=True)
    srv.stop()


@pytest.fixture
def reaper(monkeypatch, server):
    sys.modules.pop("redrum_reaper", None)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import reaper_stub
    monkeypatch.setitem(sys.modules, "reaper_python", reaper_stub)
    monkeypatch.setenv("REDRUM_OSC_PORT", str(server.address[1]))
    monkeypatch.setenv("REDRUM_TIMEOUT", "120")
    yield reaper_stub
    sys.modules.pop("redrum_reaper", None)


def run_action(stub, name, selected, limit=120.0, bpm=120.0):
    """Run a ReaScript as Reaper does (the project at `bpm`), then its deferred calls until none is left."""
    stub.reset(selected, bpm)
    script = next((DAW / "reaper").glob(f"Redrum - {name}*.py"))
    scope = runpy.run_path(str(script), run_name="__main__")
    deadline = time.time() + limit
    while stub.STATE["deferred"] and time.time() < deadline:
        code = stub.STATE["deferred"].pop(0)
        exec(code, scope)
        time.sleep(0.01)
    return stub.STATE


def item(path, position=0.0):
    return {"path": str(path), "position": position, "length": 2.0}


def test_reaper_layer_inserts_the_servers_file_on_a_new_track(reaper, tmp_path, home):
    target = write(tmp_path / "snare.wav", synth.oneshot("snare", 3, 44100))
    state = run_action(reaper, "layer", [item(target, 4.0)])
    assert len(state["inserted"]) == 1, state["console"]
    inserted = Path(state["inserted"][0]["path"])
    assert inserted.parent == home / "renders" and inserted.is_file()
    assert state["inserted"][0]["position"] == 4.0 and state["tracks"][-1]["P_NAME"].startswith("Layered")


def test_reaper_transform_and_interpolate(reaper, tmp_path):
    a, b = groove(tmp_path / "a.wav", seed=2), groove(tmp_path / "b.wav", seed=7)
    state = run_action(reaper, "redrum", [item(a), dict(item(b, 8.0), offset=0.25, length=1.5)])
    assert len(state["inserted"]) == 1 and Path(state["inserted"][0]["path"]).is_file(), state["console"]
    assert state["inserted"][0]["position"] == 8.0              # under the target item, trimmed as it is
    assert (state["inserted"][0]["offset"], state["inserted"][0]["length"]) == (0.25, 1.5)
    state = run_action(reaper, "interpolate", [item(a), item(b)])
    positions = [i["position"] for i in state["inserted"]]
    assert len(positions) == 8 and positions == sorted(positions) and positions[1] > 1.9   # one after another


def kicks(path, sr=44100):
    """Two seconds of kicks alone: a source with no snare or hat to redrum a groove with."""
    import numpy as np
    y, kick = np.zeros(2 * sr, np.float32), synth.oneshot("kick", 7, sr)[:sr // 2]
    for start in range(0, 2 * sr - len(kick), sr // 2):
        y[start:start + len(kick)] += kick
    return write(path, y, sr=sr)


def test_reaper_redrum_says_which_drums_the_model_made_up(reaper, tmp_path):
    source, target = kicks(tmp_path / "kicks.wav"), groove(tmp_path / "b.wav", seed=7)
    state = run_action(reaper, "redrum", [item(source), item(target, 8.0)])
    assert len(state["inserted"]) == 1, state["console"]
    assert any("the source plays no" in line and "model's guess" in line for line in state["console"])
    state = run_action(reaper, "interpolate", [item(source), item(target, 8.0)])     # a morph: the same guess
    assert len(state["inserted"]) == 8, state["console"]
    assert any("the first item plays no" in line and "model's guess" in line for line in state["console"])


def midi_tempo(path):
    import mido
    return mido.tempo2bpm(next(m.tempo for m in mido.MidiFile(path) if m.type == "set_tempo"))


def test_reaper_transcribe_inserts_midi_at_the_projects_tempo(reaper, tmp_path, home):
    loop = groove(tmp_path / "loop.wav", seed=2)
    trimmed = dict(item(loop, 6.0), offset=0.5, length=1.2)          # the item plays 0.5-1.7 s of its file
    state = run_action(reaper, "transcribe", [trimmed], bpm=93.5)
    assert len(state["inserted"]) == 1, state["console"]
    midi = Path(state["inserted"][0]["path"])
    assert midi.suffix == ".mid" and midi.parent == home / "renders"
    assert state["inserted"][0]["position"] == 6.0 and state["tracks"][-1]["P_NAME"] == "Redrum MIDI"
    assert midi_tempo(midi) == pytest.approx(93.5, abs=0.01)      # the notes sit on the project's grid
    assert (state["inserted"][0]["offset"], state["inserted"][0]["length"]) == (0.5, 1.2)   # and under their hits


@pytest.mark.parametrize("selected,needle", [
    ([], "select 1 item"),
    ([{"path": None, "position": 0, "length": 1}], "no take"),
    ([{"path": "", "position": 0, "length": 1}], "not an audio file"),
    ([{"path": "/etc/passwd", "position": 0, "length": 1}], "error: "),
])
def test_reaper_bad_selections_are_a_message_not_a_crash(reaper, selected, needle):
    state = run_action(reaper, "layer", selected)
    assert not state["inserted"] and any(needle in line for line in state["console"]), state["console"]


def test_reaper_without_a_server_says_so(reaper, monkeypatch, tmp_path):
    monkeypatch.setenv("REDRUM_OSC_PORT", "9")            # nothing listens there
    monkeypatch.setenv("REDRUM_TIMEOUT", "1")
    target = write(tmp_path / "snare.wav", synth.oneshot("snare", 3, 44100))
    state = run_action(reaper, "layer", [item(target)])
    assert not state["inserted"] and any("no answer" in line or "error" in line for line in state["console"])


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js for the Bitwig stub")
@pytest.mark.parametrize("command", ["layer", "transform"])
def test_bitwig_script_inserts_the_servers_file(server, tmp_path, home, command):
    if command == "layer":
        files = [write(tmp_path / "snare.wav", synth.oneshot("snare", 3, 44100))]
    else:
        files = [groove(tmp_path / "a.wav", seed=2), groove(tmp_path / "b.wav", seed=7)]
    proc = subprocess.run(["node", str(DAW / "bitwig" / "test" / "host_stub.js"),
                           str(DAW / "bitwig" / "Redrum.control.js"), str(server.address[1]), command,
                           *map(str, files)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result["inserted"]) == 1
    inserted = Path(result["inserted"][0])
    assert inserted.is_file() and inserted.parent == home / "renders"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js for the Bitwig stub")
def test_bitwig_transcribe_inserts_midi_at_the_projects_tempo(server, tmp_path, home):
    loop = groove(tmp_path / "loop.wav", seed=2)
    proc = subprocess.run(["node", str(DAW / "bitwig" / "test" / "host_stub.js"),
                           str(DAW / "bitwig" / "Redrum.control.js"), str(server.address[1]), "transcribe", str(loop)],
                          capture_output=True, text=True, timeout=180, env=dict(os.environ, REDRUM_TEST_BPM="87"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result["inserted"]) == 1, result["notifications"]
    midi = Path(result["inserted"][0])
    assert midi.suffix == ".mid" and midi.parent == home / "renders" and midi_tempo(midi) == pytest.approx(87.0)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js for the Bitwig stub")
@pytest.mark.parametrize("command,files", [("transform", 1), ("interpolate", 8)])
def test_bitwig_redrum_says_which_drums_the_model_made_up(server, tmp_path, home, command, files):
    paths = [kicks(tmp_path / "kicks.wav"), groove(tmp_path / "b.wav", seed=7)]
    proc = subprocess.run(["node", str(DAW / "bitwig" / "test" / "host_stub.js"),
                           str(DAW / "bitwig" / "Redrum.control.js"), str(server.address[1]), command,
                           *map(str, paths)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result["inserted"]) == files, result["notifications"]
    assert any("the source plays no" in n and "model's guess" in n for n in result["notifications"])


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js for the Bitwig stub")
def test_bitwig_script_shows_errors(server, tmp_path):
    proc = subprocess.run(["node", str(DAW / "bitwig" / "test" / "host_stub.js"),
                           str(DAW / "bitwig" / "Redrum.control.js"), str(server.address[1]), "layer",
                           str(tmp_path / "missing.wav")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["inserted"] and any("no such file" in n for n in result["notifications"])


LUA = shutil.which("lua5.4")


def lua_has_socket() -> bool:
    return LUA is not None and subprocess.run([LUA, "-e", "require('socket')"], capture_output=True).returncode == 0


def run_lua_action(server, name, items, env_port=None, timeout="120", bpm=120.0, offset=0.0):
    """`offset`: each selected item plays its file from there (a trimmed item)."""
    script = next((DAW / "reaper-lua").glob(f"Redrum - {name}*.lua"))
    env = dict(os.environ, REDRUM_OSC_PORT=str(env_port or server.address[1]), REDRUM_TIMEOUT=timeout,
               REDRUM_TEST_BPM=str(bpm), REDRUM_TEST_OFFSET=str(offset))
    proc = subprocess.run([LUA, str(Path(__file__).parent / "reaper_stub.lua"), str(script),
                           *[f"{p}@{pos}" for p, pos in items]], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not lua_has_socket(), reason="needs lua5.4 and lua-socket (.ci/run installs them)")
def test_reaper_lua_scripts_insert_the_servers_files(server, tmp_path, home):
    snare = write(tmp_path / "snare.wav", synth.oneshot("snare", 3, 44100))
    state = run_lua_action(server, "layer", [(snare, 4.0)])
    assert len(state["inserted"]) == 1, state["console"]
    inserted = Path(state["inserted"][0]["path"])
    assert inserted.parent == home / "renders" and inserted.is_file() and state["inserted"][0]["position"] == 4.0
    assert state["tracks"][-1].startswith("Layered snare")
    a, b = groove(tmp_path / "a.wav", seed=2), groove(tmp_path / "b.wav", seed=7)
    state = run_lua_action(server, "interpolate", [(a, 0.0), (b, 8.0)])
    positions = [i["position"] for i in state["inserted"]]
    assert len(positions) == 8 and positions == sorted(positions), state["console"]
    state = run_lua_action(server, "redrum", [(a, 0.0), (b, 8.0)])
    assert len(state["inserted"]) == 1 and state["inserted"][0]["position"] == 8.0
    state = run_lua_action(server, "redrum", [(kicks(tmp_path / "kicks.wav"), 0.0), (b, 8.0)])
    assert len(state["inserted"]) == 1 and any("model's guess" in l for l in state["console"]), state["console"]
    state = run_lua_action(server, "interpolate", [(kicks(tmp_path / "kicks2.wav"), 0.0), (b, 8.0)])
    assert any("the first item plays no" in l and "model's guess" in l for l in state["console"]), state["console"]
    state = run_lua_action(server, "transcribe", [(a, 2.0)], bpm=101.0, offset=0.5)
    assert len(state["inserted"]) == 1 and state["inserted"][0]["position"] == 2.0, state["console"]
    assert state["inserted"][0]["offset"] == 0.5
    assert state["tracks"][-1] == "Redrum MIDI" and midi_tempo(state["inserted"][0]["path"]) == pytest.approx(101.0)


@pytest.mark.skipif(not lua_has_socket(), reason="needs lua5.4 and lua-socket (.ci/run installs them)")
def test_reaper_lua_errors_are_messages(server, tmp_path):
    state = run_lua_action(server, "layer", [("/etc/passwd", 0.0)])
    assert not state["inserted"] and any("error: " in l and "outside" in l for l in state["console"])
    state = run_lua_action(server, "layer", [])
    assert any("select 1 item" in l for l in state["console"])
    state = run_lua_action(server, "layer", [(tmp_path / "x.wav", 0.0)], env_port=9, timeout="1")
    assert any("no answer" in l or "error" in l for l in state["console"])
