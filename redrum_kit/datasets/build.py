"""`redrum dataset build`: rendered drum clips with their events and frame targets.

Kits are split into train / val / test by kit (Hydrogen kits named in the
config, synthesiser kits by seed range, the user's library kits to train),
never by clip. Rhythms come from the procedural generator and, when
installed, Hydrogen's demo-song patterns. Every item is drawn from its own
generator seeded by (seed, split, index): a build is deterministic, shards
can be made in any order, and an interrupted build resumes where it stopped.

Each item holds:
- `audio` `(time,)` int16 at `sr` (`clip_seconds` long);
- `targets` `(5, frames)` uint8 onset frames per transcription class at
  `sr / hop_length` frames a second;
- the kit's name and the events as played (JSON).
With `pairs = true`, each item is a stage-2 training triple instead:
`source` (kit A, rhythm 1), `target` (kit B, rhythm 2) and `pseudo`
(kit A on rhythm 2 with its exact timing: x_{s->t}), with the target's
frame targets.
With `grid_rhythms = R` (R > 0), the items of a split form a grid of kit
instances x rhythms: item `i` is kit instance `i // R` (a kit with its own
oneshot augmentation and mix chain) playing rhythm `i % R`. Any two cells
then make a stage-2 pair with its pseudo-target in the grid: source
(kit a, rhythm 1), target (kit b, rhythm 2), x_{s->t} = (kit a, rhythm 2),
so the trainer draws fresh pairings every step from one render per cell.
With `level = "kit"` every clip of a grid's kit instance, and a pair's
source and x_{s->t}, have one gain (the loudest peaking at 0.99), so
x_{s->t} sits at the source's level; the
default, "clip", turns each clip down alone when its peak passes 0.99, which
put a pair's source and x_{s->t} 2.5 dB apart on average in the test grid of
dataset-grid.toml (up to 19 dB).
Kit instances go through the split's kits in a shuffled order before any
kit repeats.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from redrum_kit import files, synth, workspace
from redrum_kit.datasets import augment as aug
from redrum_kit.datasets.kits import SampleKit, from_hydrogen, from_library, from_synth, toms_by_pitch
from redrum_kit.errors import RedrumError
from redrum_kit.library.kits import Kit, assign_notes
from redrum_kit.render import render
from redrum_kit.rhythm.events import TRANSCRIPTION_CLASS, TRANSCRIPTION_CLASSES, Pattern
from redrum_kit.rhythm.generator import STYLES, generate

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1


@dataclass
class DatasetConfig:
    seed: int = 0
    sr: int = 22050
    clip_seconds: float = 3.0
    hop_length: int = 256
    items: dict = field(default_factory=lambda: {"train": 2000, "val": 200, "test": 200})
    pairs: bool = False
    shard_size: int = 256
    hydrogen_dir: str = str(workspace.HYDROGEN_DRUMKITS)
    songs_dir: str = str(workspace.HYDROGEN_SONGS)
    test_kits: list = field(default_factory=lambda: list(workspace.HELD_OUT_KITS))
    val_kits: list = field(default_factory=lambda: list(workspace.VALIDATION_KITS))
    exclude_kits: list = field(default_factory=lambda: ["circAfrique v4", "Gimme A Hand 1.0"])  # no kit/snare/hat
    synth_kits: dict = field(default_factory=lambda: {"train": 120, "val": 10, "test": 10})
    machine_kits: int = 0            # training synthesiser kits more whose kick, toms and cymbals are
                                     # drum-machine designs (synth.machine_tom...); seeds of their own
    dark_metals: float = 0.0         # the share of synthesiser hats and cymbals of the dark, acoustic kind
                                     # (synth.hat, synth.cymbal), in every split; 0: all bright
    wide_claps: float = 0.0          # the share of synthesiser claps of the wide kind recorded kits have
                                     # (synth.clap), in every split; 0: all as before (the same draws)
    recorded_rings: float = 0.0      # the share of synthesiser hats and cymbals faded to ring as long as recorded
                                     # ones (synth.RECORDED_RINGS), in every split; 0: all as designed
    library_kits: list = field(default_factory=list)  # the user's kits, added to train
    styles: list = field(default_factory=lambda: list(STYLES))
    song_pattern_share: float = 0.3  # of rhythms taken from Hydrogen demo songs when installed
    tom_notes: bool = False          # generated fills run down the high, low-mid and floor toms (each kit's
                                     # toms by pitch); False: every fill tom on one note, as every dataset
                                     # before session 27 was built (the same draws either way)
    one_hat: bool = True             # no closed hat on a generated open hat's step (`generate`); False: both,
                                     # as every dataset before session 32 was built (the shipped recipes' configs
                                     # say so; the same draws either way)
    grid_rhythms: int = 0            # > 0: items are a kit-instance x rhythm grid (stage-2 pairs)
    grid_blocks: int = 1             # training kit instances in this many blocks, each playing rhythms of its
                                     # own (blocks x grid_rhythms rhythms; pairs come from within a block)
    level: str = "clip"              # "kit": every rhythm of a grid's kit instance, and a pair's source and
                                     # x_{s->t}, at one gain (one fader: the loudest clip peaks at 0.99), so
                                     # x_{s->t} sits at the source's level; "clip": each clip turned down alone
                                     # when its peak passes 0.99 (as every dataset before session 24 was built)
    level_spread_db: float = 0.0     # with level = "kit": each kit instance (or pair) further turned down by a
                                     # random 0..N dB, so that sources come at many levels and x_{s->t} with them
    train_real_share: float = 0.0    # of training items played by recorded (Hydrogen, library) kits; 0: uniform
    hybrid_share: float = 0.0        # of those, played by a hybrid kit (each class from a random recorded kit)
    blend_share: float = 0.0         # of a training recorded kit's pads, layered with the same drum of another
                                     # recorded training kit (`augment.blend`); 0: none, the draws as before
    augment: dict = field(default_factory=dict)  # AugmentConfig overrides

    def augment_config(self) -> aug.AugmentConfig:
        return aug.AugmentConfig(**self.augment)

    def variants(self) -> synth.Variants:
        return synth.Variants(self.dark_metals, self.wide_claps, self.recorded_rings)

    def frames(self) -> int:
        return int(self.clip_seconds * self.sr) // self.hop_length + 1


def _unit(cls: str) -> str:
    """The drums that travel together between kits: a transcription class (open and closed hats from one
    kit, like snare and clap), else the pad's own class."""
    return TRANSCRIPTION_CLASS.get(cls) or cls


