"""Rhythms: MIDI and Hydrogen in, MIDI and JSON out, styles a drummer would recognise, rendering."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest

from redrum_kit.cli import main
from redrum_kit.library import Library
from redrum_kit.render import load_kit_samples, render, velocity_gain
from redrum_kit.rhythm import events as ev
from redrum_kit.rhythm.generator import STYLES, generate
from redrum_kit.rhythm.h2song import read_patterns, read_song
from redrum_kit.rhythm.midi import read_midi, write_midi
from redrum_kit.workspace import HYDROGEN_SONGS

from conftest import needs_hydrogen


def test_midi_round_trip_keeps_time_class_velocity(tmp_path):
    p = generate("funk", bars=2, seed=5)
    write_midi(p, tmp_path / "f.mid")
    q = read_midi(tmp_path / "f.mid")
    assert len(q.events) == len(p.events) and abs(q.tempo - p.tempo) < 0.01
    left = list(q.events)          # hits a fraction of a MIDI tick apart may come back in either order
    for a in p.events:
        b = next(b for b in left if ev.GM_CLASS[b.note] == a.cls and abs(a.time - b.time) < 0.002)
        assert a.velocity == b.velocity
        left.remove(b)


def test_drum_notes_on_any_channel_by_default(tmp_path):
    mid = mido.MidiFile()
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.Message("note_on", channel=0, note=36, velocity=100, time=0))   # DAW: channel 1
    track.append(mido.Message("note_on", channel=9, note=38, velocity=90, time=480))  # GM: channel 10
    track.append(mido.Message("note_on", channel=0, note=20, velocity=90, time=10))   # not a drum key
    mid.save(tmp_path / "d.mid")
    assert [e.cls for e in read_midi(tmp_path / "d.mid").events] == ["kick", "snare"]
    assert [e.cls for e in read_midi(tmp_path / "d.mid", channel=10).events] == ["snare"]
    with pytest.raises(ev.RhythmError, match="no drum notes"):
        read_midi(tmp_path / "d.mid", channel=5)


@pytest.mark.parametrize("options, message", [
    ({"bars": 0}, "bars must be from 1 to 1000"), ({"bars": 100_000}, "bars must be from 1 to 1000"),
    ({"tempo": 0}, "tempo must be from 20"), ({"tempo": 10_000}, "tempo must be from 20"),
    ({"swing": 5}, "swing is a fraction of a step"), ({"swing": -0.2}, "swing is a fraction of a step"),
])
def test_generate_refuses_settings_no_groove_has(options, message):
    with pytest.raises(ev.RhythmError, match=message):
        generate("rock", **options)


def test_cli_generate_bad_tempo_is_one_line(tmp_path, capsys):
    from redrum_kit.cli import main
    assert main(["rhythm", "generate", "rock", "--tempo", "0", "-o", str(tmp_path / "x.mid")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "redrum: error: tempo must be from 20 to 999 bpm, got 0" and not (tmp_path / "x.mid").exists()


@pytest.mark.parametrize("content", [b"", b"MThd garbage", b"\x00" * 100, b"nope"])
def test_bad_midi_is_a_rhythm_error(tmp_path, content):
    (tmp_path / "bad.mid").write_bytes(content)
    with pytest.raises(ev.RhythmError) as err:
        ev.load(tmp_path / "bad.mid")
    assert str(err.value).startswith("bad.mid: not a readable MIDI file") and "()" not in str(err.value)


def test_json_round_trip(tmp_path):
    p = generate("house", bars=1, seed=2)
    ev.save_json(p, tmp_path / "p.json")
    q = ev.load(tmp_path / "p.json")
    assert q.events == [ev.Event(round(e.time, 6), e.cls, e.velocity, e.note) for e in p.events]


@pytest.mark.parametrize("style", STYLES)
def test_styles_have_their_signature(style):
    p = generate(style, bars=4, seed=11)
    beat = 60 / p.tempo
    kicks = [e.time for e in p.of_class("kick")]
    assert p.events and all(0 <= e.time < p.length + 0.05 for e in p.events)
    if style == "house":  # four on the floor
        on_beats = [k for k in kicks if abs((k / beat) - round(k / beat)) < 0.05]
        assert len(on_beats) >= 14
    if style in ("rock", "funk", "hiphop", "breakbeat", "shuffle"):  # backbeat on 2 and 4
        snares = [e.time / beat % 4 for e in p.of_class("snare") if e.velocity > 60]
        assert sum(abs(s - 1) < 0.1 or abs(s - 3) < 0.1 for s in snares) >= 5
    if style == "funk":
        assert any(e.velocity < 50 for e in p.of_class("snare"))  # ghost notes
    if style == "jazz":
        assert len(p.of_class("cymbal")) > len(p.of_class("snare"))  # ride pattern


def test_hiphop_swing_delays_off_beats():
    straight = generate("hiphop", bars=2, seed=1, swing=0.0, microtiming=0)
    swung = generate("hiphop", bars=2, seed=1, swing=0.3, microtiming=0)
    step = 60 / straight.tempo / 4
    off = [e.time / step % 1 for e in swung.of_class("hat_closed")]
    assert max(off) > 0.25 and all(abs(e.time / step - round(e.time / step)) < 1e-6
                                   for e in straight.of_class("hat_closed"))


@needs_hydrogen
def test_hydrogen_demo_songs():
    patterns = [p for song in sorted(HYDROGEN_SONGS.glob("*.h2song")) for p in read_patterns(song)]
    assert len(patterns) >= 80
    song = read_song(HYDROGEN_SONGS / "GM_kit_demo1.h2song")
    assert song.tempo == 115 and song.length > 20
    assert {"kick", "snare", "hat_closed"} <= {e.cls for e in song.events}


def kit_and_samples(sr=22050):
    lib = Library()
    kit = lib.ensure_default_kit()
    return kit, load_kit_samples(kit, lib, sr)


def onsets(y, sr, threshold=0.02):
    """Sample indices where the signal first rises above the threshold after 50 ms of quiet."""
    loud = np.flatnonzero(np.abs(y) > threshold)
    return [int(i) for k, i in enumerate(loud) if k == 0 or i - loud[k - 1] > 0.05 * sr]


def test_render_places_hits_on_time(no_hydrogen):
    kit, samples = kit_and_samples()
    p = ev.Pattern([ev.Event(t, "kick", 127) for t in (0.25, 1.0, 1.75)], tempo=120, length=2.0)
    y, report = render(p, kit, samples, 22050)
    found = onsets(y, 22050)
    assert len(found) == 3 and all(abs(f / 22050 - t) < 0.005 for f, t in zip(found, (0.25, 1.0, 1.75)))
    assert np.abs(y).max() <= 0.99 and not report.skipped


def test_velocity_sets_gain(no_hydrogen):
    kit, samples = kit_and_samples()
    loud, _ = render(ev.Pattern([ev.Event(0.1, "snare", 127)], length=1), kit, samples, 22050)
    soft, _ = render(ev.Pattern([ev.Event(0.1, "snare", 64)], length=1), kit, samples, 22050)
    ratio = np.abs(soft).max() / np.abs(loud).max()
    assert abs(ratio - velocity_gain(64) / velocity_gain(127)) < 0.05


def test_closed_hat_chokes_open_hat(no_hydrogen):
    kit, samples = kit_and_samples()
    ringing, _ = render(ev.Pattern([ev.Event(0.1, "hat_open", 127)], length=1.5), kit, samples, 22050)
    choked, _ = render(ev.Pattern([ev.Event(0.1, "hat_open", 127), ev.Event(0.3, "hat_closed", 1)], length=1.5),
                       kit, samples, 22050)
    after = slice(int(0.9 * 22050), int(1.2 * 22050))  # the open hat would still ring here
    assert np.abs(choked[after]).max() < 0.2 * np.abs(ringing[after]).max()


def test_missing_class_falls_back_and_says_so(no_hydrogen):
    kit, samples = kit_and_samples()
    kit.pads = [p for p in kit.pads if p.cls != "clap"]
    _, report = render(ev.Pattern([ev.Event(0.1, "clap", 100)], length=1), kit, samples, 22050)
    assert report.substitutions == {"clap": "snare"}


def test_render_cli(tmp_path, no_hydrogen, capsys):
    assert main(["rhythm", "generate", "rock", "--bars", "2", "--seed", "1", "-o", str(tmp_path / "r.mid")]) == 0
    assert main(["render", str(tmp_path / "r.mid"), "--sr", "48000", "-o", str(tmp_path / "r.wav")]) == 0
    from redrum_kit import audio
    y, sr = audio.load(tmp_path / "r.wav")
    assert sr == 48000 and np.abs(y).max() > 0.1
    assert main(["render", str(tmp_path / "r.mid"), "-o", str(tmp_path / "r.wav")]) == 1  # no overwrite
    assert main(["render", str(tmp_path / "nope.mid"), "-o", str(tmp_path / "x.wav")]) == 1
    assert main(["rhythm", "convert", str(tmp_path / "r.mid"), "-o", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["events"]


def test_a_stereo_kit_renders_in_stereo_and_mono_on_request(tmp_path, no_hydrogen, capsys):
    """A kit's stereo samples keep their image (an open hat panned left stays left, and a closed
    hat still chokes it there); mono samples sit in the middle; `--mono` folds the same mix."""
    from conftest import write
    from redrum_kit import audio, synth
    folder = tmp_path / "Room Kit"
    hat = synth.oneshot("hat_open", 3)
    write(folder / "open hat.wav", np.stack([hat, 0 * hat], 1))          # hard left
    write(folder / "kick.wav", synth.oneshot("kick", 3))
    write(folder / "closed hat.wav", synth.oneshot("hat_closed", 3))
    assert main(["library", "import", str(folder)]) == 0
    assert main(["kit", "build", "room", "--from-kit", "Room Kit"]) == 0
    pattern = ev.Pattern([ev.Event(0.1, "hat_open", 127), ev.Event(0.3, "hat_closed", 1),
                          ev.Event(1.0, "kick", 127)], length=2.0)
    ev.save_json(pattern, tmp_path / "p.json")
    assert main(["render", str(tmp_path / "p.json"), "--kit", "room", "-o", str(tmp_path / "st.wav")]) == 0
    assert "stereo" in capsys.readouterr().out
    assert main(["render", str(tmp_path / "p.json"), "--kit", "room", "--mono", "-o", str(tmp_path / "mo.wav")]) == 0
    st, sr = audio.load(tmp_path / "st.wav", mono=False)
    mo, _ = audio.load(tmp_path / "mo.wav", mono=False)
    assert st.shape[1] == 2 and mo.ndim == 1
    ringing, choked, kick = (slice(int(a * sr), int(b * sr)) for a, b in ((0.1, 0.25), (0.5, 0.95), (1.0, 1.3)))
    assert np.allclose(st[kick, 0], st[kick, 1])                         # mono sample: the middle
    assert np.abs(st[ringing, 0]).max() > 0.1 and np.abs(st[ringing, 1]).max() < 0.01   # left only
    open_alone = synth.oneshot("hat_open", 3)
    assert np.abs(open_alone[int(0.85 * 44100):int(0.95 * 44100)]).max() > 0.05   # would ring on unchoked
    assert np.abs(st[choked, 0]).max() < 0.05 * np.abs(st[ringing, 0]).max()
    assert np.abs(st.mean(1) - mo).max() < 1e-4                          # --mono is the same mix, folded


def test_an_open_hat_is_never_struck_with_a_closed_one():
    """A hi-hat is one instrument: a generated step with an open hat has no closed hat on it (the
    closed one would choke it at once, so the 'open' hat sounded closed). `one_hat=False` keeps the
    parts every dataset before session 32 was built from, draw for draw: the same hits plus those
    closed hats."""
    for style in ("rock", "funk", "house"):
        for seed in range(6):
            part, old = generate(style, bars=8, seed=seed), generate(style, bars=8, seed=seed, one_hat=False)
            opened = [e.time for e in part.events if e.cls == "hat_open"]
            closed = [e.time for e in part.events if e.cls == "hat_closed"]
            assert opened and closed
            assert not any(abs(o - c) < 0.05 for o in opened for c in closed)
            extra = [e for e in old.events if e not in part.events]
            assert all(e in old.events for e in part.events) and extra
            assert all(e.cls == "hat_closed" and min(abs(e.time - o) for o in opened) < 0.05 for e in extra)
