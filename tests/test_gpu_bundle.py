"""Packing a training run for a lent GPU machine (`python -m training.gpu`, `training/gpu.sh`): what travels
holds no test kit and no kit sharing a test kit's sounds, its kits load as the originals do, and the device
script trains a config and leaves what a later session needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from redrum_kit import workspace
from redrum_kit.datasets.build import DatasetConfig
from redrum_kit.datasets.kits import from_hydrogen
from test_datasets import make_h2_kit, tiny
from training.gpu import bundle, main

ROOT = Path(__file__).resolve().parents[1]


def test_the_bundle_carries_training_and_validation_kits_resampled_and_never_a_test_kit(tmp_path):
    root = tmp_path / "kits"
    make_h2_kit(root, "Held", {"Kick": ("kick", "wav"), "Snare": ("snare", "wav")})
    make_h2_kit(root, "Repack", {"Kick": ("kick", "flac"), "Snare": ("snare 2", "wav")})
    make_h2_kit(root, "Own", {"Kick": ("kick 2", "wav"), "Snare": ("snare 2", "wav")}, sr=48000)
    make_h2_kit(root, "Val", {"Kick": ("snare 2", "flac"), "Snare": ("kick 2", "flac")})
    cfg = tiny(tmp_path, hydrogen_dir=str(root), test_kits=["Held"], val_kits=["Val"])
    result = bundle(tmp_path / "gpu", cfg, wheels=False)
    assert result["kits"] == ["Own", "Val"]
    packed = tmp_path / "gpu" / "drumkits"
    assert sorted(p.name for p in packed.iterdir()) == ["Own", "Val"]
    for path in (packed / "Own").glob("*.wav"):
        info = sf.info(str(path))
        assert info.samplerate == 22050 and info.channels == 1
    a, b = from_hydrogen(root / "Own", 22050), from_hydrogen(packed / "Own", 22050)
    assert [p.name for p in a.kit.pads] == [p.name for p in b.kit.pads]
    for key, y in a.samples.items():
        assert len(y) == len(b.samples[key]) and np.abs(y - b.samples[key]).max() < 1e-3   # 16-bit, as built there


def test_the_real_bundle_leaves_every_test_kit_and_the_kit_sharing_their_sounds_behind(tmp_path, capsys):
    if not (workspace.HYDROGEN_DRUMKITS / "GMRockKit").is_dir():
        pytest.skip("Debian's Hydrogen kits are not installed (make data)")
    assert main(["--out", str(tmp_path / "gpu"), "--no-wheels"]) == 0
    names = {p.name for p in (tmp_path / "gpu" / "drumkits").iterdir()}
    held_out = set(DatasetConfig().test_kits) | {"The Black Pearl 1.0"}      # it ships GMRockKit's sounds
    assert "Audiophob" in names and len(names) >= 5 and not names & held_out
    assert "MB" in capsys.readouterr().out


def test_the_device_script_trains_a_config_and_leaves_what_a_later_session_needs(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text((ROOT / "presets/training/transcriber-tiny.toml").read_text()
                      + f'data_dir = "{tmp_path}/clips"\nrun_dir = "{tmp_path}/run"\nout = "{tmp_path}/tiny.safetensors"\n')
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "training/gpu.sh", str(config), "transcriber", "1", "600"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    back = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"last.pt", "log.jsonl", "tiny.safetensors", "tiny.md", "tiny.metrics.json", "train.log"} <= back
    validated = any(k.startswith("val_") for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()
                    for k in json.loads(line))
    # the best weights come back once a validation ran (a loaded machine may spend the minute before the first)
    assert "best.pt" in back or not validated
    log = (tmp_path / "out" / "train.log").read_text()
    assert "saved" in log and "training for 1 min" in log        # the call's budget left more than MINUTES
    bad = subprocess.run(["bash", "training/gpu.sh", str(tmp_path / "nope.toml"), "transcriber"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "nope.toml" in bad.stderr