def is_recorded(kit_id: str) -> bool:
    """Whether a dataset kit id is a recorded kit (Hydrogen, library, hybrid of them), not the synthesiser's."""
    return not kit_id.startswith(("synth:", "machine:"))


def sound_hashes(paths) -> set[str]:
    """sha256 of each sound's decoded 16-bit PCM: one sound copied into another kit, as WAV or FLAC, hashes
    the same. Files that cannot be read are skipped (the kit loader says so when it uses them)."""
    import hashlib

    import soundfile as sf
    out = set()
    for path in paths:
        try:
            pcm, _ = sf.read(str(path), dtype="int16", always_2d=True)
        except (OSError, RuntimeError):             # sf.LibsndfileError is a RuntimeError
            continue
        out.add(hashlib.sha256(pcm.tobytes()).hexdigest())
    return out


def hydrogen_sound_files(folder: Path) -> list[Path]:
    from redrum_kit.hydrogen import read_drumkit
    try:
        return [layer.path for inst in read_drumkit(folder).instruments for layer in inst.layers]
    except RedrumError:
        return []


def kits_sharing_sounds(folder: Path, candidates: tuple[str, ...], held_out: tuple[str, ...]) -> dict[str, list[str]]:
    """Hydrogen kits of `candidates` that share a sound with a kit of `held_out` -> those held-out kits.

    Kits get repackaged: 81 sounds of GMRockKit (held out) are in "The Black Pearl 1.0" too. Training on
    such a kit is training on the held-out one, so the dataset builder leaves it out of training.
    """
    out = {}
    for kit in candidates:
        shared = sharing_with(_kit_hashes(folder, kit), folder, held_out)
        if shared:
            out[kit] = shared
    return out


def sharing_with(hashes: set[str], folder: Path, held_out: tuple[str, ...]) -> list[str]:
    """The Hydrogen kits of `held_out` (in `folder`) holding one of these sounds (`sound_hashes`)."""
    return [k for k in held_out if hashes & _kit_hashes(folder, k)]


