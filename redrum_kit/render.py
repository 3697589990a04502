"""Render a drum part with a kit: the sampler behind `redrum render`.

Velocity picks the pad's velocity layer and sets the gain with the SFZ
default curve (amplitude = (velocity / 127)^2), so a render sounds like the
same kit exported to SFZ. Pads in one choke group cut each other off with a
5 ms fade (a closed hat silences a ringing open hat). Samples are the
original files, resampled to the output rate, at full quality. A General
MIDI tom note the kit has no pad for plays the kit's tom in the same place
among its toms by pitch (a fill on 50, 47, 43 runs down three toms keyed 45,
47, 48), where before it played the kit's first tom.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from redrum_kit import audio, variants
from redrum_kit.library.kits import Kit, Pad
from redrum_kit.rhythm.events import Event, Pattern, RhythmError

CHOKE_FADE = 0.005  # seconds
GM_TOMS = (41, 43, 45, 47, 48, 50)   # General MIDI's toms, low floor to high
# when a kit has no pad of a class, play the nearest one it has
FALLBACK = {"clap": ["snare"], "snare": ["clap"], "hat_open": ["hat_closed", "cymbal"],
            "hat_closed": ["hat_open"], "cymbal": ["hat_open"], "tom": ["snare"], "perc": ["snare", "clap"],
            "kick": ["tom"]}


@dataclass
class RenderReport:
    substitutions: dict[str, str] = field(default_factory=dict)  # class -> class played instead
    skipped: dict[str, int] = field(default_factory=dict)        # class -> events with no pad at all
    peak_scaled: float = 1.0                                     # gain applied to keep the peak below 0 dBFS
    played: list[tuple[float, str, int]] = field(default_factory=list)  # (time, class of the pad, velocity)


def velocity_gain(velocity: int) -> float:
    """The SFZ default amplitude curve: (velocity / 127)^2."""
    return (max(1, min(127, velocity)) / 127.0) ** 2


def pad_gain(pad: Pad, velocity: int) -> float:
    return velocity_gain(velocity) * 10 ** (pad.gain_db / 20)


def velocity_layer(pad: Pad, velocity: int) -> int:
    """Index of the pad's sample layer whose velocity range holds `velocity` (else its last)."""
    return next((j for j, l in enumerate(pad.layers) if l.velocity[0] <= velocity <= l.velocity[1]),
                len(pad.layers) - 1)


def choose_pad(kit: Kit, event: Event, report: RenderReport, toms: list[Pad] | None = None) -> Pad | None:
    """The pad keyed to the event's note; else a tom note's place among the kit's `toms` (low to high);
    else the first pad of its class or of the nearest (FALLBACK)."""
    by_note = [p for p in kit.pads if p.note == event.midi_note()]
    if by_note:
        return by_note[0]
    if event.cls == "tom" and event.note in GM_TOMS and toms:
        return toms[round(GM_TOMS.index(event.note) * (len(toms) - 1) / (len(GM_TOMS) - 1))]
    cls = stand_in(event.cls, {p.cls for p in kit.pads})
    if cls is None:
        report.skipped[event.cls] = report.skipped.get(event.cls, 0) + 1
        return None
    if cls != event.cls:
        report.substitutions[event.cls] = cls
    return next(p for p in kit.pads if p.cls == cls)


def stand_in(cls: str, classes: set[str]) -> str | None:
    """The class of pad that plays a `cls` hit on a kit with pads of `classes`: its own, else the
    nearest (FALLBACK); None when neither is there."""
    return next((c for c in [cls] + FALLBACK.get(cls, []) if c in classes), None)


def render(pattern: Pattern, kit: Kit, samples: dict[tuple[int, int], np.ndarray], sr: int,
           tail: float = 1.0) -> tuple[np.ndarray, RenderReport]:
    """Mix the pattern.

    Args:
        samples: `(pad index, layer index)` -> audio at `sr`, mono `(time,)` or stereo `(time, 2)`
            (see `load_kit_samples`), or a `pads.PadSounds` (layered pads: the same sound per hit as
            live play).
        tail: seconds after the pattern's end for the last hits to ring.

    Returns:
        `(y, report)`: `y` float32, peak <= 0.99: `(time, 2)` when any sample is stereo (a mono one
        sits in the middle), else `(time,)`.
    """
    if not pattern.events:
        raise RhythmError("the pattern has no events")
    report = RenderReport()
    if hasattr(samples, "sound"):
        sound, stored = samples.sound, samples.samples
    else:
        def sound(index: int, velocity: int) -> np.ndarray:
            return samples[(index, velocity_layer(kit.pads[index], velocity))]
        stored = samples
    stereo = any(y.ndim == 2 for y in stored.values())
    toms = None
    keyed = {p.note for p in kit.pads}
    if any(e.cls == "tom" and e.note is not None and e.note not in keyed for e in pattern.events):
        toms = [kit.pads[int(v)] for v in variants.pad_toms(kit, stored, sr).of_class("tom")]   # by pitch
    out = np.zeros((int((pattern.length + tail) * sr) + 1,) + ((2,) if stereo else ()), np.float32)
    ringing: dict[int, tuple[int, np.ndarray]] = {}  # choke group -> (start, samples) of its last voice
    fade_n = max(1, int(CHOKE_FADE * sr))
    for event in pattern.events:
        pad = choose_pad(kit, event, report, toms)
        if pad is None:
            continue
        index = kit.pads.index(pad)
        start = int(round(event.time * sr))
        if start >= len(out):
            continue
        if pad.choke in ringing:
            s0, prev = ringing[pad.choke]
            rest = prev[start - s0:]
            if len(rest):  # what the cut voice would still play goes, but for a short fade
                keep = np.zeros(len(rest), np.float32)
                n = min(fade_n, len(rest))
                keep[:n] = np.linspace(1.0, 0.0, n, dtype=np.float32)
                out[start:start + len(rest)] -= rest * audio.fit_channels(1 - keep, rest.ndim)
        report.played.append((event.time, pad.cls, event.velocity))
        voice = audio.fit_channels(sound(index, event.velocity)[: len(out) - start] * pad_gain(pad, event.velocity),
                                   out.ndim)                   # a mono sound in a stereo mix: both sides
        out[start:start + len(voice)] += voice
        if pad.choke:
            ringing[pad.choke] = (start, voice)
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:
        report.peak_scaled = 0.99 / peak
        out *= report.peak_scaled
    return out, report


def load_kit_samples(kit: Kit, library, sr: int, mono: bool = True) -> dict[tuple[int, int], np.ndarray]:
    """Every layer of every pad as audio at `sr`: the original file (else the library's copy), retuned;
    `mono` false keeps a stereo file's two channels."""
    out = {}
    for i, pad in enumerate(kit.pads):
        for j, layer in enumerate(pad.layers):
            y, _ = audio.load(library.source_file(library.resolve_layer(layer)), sr=sr, mono=mono)
            out[(i, j)] = audio.retune(y, pad.tune) if pad.tune else y
    return out
