"""Telling the drums of a class apart: which tom, closed or open hat, in transcription and replacement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from redrum_kit import variants

SR = 22050
EIGHTH = 0.3          # s, at 100 bpm
OPEN_AT, CLOSED_AT = (0.9, 3.3), (0.3, 1.5, 2.1)    # hats alone (no snare or kick on them)
FILL = (3.6, 3.9, 4.2, 4.5)                         # high, high, mid, low tom


def _kit(seed):
    from redrum_kit.datasets.kits import from_synth
    return from_synth(seed, SR)


def _toms_low_to_high(kit) -> list[int]:
    """The kit's tom pads (indices among its toms), lowest pitch first, measured on their samples."""
    toms = [p for p in kit.kit.pads if p.cls == "tom"]
    pitched = variants.pad_toms(kit.kit, kit.samples, SR)
    return [toms.index(kit.kit.pads[int(v)]) for v in pitched.of_class("tom")]


def _groove(kit, fill: list[int]) -> np.ndarray:
    """Two bars at 100 bpm: kick, snare, closed hats on the eighths and an open one on the fourth; the
    second bar's second half a fill down `fill` (tom indices, one per eighth)."""
    from redrum_kit.render import render
    from redrum_kit.rhythm.events import Event, Pattern
    toms = [p for p in kit.kit.pads if p.cls == "tom"]
    events = []
    for bar in range(2):
        b = bar * 8 * EIGHTH
        events += [Event(b, "kick", 110), Event(b + 2 * EIGHTH, "snare", 110)]
        if bar == 0:
            events += [Event(b + 4 * EIGHTH, "kick", 110), Event(b + 6 * EIGHTH, "snare", 110)]
        events += [Event(b + i * EIGHTH, "hat_open" if i == 3 else "hat_closed", 90)
                   for i in range(8 if bar == 0 else 4)]
    events += [Event(t, "tom", 110, toms[i].note) for t, i in zip(FILL, fill)]
    y, _ = render(Pattern(events, 100.0, 5.4), kit.kit, kit.samples, SR)
    return y


def _down_the_toms(kit) -> np.ndarray:
    low, mid, high = _toms_low_to_high(kit)[:3]
    return _groove(kit, [high, high, mid, low])


def test_split_tells_toms_apart_by_pitch_and_hats_by_ring():
    toms = [7.0, 7.02, 6.98, 7.5, 7.52, 8.1]                       # log2 Hz: three toms, velocity wobble
    assert variants.split(toms, "tom") == [0, 0, 0, 1, 1, 2]
    assert variants.split([7.0, 7.05, 7.1, 7.14], "tom") == [0, 0, 0, 0]   # closer than SPLIT: one tom
    assert max(variants.split([6.0, 6.5, 7.0, 7.5, 8.0, 8.5], "tom")) == variants.MOST - 1
    stray = [(7.0, 7.3), (7.02, 7.31), (7.5, 7.3)]     # (pitch, centroid): a gap the centroids do not share
    assert variants.split(stray, "tom") == [0, 0, 0]
    assert variants.split([(7.0, 7.3), (7.02, 7.31), (7.5, 7.6)], "tom") == [0, 0, 1]
    rings = [-3.5, -3.0, variants.OPEN_RING + 0.5, -4.0]
    assert variants.split(rings, "hat") == [0, 0, 1, 0]
    # a drum machine's hats (session 32): closed ones gone in 30 ms, the open one in 0.2 s, a pedal in 60 ms
    machine = [np.log2(s) for s in (0.03, 0.03, 0.035, 0.2, 0.03, 0.06, 0.22, 0.03)]
    assert variants.split(machine, "hat") == [0, 0, 0, 1, 0, 0, 1, 0]
    # an acoustic kit's closed hats ring 0.12 s, one under a wash 0.25 s: closed, as the fixed line says
    acoustic = [np.log2(s) for s in (0.12, 0.11, 0.25, 0.13, 0.6)]
    assert variants.split(acoustic, "hat") == [0, 0, 0, 0, 1]
    assert variants.split([np.log2(0.2)], "hat") == [0]           # one hat alone: only the fixed line


