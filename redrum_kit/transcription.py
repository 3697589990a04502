"""Drum transcription as a chain of steps: audio -> activations -> events -> MIDI / JSON.

Two sources of activations share the chain:
- the CRNN (`models/transcriber.py`), the default once its checkpoint ships;
- `BandBaseline`, a DSP method (band-wise spectral flux with band rules), the
  baseline the CRNN is measured against and a fallback without a model.
Both give onset strengths `(5, frames)` in [0, 1] for kick, snare, hat, tom,
cymbal at 22050 / 256 frames a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from redrum_kit import audio, features, variants, workspace
from redrum_kit.errors import AudioError, ModelError
from redrum_kit.models import transcriber as crnn
from redrum_kit.rhythm.events import GM_CLASS, TRANSCRIPTION_CLASSES, Event, Pattern

MAX_SECONDS = 600.0
TEMPO_SEARCH = (50.0, 220.0)      # bpm: the beats `estimate_tempo` considers
DEFAULT_TEMPO = 120.0             # bpm, when a recording is too short to say (under MIN_TEMPO_SECONDS)
MIN_TEMPO_SECONDS = 2.0
LEVEL_PEAK = 0.99                 # every recording heard with its loudest sample here, where training clips peak
MAX_BOOST_DB = 40.0               # raised by no more than this,
QUIET_FLOOR_DB = -60.0            # and not at all when its peak is under this (dBFS): dither, a noise floor


def at_level(y: np.ndarray) -> np.ndarray:
    """`y` turned so that its peak sits at LEVEL_PEAK (raised by at most MAX_BOOST_DB), as the training
    clips' loudest hits do: how loud a recording was made does not change what is heard in it (without
    this, the shipped CRNN's kick F on the unseen real test clips fell from 0.91 to 0.74 30 dB down).
    A file peaking under QUIET_FLOOR_DB is heard as it is, so its noise is not raised into drums."""
    peak = audio.peak_level(y)
    if peak < 10 ** (QUIET_FLOOR_DB / 20):
        return y
    return (np.asarray(y, np.float32) * min(LEVEL_PEAK / peak, 10 ** (MAX_BOOST_DB / 20))).astype(np.float32)


class BandBaseline:
    """Onsets from spectral flux in the band where each drum lives.

    kick: 30-120 Hz, stronger than the tom band; snare: 150-400 Hz body
    together with 1-5 kHz wires; hat: 7-16 kHz; tom: 70-300 Hz without wires;
    cymbal: 4-12 kHz that keeps ringing. Each band's half-wave rectified
    log-flux is scaled by its own robust maximum into [0, 1].
    """

    threshold = 0.3  # its activations are scaled band energies, not probabilities

    BANDS = {"kick": (30, 120), "snare_body": (150, 400), "wires": (1000, 5000), "hat": (7000, 16000),
             "tom": (70, 300), "cymbal": (4000, 12000)}

    def __init__(self, cfg: crnn.TranscriberConfig | None = None):
        self.cfg = cfg or crnn.TranscriberConfig()  # the same framing as the CRNN: sr, hop, classes

    def activations(self, y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None]
        mag = features.stft_magnitude(x, 1024, self.cfg.hop_length)[0].numpy()
        freqs = np.fft.rfftfreq(1024, 1 / self.cfg.sr)
        band = {k: np.log1p(100 * mag[(freqs >= lo) & (freqs < hi)].mean(0)) for k, (lo, hi) in self.BANDS.items()}
        flux = {k: np.maximum(np.diff(v, prepend=v[:1]), 0) for k, v in band.items()}
        # how long the high band rings after each frame: hats are short, cymbals long
        ring = np.convolve(band["cymbal"], np.ones(30) / 30, mode="full")[: len(band["cymbal"])]
        ring = np.roll(ring, -29) / (band["cymbal"] + 1e-6)
        out = np.stack([
            flux["kick"] * (flux["kick"] > flux["tom"] * 0.6),
            np.sqrt(flux["snare_body"] * flux["wires"]),
            flux["hat"],
            flux["tom"] * (flux["wires"] < 0.5 * flux["tom"]),
            flux["cymbal"] * (ring >= 0.8),
        ])
        scale = np.percentile(out, 99.5, axis=1, keepdims=True) + 1e-6
        return np.clip(out / scale, 0, 1).astype(np.float32)


def checkpoint_path() -> Path:
    """Where the shipped CRNN checkpoint lives (it may not be installed)."""
    return workspace.model_file("transcriber.safetensors")


def load_model(method: str = "auto"):
    """The activation source: 'model' (the shipped CRNN), 'baseline', or 'auto' (the model when installed)."""
    if method == "auto":
        method = "model" if checkpoint_path().is_file() else "baseline"
    if method == "baseline":
        return BandBaseline()
    if method == "model":
        return crnn.load(checkpoint_path())
    raise ModelError(f"unknown transcription method {method!r}; choose model, baseline or auto")


def estimate_tempo(activations: np.ndarray, frame_rate: float) -> float | None:
    """The beat's tempo in bpm from onset activations `(classes, frames)`, or None under
    MIN_TEMPO_SECONDS. A chain of small steps:

        activations --sum over classes--> onset envelope --autocorrelation--> for each beat
        period in TEMPO_SEARCH: its score plus half its double's and a quarter of its quadruple's
        (beats group into half bars and bars), times a log-normal preference for 120 bpm (one
        octave wide) --best--> period, refined on the autocorrelation's peaks at its multiples
        (parabolic), so that a 4-bar loop gives the tempo to about 0.1 bpm.

    The classic errors remain possible: half or double the tempo (a fast jazz ride heard in half
    time), and a dotted-eighth figure heard as the beat (4/3 of it).
    """
    env = activations.sum(0).astype(np.float64)
    n = len(env)
    if n < MIN_TEMPO_SECONDS * frame_rate:
        return None
    env -= env.mean()
    acf = np.fft.irfft(np.abs(np.fft.rfft(env, 2 * n)) ** 2)[:n]
    if acf[0] <= 0:
        return None
    acf /= acf[0]

    def at(lag):
        return np.interp(lag, np.arange(n), acf, right=0.0)

    lags = np.arange(1, n)
    bpm = 60.0 * frame_rate / lags
    score = at(lags) + 0.5 * at(2 * lags) + 0.25 * at(4 * lags)
    score *= np.exp(-0.5 * np.log2(bpm / 120.0) ** 2)
    score[(bpm < TEMPO_SEARCH[0]) | (bpm > TEMPO_SEARCH[1])] = -np.inf
    lag = lags[int(np.argmax(score))]
    periods, weights = [float(lag)], [1e-9]
    reach = max(2, int(0.1 * lag))
    for k in range(1, 17):                      # the peak near each multiple within the first half, between frames
        a, b = k * lag - reach, k * lag + reach
        if b >= n // 2:
            break
        i = a + int(np.argmax(acf[a:b + 1]))
        if i in (a, b):                         # the window's edge: no peak here
            continue
        periods.append((i + crnn.parabolic_offset(acf[i - 1], acf[i], acf[i + 1])) / k)
        weights.append(max(acf[i], 0.0) * k)
    return float(60.0 * frame_rate / np.average(periods, weights=weights))


@dataclass
class Transcription:
    events: list[crnn.Onset]
    activations: np.ndarray       # (5, frames)
    frame_rate: float
    duration: float               # seconds
    tempo: float = DEFAULT_TEMPO  # bpm: given, or estimated from the activations
    tempo_from: str = "default"   # "given", "estimate" or "default" (too short to estimate)
    voices: variants.Voices | None = None   # which tom, open or closed hat (None: by class alone)

    def voice(self, k: int) -> str:
        """Event `k`'s voice ("tom 2", "hat open", ...; its class when not told apart)."""
        return self.voices.of_event[k] if self.voices else self.events[k].cls

    def note(self, k: int) -> int:
        """The General MIDI note event `k` is written on: its voice's."""
        return self.voices.note[self.voice(k)] if self.voices else variants.CLASS_NOTE[self.events[k].cls]

    def to_json(self) -> dict:
        return {"events": [{"time": round(e.time, 4), "class": e.cls, "velocity": e.velocity,
                            "confidence": round(e.confidence, 3)} for e in self.events],
                "voices": [self.voice(k) for k in range(len(self.events))],     # each event's, in order
                "notes": [self.note(k) for k in range(len(self.events))],
                "classes": list(TRANSCRIPTION_CLASSES), "frame_rate": self.frame_rate, "duration": self.duration,
                "tempo": round(self.tempo, 2), "tempo_from": self.tempo_from}

    def pattern(self) -> Pattern:
        """The events at their times, each on its voice's note, in a pattern of the transcription's tempo
        (the MIDI file's)."""
        notes = [self.note(k) for k in range(len(self.events))]
        return Pattern([Event(e.time, GM_CLASS[n], e.velocity, n) for e, n in zip(self.events, notes)],
                       self.tempo, self.duration)


