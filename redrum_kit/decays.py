"""Decay shaping: the redrum's output dies away as the source's drums do.

The rhythm transformer blends several source frames into each output frame,
so its hits ring on where the source's own drums are already silent (an
electronic kit's 40 ms hat comes out with a 200 ms tail). This step measures,
for each drum class, how the source's hits decay band by band, and lowers
(never raises) the output wherever it is louder than those decays allow
after the target's onsets. A chain of small steps:

    source --transcriber--> onsets --band levels--> per class: level at the
        hit and its decay after the hit (`decay_profiles`)
    target --transcriber--> onsets (class, time)
    output --band levels--> the ceiling each target onset allows
        (`allowed_levels`) --> a gain per band and frame, at most 0 dB
        (`shape_decays`)

Classes the source never plays are left as the model made them, and so is
everything before the target's first onset. An interpolation step plays two
rhythms at once (A's fading out, B's in): `shape_to_rhythms` allows after
the hits of both.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
import torch

N_FFT = 1024
HOP_LENGTH = 256
BAND_EDGES_HZ = (100, 200, 400, 800, 1600, 3200, 6400)     # 8 bands: below 100 Hz ... above 6.4 kHz
DECAY_FRAMES = 40          # frames after a hit measured (0.46 s at 22,050 Hz); later ones hold the last value
REACH_SECONDS = 3.0        # how long after a hit its allowance lasts (a training clip's length)
MARGIN_DB = 3.0            # headroom above the source's typical decay
MAX_CUT_DB = 20.0          # the most a band is lowered
FLOOR_DB = -80.0


def _stft(y: np.ndarray) -> torch.Tensor:
    y = np.asarray(y, np.float32)
    y = np.pad(y, (0, max(0, N_FFT - len(y))))            # a very short signal still makes whole frames
    return torch.stft(torch.from_numpy(y), N_FFT, HOP_LENGTH, window=torch.hann_window(N_FFT), return_complex=True)


def _band_index(sr: int) -> np.ndarray:
    """The band of each STFT bin."""
    return np.searchsorted(np.asarray(BAND_EDGES_HZ), np.fft.rfftfreq(N_FFT, 1 / sr), side="right")


def band_levels_db(spec: torch.Tensor, sr: int) -> np.ndarray:
    """STFT `(bins, frames)` -> power per band in dB `(bands, frames)`, floored at FLOOR_DB."""
    power = spec.abs().square().numpy().astype(np.float64)
    bands = _band_index(sr)
    level = np.stack([power[bands == b].sum(0) for b in range(len(BAND_EDGES_HZ) + 1)])
    return np.maximum(10 * np.log10(level + 1e-12), FLOOR_DB)


def onset_frames(onsets: list[tuple[float, str]], sr: int) -> list[tuple[int, str]]:
    """(time s, class) -> (STFT frame, class)."""
    return [(int(round(t * sr / HOP_LENGTH)), cls) for t, cls in onsets]


@dataclass
class DecayProfile:
    peak: np.ndarray           # (bands,) median band level at the class's hits, dB
    decay: np.ndarray          # (bands, DECAY_FRAMES) median level after a hit relative to its peak, dB, non-increasing


def _peak(levels: np.ndarray, frame: int) -> np.ndarray:
    """Band levels at a hit: the loudest of the frame before it and the three from it."""
    return levels[:, max(frame - 1, 0):frame + 3].max(1)


def decay_profiles(levels: np.ndarray, onsets: list[tuple[int, str]]) -> dict[str, DecayProfile]:
    """Source band levels `(bands, frames)` and its onsets (frame, class) -> each class's profile.

    A hit is followed only until the next onset of any class (what comes after
    is another drum); frames no hit was followed for hold the last measured
    value, and the decay never rises again.
    """
    starts = sorted({f for f, _ in onsets})
    frames = levels.shape[1]
    curves: dict[str, list[np.ndarray]] = {}
    peaks: dict[str, list[np.ndarray]] = {}
    for f, cls in onsets:
        k = bisect.bisect_right(starts, f + 1)                # the next onset more than a frame later
        end = min(starts[k] - 1 if k < len(starts) else frames, f + DECAY_FRAMES, frames)
        if end - f < 3:
            continue
        peak = _peak(levels, f)
        curve = np.full((levels.shape[0], DECAY_FRAMES), np.nan)
        curve[:, :end - f] = levels[:, f:end] - peak[:, None]
        curves.setdefault(cls, []).append(curve)
        peaks.setdefault(cls, []).append(peak)
    out = {}
    for cls, cs in curves.items():
        stack = np.stack(cs)
        measured = ~np.isnan(stack).all(0)
        decay = np.where(measured, np.nanmedian(np.where(measured, stack, 0.0), 0), np.nan)
        for row in decay:                                  # hold the last value where no hit was followed
            last = 0.0
            for k in range(DECAY_FRAMES):
                last = row[k] = last if np.isnan(row[k]) else row[k]
        decay = np.minimum.accumulate(np.maximum(decay, FLOOR_DB), axis=1)
        out[cls] = DecayProfile(np.median(np.stack(peaks[cls]), 0), decay)
    return out


def _power_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", divide="ignore"):        # -inf and -inf: -inf
        return 10 * np.log10(10 ** (a / 10) + 10 ** (b / 10))


def allowed_levels(levels: np.ndarray, target_levels: np.ndarray, onsets: list[tuple[int, str]],
                   profiles: dict[str, DecayProfile], sr: int) -> np.ndarray:
    """The ceiling `(bands, frames)` in dB each band of the output may reach: after each target onset,
    the output's own level at the hit (at most the source's level for that class, moved by how much
    louder or softer the target plays this hit than its other hits of the class) plus the source's
    decay for the class and MARGIN_DB, for REACH_SECONDS; overlapping hits add as powers. +inf where
    nothing is known (before the first onset; from a drum the source never plays on); -inf more than
    REACH_SECONDS after every hit (the target is silent there: `shape_decays` lowers it by MAX_CUT_DB)."""
    bands, frames = levels.shape
    reach = max(DECAY_FRAMES, int(round(REACH_SECONDS * sr / HOP_LENGTH)))
    if not onsets:
        return np.full((bands, frames), np.inf)
    allow = np.full((bands, frames), -np.inf)
    allow[:, :max(min(f for f, _ in onsets) - 1, 0)] = np.inf
    loudness = [_peak(target_levels, f).max() for f, _ in onsets]      # how hard the target plays each hit
    typical = {c: np.median([v for v, (_, d) in zip(loudness, onsets) if d == c]) for c in {c for _, c in onsets}}
    for (f, cls), loud in zip(onsets, loudness):
        a, b = max(f - 1, 0), min(frames, f + reach)
        if cls not in profiles:            # a drum the source never plays: nothing to shape it by
            allow[:, a:b] = np.inf
            continue
        p = profiles[cls]
        peak = np.minimum(_peak(levels, f), p.peak + (loud - typical[cls]))
        curve = np.concatenate([np.zeros((bands, f - a)), p.decay, p.decay[:, -1:].repeat(reach, 1)], 1)
        allow[:, a:b] = _power_sum(allow[:, a:b], peak[:, None] + curve[:, :b - a] + MARGIN_DB)
    return allow


def shape_decays(y: np.ndarray, source: np.ndarray, target: np.ndarray, sr: int,
                 source_onsets: list[tuple[float, str]], target_onsets: list[tuple[float, str]]) -> np.ndarray:
    """The output `y` with each band lowered where it rings longer than the source's drums of the
    class the target plays there (at most MAX_CUT_DB, never raised). Signals mono at `sr`; onsets
    (time s, class) from one transcriber. -> `y`'s length, float32."""
    return shape_to_rhythms(y, source, sr, source_onsets, [(target, target_onsets)])


