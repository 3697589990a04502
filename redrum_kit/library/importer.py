"""Finding and preparing oneshots to import.

An import is two steps:
1. `candidates()`: walk the given paths into a list of `Candidate`s: audio
   files in folders, layers of Hydrogen drumkits (a folder holding a
   `drumkit.xml`), or synthesised hits.
2. `prepare()`: decode, check, normalise, hash, featurise one candidate into
   a `Prepared` item whose normalised copy waits in a staging folder.
The library then classifies the prepared items and commits them in one
transaction (see `Library.import_paths`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from redrum_kit import audio, hydrogen, synth
from redrum_kit.drums import class_from_name
from redrum_kit.library.oneshot import (LIBRARY_SR, MAX_IMPORT_SECONDS, compute_features,
                                        content_hash, normalise)


@dataclass
class Candidate:
    path: Path                     # original file
    kit: str
    name: str
    source: str                    # 'folder' | 'hydrogen' | 'synth'
    velocity_low: int = 0
    velocity_high: int = 127
    name_class: str | None = None  # class its name suggests (labels only)


@dataclass
class Prepared:
    candidate: Candidate
    y: np.ndarray                  # normalised copy
    hash: str
    layering: np.ndarray
    mfcc: np.ndarray
    orig_sr: int
    orig_peak: float


@dataclass
class Rejected:
    path: Path
    reason: str


def candidates(paths: list[Path], on_reject: Callable[[Rejected], None]) -> tuple[list[Candidate], int]:
    """Walk `paths` into candidates. -> (candidates, number of non-audio files skipped).

    A path named directly that is not an audio file is rejected; inside a
    folder, files without an audio extension (readme, .asd, .DS_Store) are
    skipped quietly and counted.
    """
    found: list[Candidate] = []
    skipped = 0
    for path in paths:
        path = Path(path).expanduser()
        if not path.exists():
            on_reject(Rejected(path, "no such file or folder"))
        elif path.is_dir():
            kit_name = path.resolve().name
            def unreadable(err: OSError) -> None:
                on_reject(Rejected(Path(err.filename or path), f"folder cannot be read ({err.strerror})"))

            for folder, dirs, files in os.walk(path, onerror=unreadable, followlinks=False):
                folder_path = Path(folder)
                if hydrogen.is_drumkit(folder_path):
                    dirs.clear()  # the kit's xml says which of its files are samples
                    try:
                        found += hydrogen_candidates(folder_path)
                    except Exception as exc:  # a broken xml rejects that kit only
                        on_reject(Rejected(folder_path / "drumkit.xml", str(exc)))
                    continue
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    file = folder_path / name
                    if name.startswith(".") or file.suffix.lower() not in audio.READ_EXTENSIONS:
                        skipped += 1
                        continue
                    found.append(_file_candidate(file, kit_name))
        else:
            found.append(_file_candidate(path, path.resolve().parent.name))
    return found, skipped


def _file_candidate(path: Path, kit: str) -> Candidate:
    return Candidate(path=path.resolve(), kit=kit, name=path.stem, source="folder",
                     name_class=class_from_name(path.stem))


def hydrogen_candidates(folder: Path) -> list[Candidate]:
    kit = hydrogen.read_drumkit(folder)
    out = []
    for inst in kit.instruments:
        for layer in inst.layers:  # velocity layers share the instrument's name
            out.append(Candidate(path=layer.path.resolve(), kit=kit.name, name=inst.name, source="hydrogen",
                                 velocity_low=layer.velocity_low, velocity_high=layer.velocity_high,
                                 name_class=class_from_name(inst.name)))
    return out


def synth_candidates(seeds: list[int], originals: Path) -> list[Candidate]:
    """Synthesise kits `seeds`, writing each hit as a 24-bit wav original under `originals`."""
    out = []
    for seed in seeds:
        kit_name = synth.kit_name(seed)
        folder = originals / kit_name
        folder.mkdir(parents=True, exist_ok=True)
        for pad, voice, y in synth.kit(seed):
            path = folder / f"{pad.replace(' ', '_')}.wav"
            if not path.exists():  # deterministic: an existing file holds the same hit
                audio.save(path, y, synth.SR, subtype="PCM_24")
            out.append(Candidate(path=path, kit=kit_name, name=pad, source="synth",
                                 name_class=synth.VOICE_CLASS[voice]))
    return out


def prepare(c: Candidate) -> Prepared:
    """Decode and check one candidate; raises AudioError with the reason to reject it."""
    y, sr = audio.load(c.path, max_seconds=MAX_IMPORT_SECONDS, require_sound=True, what="oneshot")
    peak = float(np.max(np.abs(y)))
    copy = normalise(y, sr)
    layering, mfcc = compute_features(copy)
    return Prepared(candidate=c, y=copy, hash=content_hash(copy), layering=layering, mfcc=mfcc,
                    orig_sr=sr, orig_peak=peak)


def copy_relpath(digest: str) -> str:
    """Where the normalised copy of `digest` lives, relative to the workspace."""
    return f"oneshots/{digest[:2]}/{digest}.wav"


def write_copy(root: Path, item: Prepared) -> Path:
    """Write the normalised copy (content-addressed, so an existing file is the same sound)."""
    target = root / copy_relpath(item.hash)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        audio.save(target, item.y, LIBRARY_SR, subtype="FLOAT")
    return target
