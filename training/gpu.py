"""What a training run needs on a lent GPU machine, packed here: `python -m training.gpu [--out .gpu]`.

The lent machines have PyTorch but no package index and no Hydrogen kits, and what travels there is at
most 64 MiB. So this writes, into `.gpu/` (ignored by git):
- `whl/`: wheels for the machine's Python (CPython 3.12, manylinux x86-64) of the packages redrum_kit's
  training needs beyond what the machine has (`WHEELS`, at the versions installed here);
- `drumkits/`: the Hydrogen kits a dataset may train or validate on (never a test kit, nor a kit that shares
  a sound with one), every sound resampled to the builder's rate (22,050 Hz) mono 16-bit, so clips built
  there match a local build's;
- `demo_songs/`: Hydrogen's demo songs (the datasets' song patterns).
Then on the machine `bash training/gpu.sh CONFIG KIND MINUTES` (see there) with `.gpu` carried.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from redrum_kit import audio, workspace
from redrum_kit.datasets.build import DatasetConfig, hydrogen_kits, hydrogen_sound_files, leaking_kits
from redrum_kit.errors import RedrumError

WHEELS = ("pedalboard", "soundfile", "cffi", "pycparser", "mido", "tomli-w", "mir_eval", "decorator")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "any")
LIMIT_MB = 48.0    # of the 64 MiB that may travel, leaving room for the repository itself


def travelling_kits(cfg: DatasetConfig) -> list[str]:
    """The installed Hydrogen kits a dataset may train or validate on: not a test kit, not sharing a sound
    with a held-out kit (`leaking_kits`), not excluded."""
    leaking = leaking_kits(cfg)
    return [k for k in hydrogen_kits(cfg) if k not in cfg.test_kits and k not in leaking]


def pack_kit(src: Path, dst: Path, sr: int) -> None:
    """A Hydrogen kit folder with its drumkit.xml and every sound resampled to `sr` mono, same names."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "drumkit.xml", dst / "drumkit.xml")
    for path in hydrogen_sound_files(src):
        try:
            y, _ = audio.load(path, sr=sr)      # as the kit loader reads it (`kits.from_hydrogen`)
        except audio.AudioError:                # unreadable: the kit loader skips it there as here
            continue
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out), np.clip(y, -1, 1), sr, subtype="PCM_16")


def download_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    if subprocess.run(cmd + pins).returncode:
        raise RedrumError(f"pip could not fetch the wheels ({', '.join(pins)}) from the package index")


def bundle(out: Path, cfg: DatasetConfig | None = None, wheels: bool = True) -> dict:
    """Write `out` (whl/, drumkits/, demo_songs/) -> {kits, megabytes}; refuses to exceed LIMIT_MB."""
    cfg = cfg or DatasetConfig()
    kits = travelling_kits(cfg)
    if wheels:
        download_wheels(out / "whl")
    for kit in kits:
        pack_kit(Path(cfg.hydrogen_dir) / kit, out / "drumkits" / kit, cfg.sr)
    songs = Path(cfg.songs_dir)
    if songs.is_dir():
        shutil.copytree(songs, out / "demo_songs", dirs_exist_ok=True)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    if size > LIMIT_MB:
        raise RedrumError(f"{out} holds {size:.1f} MB, over the {LIMIT_MB:.0f} MB that may travel with the repository")
    return {"kits": kits, "megabytes": round(size, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".gpu")
    parser.add_argument("--no-wheels", action="store_true", help="kits and songs only")
    args = parser.parse_args(argv)
    try:
        result = bundle(Path(args.out), wheels=not args.no_wheels)
    except RedrumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {result['megabytes']} MB; kits: {', '.join(result['kits'])}; "
          f"Hydrogen kits from {workspace.HYDROGEN_DRUMKITS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
