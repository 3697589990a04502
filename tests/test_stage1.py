"""Stage 1: the PQMF bank, the autoencoder, its trainer, and `redrum reconstruct`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from redrum_kit import features
from redrum_kit.cli import main
from redrum_kit.models.pqmf import PQMF
from redrum_kit.models.stage1 import Stage1, Stage1Config, kl_divergence
from tests.conftest import install_models, write


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2)))


def test_pqmf_reconstructs_nearly_perfectly():
    bank = PQMF(16)
    y = torch.randn(2, 1, 16384, generator=torch.Generator().manual_seed(0))
    bands = bank.analysis(y)
    assert bands.shape == (2, 16, 1024)
    back = bank.synthesis(bands)
    assert back.shape == y.shape
    inner = slice(bank.taps, -bank.taps)  # the edges lack the filters' full support
    assert snr_db(y[..., inner].numpy(), back[..., inner].numpy()) > 50


def test_pqmf_puts_a_tone_in_its_band():
    sr, bank = 22050, PQMF(16)
    t = np.arange(8192) / sr
    for freq in (300.0, 3000.0, 9000.0):
        y = torch.tensor(np.sin(2 * np.pi * freq * t), dtype=torch.float32)[None, None]
        energy = bank.analysis(y)[0, :, 64:-64].pow(2).mean(-1)
        expected = int(freq / (sr / 2 / 16))
        assert int(energy.argmax()) == expected
        assert energy[expected] > 0.9 * energy.sum() * 0.5  # most of it, bar leakage to one neighbour


def test_pqmf_rejects_band_counts_that_are_not_powers_of_two():
    with pytest.raises(ValueError):
        PQMF(12)


def test_autoencoder_shapes_and_latent_rate():
    cfg = Stage1Config()
    assert cfg.compression == 512 and round(1000 / cfg.latent_rate) == 23  # a frame every 23 ms
    model = Stage1(cfg).eval()
    y = torch.randn(2, 1, 4 * 512) * 0.1
    mean, std = model.encode(y)
    assert mean.shape == std.shape == (2, cfg.latent, 4)
    assert bool((std >= cfg.std_floor).all())
    assert model.decode(mean).shape == y.shape
    out, bands, bands_hat, _, _ = model(y)
    assert out.shape == y.shape and bands.shape == bands_hat.shape == (2, 16, 128)


def test_frozen_encoder_gets_no_gradient():
    model = Stage1(Stage1Config(channels=[8, 16, 16], latent=4))
    out, *_ = model(torch.randn(1, 1, 2048) * 0.1, freeze_encoder=True)
    out.pow(2).mean().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert any(p.grad is not None for p in model.decoder.parameters())


def test_kl_is_zero_for_the_prior_and_positive_otherwise():
    zeros, ones = torch.zeros(1, 4, 8), torch.ones(1, 4, 8)
    assert float(kl_divergence(zeros, ones)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_divergence(zeros + 1, ones)) > 0


def test_reconstruct_keeps_length_and_is_deterministic():
    torch.manual_seed(0)
    model = Stage1(Stage1Config(channels=[8, 16, 16], latent=4))
    y = np.random.default_rng(0).standard_normal(22050 * 7 + 123).astype(np.float32) * 0.1
    a = model.reconstruct(y, window_seconds=2.0)
    b = model.reconstruct(y, window_seconds=2.0)
    assert a.shape == y.shape and np.array_equal(a, b)
    assert model.reconstruct(y[:100]).shape == (100,)


def test_spectral_distance_is_zero_for_identical_and_grows_with_difference():
    y = torch.randn(2, 8192, generator=torch.Generator().manual_seed(1))
    assert float(features.spectral_distance(y, y)) < 1e-4
    near, far = y + 0.01 * torch.randn_like(y), torch.randn_like(y)
    assert float(features.spectral_distance(y, near)) < float(features.spectral_distance(y, far))
    d = features.log_mel_distance(y, far)
    assert d.shape == (2,) and bool((d > 0).all())


def test_transient_distance_hears_a_moved_or_softened_attack_more_than_a_level_change():
    from scipy.signal import lfilter
    sr = 22050
    hits = np.zeros(sr, np.float32)
    for start in (0.1, 0.4, 0.7):                    # three decaying noise bursts
        n = int(0.2 * sr)
        hits[int(start * sr):int(start * sr) + n] += (np.random.default_rng(0).standard_normal(n)
                                                      * np.exp(-np.arange(n) / (0.03 * sr))).astype(np.float32)
    softened = lfilter(np.ones(300) / 300, [1.0], hits).astype(np.float32)   # 14 ms attack ramps
    variants = {"quieter": hits * 0.5, "moved": np.roll(hits, int(0.02 * sr)), "softened": softened}
    x = torch.from_numpy(hits)[None]
    d = {k: float(features.transient_distance(x, torch.from_numpy(v)[None], sr)) for k, v in variants.items()}
    assert float(features.transient_distance(x, x, sr)) == 0.0
    assert d["moved"] > 3 * d["quieter"] and d["softened"] > 3 * d["quieter"]
    y_hat = torch.from_numpy(softened)[None].requires_grad_()
    features.transient_distance(x, y_hat, sr).backward()          # a training loss: it has a gradient
    assert y_hat.grad is not None and float(y_hat.grad.abs().sum()) > 0


def tiny_config(tmp_path, **overrides):
    from redrum_kit.config import load_config
    from redrum_kit.workspace import presets_dir
    from training import stage1 as recipe
    return load_config(recipe.TrainConfig, presets_dir() / "training" / "stage1-tiny.toml",
                       data_dir=str(tmp_path / "clips"), run_dir=str(tmp_path / "run"),
                       out=str(tmp_path / "models" / "stage1.safetensors"), **overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny config trained end to end once: (config, summary)."""
    from training import stage1 as recipe
    tmp = tmp_path_factory.mktemp("stage1")
    cfg = tiny_config(tmp)
    return cfg, recipe.train(cfg)