def test_transcription_writes_each_tom_and_the_open_hat_on_its_own_note(tmp_path, capsys):
    """A fill down three toms comes out on three General MIDI tom notes, high to low; the open hat on 46,
    the closed ones on 42 (before, every tom was 45 and every hat 42)."""
    from redrum_kit import audio
    from redrum_kit.cli import main
    from redrum_kit.rhythm.midi import read_midi
    path = tmp_path / "fill.wav"
    audio.save(path, _down_the_toms(_kit(11)), SR)
    assert main(["transcribe", str(path), "-o", str(tmp_path / "fill.mid"), "--json", str(tmp_path / "fill.json")]) == 0
    said = capsys.readouterr().out
    assert "tom on 3 notes" in said and " open)" in said, said
    data = json.loads((tmp_path / "fill.json").read_text())
    assert len(data["notes"]) == len(data["voices"]) == len(data["events"])

    def note_at(t, cls):
        found = [n for e, n in zip(data["events"], data["notes"]) if e["class"] == cls and abs(e["time"] - t) < 0.03]
        assert found, f"no {cls} found at {t} s"
        return found[0]

    high, high2, mid, low = (note_at(t, "tom") for t in FILL)
    assert high == high2 > mid > low
    assert [note_at(t, "hat") for t in OPEN_AT] == [46, 46]
    assert [note_at(t, "hat") for t in CLOSED_AT] == [42, 42, 42]
    notes = {e.note for e in read_midi(tmp_path / "fill.mid").events}
    assert {high, mid, low, 42, 46} <= notes


@pytest.mark.parametrize("mode", ["source", "kit"])
def test_replacement_plays_each_tom_and_the_open_hat_with_their_counterparts(mode):
    """The target's fill runs down its toms: the output runs down the source's (or the kit's) toms, and
    its open hat rings where the target's does, its closed ones where the target's are closed. Before,
    one tom and the one hat played every tom and every hat."""
    from redrum_kit.replace import replace_signal
    source_kit, target_kit = _kit(21), _kit(11)
    low, mid, high = _toms_low_to_high(source_kit)[:3]
    target = _down_the_toms(target_kit)
    if mode == "source":
        result = replace_signal(target, SR, _groove(source_kit, [low, mid, high, high]))
        assert result.voices["hat open"] == "hat open" and result.voices["hat"] == "hat"
        for voice, played_at in (("tom 1", FILL[:1]), ("tom 2", FILL[1:2]), ("tom 3", FILL[2:])):
            assert result.voices[voice] == voice                       # the same place among the toms
            assert min(abs(result.source_hits[voice] - t) for t in played_at) < 0.03   # cut from that tom
    else:
        result = replace_signal(target, SR, kit=source_kit.kit, kit_samples=source_kit.samples)
        toms = [p for p in source_kit.kit.pads if p.cls == "tom"]
        assert [result.voices[f"tom {i}"] for i in (1, 2, 3)] == [toms[i].name for i in (low, mid, high)]
    out = result.y.mean(1) if result.y.ndim == 2 else result.y
    high_hit, _, mid_hit, low_hit = (variants.tom_pitch(out, SR, t, t + EIGHTH) for t in FILL)
    assert high_hit > low_hit + 0.4 and mid_hit > low_hit + 0.3, (high_hit, mid_hit, low_hit)   # octaves
    levels = variants._Levels(out, SR)
    assert variants.hat_ring(levels, OPEN_AT[0], OPEN_AT[0] + EIGHTH) > variants.OPEN_RING
    assert all(variants.hat_ring(levels, t, t + EIGHTH) < variants.OPEN_RING for t in CLOSED_AT)


