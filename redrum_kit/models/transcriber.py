"""Drum transcription: audio -> frame-wise onset probabilities -> events.

A compact CRNN (as in the drum-transcription literature: convolutional front
end over log-mel, a bidirectional GRU for context, a sigmoid per class and
frame) for kick, snare, hat, tom and cymbal. Processing is a chain of small
steps, each inspectable:

    y --log_mel--> features --Transcriber--> activations --peak_pick--> events

Frame rate: `sr / hop_length` (22050 / 256 = 86.1 frames a second, 11.6 ms),
the same as the dataset builder's targets.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from redrum_kit import features
from redrum_kit.models import checkpoint
from redrum_kit.rhythm.events import TRANSCRIPTION_CLASSES


@dataclass
class TranscriberConfig:
    sr: int = 22050
    hop_length: int = 256
    n_mels: int = 80
    n_ffts: list[int] = field(default_factory=lambda: [features.N_FFT])   # window of each log-mel the model
                                                           # hears, one input channel each (several: short
                                                           # windows for attacks, long ones for pitch and ring)
    channels: list[int] = field(default_factory=lambda: [16, 32, 48])
    hidden: int = 64
    dropout: float = 0.2
    classes: list[str] = field(default_factory=lambda: list(TRANSCRIPTION_CLASSES))
    thresholds: list[float] = field(default_factory=list)  # per class, tuned on validation; empty: 0.5
    aux_classes: list[str] = field(default_factory=list)   # finer drums (library classes such as hat_open) a
                                                           # second output learns in training; unused after

    @property
    def frame_rate(self) -> float:
        return self.sr / self.hop_length


class FreqPool(nn.Module):
    """Max over pairs of neighbouring frequency bins, `(B, C, F, T) -> (B, C, F // 2, T)`.

    Same result as `MaxPool2d((2, 1))`, several times faster on CPU.
    """

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c, f, t = h.shape
        return h[:, :, : f // 2 * 2].reshape(b, c, f // 2, 2, t).amax(3)


class Transcriber(nn.Module):
    """log-mel `(batch, n_mels, frames)` -> onset logits `(batch, n_classes, frames)`.

    The convolutions see a few frames either side; the bidirectional GRU sees
    the window it is given. Training clips are 3 s, so long signals go
    through the GRU as a batch of overlapping windows of about that length
    (`activations`): the context it was trained with, and far fewer
    sequential steps than one pass over the whole file.
    """

    def __init__(self, cfg: TranscriberConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = len(cfg.n_ffts)
        for c in cfg.channels:  # pool over frequency only: time resolution is the point
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                       FreqPool(), nn.Dropout(cfg.dropout / 2)]
            c_in = c
        self.conv = nn.Sequential(*layers)
        freq = cfg.n_mels // 2 ** len(cfg.channels)
        self.gru = nn.GRU(c_in * freq, cfg.hidden, batch_first=True, bidirectional=True)
        self.out = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(2 * cfg.hidden, len(cfg.classes)))
        self.aux = self.aux_head(cfg.aux_classes) if cfg.aux_classes else None

    def aux_head(self, classes: list[str]) -> nn.Module:
        """The second output, one logit per finer drum (`cfg.aux_classes`) and frame, beside `out`."""
        return nn.Sequential(nn.Dropout(self.cfg.dropout), nn.Linear(2 * self.cfg.hidden, len(classes)))

    def add_aux(self, classes: list[str]) -> None:
        """Give a model (trained without one) the second output for `classes`, freshly initialised."""
        self.cfg.aux_classes = list(classes)
        self.aux = self.aux_head(self.cfg.aux_classes) if classes else None

    @property
    def threshold(self):
        """Peak-picking threshold: per class when tuned (`cfg.thresholds`), else 0.5."""
        return list(self.cfg.thresholds) if self.cfg.thresholds else 0.5

    def add_inputs(self, n_ffts: list[int]) -> None:
        """Hear the log-mels of `n_ffts` (`cfg.n_ffts`) instead: the first convolution keeps its weights for
        the windows it heard and starts at zero for the new ones, so the model's output is unchanged until
        it learns to use them."""
        old = self.conv[0]
        new = nn.Conv2d(len(n_ffts), old.out_channels, old.kernel_size, padding=old.padding).to(old.weight.device)
        with torch.no_grad():
            new.weight.zero_()
            new.bias.copy_(old.bias)
            for i, n in enumerate(n_ffts):
                if n in self.cfg.n_ffts:
                    new.weight[:, i] = old.weight[:, self.cfg.n_ffts.index(n)]
        self.conv[0] = new
        self.cfg.n_ffts = list(n_ffts)

    def features(self, y: torch.Tensor) -> torch.Tensor:
        """Waveforms `(batch, time)` at cfg.sr -> normalised log-mel `(batch, n_mels, frames)`, or with several
        `cfg.n_ffts` `(batch, windows, n_mels, frames)` (one frame grid: the hop is the same)."""
        mels = [(features.log_mel(y, self.cfg.sr, self.cfg.n_mels, self.cfg.hop_length, n) + 4.0) / 2.0
                for n in self.cfg.n_ffts]  # roughly zero-mean, unit-range for log10 power of drum audio
        return mels[0] if len(mels) == 1 else torch.stack(mels, 1)

    def frames(self, mel: torch.Tensor) -> torch.Tensor:
        """Convolutional front end: `(B, n_mels, T)` or `(B, windows, n_mels, T)` -> per-frame vectors
        `(B, T, D)`."""
        h = self.conv(mel if mel.dim() == 4 else mel[:, None])   # (B, C, F', T)
        b, c, f, t = h.shape
        return h.permute(0, 3, 1, 2).reshape(b, t, c * f)

    def head(self, seq: torch.Tensor, aux: bool = False):
        """GRU and output layer: `(B, T, D)` -> logits `(B, classes, T)`; with `aux`, also the finer
        drums' logits `(B, aux classes, T)`."""
        h, _ = self.gru(seq)
        return self.read(h, aux)

    def read(self, h: torch.Tensor, aux: bool = False):
        """Output layer on the GRU's states: `(B, T, 2 * hidden)` -> logits `(B, classes, T)`; with `aux`, also
        the finer drums' logits `(B, aux classes, T)`."""
        logits = self.out(h).transpose(1, 2)
        return (logits, self.aux(h).transpose(1, 2)) if aux else logits

    def forward(self, mel: torch.Tensor, aux: bool = False):
        return self.head(self.frames(mel), aux)

    @torch.no_grad()
    def activations(self, y: np.ndarray, chunk_seconds: float = 30.0, window_seconds: float = 3.0,
                    context_seconds: float = 0.5) -> np.ndarray:
        """Onset probabilities `(n_classes, frames)` of a mono signal at cfg.sr, any length.

        The signal goes through the convolutions in chunks of about
        `chunk_seconds` (bounded memory for long files); each chunk goes
        through the GRU as a batch of windows of `window_seconds` with
        `context_seconds` of signal either side. Beyond the ends of the file
        the model hears silence, as at the edges of its training clips.
        """
        self.eval()
        hop = self.cfg.hop_length
        win = max(1, int(round(window_seconds * self.cfg.frame_rate)))
        ctx = int(round(context_seconds * self.cfg.frame_rate))
        chunk = max(1, int(round(chunk_seconds * self.cfg.frame_rate / win))) * win  # frames
        margin = ctx + 8                              # frames: the GRU context plus the convolutions' reach
        n_frames = len(y) // hop + 1
        device = next(self.parameters()).device       # the model may sit on a GPU (validation in training)
        x = torch.from_numpy(np.pad(np.asarray(y, np.float32), (margin * hop, (margin + chunk) * hop))).to(device)
        out = np.zeros((len(self.cfg.classes), n_frames), np.float32)
        for start in range(0, n_frames, chunk):       # frame `f` of the file is frame `f + margin` of x
            take = min(chunk, n_frames - start)
            span = -(-take // win) * win              # whole windows: a short file is not run as a whole chunk
            piece = x[start * hop:(start + span + 2 * margin) * hop]
            seq = self.frames(self.features(piece[None]))[0]       # (T, D), frame 0 = file frame start - margin
            windows = torch.stack([seq[s - ctx:s + win + ctx] for s in range(margin, margin + take, win)])
            logits = self.head(windows)[:, :, ctx:ctx + win]       # (W, classes, win)
            probs = torch.sigmoid(logits).permute(1, 0, 2).reshape(len(self.cfg.classes), -1)[:, :take]
            out[:, start:start + take] = probs.cpu().numpy()
        return out


@dataclass
class Onset:
    time: float        # seconds
    cls: str
    velocity: int      # 1..127, from the local loudness
    confidence: float  # peak probability


def parabolic_offset(left: float, centre: float, right: float) -> float:
    """Where between samples a peak lies (-0.5 to 0.5 from the centre sample), by the parabola through
    three samples; 0 where they do not curve down."""
    curve = left - 2 * centre + right
    return 0.5 * (left - right) / curve if curve < 0 else 0.0


MIN_GAP = 0.03   # s: the closest two onsets of one class can be; what is closer is one stroke


def peak_pick(probs: np.ndarray, frame_rate: float, classes: list[str], threshold=0.5,
              min_gap: float = MIN_GAP) -> list[tuple[float, str, float]]:
    """Local maxima above the threshold, at least `min_gap` seconds apart per class.

    `threshold`: one value for all classes, or one per class.
    -> [(time in seconds, class, probability)], sorted by time.
    """
    gap = max(1, int(round(min_gap * frame_rate)))
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=float), (len(classes),))
    found = []
    for k, cls in enumerate(classes):
        p = probs[k]
        left = np.concatenate([[-1.0], p[:-1]])
        right = np.concatenate([p[1:], [-1.0]])
        last = -gap
        for i in np.flatnonzero((p >= thresholds[k]) & (p >= left) & (p > right)):
            if i - last < gap:
                continue
            shift = parabolic_offset(left[i], p[i], right[i]) if 0 < i < len(p) - 1 else 0.0
            found.append((float((i + shift) / frame_rate), cls, float(p[i])))
            last = i
    return sorted(found)