def describe(result: dict) -> str:
    """A transcription's JSON -> "12 events (6 kick, 4 hat (1 open), 2 tom on 2 notes) at 96 bpm (estimated)"."""
    counts: dict[str, int] = {}
    voices: dict[str, set] = {}
    for e, voice in zip(result["events"], result.get("voices") or [e["class"] for e in result["events"]]):
        counts[e["class"]] = counts.get(e["class"], 0) + 1
        voices.setdefault(e["class"], set()).add(voice)
    opened = sum(v == "hat open" for v in result.get("voices") or [])

    def said(cls: str, n: int) -> str:
        if cls == "hat" and opened:
            return f"{n} hat ({opened} open)"
        return f"{n} tom on {len(voices[cls])} notes" if cls == "tom" and len(voices[cls]) > 1 else f"{n} {cls}"

    how = {"given": "as given", "estimate": "estimated", "default": "default: too short to estimate"}
    return (f"{len(result['events'])} events ({', '.join(said(c, n) for c, n in counts.items())}) "
            f"at {result['tempo']:g} bpm ({how[result['tempo_from']]})")


def transcribe(path: Path, method: str = "auto", threshold: float | None = None, source=None,
               tempo: float | None = None) -> Transcription:
    """Transcribe an audio file (any format, rate, length up to MAX_SECONDS)."""
    y, sr = audio.load(path, max_seconds=MAX_SECONDS, require_sound=True, what="recording")
    return transcribe_signal(y, sr, Path(path).name, method, threshold, source, tempo)


