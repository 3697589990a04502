"""The `redrum` command: real processes, exit codes, one-line errors, JSON contracts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from redrum_kit.cli import main

from conftest import write


def redrum(*args, env=None):
    """Run the real console script in a subprocess."""
    exe = os.path.join(os.path.dirname(sys.executable), "redrum")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, env=env or os.environ.copy(),
                          timeout=300)


def one_line_error(proc):
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    return proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("redrum: ") and "Traceback" not in proc.stderr


def test_import_list_show_similar_round_trip(sample_folder, capsys):
    assert main(["library", "import", str(sample_folder)]) == 0
    assert "8 added" in capsys.readouterr().out
    assert main(["library", "list", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert len(items) == 8
    for item in items:
        assert {"id", "path", "class", "kit"} <= set(item)
        assert item["path"].startswith(str(sample_folder)) and item["kit"] == "My Samples"
    first = items[0]["id"]
    assert main(["library", "show", str(first), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == first
    assert main(["library", "similar", str(first), "-n", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["items"]) == 3
    cls = items[0]["class"]
    assert main(["library", "list", "--class", cls, "--json"]) == 0
    assert all(i["class"] == cls for i in json.loads(capsys.readouterr().out)["items"])


def test_import_with_rejects_exits_non_zero_and_names_each_file(sample_folder, tmp_path):
    (sample_folder / "broken.wav").write_bytes(b"RIFF....garbage")
    write(sample_folder / "nan.wav", np.array([np.nan] * 100, np.float32), subtype="FLOAT")
    proc = redrum("library", "import", sample_folder)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    rejected = [l for l in proc.stderr.splitlines() if l.startswith("rejected: ")]
    assert len(rejected) == 2 and any("broken.wav" in l for l in rejected) and any("NaN" in l for l in rejected)
    assert "8 added" in proc.stdout


@pytest.mark.parametrize("args", [
    ["library", "show", "12345"],
    ["library", "show", "abc"],
    ["library", "list", "--class", "banjo"],
    ["library", "exemplars", "--class", "snare", "-n", "5"],
    ["library", "import"],
    ["kit", "export", "nosuchkit", "--format", "sfz", "-o", "/tmp"],
    ["kit", "export", "default", "--format", "wav", "-o", "/tmp"],
    ["kit", "build", "../x"],
    ["train", "classifier", "--config", "/nonexistent.toml"],
    ["frobnicate"],
    [],
])
def test_bad_input_is_one_line_and_non_zero(args):
    proc = redrum(*args)
    assert one_line_error(proc), (proc.returncode, proc.stderr)


def test_kit_build_export_cli(tmp_path, capsys):
    assert main(["library", "import", "--synth", "1", "--seed", "9"]) == 0
    capsys.readouterr()
    assert main(["kit", "build", "mine", "--from-kit", "synth-0009"]) == 0
    assert main(["kit", "build", "mine", "--from-kit", "synth-0009"]) == 1  # exists
    assert "already exists" in capsys.readouterr().err
    assert main(["kit", "list", "--json"]) == 0
    assert {"mine", "default"} <= set(json.loads(capsys.readouterr().out)["kits"])
    assert main(["kit", "export", "mine", "--format", "sfz", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "mine" / "mine.sfz").is_file()
    assert main(["kit", "build", "best"]) == 0  # the most representative sound of each class
    capsys.readouterr()
    assert main(["kit", "show", "best", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pads"]


def test_synth_command_writes_a_hit_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "kick.wav"
    assert main(["synth", "kick", "--seed", "3", "-o", str(out)]) == 0
    before = out.read_bytes()
    assert main(["synth", "snare", "-o", str(out)]) == 1
    assert out.read_bytes() == before
