"""Shared fixtures: every test gets its own empty workspace ($REDRUM_HOME)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from redrum_kit import synth, workspace

HAS_HYDROGEN = (workspace.HYDROGEN_DRUMKITS / "GMRockKit").is_dir()
needs_hydrogen = pytest.mark.skipif(not HAS_HYDROGEN, reason="needs Debian's hydrogen-drumkits (make data)")


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    path = tmp_path / "redrum-home"
    monkeypatch.setenv("REDRUM_HOME", str(path))
    return path


@pytest.fixture
def no_hydrogen(monkeypatch, tmp_path):
    """Pretend no real kits are installed."""
    monkeypatch.setattr(workspace, "HYDROGEN_DRUMKITS", tmp_path / "no-hydrogen")


def install_models(tmp_path, monkeypatch, **checkpoints):
    """A presets folder holding only the given checkpoints (name=path: `models/NAME.safetensors`),
    made the one the code under test reads. -> the folder."""
    import shutil
    presets = tmp_path / "presets"
    (presets / "models").mkdir(parents=True)
    for name, path in checkpoints.items():
        shutil.copy(path, presets / "models" / f"{name}.safetensors")
    monkeypatch.setenv("REDRUM_PRESETS", str(presets))
    return presets


def write(path, y, sr=44100, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kw)
    return path


@pytest.fixture
def sample_folder(tmp_path):
    """A folder of 8 synthesised oneshots of different classes, as a user would have."""
    folder = tmp_path / "My Samples"
    for voice in ("kick", "snare", "clap", "hat_closed", "hat_open", "tom", "cymbal", "rim"):
        write(folder / f"{voice}-01.wav", synth.oneshot(voice, 4242), subtype="PCM_24")
    return folder


def tone(seconds=0.5, sr=44100, freq=440.0, decay=0.1):
    t = np.arange(int(seconds * sr)) / sr
    return (0.8 * np.sin(2 * np.pi * freq * t) * np.exp(-t / decay)).astype(np.float32)


def heard_error(layerer, result: dict, feat) -> float:
    """Feature error to `feat` of the mix a layer result's JSON says is heard (its layers and weights)."""
    import torch
    w = np.zeros(len(layerer.library), np.float32)
    for layer in result["layers"]:
        w[layer["id"]] = layer["weight"]
    return float(layerer.library.mix_error(torch.from_numpy(w)[None], feat[None])[0])