@functools.lru_cache(maxsize=64)
def _kit_hashes(folder: Path, kit: str) -> frozenset[str]:
    return frozenset(sound_hashes(hydrogen_sound_files(folder / kit)))


def check_library_kits(cfg: DatasetConfig) -> None:
    """Refuse a user's kit that shares a sound with a validation or test kit: trained on, that kit would
    be scored as unseen (the `default` kit is made from GMRockKit, a test kit). Sounds are compared as
    the files the kit plays (the originals, else the library's normalised copies)."""
    if not cfg.library_kits:
        return
    from redrum_kit.library import Library
    lib = Library()
    held_out = held_out_hydrogen_kits(cfg)
    for name in cfg.library_kits:
        kit = lib.ensure_default_kit() if name == "default" else lib.kits.load(name)
        files = [lib.source_file(lib.resolve_layer(layer)) for pad in kit.pads for layer in pad.layers]
        shared = sharing_with(sound_hashes(files), Path(cfg.hydrogen_dir), held_out)
        if shared:
            raise RedrumError(f"kit {name!r} shares sounds with {', '.join(shared)}, held out to measure the models on "
                              "unseen kits: take those sounds out of the kit, or hold out other kits (test_kits, "
                              "val_kits in the config)")


def hydrogen_kits(cfg: DatasetConfig) -> list[str]:
    """The Hydrogen kit folders a dataset may use (installed, not in `exclude_kits`)."""
    folder = Path(cfg.hydrogen_dir)
    real = sorted(p.name for p in folder.iterdir() if (p / "drumkit.xml").is_file()) if folder.is_dir() else []
    return [k for k in real if k not in cfg.exclude_kits]


def held_out_hydrogen_kits(cfg: DatasetConfig) -> tuple[str, ...]:
    """The Hydrogen kits of the validation and test splits."""
    return tuple(k for k in hydrogen_kits(cfg) if k in cfg.test_kits or k in cfg.val_kits)


def leaking_kits(cfg: DatasetConfig) -> dict[str, list[str]]:
    """Hydrogen kits left out of training for sharing sounds with a held-out kit -> which ones."""
    real, held_out = hydrogen_kits(cfg), held_out_hydrogen_kits(cfg)
    return kits_sharing_sounds(Path(cfg.hydrogen_dir), tuple(k for k in real if k not in held_out), held_out)


def kit_splits(cfg: DatasetConfig) -> dict[str, list[str]]:
    """Kit ids per split: 'hydrogen:FOLDER', 'synth:SEED', 'machine:SEED' (training only), 'library:NAME'.

    A Hydrogen kit that shares a sound with a validation or test kit is in no split (`kits_sharing_sounds`).
    """
    leaking = leaking_kits(cfg)
    real = [k for k in hydrogen_kits(cfg) if k not in leaking]
    base = 200_000  # synth seeds apart from the classifier's and the library's
    n = cfg.synth_kits
    seeds = {"train": range(base, base + n["train"]),
             "val": range(base + n["train"], base + n["train"] + n["val"]),
             "test": range(base + n["train"] + n["val"], base + n["train"] + n["val"] + n["test"])}
    out = {s: [f"synth:{x}" for x in seeds[s]] for s in SPLITS}
    out["test"] += [f"hydrogen:{k}" for k in real if k in cfg.test_kits]
    out["val"] += [f"hydrogen:{k}" for k in real if k in cfg.val_kits]
    out["train"] += [f"hydrogen:{k}" for k in real if k not in cfg.test_kits and k not in cfg.val_kits]
    out["train"] += [f"library:{k}" for k in cfg.library_kits]
    out["train"] += [f"machine:{400_000 + i}" for i in range(cfg.machine_kits)]
    return out


