"""Kits: named sets of pads, stored as TOML, exported to samplers.

A kit file (`presets/kits/NAME.toml` shipped, `$REDRUM_HOME/kits/NAME.toml`
the user's) looks like:

    name = "my-kit"
    description = "tight funk kit"

    [[pads]]
    name = "Kick"
    class = "kick"
    note = 36          # General MIDI note the pad is keyed to
    gain_db = 0.0
    tune = 0.0         # semitones
    choke = 0          # pads with the same non-zero group cut each other off

    [pads.layering]    # optional: play the pad as a layered oneshot (redrum_kit.pads)
    velocity_pc = 1    # velocity moves the layering latent along this PCA direction
    velocity_depth = 1.5

    [[pads.layers]]    # one per velocity layer
    hash = "3f2a..."   # content hash of the oneshot in the library
    path = "/samples/kick.wav"   # its original file
    velocity = [0, 127]

A layer may name `synth = "SEED/PAD"` instead of hash and path (shipped
kits): the synthesiser makes it on first use. Kits are plain text so users
can read, edit and share them.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomli_w

from redrum_kit import audio, files, hydrogen
from redrum_kit.drums import CHOKE_GROUP, GM_NOTE, ONESHOT_CLASSES, gm_notes_for
from redrum_kit.errors import LibraryError

EXPORT_FORMATS = ("sfz", "hydrogen", "folder")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}$")


@dataclass
class Layer:
    hash: str = ""
    path: str = ""
    synth: str = ""
    velocity: tuple[int, int] = (0, 127)


@dataclass
class PadLayering:
    """A pad played as a layered oneshot (see `redrum_kit.pads`): its sample through the
    layering model of `cls`, velocity moving the latent along PCA direction `velocity_pc`."""
    cls: str = ""               # layering model; "" = the pad's class
    threshold: float = 0.04
    pca: list[float] = field(default_factory=list)   # slider positions (standard deviations)
    velocity_pc: int = 1        # 1-based; 0: velocity sets the gain only
    velocity_depth: float = 1.5

    def to_dict(self) -> dict:
        return {k: v for k, v in (("class", self.cls), ("threshold", self.threshold), ("pca", list(self.pca)),
                                  ("velocity_pc", self.velocity_pc), ("velocity_depth", self.velocity_depth))
                if v != "" and v != []}

    @classmethod
    def from_dict(cls, d: dict) -> "PadLayering":
        out = cls(cls=str(d.get("class", "")), threshold=float(d.get("threshold", 0.04)),
                  pca=[float(v) for v in d.get("pca", [])], velocity_pc=int(d.get("velocity_pc", 1)),
                  velocity_depth=float(d.get("velocity_depth", 1.5)))
        if out.cls and out.cls not in ONESHOT_CLASSES:
            raise ValueError(f"unknown layering class {out.cls!r}")
        if not 0 <= out.threshold < 1 or not 0 <= out.velocity_pc <= 11 or len(out.pca) > 11:
            raise ValueError("layering: threshold 0-1, velocity_pc 0-11, at most 11 pca values")
        return out


@dataclass
class Pad:
    name: str
    cls: str
    note: int
    layers: list[Layer] = field(default_factory=list)
    gain_db: float = 0.0
    tune: float = 0.0
    choke: int = 0
    layering: PadLayering | None = None


@dataclass
class Kit:
    name: str
    pads: list[Pad] = field(default_factory=list)
    description: str = ""

    def to_toml(self) -> str:
        data = {"name": self.name, "description": self.description, "pads": [
            {"name": p.name, "class": p.cls, "note": p.note, "gain_db": p.gain_db, "tune": p.tune,
             "choke": p.choke,
             **({"layering": p.layering.to_dict()} if p.layering else {}),
             "layers": [{k: v for k, v in (("hash", l.hash), ("path", l.path), ("synth", l.synth),
                                            ("velocity", list(l.velocity))) if v} for l in p.layers]}
            for p in self.pads]}
        return tomli_w.dumps(data)

    @classmethod
    def from_toml(cls, text: str, origin: str) -> "Kit":
        try:
            data = tomllib.loads(text)
            pads = []
            for p in data.get("pads", []):
                if p["class"] not in ONESHOT_CLASSES:
                    raise ValueError(f"unknown class {p['class']!r}")
                layers = [Layer(hash=l.get("hash", ""), path=l.get("path", ""), synth=l.get("synth", ""),
                                velocity=tuple(l.get("velocity", (0, 127)))) for l in p.get("layers", [])]
                pads.append(Pad(name=str(p["name"]), cls=p["class"], note=int(p.get("note", GM_NOTE[p["class"]])),
                                layers=layers, gain_db=float(p.get("gain_db", 0.0)),
                                tune=float(p.get("tune", 0.0)), choke=int(p.get("choke", 0)),
                                layering=PadLayering.from_dict(p["layering"]) if "layering" in p else None))
            return cls(name=str(data["name"]), pads=pads, description=str(data.get("description", "")))
        except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as exc:
            raise LibraryError(f"{origin}: not a valid kit file ({exc})") from None


def check_name(name: str) -> str:
    if not _NAME_OK.match(name or ""):
        raise LibraryError(f"invalid kit name {name!r}: use letters, digits, space, _ . + - (max 64)")
    return name


def default_choke(cls: str) -> int:
    return CHOKE_GROUP.get(cls, 0)


def assign_notes(pads: list[Pad]) -> list[Pad]:
    """Key each pad to a distinct General MIDI note, in pad order (see `drums.gm_notes_for`)."""
    for pad, note in zip(pads, gm_notes_for([p.cls for p in pads])):
        pad.note = note
    return pads


def key_toms(toms: list[Pad], pitches: list) -> list[tuple[str, int, int]]:
    """Give `toms` the notes they already use, low to high by `pitches` (log2 Hz; None: not measured,
    keeps its note), as GM's tom notes climb with pitch (41, 43, 45, 47, 48, 50), so a DAW's low tom
    plays the low one. Changes the pads: -> (pad, old note, new note) for each that moved."""
    heard = sorted(((p, k) for p, k in zip(toms, pitches) if k is not None and np.isfinite(k)),
                   key=lambda pk: pk[1])
    moved = []
    for (pad, _), note in zip(heard, sorted(p.note for p, _ in heard)):
        if pad.note != note:
            moved.append((pad.name, pad.note, note))
            pad.note = note
    return moved


class KitStore:
    """User kits in `user_dir`, shipped kits in `preset_dir`; a user kit hides a shipped one of the same name."""

    def __init__(self, user_dir: Path, preset_dir: Path):
        self.user_dir = user_dir
        self.preset_dir = preset_dir

    def _file(self, name: str) -> Path | None:
        for folder in (self.user_dir, self.preset_dir):
            path = folder / f"{name}.toml"
            if path.is_file():
                return path
        return None

    def names(self) -> list[str]:
        found = {p.stem for d in (self.user_dir, self.preset_dir) if d.is_dir() for p in d.glob("*.toml")}
        return sorted(found)

    def exists(self, name: str) -> bool:
        return self._file(name) is not None

    def is_user_kit(self, name: str) -> bool:
        return (self.user_dir / f"{name}.toml").is_file()

    def load(self, name: str) -> Kit:
        path = self._file(check_name(name))
        if path is None:
            raise LibraryError(f"no kit named {name!r} (see `redrum kit list`)")
        return Kit.from_toml(path.read_text(encoding="utf-8"), str(path))

    def save(self, kit: Kit, replace: bool = False) -> Path:
        """Write a user kit atomically. An existing user kit is kept as NAME.toml.bak when replaced."""
        check_name(kit.name)
        self.user_dir.mkdir(parents=True, exist_ok=True)
        path = self.user_dir / f"{kit.name}.toml"
        if path.exists():
            if not replace:
                raise LibraryError(f"kit {kit.name!r} already exists; choose another name or pass --replace")
            shutil.copy2(path, path.with_suffix(".toml.bak"))
        files.write_text(path, kit.to_toml(), overwrite=True)
        return path


def _safe_filename(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_") or "sample"


@dataclass
class ResolvedLayer:
    source: Path          # file to export (original, else the normalised copy)
    velocity: tuple[int, int]


def export(kit: Kit, resolved: list[list[ResolvedLayer]], fmt: str, out_dir: Path) -> Path:
    """Write `kit` to a new folder `out_dir/NAME` as SFZ, Hydrogen drumkit or plain folder.

    `resolved[i]` are the sample files of `kit.pads[i]`. The folder is built
    under a temporary name and renamed when complete: an existing folder is
    never touched, and a failed export leaves nothing behind.
    """
    if fmt not in EXPORT_FORMATS:
        raise LibraryError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
    out_dir = Path(out_dir).expanduser()
    if not out_dir.is_dir():
        raise LibraryError(f"{out_dir}: output folder does not exist")
    target = out_dir / _safe_filename(kit.name)
    if target.exists():
        raise LibraryError(f"{target}: already exists; choose another folder (nothing was overwritten)")
    staging = files.temp_sibling(target)
    staging.mkdir()
    try:
        sample_dir = staging / "samples" if fmt == "sfz" else staging
        sample_dir.mkdir(exist_ok=True)
        names = _write_samples(kit, resolved, sample_dir, numbered=(fmt == "folder"))
        if fmt == "sfz":
            (staging / f"{target.name}.sfz").write_text(_sfz(kit, names, resolved), encoding="utf-8")
        elif fmt == "hydrogen":
            (staging / "drumkit.xml").write_text(_hydrogen_xml(kit, names, resolved, staging), encoding="utf-8")
        files.publish(staging, target)
    except FileExistsError:
        raise LibraryError(f"{target}: already exists; choose another folder (nothing was overwritten)") from None
    except BaseException:
        files.remove(staging)
        raise
    return target


def _write_samples(kit: Kit, resolved: list[list[ResolvedLayer]], folder: Path,
                   numbered: bool) -> list[list[str]]:
    """Copy each layer's file (wav/flac as they are, other formats to 24-bit wav). -> file names."""
    names: list[list[str]] = []
    used: set[str] = set()
    for i, (pad, layers) in enumerate(zip(kit.pads, resolved), 1):
        pad_names = []
        for j, layer in enumerate(layers, 1):
            stem = _safe_filename(f"{i:02d}_{pad.name}" if numbered else pad.name)
            if len(layers) > 1:
                stem += f"_v{j}"
            ext = layer.source.suffix.lower() if layer.source.suffix.lower() in (".wav", ".flac") else ".wav"
            name = stem + ext
            n = 2
            while name in used:
                name, n = f"{stem}_{n}{ext}", n + 1
            used.add(name)
            if ext == layer.source.suffix.lower():
                shutil.copyfile(layer.source, folder / name)
            else:
                y, sr = audio.load(layer.source)
                audio.save(folder / name, y, sr, subtype="PCM_24")
            pad_names.append(name)
        names.append(pad_names)
    return names


