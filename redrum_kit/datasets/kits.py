"""Kits as training data: a `Kit` plus its samples in memory, from Hydrogen, the synthesiser or the library.

Training never goes through the user's library database for Hydrogen and
synthesiser kits (labels come from instrument names and voices), so a
dataset build is the same on every machine. The user's own kits come from
the library (`from_library`), for retraining on their sounds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from redrum_kit import audio, synth
from redrum_kit.drums import class_from_name
from redrum_kit.hydrogen import read_drumkit
from redrum_kit.library.kits import Kit, Layer, Pad, assign_notes, default_choke, key_toms


@dataclass
class SampleKit:
    kit: Kit
    samples: dict[tuple[int, int], np.ndarray]  # (pad, layer) -> mono audio at `sr`
    sr: int

    @property
    def name(self) -> str:
        return self.kit.name

    def classes(self) -> set[str]:
        return {p.cls for p in self.kit.pads}


def _keyed(name: str, pads: list[Pad], description: str) -> Kit:
    return Kit(name=name, pads=assign_notes(pads), description=description)


def from_hydrogen(folder: Path, sr: int) -> SampleKit:
    """A Hydrogen drumkit; instruments whose names say no class are left out."""
    h2 = read_drumkit(folder)
    pads, samples = [], {}
    for inst in h2.instruments:
        cls = class_from_name(inst.name)
        if cls is None:
            continue
        layers, ys = [], []
        for layer in inst.layers:
            try:
                y, _ = audio.load(layer.path, sr=sr, require_sound=True, max_seconds=30)
            except audio.AudioError:
                continue
            layers.append(Layer(path=str(layer.path), velocity=(layer.velocity_low, layer.velocity_high)))
            ys.append(y)
        if layers:
            for j, y in enumerate(ys):
                samples[(len(pads), j)] = y
            pads.append(Pad(name=inst.name, cls=cls, note=0, layers=layers, choke=default_choke(cls)))
    return SampleKit(_keyed(folder.name, pads, f"Hydrogen kit {h2.name}"), samples, sr)


def toms_by_pitch(kit: SampleKit) -> SampleKit:
    """`kit` (a copy of its pads; the samples shared) with its toms keyed low to high by the pitch of
    their loudest layers (`library.kits.key_toms`; their centroids, `variants.tom_centroid`, as before
    session 30, so that a dataset builds as it did), as a kit built by the library is."""
    from redrum_kit.variants import oneshot_pitch
    pads = [dataclasses.replace(p) for p in kit.kit.pads]
    toms = [i for i, p in enumerate(pads) if p.cls == "tom"]
    key_toms([pads[i] for i in toms],
             [oneshot_pitch(kit.samples[(i, len(pads[i].layers) - 1)], kit.sr, centroid=True) for i in toms])
    return SampleKit(dataclasses.replace(kit.kit, pads=pads), kit.samples, kit.sr)


def installed_hydrogen(names: tuple[str, ...], sr: int):
    """The Hydrogen kits `names` (folders of the installed drumkits), loaded one by one; a one-line
    error first when any is not installed."""
    from redrum_kit import workspace
    from redrum_kit.errors import RedrumError
    missing = [k for k in names if not (workspace.HYDROGEN_DRUMKITS / k).is_dir()]
    if missing:
        raise RedrumError(f"Hydrogen kits not installed: {', '.join(missing)} (`make data` installs them)")
    return (from_hydrogen(workspace.HYDROGEN_DRUMKITS / name, sr) for name in names)


def from_synth(seed: int, sr: int, machine: bool = False, variants: synth.Variants = synth.Variants()) -> SampleKit:
    pads, samples = [], {}
    for i, (name, voice, y) in enumerate(synth.kit(seed, sr=sr, machine=machine, variants=variants)):
        cls = synth.VOICE_CLASS[voice]
        pads.append(Pad(name=name, cls=cls, note=0, layers=[Layer(synth=f"{seed}/{name}")],
                        choke=default_choke(cls)))
        samples[(i, 0)] = y
    return SampleKit(_keyed(synth.kit_name(seed, machine), pads, "built-in synthesiser"), samples, sr)


def from_library(name: str, sr: int, library=None) -> SampleKit:
    """One of the user's kits (or `default`), its samples from their original files."""
    from redrum_kit.library import Library
    from redrum_kit.render import load_kit_samples
    lib = library or Library()
    kit = lib.ensure_default_kit() if name == "default" else lib.kits.load(name)
    return SampleKit(kit, load_kit_samples(kit, lib, sr), sr)