class Builder:
    """Makes items of one split. Kits are loaded once, on first use."""

    def __init__(self, cfg: DatasetConfig):
        self.cfg = cfg
        self.acfg = cfg.augment_config()
        # shorter decays, pad EQ and wide retunes change what a kit is: for training clips only, so held-out
        # kits stay themselves
        self.held_out_acfg = dataclasses.replace(self.acfg, decay=0.0, pad_eq_db=0.0, pad_tilt_db=0.0, bleed=0.0,
                                                 pad_pitch_semitones=0.0)
        self.splits = kit_splits(cfg)
        self._kits: dict[str, SampleKit] = {}
        self._instance: tuple | None = None      # (split, kit instance) and its clips, for level = "kit"
        self.song_patterns = self._song_patterns()

    def _song_patterns(self) -> list[Pattern]:
        from redrum_kit.rhythm.h2song import read_patterns
        songs = sorted(Path(self.cfg.songs_dir).glob("*.h2song")) if Path(self.cfg.songs_dir).is_dir() else []
        return [p for s in songs for p in read_patterns(s) if len(p.events) >= 4]

    def kit(self, kit_id: str) -> SampleKit:
        kind, _, name = kit_id.partition(":")
        if kind == "hybrid":
            return self.hybrid(name)
        if kit_id not in self._kits:
            kind, _, name = kit_id.partition(":")
            if kind == "hydrogen":
                kit = from_hydrogen(Path(self.cfg.hydrogen_dir) / name, self.cfg.sr)
            elif kind in ("synth", "machine"):
                kit = from_synth(int(name), self.cfg.sr, machine=kind == "machine", variants=self.cfg.variants())
            else:
                kit = from_library(name, self.cfg.sr)
            self._kits[kit_id] = kit
        return self._kits[kit_id]

    def augmented(self, kit_id: str, split: str, rng: np.random.Generator) -> SampleKit:
        """Kit `kit_id` with the augmentations of `split`'s clips (with `tom_notes`, its toms then keyed by
        pitch, so the fills' notes 50, 47, 43 run down them)."""
        kit = self.kit(kit_id)
        if split == "train" and self.cfg.blend_share > 0 and is_recorded(kit_id):
            kit = self.blended(kit, kit_id, split, rng.spawn(1)[0])
        kit = aug.augment_kit(kit, rng, self.acfg if split == "train" else self.held_out_acfg)
        return toms_by_pitch(kit) if self.cfg.tom_notes else kit

    def recorded(self, split: str) -> list[str]:
        """The split's recorded kits (Hydrogen, library): the kind users bring, and the scarce kind."""
        return [k for k in self.splits[split] if is_recorded(k)]

    def hybrid(self, name: str) -> SampleKit:
        """Kit `hybrid:SPLIT-SEED`: each transcription class's pads (both hats, snare with clap) taken
        whole from a random recorded kit of the split that has the class. A handful of recorded kits then
        give many distinct kits."""
        split, _, seed = name.partition("-")
        rng = np.random.default_rng([self.cfg.seed, SPLITS.index(split), 4, int(seed)])
        kits = [self.kit(k) for k in self.recorded(split)]
        pads, samples = [], {}
        for unit in sorted({_unit(c) for k in kits for c in k.classes()}):
            having = [k for k in kits if unit in {_unit(c) for c in k.classes()}]
            donor = having[int(rng.integers(len(having)))]
            for i, pad in enumerate(donor.kit.pads):
                if _unit(pad.cls) != unit:
                    continue
                for j in range(len(pad.layers)):
                    samples[(len(pads), j)] = donor.samples[(i, j)]
                pads.append(dataclasses.replace(pad))
        kit = Kit(name=f"hybrid {name}", pads=assign_notes(pads), description="hybrid of recorded kits")
        return SampleKit(kit, samples, self.cfg.sr)

    def blended(self, kit: SampleKit, kit_id: str, split: str, rng: np.random.Generator) -> SampleKit:
        """`kit` with `blend_share` of its pads layered with a pad of another recorded kit of the split:
        the same class where one has it (a closed hat with a closed hat), else the same transcription
        class; velocity layers matched by their place from soft to hard, one mix weight (0.25-0.75) a pad."""
        donors = [self.kit(k) for k in self.recorded(split) if k != kit_id]
        samples = dict(kit.samples)
        for i, pad in enumerate(kit.kit.pads):
            if rng.random() >= self.cfg.blend_share:
                continue
            same = ([(d, m) for d in donors for m, p in enumerate(d.kit.pads) if p.cls == pad.cls]
                    or [(d, m) for d in donors for m, p in enumerate(d.kit.pads) if _unit(p.cls) == _unit(pad.cls)])
            if not same:
                continue
            donor, m = same[int(rng.integers(len(same)))]
            weight = float(rng.uniform(0.25, 0.75))
            n, n_donor = len(pad.layers), len(donor.kit.pads[m].layers)
            for j in range(n):
                jd = int(round(j * (n_donor - 1) / max(n - 1, 1)))
                samples[(i, j)] = aug.blend(kit.samples[(i, j)], donor.samples[(m, jd)], weight, kit.sr)
        return SampleKit(kit.kit, samples, kit.sr)

    def pick_kit(self, split: str, rng: np.random.Generator) -> str:
        """The kit of an item: uniform over the split's kits, or for `train_real_share` of training
        items a recorded kit (a hybrid of them for `hybrid_share` of those)."""
        kits, share = self.splits[split], self.cfg.train_real_share
        recorded = self.recorded(split)
        if split == "train" and share > 0 and recorded and rng.random() < share:
            if len(recorded) > 1 and rng.random() < self.cfg.hybrid_share:
                return f"hybrid:{split}-{int(rng.integers(2**31))}"
            return recorded[int(rng.integers(len(recorded)))]
        return kits[int(rng.integers(len(kits)))]

    def rhythm(self, rng: np.random.Generator) -> Pattern:
        """A rhythm long enough for a clip, from a random bar of a generated part or a song pattern."""
        if self.song_patterns and rng.random() < self.cfg.song_pattern_share:
            base = self.song_patterns[int(rng.integers(len(self.song_patterns)))]
        else:
            style = self.cfg.styles[int(rng.integers(len(self.cfg.styles)))]
            base = generate(style, bars=4, seed=int(rng.integers(2**31)), microtiming=0.0,
                            tom_notes=self.cfg.tom_notes, one_hat=self.cfg.one_hat)
        p = aug.augment_pattern(base, rng, self.acfg)
        p = p.looped(self.cfg.clip_seconds + p.length + p.bar_seconds)
        start = p.bar_seconds * int(rng.integers(0, max(1, int(p.length / p.bar_seconds) - 1)))
        start += float(rng.uniform(-0.5, 0.5)) * p.bar_seconds / 4  # not always on a downbeat
        return p.window(max(0.0, start), self.cfg.clip_seconds)

    def _played(self, pattern: Pattern, kit: SampleKit) -> tuple[np.ndarray, list, float]:
        """The clip as `render` mixes it (peak at most 0.99), `clip_seconds` long, the events as played, and
        the gain `render` applied to keep that peak (1.0: none)."""
        n = int(self.cfg.clip_seconds * self.cfg.sr)
        if not pattern.events:
            return np.zeros(n, np.float32), [], 1.0
        y, report = render(pattern, kit.kit, kit.samples, self.cfg.sr, tail=0.0)
        return np.pad(y, (0, max(0, n - len(y))))[:n], report.played, report.peak_scaled

    def _render(self, pattern: Pattern, kit: SampleKit, chain) -> tuple[np.ndarray, list]:
        y, played, _ = self._played(pattern, kit)
        return aug.process_mix(y, self.cfg.sr, chain), played

    def _level_down(self, rng: np.random.Generator) -> float:
        """dB a kit instance (or pair) is turned down as a whole: 0..level_spread_db (no draw when 0)."""
        return float(rng.uniform(0, self.cfg.level_spread_db)) if self.cfg.level_spread_db else 0.0

    def targets(self, played: list) -> np.ndarray:
        out = np.zeros((len(TRANSCRIPTION_CLASSES), self.cfg.frames()), np.uint8)
        for t, cls, _ in played:
            tc = TRANSCRIPTION_CLASS.get(cls)
            frame = int(round(t * self.cfg.sr / self.cfg.hop_length))
            if tc is not None and 0 <= frame < out.shape[1]:
                out[TRANSCRIPTION_CLASSES.index(tc), frame] = 1
        return out

    def grid_item(self, split: str, index: int) -> dict:
        """Kit instance `index // R` playing rhythm `index % R` (see the module's docstring)."""
        cfg, kits = self.cfg, self.splits[split]
        k, r = divmod(index, cfg.grid_rhythms)
        order = np.random.default_rng([cfg.seed, SPLITS.index(split), 3]).permutation(len(kits))
        kit_rng = np.random.default_rng([cfg.seed, SPLITS.index(split), 1, k])
        kit_id = kits[int(order[k % len(kits)])]
        kit = self.augmented(kit_id, split, kit_rng)
        chain = aug.mix_chain(kit_rng, self.acfg.mix_chain)
        block = grid_block(dataclasses.asdict(cfg), split, k)

        def rhythm(r: int) -> Pattern:
            key = [cfg.seed, SPLITS.index(split), 2, r] + ([block] if block else [])   # block 0: as before blocks
            return self.rhythm(np.random.default_rng(key))

        if cfg.level == "kit":
            y, played = self._instance_clips(split, k, kit, chain, rhythm, self._level_down(kit_rng))[r]
        else:
            y, played = self._render(rhythm(r), kit, chain)
        return {"audio": y, "targets": self.targets(played), "kit": kit_id, "events": played,
                "kit_instance": k, "rhythm": r, "block": block}

    def _instance_clips(self, split: str, k: int, kit: SampleKit, chain, rhythm,
                        down_db: float = 0.0) -> list[tuple[np.ndarray, list]]:
        """Every rhythm of kit instance `k`, rendered at one level (`_render_together`). The last instance is
        kept: a shard asks for its rhythms one by one."""
        if self._instance and self._instance[0] == (split, k):
            return self._instance[1]
        clips = self._render_together([rhythm(r) for r in range(self.cfg.grid_rhythms)], kit, chain, down_db)
        self._instance = ((split, k), clips)
        return clips

    def _render_together(self, patterns: list[Pattern], kit: SampleKit, chain,
                         down_db: float = 0.0) -> list[tuple[np.ndarray, list]]:
        """`patterns` played by one kit through one mix chain at one gain before the chain and one after it,
        the loudest clip peaking at 0.99 at each point (`level = "kit"`), as one fader would; then all of
        them turned down by `down_db`."""
        raw = [(y / scaled, played) for y, played, scaled in (self._played(p, kit) for p in patterns)]
        before = 0.99 / max(0.99, max(float(np.max(np.abs(y))) for y, _ in raw))
        mixed = [(chain((y * before)[None, :].astype(np.float32), self.cfg.sr)[0] if len(chain) else y * before, played)
                 for y, played in raw]
        after = 0.99 / max(0.99, max(float(np.max(np.abs(y))) for y, _ in mixed)) * 10 ** (-down_db / 20)
        return [((y * after).astype(np.float32), played) for y, played in mixed]

    def item(self, split: str, index: int) -> dict:
        rng = np.random.default_rng([self.cfg.seed, SPLITS.index(split), index])
        kits = self.splits[split]
        if not kits:
            raise RedrumError(f"no kits for the {split} split")
        if self.cfg.grid_rhythms:
            return self.grid_item(split, index)
        source_id = self.pick_kit(split, rng)
        source = self.augmented(source_id, split, rng)
        chain_s = aug.mix_chain(rng, self.acfg.mix_chain)
        if not self.cfg.pairs:
            y, played = self._render(self.rhythm(rng), source, chain_s)
            return {"audio": y, "targets": self.targets(played), "kit": source_id, "events": played}
        target_id = source_id
        while target_id == source_id and len(kits) > 1:
            target_id = kits[int(rng.integers(len(kits)))]
        target = self.augmented(target_id, split, rng)
        chain_t = aug.mix_chain(rng, self.acfg.mix_chain)
        r_s, r_t = self.rhythm(rng), self.rhythm(rng)
        x_t, played_t = self._render(r_t, target, chain_t)
        if self.cfg.level == "kit":              # the source's sounds on the target's timing, at the source's level
            (x_s, _), (x_st, played_st) = self._render_together([r_s, r_t], source, chain_s, self._level_down(rng))
        else:
            x_s, _ = self._render(r_s, source, chain_s)
            x_st, played_st = self._render(r_t, source, chain_s)
        return {"source": x_s, "target": x_t, "pseudo": x_st, "targets": self.targets(played_t),
                "kit": source_id, "target_kit": target_id, "events": played_t, "pseudo_events": played_st}


