"""Audio I/O: load any common format to mono float32, write wav/flac safely.

Signals are numpy arrays `y` of shape `(time,)`, float32, nominally in
[-1, 1], with their sample rate `sr` in Hz beside them. Decoding goes through
libsndfile (soundfile), which reads wav, flac, aiff, ogg and mp3; resampling
goes through `torchaudio.functional.resample`.

Everything a user can get wrong raises `AudioError` with a message that names
the file and says what is wrong with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from redrum_kit import files
from redrum_kit.errors import AudioError

READ_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3")
WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
SILENCE_PEAK = 1e-5  # about -100 dBFS: below this a file counts as silent


def format_duration(seconds: float) -> str:
    """`75.5` -> `"1:15.5"`; short durations as seconds (`"2.5 s"`)."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: cannot be read (permission denied)")


def info(path: str | os.PathLike) -> tuple[float, int, int]:
    """Read the header only: `(duration in seconds, sr, channels)`."""
    path = Path(path)
    _check_path(path)
    try:
        meta = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for garbage
        raise AudioError(f"{path.name}: not an audio file I can read "
                         f"(wav, flac, aiff, ogg, mp3): {_short(exc)}") from None
    if meta.samplerate <= 0:
        raise AudioError(f"{path.name}: has an invalid sample rate")
    return meta.frames / meta.samplerate, int(meta.samplerate), int(meta.channels)


def load(path: str | os.PathLike, sr: int | None = None, *,
         max_seconds: float | None = None, require_sound: bool = False,
         what: str = "file", mono: bool = True) -> tuple[np.ndarray, int]:
    """Load an audio file as mono float32 (with `mono` false, a stereo file as stereo).

    Args:
        path: wav, flac, aiff, ogg or mp3 file.
        sr: rate to resample to in Hz; `None` keeps the file's own rate.
        max_seconds: refuse files longer than this (checked from the header,
            before decoding, so a 2-hour file costs nothing to reject).
        require_sound: refuse files that are silent (peak below -100 dBFS).
        what: what the file is for, used in messages ("oneshot", "target").
        mono: false keeps a two-channel file's channels (`(time, 2)`); any other file is mono.

    Returns:
        `(y, sr)`: `y` of shape `(time,)` (or `(time, 2)`), float32; `sr` in Hz.
    """
    path = Path(path)
    duration, file_sr, _ = info(path)
    if duration <= 0:
        raise AudioError(f"{path.name}: the {what} is empty (no samples)")
    if max_seconds is not None and duration > max_seconds:
        raise AudioError(f"{path.name}: the {what} is too long ({format_duration(duration)}; "
                         f"the limit is {format_duration(max_seconds)})")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path.name}: the audio data cannot be decoded: {_short(exc)}") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path.name}: the {what} is empty (no samples)")
    y = data.mean(axis=1, dtype=np.float32)
    validate(y, name=path.name, what=what, require_sound=require_sound)
    if not mono and data.shape[1] == 2:
        y = data
    if sr is not None and sr != file_sr:
        y = resample(y, file_sr, sr)
        file_sr = sr
    return y, int(file_sr)


