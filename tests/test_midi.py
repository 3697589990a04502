"""Layered pads played live and offline: per-velocity blends, choke, polyphony, CC sliders, the
bounce equal to the live mix, `redrum midi` without devices, OSC triggering, the benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mido
import numpy as np
import pytest

from osc_server import OscServer
from redrum_kit.engine import Engine
from redrum_kit.live import BLOCK, NullSink
from redrum_kit.pads import BUCKETS, PadSounds, Player, make_layered
from redrum_kit.rhythm.events import Event, Pattern

from test_osc import Client


@pytest.fixture(scope="module")
def layered_sounds(tmp_path_factory):
    """The default (synth) kit with its kick and snare pads layered, at 22.05 kHz."""
    os.environ["REDRUM_HOME"] = str(tmp_path_factory.mktemp("home"))
    engine = Engine(device="cpu")
    kit = engine.kit("default")
    layered = make_layered(kit)
    assert "Kick" in layered and "Snare" in layered
    return engine.pad_sounds(kit, 22050)


def pad(sounds, name):
    return next(i for i, p in enumerate(sounds.kit.pads) if p.name == name)


def test_velocity_moves_the_layer_blend(layered_sounds):
    s = layered_sounds
    snare = pad(s, "Snare")
    assert s.is_layered(snare)
    soft, hard = s.sound(snare, 10), s.sound(snare, 120)
    assert len(soft) and len(hard) and not np.allclose(soft[:len(hard)], hard[:len(soft)])
    assert s.sound(snare, 100) is s.sound(snare, 100)                # cached per velocity bucket
    assert len({id(s.sound(snare, v)) for v in range(1, 128)}) == BUCKETS
    from redrum_kit.layering import installed_classes
    from redrum_kit.render import velocity_layer
    plain = next(i for i, p in enumerate(s.kit.pads) if p.cls not in installed_classes())
    assert not s.is_layered(plain)                                    # no layering model: its samples
    assert all(s.sound(plain, v) is s.samples[(plain, velocity_layer(s.kit.pads[plain], v))] for v in (10, 64, 120))


def test_player_velocity_zero_choke_and_polyphony(layered_sounds):
    s = layered_sounds
    player = Player(s, polyphony=4)
    notes = {p.name: p.note for p in s.kit.pads}
    assert player.note_on(notes["Kick"], 0) is None                   # note-on with velocity 0 = note-off
    open_hat = player.note_on(notes["Hat Open"], 100)
    player.render(BLOCK)
    player.note_on(notes["Hat Closed"], 100)                          # chokes the open hat
    assert open_hat.fade is not None and len(open_hat.fade) <= int(0.005 * s.sr) + 1
    for _ in range(10):
        player.note_on(notes["Kick"], 100)
    assert sum(v.fade is None for v in player.voices) <= 4           # voice stealing
    block = player.render(BLOCK)
    assert block.shape == (BLOCK,) and np.abs(block).max() <= 1.0
    player.handle(mido.Message("note_on", note=1, velocity=100))      # no pad there: silence, no error
    with pytest.raises(Exception, match="no pad on note"):
        player.note_on(1, 100)


def test_cc_moves_a_slider_of_the_last_pad(layered_sounds):
    s = layered_sounds
    player = Player(s)
    snare = s.kit.pads[pad(s, "Snare")]
    player.note_on(snare.note, 100)
    before = s.sound(pad(s, "Snare"), 100).copy()
    assert player.control_change(20, 127)                             # slider 1 to +3
    after = s.sound(pad(s, "Snare"), 100)
    assert snare.layering.pca[0] == pytest.approx(3.0)
    assert not np.allclose(before[:len(after)], after[:len(before)])
    assert not player.control_change(7, 100)                          # volume: not a slider


def test_a_knob_turned_fast_renders_its_latest_value(layered_sounds):
    s = layered_sounds
    player = Player(s)
    snare_index = pad(s, "Snare")
    snare = s.kit.pads[snare_index]
    player.note_on(snare.note, 100)
    for value in range(0, 128, 4):                                    # 32 CC messages in a burst
        player.handle(mido.Message("control_change", control=21, value=value))
    player.handle(mido.Message("control_change", control=21, value=0))
    assert player.settle()
    assert snare.layering.pca[1] == pytest.approx(-3.0)              # the last value wins


def test_offline_bounce_equals_the_live_mix(layered_sounds):
    """`redrum render` with layered pads plays every hit exactly as the live player does."""
    assert_live_is_offline(layered_sounds)


def test_a_stereo_kit_plays_live_in_stereo_as_it_renders(tmp_path):
    """Stereo samples stay stereo live too (a chokeable open hat panned left), mono ones in the middle."""
    from conftest import write
    from redrum_kit import synth
    from redrum_kit.library import Library
    folder = tmp_path / "Stereo Kit"
    hat = synth.oneshot("hat_open", 5)
    write(folder / "Hat Open.wav", np.stack([hat, 0.2 * hat], 1))
    for voice in ("kick", "snare", "hat_closed"):
        write(folder / f"{voice}.wav", synth.oneshot(voice, 5))
    lib = Library(tmp_path / "home")
    lib.import_paths([folder])
    kit = lib.kit_from_source("stereo", "Stereo Kit")
    names = {p.cls: p.name for p in kit.pads}
    sounds = PadSounds(kit, lib, 22050, mono=False)
    assert sounds.channels == 2 and Player(sounds).render(BLOCK).shape == (BLOCK, 2)
    assert PadSounds(kit, lib, 22050).channels == 1                                    # the default: mono
    live = assert_live_is_offline(sounds, {"Kick": names["kick"], "Snare": names["snare"],
                                           "Hat Open": names["hat_open"], "Hat Closed": names["hat_closed"]})
    assert live.shape[1] == 2 and not np.allclose(live[:, 0], live[:, 1])


def assert_live_is_offline(s, names=None):
    """Hits played live, block by block, equal `render`'s offline bounce. -> the live mix."""
    from redrum_kit.render import render
    names = names or {}
    notes = {p.name: p for p in s.kit.pads}
    hits = [(block, names.get(name, name), velocity) for block, name, velocity in
            [(0, "Kick", 110), (8, "Hat Open", 90), (16, "Snare", 40), (20, "Hat Closed", 70), (32, "Kick", 20)]]
    events = [Event(block * BLOCK / s.sr, notes[name].cls, velocity, notes[name].note)
              for block, name, velocity in hits]
    pattern = Pattern(events, tempo=120.0)
    offline, report = render(pattern, s.kit, s, s.sr, tail=0.5)
    assert report.peak_scaled == 1.0
    player = Player(s)
    live = []
    for block in range(len(offline) // BLOCK):
        for b, name, velocity in hits:
            if b == block:
                player.note_on(notes[name].note, velocity)
        live.append(player.render(BLOCK))
    live = np.concatenate(live)
    assert np.abs(live - offline[:len(live)]).max() < 1e-5
    return live


def test_redrum_midi_without_a_midi_system_is_one_line(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "redrum")
    try:
        proc = subprocess.run([exe, "midi", "--kit", "default"], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, REDRUM_HOME=str(tmp_path)))
    except subprocess.TimeoutExpired:
        pytest.skip("this machine has a MIDI system and an audio device: redrum midi ran")
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("redrum: error: ")
    assert "MIDI" in lines[0] or "audio" in lines[0]


