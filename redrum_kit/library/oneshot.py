"""What the library keeps of one oneshot, and how its normalised copy is made."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import torch

from redrum_kit import audio, features

LIBRARY_SR = 44100          # rate of the normalised copies
MAX_ONESHOT_SECONDS = 6.0   # copies are cut (with a fade) after this
MAX_IMPORT_SECONDS = 30.0   # longer files are not oneshots: rejected


@dataclass
class Oneshot:
    id: int
    hash: str
    path: str           # the original file
    copy: str           # normalised copy, relative to the workspace
    name: str
    cls: str
    confidence: float
    class_source: str
    kit: str
    source: str
    velocity_low: int
    velocity_high: int
    duration: float
    orig_sr: int
    orig_peak: float
    name_class: str | None
    imported_at: str

    @classmethod
    def from_row(cls, row) -> "Oneshot":
        data = dict(row)
        data["cls"] = data.pop("class")
        return cls(**data)

    def to_json(self) -> dict:
        data = asdict(self)
        data["class"] = data.pop("cls")
        return data


def normalise(y: np.ndarray, sr: int) -> np.ndarray:
    """Mono `y` at `sr` -> the library's copy: LIBRARY_SR, leading silence
    trimmed, peak-normalised to 0.99, at most MAX_ONESHOT_SECONDS (faded)."""
    y = audio.resample(y, sr, LIBRARY_SR)
    y = audio.trim_leading_silence(y, LIBRARY_SR)
    y = audio.peak_normalize(y)
    limit = int(MAX_ONESHOT_SECONDS * LIBRARY_SR)
    if len(y) > limit:
        y = audio.fade_out(y[:limit], LIBRARY_SR, 0.05)
    return y.astype(np.float32)


def content_hash(y: np.ndarray) -> str:
    """sha256 of the normalised copy as 16-bit PCM.

    The same sound imported again, from another format, folder, gain or with
    more leading silence, gets the same hash.
    """
    pcm = np.clip(np.round(y * 32767), -32768, 32767).astype("<i2")
    return hashlib.sha256(pcm.tobytes()).hexdigest()


def same_sound(a: np.ndarray, b: np.ndarray, min_correlation: float = 0.999) -> bool:
    """Whether two normalised copies are one sound (re-encoded, re-gained, dithered).

    Lengths must agree within 1% (the tail may be cut at a different level);
    the waveforms, compared over the shorter length, must correlate at
    `min_correlation` or better.
    """
    n = min(len(a), len(b))
    if n == 0 or abs(len(a) - len(b)) > 0.01 * max(len(a), len(b)) + 64:
        return False
    x, y = a[:n].astype(np.float64), b[:n].astype(np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12)) >= min_correlation


def compute_features(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised copy -> (layering feature, MFCC summary), float32 each."""
    y22 = torch.from_numpy(audio.resample(y, LIBRARY_SR, features.FEATURE_SR))
    with torch.no_grad():
        return (features.layering_feature(y22).numpy().astype(np.float32),
                features.mfcc_summary(y22).numpy().astype(np.float32))