def _sfz(kit: Kit, files: list[list[str]], resolved: list[list[ResolvedLayer]]) -> str:
    lines = [f"// {kit.name}: exported by redrum-kit", f"// {kit.description}".rstrip(), "",
             "<control>", "default_path=samples/", "", "<global>", "loop_mode=one_shot", ""]
    for pad, names, layers in zip(kit.pads, files, resolved):
        semis = int(round(pad.tune))
        cents = int(round((pad.tune - semis) * 100))
        lines.append(f"// {pad.name} ({pad.cls})")
        group = f" group={pad.choke} off_by={pad.choke}" if pad.choke else ""
        lines.append(f"<group> key={pad.note} volume={pad.gain_db:g} transpose={semis} tune={cents}{group}")
        for name, layer in zip(names, layers):
            lo, hi = layer.velocity
            lines.append(f"<region> sample={name} lovel={max(1, lo)} hivel={hi}")
        lines.append("")
    return "\n".join(lines)


def _hydrogen_xml(kit: Kit, files: list[list[str]], resolved: list[list[ResolvedLayer]], folder: Path) -> str:
    instruments = []
    for i, (pad, names, layers) in enumerate(zip(kit.pads, files, resolved)):
        inst = hydrogen.H2Instrument(id=i, name=pad.name, gain=10 ** (pad.gain_db / 20),
                                     mute_group=pad.choke if pad.choke else -1)
        inst.layers = [hydrogen.H2Layer(path=folder / name, velocity_low=l.velocity[0],
                                        velocity_high=l.velocity[1], pitch=pad.tune)
                       for name, l in zip(names, layers)]
        instruments.append(inst)
    return hydrogen.write_drumkit(hydrogen.H2Kit(name=kit.name, folder=folder, info=kit.description,
                                                 author="redrum-kit", instruments=instruments))
