"""Drum replacement, the DSP redrum: the source's own hits on the target's events.

1. Transcribe the target: its events (time, class, velocity) are the part to play.
2. Transcribe the source and cut one hit per class out of it: the most
   isolated one (farthest from any other onset, so a kick layered under a
   crash is avoided), from just before its onset to the next onset.
3. Play the target's events with those hits (the sampler of `render.py`:
   velocity sets the gain, hats choke), at the target's rate and length.
A class the source never plays falls back to the nearest one, and the result
says so. With a library kit instead of a source, step 2 is skipped.

This is both a feature and the baseline the learned redrum must beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from redrum_kit import audio
from redrum_kit.errors import AudioError
from redrum_kit.library.kits import Kit, Layer, Pad, assign_notes, default_choke
from redrum_kit.render import render
from redrum_kit.transcription import EVENT_CLASS, MAX_SECONDS, Transcription, transcribe_signal

PRE_ROLL = 0.005     # seconds kept before an onset
MAX_HIT = 1.5        # seconds: the longest hit cut from the source
MIN_HIT = 0.03


@dataclass
class ReplaceResult:
    y: np.ndarray
    sr: int
    events: int
    source_hits: dict[str, float] = field(default_factory=dict)   # class -> time of the hit used (s)
    substitutions: dict[str, str] = field(default_factory=dict)   # class -> class played instead

    def to_json(self) -> dict:
        return {"method": "replace", "events": self.events, "sample_rate": self.sr,
                "source_hits": {k: round(v, 4) for k, v in self.source_hits.items()},
                "substitutions": self.substitutions}


def cut_hits(y: np.ndarray, sr: int, found: Transcription) -> dict[str, tuple[float, np.ndarray]]:
    """One hit per class from a transcribed recording: class -> (onset time, audio)."""
    times = np.array(sorted(e.time for e in found.events))
    hits = {}
    for cls in dict.fromkeys(e.cls for e in found.events):
        best, best_score = None, -1.0
        for e in (e for e in found.events if e.cls == cls):
            others = np.abs(times - e.time)
            others = others[others > 1e-4]
            isolation = float(others.min()) if others.size else MAX_HIT
            score = min(isolation, MAX_HIT) * (0.5 + e.confidence)
            if score > best_score:
                best, best_score = e, score
        later = times[times > best.time + 1e-4]
        end = min(best.time + MAX_HIT, float(later[0]) if later.size else best.time + MAX_HIT, len(y) / sr)
        start = max(0.0, best.time - PRE_ROLL)
        if end - start < MIN_HIT:
            continue
        hit = audio.fade_out(y[int(start * sr): int(end * sr)], sr, min(0.01, (end - start) / 4))
        hits[cls] = (best.time, audio.peak_normalize(hit))
    return hits


def replace_drums(target: Path, source: Path | None = None, kit: Kit | None = None,
                  kit_samples: dict | None = None, method: str = "auto") -> ReplaceResult:
    """Redrum `target` with the hits of `source` (or with `kit` and its samples at the target's rate)."""
    t_y, t_sr = audio.load(target, max_seconds=MAX_SECONDS, require_sound=True, what="target")
    s_y = None
    if kit is None:
        if source is None:
            raise AudioError("give a source recording or a kit")
        s_y, _ = audio.load(source, sr=t_sr, max_seconds=MAX_SECONDS, require_sound=True, what="source")
    return replace_signal(t_y, t_sr, s_y, kit, kit_samples, method,
                          Path(target).name, Path(source).name if source else "source")


def replace_signal(t_y: np.ndarray, sr: int, s_y: np.ndarray | None = None, kit: Kit | None = None,
                   kit_samples: dict | None = None, method: str = "auto", target_name: str = "target",
                   source_name: str = "source", transcriber=None) -> ReplaceResult:
    """`replace_drums` on signals at one rate `sr`: the target `t_y`, the source `s_y` (or a kit)."""
    t_events = transcribe_signal(t_y, sr, target_name, method, source=transcriber)
    hits: dict[str, tuple[float, np.ndarray]] = {}
    if kit is None:
        hits = cut_hits(s_y, sr, transcribe_signal(s_y, sr, source_name, method, source=transcriber))
        if not hits:
            raise AudioError(f"{source_name}: no usable drum hits in the source")
        pads = [Pad(name=cls, cls=EVENT_CLASS[cls], note=0, layers=[Layer()], choke=default_choke(EVENT_CLASS[cls]))
                for cls in hits]
        kit = Kit(name="source", pads=assign_notes(pads))
        kit_samples = {(i, 0): hits[cls][1] for i, cls in enumerate(hits)}
    part = t_events.pattern()
    y, report = render(part, kit, kit_samples, sr, tail=0.0)
    y = np.pad(y, (0, max(0, len(t_y) - len(y))))[: len(t_y)]
    return ReplaceResult(y=y, sr=sr, events=len(report.played),
                         source_hits={cls: t for cls, (t, _) in hits.items()},
                         substitutions=dict(report.substitutions))