def test_hits_cut_from_one_shared_separation():
    """`cut_hits` separates each region of overlapping hits once for all its drums (session 27; before,
    once per drum): fewer separations, the same hit of each drum, as long and as loud as it was cut
    alone (its shape is the NMF's and may differ: the 500 grid-kit pairs score the same either way)."""
    from redrum_kit import replace
    from redrum_kit.transcription import transcribe_signal
    y = _down_the_toms(_kit(11))
    found = transcribe_signal(y, SR, "groove")
    runs = []
    real = replace.regions
    replace.regions = lambda s: runs.append(len(real(s))) or real(s)
    try:
        shared = replace.cut_hits(y, SR, found)
        replace.regions = lambda s: [(a, b, [k]) for k, (a, b) in s.items()]
        alone = replace.cut_hits(y, SR, found)
    finally:
        replace.regions = real
    assert runs[0] < len(alone) == 7 and sorted(shared) == sorted(alone)
    for voice, (t, hit) in shared.items():
        other = alone[voice][1]
        assert alone[voice][0] == t and abs(len(hit) - len(other)) <= 1
        assert abs(20 * np.log10(np.sqrt(np.mean(hit ** 2)) / np.sqrt(np.mean(other ** 2)))) < 1.0, voice


def test_one_tom_stays_one_voice_on_the_old_note():
    """A groove whose fill plays one tom: one voice, "tom", on note 45, as before."""
    from redrum_kit.transcription import transcribe_signal
    kit = _kit(11)
    one = _toms_low_to_high(kit)[1]
    found = transcribe_signal(_groove(kit, [one] * 4), SR)
    toms = [k for k, e in enumerate(found.events) if e.cls == "tom"]
    assert toms and {found.voice(k) for k in toms} == {"tom"} and {found.note(k) for k in toms} == {45}