def grid_block(config: dict, split: str, instance: int) -> int:
    """The rhythm block of a kit instance of a grid split (`config`: a DatasetConfig as a dict, as a
    manifest holds it). Training instances are cut into `grid_blocks` runs of about equal length;
    validation and test are one block."""
    blocks = int(config.get("grid_blocks") or 1)
    if split != "train" or blocks <= 1:
        return 0
    instances = int(config["items"]["train"]) // int(config["grid_rhythms"])
    return min(blocks - 1, instance * blocks // max(1, instances))


def _to_int16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)


def write_shard(items: list[dict], path: Path) -> None:
    """One .npz of items (audio as int16), written under a temporary name and renamed."""
    arrays = {}
    for key in ("audio", "source", "target", "pseudo"):
        if key in items[0]:
            arrays[key] = np.stack([_to_int16(it[key]) for it in items])
    arrays["targets"] = np.stack([it["targets"] for it in items])
    meta = [{k: v for k, v in it.items() if k not in arrays} for it in items]
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = files.temp_sibling(path)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        files.publish(tmp, path, overwrite=True)
    except BaseException:
        files.remove(tmp)
        raise


BEFORE = {"one_hat": False}          # what a build from before an option was added did (else: its default)


def _comparable(config: dict, old: dict) -> dict:
    """`config` as JSON, without options added since `old` was built that keep what builds did then."""
    defaults = {**json.loads(json.dumps(dataclasses.asdict(DatasetConfig()))), **BEFORE}
    new = json.loads(json.dumps(config))
    return {k: v for k, v in new.items() if k in old or v != defaults.get(k)}