def transcribe_signal(y: np.ndarray, sr: int, name: str = "audio", method: str = "auto",
                      threshold: float | None = None, source=None, tempo: float | None = None) -> Transcription:
    """Transcribe a mono signal at any rate `sr` (`name` is for messages); `tempo` (bpm) is the
    pattern's, else estimated from the activations (`estimate_tempo`)."""
    source = source or load_model(method)
    threshold = threshold if threshold is not None else getattr(source, "threshold", 0.5)
    y = audio.resample(y, sr, source.cfg.sr)
    probs = source.activations(at_level(y))
    found = crnn.peak_pick(probs, source.cfg.frame_rate, source.cfg.classes, threshold)
    vels = crnn.velocities(y, source.cfg.sr, [(t, c) for t, c, _ in found])
    events = [crnn.Onset(t, c, v, p) for (t, c, p), v in zip(found, vels)]
    if not events:
        raise AudioError(f"{name}: no drum events found")
    if tempo is None:
        tempo = estimate_tempo(probs, source.cfg.frame_rate)
        tempo_from = "default" if tempo is None else "estimate"
    else:
        tempo_from = "given"
    return Transcription(events, probs, source.cfg.frame_rate, len(y) / source.cfg.sr,
                         tempo or DEFAULT_TEMPO, tempo_from, variants.voices(y, source.cfg.sr, events))