def validate(y: np.ndarray, *, name: str = "audio", what: str = "file",
             require_sound: bool = False) -> None:
    """Raise `AudioError` if `y` is empty, holds NaN/Inf, or is silent when sound is required."""
    if y.size == 0:
        raise AudioError(f"{name}: the {what} is empty (no samples)")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{name}: the {what} holds invalid samples (NaN or infinity)")
    if require_sound and float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise AudioError(f"{name}: the {what} is silent")


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling, `(time,)` -> `(time',)` (or `(time, channels)` -> `(time', channels)`)."""
    if orig_sr == target_sr:
        return y
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(np.asarray(y).T, dtype=np.float32)),
                      int(orig_sr), int(target_sr))
    return np.ascontiguousarray(out.numpy().T)


def retune(y: np.ndarray, semitones: float) -> np.ndarray:
    """Play `y` faster or slower, as a sampler retunes a oneshot (pitch and length change together).

    The ratio is rounded to 1/200 (about 9 cents) so that the resampling
    kernel stays small.
    """
    ratio = round(2 ** (semitones / 12) * 200)
    return resample(y, ratio, 200) if ratio != 200 else y


def save(path: str | os.PathLike, y: np.ndarray, sr: int, *,
         subtype: str | None = None, overwrite: bool = False) -> Path:
    """Write a wav or flac file through a temporary file and an atomic rename.

    A reader never sees a half-written file, and an existing file is never
    replaced unless `overwrite` is true.

    Args:
        y: `(time,)` mono or `(time, channels)`, float.
        sr: sample rate in Hz (any rate libsndfile accepts).
        subtype: libsndfile subtype, e.g. "PCM_24"; default: PCM_24 for
            flac, FLOAT for wav.
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path.name}: can only write .wav or .flac files")
    if path.exists() and not overwrite:
        raise AudioError(f"{path}: already exists; choose another name (nothing was overwritten)")
    y = np.asarray(y, dtype=np.float32)
    validate(y, name=path.name, what="output")
    if subtype is None:
        subtype = "PCM_24" if fmt == "FLAC" else "FLOAT"
    if not path.parent.is_dir():
        raise AudioError(f"{path.parent}: output folder does not exist")
    tmp = files.temp_sibling(path)
    try:
        sf.write(str(tmp), y, int(sr), format=fmt, subtype=subtype)
        files.publish(tmp, path, overwrite)
    except FileExistsError:
        raise AudioError(f"{path}: already exists; choose another name (nothing was overwritten)") from None
    except BaseException:
        files.remove(tmp)
        raise
    return path


def peak_db(y: np.ndarray, sr: int, time: float, window: float = 0.03) -> float:
    """The peak level (dBFS, floored at -120) of `y` in the `window` s after `time`: how hard a hit is played."""
    seg = y[int(time * sr):int((time + window) * sr)]
    return 20 * float(np.log10(max(float(np.abs(seg).max()) if seg.size else 0.0, 1e-6)))


def peak_level(y: np.ndarray) -> float:
    """The largest |sample| of `y` (0 for an empty signal)."""
    return float(np.max(np.abs(y))) if np.size(y) else 0.0


def peak_normalize(y: np.ndarray, peak: float = 0.99) -> np.ndarray:
    """Scale so that max |y| == `peak` (silent input is returned unchanged)."""
    top = peak_level(y)
    if top < SILENCE_PEAK:
        return y.astype(np.float32, copy=True)
    return (y * (peak / top)).astype(np.float32)


def start_sample(y: np.ndarray) -> int:
    """Where a oneshot starts: its first sample at a tenth of its peak (0 when silent)."""
    top = peak_level(y)
    return int(np.argmax(np.abs(y) >= 0.1 * top)) if top > 0 else 0


def trim_leading_silence(y: np.ndarray, sr: int, threshold_db: float = -50.0,
                         pre_roll: float = 0.001) -> np.ndarray:
    """Start exactly `pre_roll` seconds before the first sample above `threshold_db` re. the peak.

    The result does not depend on how much silence the file had: a hit with
    leading silence and the same hit without it give the same samples
    (zeros are prepended when the file starts with less than `pre_roll`).
    """
    top = peak_level(y)
    if top < SILENCE_PEAK:
        return y
    first = int(np.flatnonzero(np.abs(y) >= top * 10 ** (threshold_db / 20))[0])
    keep = int(pre_roll * sr)
    if first >= keep:
        return y[first - keep:]
    return np.concatenate([np.zeros(keep - first, dtype=y.dtype), y])


def fit_channels(y: np.ndarray, ndim: int) -> np.ndarray:
    """`y` (`(time,)` or `(time, channels)`) shaped to add to or scale a signal of `ndim` dimensions:
    a mono signal (or a gain curve over time) in a stereo one goes to every channel."""
    return y[:, None] if ndim == 2 and y.ndim == 1 else y


def fade_out(y: np.ndarray, sr: int, seconds: float = 0.01) -> np.ndarray:
    """Apply a raised-cosine fade over the last `seconds` (avoids a click at a cut); `(time[, channels])`."""
    n = min(len(y), max(1, int(seconds * sr)))
    out = y.copy()
    out[-n:] *= fit_channels(0.5 * (1 + np.cos(np.linspace(0, np.pi, n, dtype=np.float32))), y.ndim)
    return out


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:160] if text else type(exc).__name__