VELOCITY_BANDS = {"kick": (30.0, 150.0), "snare": (150.0, 8000.0), "hat": (7000.0, 16000.0),
                  "tom": (150.0, 1000.0), "cymbal": (3000.0, 16000.0)}   # Hz: where each class's level is read
VELOCITY_AHEAD = {"kick": 0.08, "snare": 0.03, "hat": 0.03, "tom": 0.03,
                  "cymbal": 0.03}   # s after the onset its level is read in: a kick's low band builds over
                                    # its first tens of ms, in frames that resolve 43 Hz


def hit_levels(y: np.ndarray, sr: int, onsets: list[tuple[float, str]]) -> list[float]:
    """The level (dB) each onset `(time s, class)` adds in its class's band (VELOCITY_BANDS): the band's
    peak power from 6 ms before it to VELOCITY_AHEAD after it (never past the next onset of its
    class), less its mean power over the 20 ms before it
    (what still rings there; at least 1% of the peak is kept). A hat on a kick is read above 7 kHz, where
    the kick is not, and a hit on a ringing drum by what it adds. Frames of 23 ms every 2.9 ms (centred,
    as `torch.stft` frames them), taken around each onset alone, so a long recording costs little."""
    hop = max(1, round(sr / 344.5))
    n_fft = 1 << int(np.ceil(np.log2(0.023 * sr)))
    padded = np.pad(np.asarray(y, np.float32), n_fft // 2, mode="reflect" if len(y) > n_fft // 2 else "constant")
    frames = 1 + len(y) // hop
    hann = torch.hann_window(n_fft).numpy()
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    bands = {cls: (f >= lo) & (f < hi) for cls, (lo, hi) in VELOCITY_BANDS.items()}
    pre = int(0.02 * sr / hop)
    times = {cls: sorted(t for t, c in onsets if c == cls) for cls in {c for _, c in onsets}}
    out = []
    for time, cls in onsets:
        seconds = VELOCITY_AHEAD[cls]
        k = bisect.bisect_right(times[cls], time)
        if k < len(times[cls]):
            seconds = min(seconds, times[cls][k] - time - 0.005)
        ahead = int(seconds * sr / hop)
        i = int(round(time * sr / hop))
        ks = np.arange(max(0, i - pre), min(frames, i + ahead + 1))
        if not ks.size:
            out.append(-120.0)
            continue
        x = padded[ks[:, None] * hop + np.arange(n_fft)] * hann
        p = (np.abs(np.fft.rfft(x, axis=1)) ** 2)[:, bands[cls]].sum(1)
        at = ks >= i - 2
        peak = float(p[at].max()) if at.any() else 0.0
        rings = p[ks < i - 1]
        rings = float(rings.mean()) if rings.size else 0.0
        out.append(10 * np.log10(max(peak - rings, 0.01 * peak) + 1e-12))
    return out


def velocities(y: np.ndarray, sr: int, onsets: list[tuple[float, str]]) -> list[int]:
    """MIDI velocity of each onset `(time s, class)`: the level it adds in its class's band
    (`hit_levels`) against the recording's loudest hit of that class, on the SFZ curve that renders
    it back (gain (v/127)^2): the loudest is 127, one 20 dB softer 40.

    Session 30; until then the peak level of the whole signal just after the onset (0 dBFS 127, -40 dB
    1), so a hat on a kick took the kick's level and a quiet recording came out soft throughout."""
    levels = hit_levels(y, sr, onsets)
    top: dict[str, float] = {}
    for level, (_, cls) in zip(levels, onsets):
        top[cls] = max(top.get(cls, -np.inf), level)
    return [int(np.clip(round(127 * 10 ** ((level - top[cls]) / 40)), 1, 127))
            for level, (_, cls) in zip(levels, onsets)]


def save(model: Transcriber, path: Path, extra: dict | None = None) -> None:
    checkpoint.save(model, path, extra)


def load(path: Path) -> Transcriber:
    return checkpoint.load(path, TranscriberConfig, Transcriber, "transcriber", "redrum train transcriber")