def test_tiny_training_lowers_the_loss_and_writes_its_logs(trained):
    from pathlib import Path
    cfg, summary = trained
    assert summary["complete"] and summary["step"] == cfg.steps
    run = Path(cfg.run_dir)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    phase1 = [r["spectral"] for r in rows if "spectral" in r and r["step"] <= cfg.adversarial_after]
    assert np.mean(phase1[-2:]) < np.mean(phase1[:2])
    assert any("critic" in r for r in rows)            # the adversarial phase ran
    assert any("val_log_mel_db" in r for r in rows)    # and validation
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "log.csv").read_text().startswith("step,")
    card = Path(cfg.out).with_suffix(".md").read_text()
    assert f"{cfg.steps} steps" in card
    assert Path(cfg.out).stat().st_size < 20e6


def test_an_interrupted_run_resumes_from_its_step(trained, tmp_path):
    from pathlib import Path

    from training import stage1 as recipe
    cfg, _ = trained
    more = tiny_config(tmp_path, steps=cfg.steps + 5, adversarial_after=cfg.adversarial_after)
    shutil.copytree(cfg.run_dir, more.run_dir)
    shutil.copytree(cfg.data_dir, more.data_dir)
    summary = recipe.train(more)
    assert summary["step"] == cfg.steps + 5
    rows = [json.loads(line) for line in (Path(more.run_dir) / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "spectral" in r]
    assert steps == sorted(set(steps))  # no step trained twice: it went on from where it stopped


def test_cli_reconstruct_keeps_rate_and_length_and_never_overwrites(trained, tmp_path, monkeypatch, capsys):
    from pathlib import Path
    cfg, _ = trained
    install_models(tmp_path, monkeypatch, stage1=cfg.out)
    rng = np.random.default_rng(3)
    src = write(tmp_path / "loop.wav", (rng.standard_normal(48000 + 77) * 0.2).astype(np.float32), sr=48000)
    out = tmp_path / "out.wav"
    assert main(["reconstruct", str(src), "-o", str(out)]) == 0
    y, sr = sf.read(out)
    assert sr == 48000 and len(y) == 48077
    before = out.read_bytes()
    assert main(["reconstruct", str(src), "-o", str(out)]) != 0
    assert out.read_bytes() == before
    assert "exists" in capsys.readouterr().err


def text_file(folder):
    (folder / "notes.wav").write_text("not audio")
    return folder / "notes.wav"


@pytest.mark.parametrize("make, message", [
    (lambda d: write(d / "silent.wav", np.zeros(22050, np.float32)), "silent"),
    (text_file, "not an audio file"),
    (lambda d: d / "missing.wav", "no such file"),
])
def test_cli_reconstruct_bad_input_is_one_line(trained, tmp_path, monkeypatch, capsys, make, message):
    cfg, _ = trained
    install_models(tmp_path, monkeypatch, stage1=cfg.out)
    path = make(tmp_path)
    assert main(["reconstruct", str(path), "-o", str(tmp_path / "o.wav")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("redrum: error:") and len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "o.wav").exists()


def test_cli_reconstruct_without_a_checkpoint_says_how_to_train(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REDRUM_PRESETS", str(tmp_path / "empty"))
    src = write(tmp_path / "a.wav", np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1)
    assert main(["reconstruct", str(src), "-o", str(tmp_path / "o.wav")]) != 0
    assert "redrum train stage1" in capsys.readouterr().err


def test_cli_train_stage1_rejects_a_missing_data_folder(tmp_path, capsys):
    assert main(["train", "stage1", "--config", "presets/training/stage1-tiny.toml",
                 "--data", str(tmp_path / "nowhere")]) != 0
    assert "not a folder" in capsys.readouterr().err


def test_cli_train_stage1_rejects_unknown_model_settings(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('steps = 1\n[model]\nchanels = [8, 8, 8]\n')
    assert main(["train", "stage1", "--config", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "chanels" in err and len(err.strip().splitlines()) == 1


def test_heldout_comparison_reports_distances():
    from redrum_kit.datasets.kits import from_synth
    from training.stage1 import heldout_comparison
    model = Stage1(Stage1Config(channels=[8, 16, 16], latent=4))
    kits = [from_synth(seed, 22050) for seed in (5, 6, 7)]
    result = heldout_comparison(model, patterns=1, kits=kits)
    assert result["renderings"] == 3
    assert result["nearest_other_kit_db"] <= result["mean_other_kit_db"]
    assert 0.0 <= result["share_closer_than_nearest_kit"] <= 1.0


def test_torchrun_trains_with_two_processes(tmp_path):
    """The multi-GPU path (DistributedDataParallel), here on CPU with the gloo backend."""
    import os
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    import tomli_w
    from redrum_kit.workspace import presets_dir
    data = tomllib.loads((presets_dir() / "training" / "stage1-tiny.toml").read_text())
    data.update(steps=4, adversarial_after=2, val_every=4, save_every=4, log_every=1,
                data_dir=str(tmp_path / "clips"), run_dir=str(tmp_path / "run"), out=str(tmp_path / "s1.safetensors"))
    config = tmp_path / "ddp.toml"
    config.write_text(tomli_w.dumps(data))
    torchrun = Path(sys.executable).parent / "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "redrum_kit.cli", "train", "stage1",
                           "--config", str(config), "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "step 4 of 4 (done)" in done.stdout
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
             if "spectral" in json.loads(line)]
    assert steps == [1, 2, 3, 4]  # rank 0 alone writes the log
    assert (tmp_path / "s1.safetensors").is_file()