def test_kit_layer_then_render_cli(tmp_path, capsys):
    from redrum_kit.cli import main
    assert main(["kit", "layer", "default", "-o", "layered", "--depth", "2"]) == 0
    assert "Kick" in capsys.readouterr().out
    assert main(["kit", "show", "layered", "--json"]) == 0
    assert main(["rhythm", "generate", "rock", "--bars", "1", "-o", str(tmp_path / "p.mid")]) == 0
    assert main(["render", str(tmp_path / "p.mid"), "--kit", "layered", "-o", str(tmp_path / "p.wav")]) == 0
    assert (tmp_path / "p.wav").is_file()
    assert main(["kit", "layer", "default", "--velocity-pc", "12"]) == 1


def test_osc_pad_trigger(tmp_path, home):
    engine = Engine(device="cpu", audio_output="null")
    srv = OscServer(engine, "127.0.0.1", 0).start()
    try:
        c = Client(srv.address[1])
        rid, status, body = c.call("/redrum/pad/trigger", 1, 38, 100)
        assert status == "ok", body
        result = json.loads(body)
        assert result["pad"] == "Snare" and result["played"] and result["latency_ms"] < 50
        assert json.loads(c.call("/redrum/pad/trigger", 2, "kick", 90)[2])["pad"] == "Kick"
        for args, needle in (([3, 5, 100], "no pad on note"), ([4, 38, 300], "velocity"),
                             ([5, 38, "loud"], "must be a number"), ([6, 38, 100, "nosuch"], "no kit")):
            _, status, text = c.call("/redrum/pad/trigger", *args)
            assert status == "error" and needle in text
    finally:
        engine.close()
        srv.stop()


def test_null_sink_pulls_blocks_in_real_time(layered_sounds):
    import time
    player = Player(layered_sounds)
    sink = NullSink(player).start()
    player.note_on(36, 100)
    time.sleep(0.3)
    sink.stop()
    assert sink.blocks >= 10                                     # ~100 blocks of 2.9 ms in 0.3 s


def test_bench_midi_writes_percentiles(tmp_path, capsys):
    from redrum_kit.cli import main
    out = tmp_path / "midi.json"
    assert main(["bench", "midi", "--repeats", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"p50_ms", "p99_ms", "render_block_p99_ms", "layered_pads"} <= set(data)
    assert "note-on to voice buffer" in capsys.readouterr().out