def build(cfg: DatasetConfig, out: Path, progress=None, workers: int = 1) -> dict:
    """Build (or resume) the dataset in `out`, shards in `workers` processes. -> the manifest."""
    out = Path(out)
    if cfg.grid_rhythms:
        if cfg.pairs:
            raise RedrumError("a dataset is either `pairs` or a `grid_rhythms` grid, not both")
        uneven = [s for s in SPLITS if int(cfg.items.get(s, 0)) % cfg.grid_rhythms]
        if uneven:
            raise RedrumError(f"items of {', '.join(uneven)} must be a multiple of grid_rhythms ({cfg.grid_rhythms})")
        if not 1 <= cfg.grid_blocks <= max(1, int(cfg.items.get("train", 0)) // cfg.grid_rhythms // 2):
            raise RedrumError("grid_blocks must be at least 1 and leave two kit instances in every block")
    if cfg.level not in ("clip", "kit"):
        raise RedrumError(f"level must be \"clip\" or \"kit\" (not {cfg.level!r})")
    if not isinstance(cfg.level_spread_db, (int, float)) or not 0 <= cfg.level_spread_db <= 60 or (
            cfg.level_spread_db and cfg.level != "kit"):
        raise RedrumError(f"level_spread_db must be 0-60 dB, with level = \"kit\" (not {cfg.level_spread_db!r})")
    for name in [f.name for f in dataclasses.fields(synth.Variants)] + ["blend_share"]:
        share = getattr(cfg, name)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise RedrumError(f"{name} must be a share from 0 to 1 (not {share!r})")
    bleed = cfg.augment.get("bleed", 0.0)
    if not isinstance(bleed, (int, float)) or not 0 <= bleed <= 1:
        raise RedrumError(f"[augment] bleed must be a share of kits from 0 to 1 (not {bleed!r})")
    wide = cfg.augment.get("pad_pitch_semitones", 0.0)
    if isinstance(wide, bool) or not isinstance(wide, (int, float)) or not 0 <= wide <= 12:
        raise RedrumError(f"[augment] pad_pitch_semitones must be 0 (off) to 12 semitones (not {wide!r})")
    if not isinstance(cfg.machine_kits, int) or cfg.machine_kits < 0:
        raise RedrumError(f"machine_kits must be a whole number of kits, 0 or more (not {cfg.machine_kits!r})")
    check_library_kits(cfg)
    manifest_path = out / "manifest.json"
    config = dataclasses.asdict(cfg)
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("config") != _comparable(config, old.get("config") or {}):
            raise RedrumError(f"{out}: holds a dataset built with another config; choose another folder")
        if old.get("complete") and all((out / n).is_file() for names in old["shards"].values() for n in names):
            return old  # built already: leave it untouched (other readers may have it open)
    elif out.exists() and any(out.iterdir()):
        raise RedrumError(f"{out}: exists and is not a dataset; choose a new folder (nothing was overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    builder = Builder(cfg)
    manifest = {"version": FORMAT_VERSION, "config": config, "kits": builder.splits,
                "left_out_kits": {k: f"shares sounds with {', '.join(v)} (held out)"
                                  for k, v in leaking_kits(cfg).items()},
                "classes": list(TRANSCRIPTION_CLASSES), "frame_rate": cfg.sr / cfg.hop_length,
                "shards": {}, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    files.write_text(manifest_path, json.dumps(manifest, indent=1), overwrite=True)
    jobs = []
    for split in SPLITS:
        n = int(cfg.items.get(split, 0))
        names = []
        for k, start in enumerate(range(0, n, cfg.shard_size)):
            name = f"{split}-{k:05d}.npz"
            names.append(name)
            jobs.append((split, start, min(n, start + cfg.shard_size), out / name))
        manifest["shards"][split] = names
    todo = [j for j in jobs if not j[3].exists()]
    total = sum(stop - start for _, start, stop, _ in todo)
    bar = progress(total) if progress else None
    if workers > 1 and len(todo) > 1:
        # each worker process builds whole shards with its own Builder (items are seeded by index, so
        # the shards are the same as one process makes)
        import multiprocessing
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(workers, len(todo)), initializer=_start_worker, initargs=(cfg,)) as pool:
            for n in pool.imap_unordered(_build_shard, todo):
                if bar:
                    bar.update(n)
    else:
        with one_torch_thread():
            for split, start, stop, path in todo:
                items = []
                for i in range(start, stop):
                    items.append(builder.item(split, i))
                    if bar:
                        bar.update(1)
                write_shard(items, path)
    if bar:
        bar.close()
    manifest["complete"] = True
    files.write_text(manifest_path, json.dumps(manifest, indent=1), overwrite=True)
    return manifest


_worker_builder: Builder | None = None


@contextlib.contextmanager
def one_torch_thread():
    """Render with one torch thread: sums in resampling then run in one order, so a build gives the
    same bits on any machine and with any number of workers (two threads moved a sample by 2 LSB)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _start_worker(cfg: DatasetConfig) -> None:
    global _worker_builder
    import torch
    torch.set_num_threads(1)   # as one_torch_thread; N workers x a thread per core each also thrashes: one
                               # build on a 16-core GPU machine without this made no visible progress in 10 min
    _worker_builder = Builder(cfg)


def _build_shard(job: tuple) -> int:
    split, start, stop, path = job
    write_shard([_worker_builder.item(split, i) for i in range(start, stop)], path)
    return stop - start


class Dataset:
    """Read a built dataset split: `len(ds)`, `ds[i]` -> dict of float32 audio, targets, meta.

    Shards are read one at a time (sequential reading holds one in memory);
    `in_memory=True` keeps every shard once read, for training in random order.
    """

    def __init__(self, folder: Path, split: str, in_memory: bool = False):
        self.folder, self.split = Path(folder), split
        manifest = json.loads((self.folder / "manifest.json").read_text())
        if not manifest.get("complete"):
            raise RedrumError(f"{folder}: the dataset build did not finish; run the build again to resume")
        self.manifest = manifest
        self.shards = manifest["shards"][split]
        self.shard_size = manifest["config"]["shard_size"]
        self.length = int(manifest["config"]["items"].get(split, 0))
        self.in_memory = in_memory
        self._loaded: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(i)
        k, j = divmod(i, self.shard_size)
        if k not in self._loaded:
            if not self.in_memory:
                self._loaded.clear()
            with np.load(self.folder / self.shards[k]) as z:
                self._loaded[k] = {key: z[key] for key in z.files}
                self._loaded[k]["meta"] = json.loads(str(self._loaded[k]["meta"]))
        data = self._loaded[k]
        item = {key: data[key][j].astype(np.float32) / 32767 for key in ("audio", "source", "target", "pseudo")
                if key in data}
        item["targets"] = data["targets"][j]
        item.update(data["meta"][j])
        return item