def shape_to_rhythms(y: np.ndarray, source: np.ndarray, sr: int, source_onsets: list[tuple[float, str]],
                     rhythms: list[tuple[np.ndarray, list[tuple[float, str]]]]) -> np.ndarray:
    """`shape_decays` after the hits of several rhythms at once, each `(signal, its onsets)`: what an
    interpolation step between two rhythms plays. Each rhythm's allowance is measured on its own
    signal (how hard it plays each hit) and the allowances add as powers, so a hit of either rhythm
    may ring as the source's drum of its class does."""
    profiles = decay_profiles(band_levels_db(_stft(source), sr), onset_frames(source_onsets, sr))
    spec = _stft(y)
    levels = band_levels_db(spec, sr)
    allow = np.full(levels.shape, -np.inf)
    for target, onsets in rhythms:
        target_levels = band_levels_db(_stft(np.pad(target[:len(y)], (0, max(0, len(y) - len(target))))), sr)
        allow = _power_sum(allow, allowed_levels(levels, target_levels, onset_frames(onsets, sr), profiles, sr))
    gain_db = np.clip(allow - levels, -MAX_CUT_DB, 0.0)
    gain = torch.from_numpy((10 ** (gain_db / 20))[_band_index(sr)]).float()
    out = torch.istft(spec * gain, N_FFT, HOP_LENGTH, window=torch.hann_window(N_FFT), length=len(y))
    return out.numpy().astype(np.float32)
