"""Stage-1 reconstruction of recordings: encode, decode, back at the input's rate and length.

`redrum reconstruct AUDIO -o OUT.wav` lets a producer hear what the
autoencoder keeps of their drums (everything the redrum model outputs passes
through its decoder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from redrum_kit import audio, workspace
from redrum_kit.models import stage1

MAX_SECONDS = 600.0


def checkpoint_path() -> Path:
    """Where the shipped stage-1 checkpoint lives (it may not be installed)."""
    return workspace.model_file("stage1.safetensors")


def load_model(path: Path | None = None, device: str | torch.device = "cpu") -> stage1.Stage1:
    return stage1.load(path or checkpoint_path()).to(device)


def reconstruct_signal(y: np.ndarray, sr: int, model: stage1.Stage1) -> np.ndarray:
    """Mono `y` at `sr` -> its reconstruction at `sr`, the same length."""
    x = audio.resample(y, sr, model.cfg.sr)
    out = audio.resample(model.reconstruct(x), model.cfg.sr, sr)
    out = np.pad(out, (0, max(0, len(y) - len(out))))[: len(y)]
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def reconstruct_file(path: Path, model: stage1.Stage1 | None = None) -> tuple[np.ndarray, int]:
    """Load any audio file (up to MAX_SECONDS) and reconstruct it -> `(y, sr)` at the file's rate."""
    y, sr = audio.load(path, max_seconds=MAX_SECONDS, require_sound=True, what="recording")
    return reconstruct_signal(y, sr, model or load_model()), sr
