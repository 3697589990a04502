"""Oneshot classifier: which drum is this hit?

A small CNN over the log-mel spectrogram of the first `seconds` of the
oneshot, joined by two global descriptors the crop cannot see (how long the
sound rings, how fast it starts). It reads the audio only, never the name.

Classes: `redrum_kit.drums.ONESHOT_CLASSES`. Trained by
`redrum train classifier --config presets/training/classifier.toml`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from redrum_kit import audio, features
from redrum_kit.drums import ONESHOT_CLASSES
from redrum_kit.models import checkpoint


@dataclass
class ClassifierConfig:
    sr: int = 22050
    seconds: float = 1.5
    n_mels: int = 64
    hop_length: int = 256
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    hidden: int = 128
    dropout: float = 0.2
    classes: list[str] = field(default_factory=lambda: list(ONESHOT_CLASSES))


def ring_time(y: torch.Tensor, sr: int, floor_db: float = -40.0, hop_length: int = 256) -> torch.Tensor:
    """Seconds until the RMS envelope last exceeds `floor_db` re. its peak. `(batch, time)` -> `(batch,)`."""
    env = features.frame_rms(y, n_fft=1024, hop_length=hop_length)
    peak = env.max(-1, keepdim=True).values.clamp_min(1e-9)
    loud = env >= peak * 10 ** (floor_db / 20)
    idx = torch.arange(env.shape[-1], device=y.device).expand_as(env)
    last = torch.where(loud, idx, 0).max(-1).values
    return (last + 1).to(y.dtype) * hop_length / sr


def descriptors(y: torch.Tensor, sr: int) -> torch.Tensor:
    """`(batch, time)` -> `(batch, 2)`: log10 ring time (s), log10 attack time (s)."""
    return torch.stack([torch.log10(ring_time(y, sr).clamp_min(1e-3)), features.log_attack_time(y, sr)], -1)


class OneshotClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = 1
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(2 * c_in + 2, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, len(cfg.classes)))

    def n_samples(self) -> int:
        return int(self.cfg.seconds * self.cfg.sr)

    def inputs(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms `(batch, time)` at cfg.sr -> (log-mel `(batch, 1, n_mels, frames)`, descriptors)."""
        desc = descriptors(y, self.cfg.sr)
        n = self.n_samples()
        crop = nn.functional.pad(y, (0, max(0, n - y.shape[-1])))[:, :n]
        mel = features.log_mel(crop, self.cfg.sr, self.cfg.n_mels, self.cfg.hop_length)
        return mel[:, None], desc

    def forward(self, mel: torch.Tensor, desc: torch.Tensor) -> torch.Tensor:
        """-> logits `(batch, n_classes)`."""
        h = self.conv(mel)
        pooled = torch.cat([h.mean((-2, -1)), h.amax((-2, -1))], -1)
        return self.head(torch.cat([pooled, desc], -1))

    @torch.no_grad()
    def predict(self, ys: list[np.ndarray], sr: int, batch_size: int = 64) -> tuple[list[str], np.ndarray]:
        """Classify mono oneshots at rate `sr`. -> (class names, probabilities `(n, n_classes)`)."""
        self.eval()
        probs = []
        limit = int(4.0 * self.cfg.sr)  # enough to measure the ring time of any oneshot
        for start in range(0, len(ys), batch_size):
            chunk = [audio.resample(y, sr, self.cfg.sr)[:limit] for y in ys[start:start + batch_size]]
            width = max(len(y) for y in chunk)
            batch = torch.zeros(len(chunk), width)
            for i, y in enumerate(chunk):
                batch[i, : len(y)] = torch.from_numpy(y)
            probs.append(torch.softmax(self(*self.inputs(batch)), -1))
        p = torch.cat(probs).numpy() if probs else np.zeros((0, len(self.cfg.classes)), np.float32)
        return [self.cfg.classes[i] for i in p.argmax(-1)], p


def save(model: OneshotClassifier, path: Path, extra: dict | None = None) -> None:
    checkpoint.save(model, path, extra)


def load(path: Path) -> OneshotClassifier:
    return checkpoint.load(path, ClassifierConfig, OneshotClassifier, "classifier", "redrum train classifier")
