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
    channels: list[int] = field(default_factory=lambda: [16, 32, 48])
    hidden: int = 64
    dropout: float = 0.2
    classes: list[str] = field(default_factory=lambda: list(TRANSCRIPTION_CLASSES))

    @property
    def frame_rate(self) -> float:
        return self.sr / self.hop_length


class Transcriber(nn.Module):
    """log-mel `(batch, n_mels, frames)` -> onset logits `(batch, n_classes, frames)`."""

    def __init__(self, cfg: TranscriberConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = 1
        for c in cfg.channels:  # pool over frequency only: time resolution is the point
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.MaxPool2d((2, 1)), nn.Dropout(cfg.dropout / 2)]
            c_in = c
        self.conv = nn.Sequential(*layers)
        freq = cfg.n_mels // 2 ** len(cfg.channels)
        self.gru = nn.GRU(c_in * freq, cfg.hidden, batch_first=True, bidirectional=True)
        self.out = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(2 * cfg.hidden, len(cfg.classes)))

    def features(self, y: torch.Tensor) -> torch.Tensor:
        """Waveforms `(batch, time)` at cfg.sr -> normalised log-mel `(batch, n_mels, frames)`."""
        mel = features.log_mel(y, self.cfg.sr, self.cfg.n_mels, self.cfg.hop_length)
        return (mel + 4.0) / 2.0  # roughly zero-mean, unit-range for log10 power of drum audio

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.conv(mel[:, None])                       # (B, C, F', T)
        b, c, f, t = h.shape
        h, _ = self.gru(h.permute(0, 3, 1, 2).reshape(b, t, c * f))
        return self.out(h).transpose(1, 2)                 # (B, classes, T)

    @torch.no_grad()
    def activations(self, y: np.ndarray, chunk_seconds: float = 30.0) -> np.ndarray:
        """Onset probabilities `(n_classes, frames)` of a mono signal at cfg.sr, any length."""
        self.eval()
        x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        hop = self.cfg.hop_length
        chunk = int(chunk_seconds * self.cfg.sr) // hop * hop
        context = 2 * self.cfg.sr // hop * hop  # seconds of overlap so the GRU has context at the seams
        n_frames = len(x) // hop + 1
        out = np.zeros((len(self.cfg.classes), n_frames), np.float32)
        for start in range(0, max(1, len(x)), chunk):
            lo = max(0, start - context)
            piece = x[lo:start + chunk + context]
            probs = torch.sigmoid(self(self.features(piece[None])))[0].numpy()
            first = (start - lo) // hop
            take = min(chunk // hop, n_frames - start // hop)
            out[:, start // hop: start // hop + take] = probs[:, first:first + take]
        return out


@dataclass
class Onset:
    time: float        # seconds
    cls: str
    velocity: int      # 1..127, from the local loudness
    confidence: float  # peak probability


def peak_pick(probs: np.ndarray, frame_rate: float, classes: list[str], threshold: float = 0.5,
              min_gap: float = 0.03) -> list[tuple[float, str, float]]:
    """Local maxima above `threshold`, at least `min_gap` seconds apart per class.

    -> [(time in seconds, class, probability)], sorted by time.
    """
    gap = max(1, int(round(min_gap * frame_rate)))
    found = []
    for k, cls in enumerate(classes):
        p = probs[k]
        last = -gap
        for i in range(len(p)):
            left = p[i - 1] if i > 0 else -1.0
            right = p[i + 1] if i + 1 < len(p) else -1.0
            if p[i] >= threshold and p[i] >= left and p[i] > right and i - last >= gap:
                # refine the time between frames with a parabola through the peak
                shift = 0.0
                if 0 < i < len(p) - 1:
                    denom = left - 2 * p[i] + right
                    shift = 0.5 * (left - right) / denom if denom < 0 else 0.0
                found.append((float((i + shift) / frame_rate), cls, float(p[i])))
                last = i
    return sorted(found)


def velocities(y: np.ndarray, sr: int, times: list[float], window: float = 0.03) -> list[int]:
    """MIDI velocity of each onset from the peak level just after it (0 dBFS -> 127, -40 dB -> 1)."""
    out = []
    for t in times:
        seg = y[int(t * sr): int((t + window) * sr)]
        db = 20 * np.log10(max(float(np.max(np.abs(seg))) if seg.size else 0.0, 1e-6))
        out.append(int(np.clip(round(127 * (1 + db / 40)), 1, 127)))
    return out


def save(model: Transcriber, path: Path, extra: dict | None = None) -> None:
    checkpoint.save(model, path, extra)


def load(path: Path) -> Transcriber:
    return checkpoint.load(path, TranscriberConfig, Transcriber, "transcriber", "redrum train transcriber")