def test_eval_voices_cli(capsys):
    """`redrum eval voices` scores a held-out kit's open and closed hats and tom fills; bad input is one line."""
    from redrum_kit.cli import main
    assert main(["eval", "voices", "--kits", "ForzeeStereo", "--grooves", "1"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| ForzeeStereo |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert len(cells) == 6 and all(c != "-" for c in cells)              # hats and toms both scored
    assert all(0.0 <= float(c.split()[0]) <= 1.0 for c in cells)
    opened, closed = (float(c.split()[0]) * int(c.split()[1].strip("()")) for c in cells[:2])
    n_open, n_closed = (int(c.split()[1].strip("()")) for c in cells[:2])
    wrong = n_open - opened + n_closed - closed                          # the F of 46 from the same counts
    assert abs(float(cells[2]) - 2 * opened / (2 * opened + wrong)) < 0.002
    assert "| all |" in out
    assert main(["eval", "voices", "--kits", "machine-400102", "--grooves", "1"]) == 0   # a synthesiser kit by name
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| machine-400102 |"))
    assert all(c.strip() != "-" for c in row.strip("|").split("|")[4:])           # its toms scored
    for bad in (["--grooves", "0"], ["--kits", "NoSuchKit"], ["--kits", ","], ["--kits", "synth-x"]):
        assert main(["eval", "voices", *bad]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("redrum: error:") and len(err.splitlines()) == 1


def test_render_plays_tom_notes_the_kit_lacks_by_their_place_among_its_toms():
    """A fill on GM 50, 47, 43 (high, low-mid, high floor: what `transcribe` writes for three toms) on a kit
    whose toms are keyed 45, 47, 48: high, middle, low by pitch. Before, 50 and 43 played the first tom."""
    from redrum_kit.render import render
    from redrum_kit.rhythm.events import Event, Pattern
    kit = _kit(11)
    assert sorted(p.note for p in kit.kit.pads if p.cls == "tom") == [45, 47, 48]
    times = (0.0, 0.6, 1.2)
    y, _ = render(Pattern([Event(t, "tom", 110, n) for t, n in zip(times, (50, 47, 43))], 100.0, 2.0),
                  kit.kit, kit.samples, SR)
    high, mid, low = (variants.tom_pitch(y, SR, t, t + 0.5) for t in times)
    pitched = variants.pad_toms(kit.kit, kit.samples, SR)
    lowest, middle, highest = (pitched.key[v] for v in pitched.of_class("tom"))
    for heard, own in ((high, highest), (mid, middle), (low, lowest)):
        assert abs(heard - own) < 0.05, (heard, own)


def test_generated_fills_run_down_the_toms():
    """`redrum rhythm generate`'s tom fills run down the high, low-mid and floor toms (GM 50, 47, 43);
    before, every fill tom was 45. `tom_notes=False` keeps the old part, draw for draw (datasets)."""
    from redrum_kit.rhythm.generator import FILL_TOMS, generate
    runs = 0
    for seed in range(12):
        part, old = generate("rock", bars=8, seed=seed), generate("rock", bars=8, seed=seed, tom_notes=False)
        assert [(e.time, e.cls, e.velocity) for e in part.events] == [(e.time, e.cls, e.velocity) for e in old.events]
        assert all(e.note is None for e in old.events)
        for bar in range(8):
            fill = [e.note for e in part.events if e.cls == "tom" and bar <= e.time / part.bar_seconds < bar + 1]
            if len(fill) > 2:
                assert set(fill) <= set(FILL_TOMS) and fill == sorted(fill, reverse=True) and len(set(fill)) > 1
                runs += 1
    assert runs >= 3


def test_a_new_kit_keys_its_toms_low_to_high():
    """Toms chosen high, low, mid: the built kit keys them by pitch (low 45, mid 47, high 48), as GM's toms
    climb, so a DAW's low tom plays the low one. Before, they were keyed in the order chosen."""
    from redrum_kit.library import Library
    lib = Library()
    lib.import_synth([5])
    ids = {o.name: o.id for o in lib.list(kit="synth-0005")}
    toms = [n for n in ids if n.startswith("Tom")]
    assert sorted(toms) == ["Tom High", "Tom Low", "Tom Mid"]
    kit = lib.kit_from_ids("mine", [[ids["Kick"]], [ids["Tom High"]], [ids["Tom Low"]], [ids["Tom Mid"]]])
    note = {p.name: p.note for p in kit.pads}
    assert (note["Tom Low"], note["Tom Mid"], note["Tom High"]) == (45, 47, 48) and note["Kick"] == 36


def test_kit_rekey_keys_an_old_kits_toms_by_pitch_only_when_asked(capsys):
    """A kit keyed before session 26 (toms in the order chosen: high 45, low 47, mid 48): `redrum kit
    rekey` keys them low 45, mid 47, high 48 and leaves the other pads where they were; the old kit is
    kept as .bak, `-o` leaves it untouched, a second rekey writes nothing, bad input is one line."""
    from redrum_kit.cli import main
    from redrum_kit.library import Library
    lib = Library()
    lib.import_synth([5])
    ids = {o.name: o.id for o in lib.list(kit="synth-0005")}
    old = lib.kit_from_ids("old", [[ids["Kick"]], [ids["Tom High"]], [ids["Tom Low"]], [ids["Tom Mid"]]])
    for pad in old.pads:                        # as kits were keyed before: in the order chosen
        pad.note = {"Tom High": 45, "Tom Low": 47, "Tom Mid": 48}.get(pad.name, pad.note)
    lib.kits.save(old)

    def notes(name):
        return {p.name: p.note for p in Library().kits.load(name).pads}
    assert main(["kit", "rekey", "old", "-o", "new"]) == 0
    assert "Tom High 45 -> 48" in capsys.readouterr().out
    assert notes("old")["Tom High"] == 45                                   # -o: the old kit untouched
    assert notes("new") == {"Kick": 36, "Tom Low": 45, "Tom Mid": 47, "Tom High": 48}
    assert main(["kit", "rekey", "old"]) == 0
    assert notes("old") == notes("new")
    bak = lib.kits.user_dir / "old.toml.bak"
    assert bak.is_file() and "note = 47" in bak.read_text()                  # the old keys kept
    capsys.readouterr()
    assert main(["kit", "rekey", "new"]) == 0
    assert "nothing saved" in capsys.readouterr().out
    assert not (lib.kits.user_dir / "new.toml.bak").exists()
    for bad in (["NoSuchKit"], ["old", "-o", "bad/name"]):
        assert main(["kit", "rekey", *bad]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("redrum: error:") and len(err.splitlines()) == 1


def test_eval_voices_plays_one_fill_down_and_one_up():
    """The tom figures of `redrum eval voices` hear a fill up the kit too (a lower tom ringing under the next
    hit), not only fills down it, and each fill replaces what the groove played at its end."""
    from training.evaluate_voices import _fill_part
    down = [(50, 110), (50, 110), (47, 110), (47, 110), (43, 110), (43, 110)]
    part, (first, second) = _fill_part("rock", 3, down, down[::-1])
    assert [e.note for e in first] == [50, 50, 47, 47, 43, 43] and [e.note for e in second] == [43, 43, 47, 47, 50, 50]
    bar = part.bar_seconds
    for fill, b in ((first, 1), (second, 3)):
        start, end = b * bar + 10 * bar / 16 - 0.01, (b + 1) * bar
        assert sorted(e.time for e in part.events if start <= e.time < end) == [e.time for e in fill]


def _struck(f0: float, velocity: int, seconds: float = 0.6) -> np.ndarray:
    """A tom hit: its fundamental falling from 1.3 times `f0` to `f0` in 40 ms, and membrane overtones
    (1.59, 2.14, 2.65 times it) that ring louder the harder it is hit, as an acoustic tom's do."""
    t = np.arange(int(seconds * SR)) / SR
    pitch = f0 * (1 + 0.3 * np.exp(-t / 0.04))
    body = np.sin(2 * np.pi * np.cumsum(pitch) / SR) * np.exp(-t / 0.2)
    loud = velocity / 127
    modes = sum(np.sin(2 * np.pi * f0 * m * t) * np.exp(-t / 0.1) for m in (1.59, 2.14, 2.65))
    return loud * (body + 0.9 * loud ** 2 * modes)


def test_a_fill_on_one_tom_stays_one_voice_over_a_kick_tail_and_three_toms_come_out_three():
    """Session 30: a tom's pitch is its fundamental, not the centroid of its band. A fill on one tom at
    velocities 60-127 (its overtones louder the harder it is hit) after a kick whose 50 Hz tail rings under
    it is one voice; a fill up three toms 0.4 octave apart is three, in order. Before, the centroid
    moved with the velocity and split the one-tom fill in two."""
    from types import SimpleNamespace as Hit
    y = np.zeros(int(4.0 * SR))
    t = np.arange(int(1.5 * SR)) / SR
    y[:len(t)] += 0.8 * np.sin(2 * np.pi * 50 * t) * np.exp(-t / 0.5)             # the kick's tail
    one = [(0.3 + 0.125 * i, v) for i, v in enumerate((60, 127, 80, 110, 70, 120))]
    up = [(2.0 + 0.125 * i, f) for i, f in enumerate((100, 100, 132, 132, 175, 175))]
    for at, velocity in one:
        y[int(at * SR):int(at * SR) + int(0.6 * SR)] += _struck(110, velocity)
    for at, f0 in up:
        y[int(at * SR):int(at * SR) + int(0.6 * SR)] += _struck(f0, 110)
    events = [Hit(time=0.0, cls="kick")] + [Hit(time=at, cls="tom") for at, _ in one + up]
    found = variants.voices(y, SR, events)
    fill, rising = found.of_event[1:7], found.of_event[7:]
    assert len(set(fill)) == 1, fill
    notes = [found.note[v] for v in rising]
    assert notes[0] == notes[1] < notes[2] == notes[3] < notes[4] == notes[5], rising
