"""The transcriber's processing chain (model untrained here: shapes, chunking, peak picking)."""

from __future__ import annotations

import numpy as np
import torch

from redrum_kit.models.transcriber import Transcriber, TranscriberConfig, peak_pick, velocities


def test_frame_rate_matches_the_dataset_targets():
    from redrum_kit.datasets.build import DatasetConfig
    cfg, ds = TranscriberConfig(), DatasetConfig()
    assert cfg.frame_rate == ds.sr / ds.hop_length
    model = Transcriber(cfg)
    y = torch.zeros(2, int(ds.clip_seconds * ds.sr))
    assert model(model.features(y)).shape == (2, 5, ds.frames())


def test_long_files_are_processed_in_chunks_with_context():
    torch.manual_seed(0)
    model = Transcriber(TranscriberConfig()).eval()
    y = np.random.default_rng(0).standard_normal(22050 * 12).astype(np.float32) * 0.1
    whole = model.activations(y, chunk_seconds=60)
    chunked = model.activations(y, chunk_seconds=4)
    assert whole.shape == chunked.shape == (5, len(y) // 256 + 1)
    assert np.abs(whole - chunked).max() < 0.05  # two seconds of context hide the seams


def test_peak_picking_respects_threshold_and_gap():
    probs = np.zeros((2, 100), np.float32)
    probs[0, [10, 12, 50]] = [0.9, 0.8, 0.6]
    probs[1, 30] = 0.4
    found = peak_pick(probs, frame_rate=100.0, classes=["kick", "snare"], threshold=0.5, min_gap=0.05)
    assert [(round(t, 2), c) for t, c, _ in found] == [(0.1, "kick"), (0.5, "kick")]


def test_velocity_follows_level():
    y = np.zeros(22050, np.float32)
    y[1000:1100] = 1.0
    y[10000:10100] = 0.1
    loud, soft = velocities(y, 22050, [1000 / 22050, 10000 / 22050])
    assert loud == 127 and 50 < soft < 80


def test_tiny_training_run_learns(tmp_path):
    from redrum_kit.config import load_config
    from redrum_kit.models import transcriber
    from redrum_kit.workspace import presets_dir
    from training import transcriber as recipe
    cfg = load_config(recipe.TrainConfig, presets_dir() / "training" / "transcriber-tiny.toml",
                      dataset_config=str(presets_dir() / "training" / "dataset-tiny.toml"),
                      data_dir=str(tmp_path / "clips"), run_dir=str(tmp_path / "run"),
                      out=str(tmp_path / "t.safetensors"))
    metrics = recipe.train(cfg)
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]
    assert set(metrics["test"]["per_class"]) == {"kick", "snare", "hat", "tom", "cymbal"}
    transcriber.load(tmp_path / "t.safetensors")
    # an interrupted run resumes: with every epoch done, it only re-evaluates
    again = recipe.train(cfg)
    assert again["history"] == metrics["history"]
