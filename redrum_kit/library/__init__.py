"""The oneshot library: import, classify, deduplicate, search, kits.

    lib = Library()                       # $REDRUM_HOME or the platform default
    report = lib.import_paths([Path("~/Samples/Kit")])
    snares = lib.list(cls="snare")
    lib.similar(snares[0].id)

Original files are never modified: the library keeps a normalised copy of
each oneshot (see `oneshot.normalise`) and a content hash, so importing the
same sound twice adds nothing. An import either commits all its accepted
oneshots or, if it fails half-way (disk full, Ctrl-C), none of them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from redrum_kit import audio, synth, workspace
from redrum_kit.drums import ONESHOT_CLASSES
from redrum_kit.errors import AudioError, LibraryError, ModelError
from redrum_kit.library import db, importer
from redrum_kit.library.exemplars import greedy_frank_wolfe
from redrum_kit.library.kits import (EXPORT_FORMATS, Kit, KitStore, Layer, Pad, ResolvedLayer, key_toms,
                                     assign_notes, check_name, default_choke, export)
from redrum_kit.library.oneshot import LIBRARY_SR, Oneshot, same_sound
from redrum_kit.features import LAYERING_DIM, MFCC_DIM

__all__ = ["Library", "ImportReport", "Oneshot", "Kit", "Pad", "Layer", "EXPORT_FORMATS"]

DEFAULT_REAL_KIT = "GMRockKit"
DEFAULT_SYNTH_SEED = 1


@dataclass
class ImportReport:
    added: list[int] = field(default_factory=list)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)  # (file, id already holding it)
    rejected: list[importer.Rejected] = field(default_factory=list)
    skipped: int = 0  # files in folders without an audio extension

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.duplicates)} already in the library"]
        if self.rejected:
            parts.append(f"{len(self.rejected)} rejected")
        if self.skipped:
            parts.append(f"{self.skipped} non-audio files skipped")
        return ", ".join(parts)


class _NearDuplicates:
    """Finds a sound already in the library (or earlier in this import) that differs
    from a new one only by gain, format or dither: MFCC summaries narrow the
    search, then the waveforms decide (`oneshot.same_sound`)."""

    def __init__(self, lib: "Library"):
        self.lib = lib
        rows = lib.rows("SELECT f.oneshot_id, f.mfcc, o.hash FROM features f"
                        " JOIN oneshots o ON o.id = f.oneshot_id")
        self.ids: list[int] = [r[0] for r in rows]
        self.hashes: list[str] = [r[2] for r in rows]
        self.pending: list[importer.Prepared | None] = [None] * len(rows)
        self.mfcc = np.zeros((max(64, 2 * len(rows)), MFCC_DIM), np.float32)  # grows by doubling
        for i, r in enumerate(rows):
            self.mfcc[i] = np.frombuffer(r[1], np.float32)

    def add_pending(self, item: importer.Prepared) -> None:
        n = len(self.ids)
        if n == len(self.mfcc):
            self.mfcc = np.concatenate([self.mfcc, np.zeros_like(self.mfcc)])
        self.mfcc[n] = item.mfcc
        self.ids.append(-1)
        self.hashes.append(item.hash)
        self.pending.append(item)

    def find(self, item: importer.Prepared) -> str | None:
        """The hash of the same sound, or None."""
        n = len(self.ids)
        dist = np.linalg.norm(self.mfcc[:n] - item.mfcc, axis=1) / (np.linalg.norm(item.mfcc) + 1e-9)
        for i in np.flatnonzero(dist < 0.02):
            other = self.pending[i].y if self.pending[i] is not None else self.lib.audio(self.lib.get(self.ids[i]))
            if same_sound(item.y, other):
                return self.hashes[i]
        return None


def _classifier_path() -> Path:
    return workspace.model_file("classifier.safetensors")


class Library:
    """The user's oneshot library in workspace `home`."""

    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else workspace.home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.conn = db.connect(self.home / "library.sqlite")
        self.kits = KitStore(self.home / "kits", workspace.presets_dir() / "kits")
        self._classifier = None
        self._lock = threading.RLock()

    def close(self) -> None:
        self.conn.close()

    # -- classification -------------------------------------------------

    def classifier(self):
        """The shipped classifier, loaded once; None when no checkpoint is installed."""
        if self._classifier is None:
            from redrum_kit.models import classifier
            try:
                self._classifier = classifier.load(_classifier_path())
            except ModelError:
                self._classifier = False
        return self._classifier or None

    def _classify(self, items: list[importer.Prepared]) -> list[tuple[str, float, str]]:
        model = self.classifier()
        if model is None:  # no model: trust the name, flagged with zero confidence
            return [(it.candidate.name_class or "perc", 0.0, "name") for it in items]
        names, probs = model.predict([it.y for it in items], LIBRARY_SR)
        return [(n, float(p.max()), "model") for n, p in zip(names, probs)]

    # -- import -----------------------------------------------------------

    def import_paths(self, paths: list[Path], progress: Callable | None = None) -> ImportReport:
        """Import files, folders (recursively) and Hydrogen drumkits."""
        report = ImportReport()
        found, report.skipped = importer.candidates([Path(p) for p in paths], report.rejected.append)
        self._import(found, report, progress)
        unique = {r.path: r for r in report.rejected}  # a kit may name one broken file many times
        report.rejected = list(unique.values())
        return report

    def import_synth(self, seeds: list[int], progress: Callable | None = None) -> ImportReport:
        """Synthesise kits `seeds` and import them (kit names `synth-SEED`)."""
        report = ImportReport()
        found = importer.synth_candidates(seeds, self.home / "synth")
        self._import(found, report, progress)
        return report

    def _import(self, found: list[importer.Candidate], report: ImportReport,
                progress: Callable | None) -> None:
        known = {row["hash"] for row in self.rows("SELECT hash FROM oneshots")}
        near = _NearDuplicates(self)
        duplicates: list[tuple[Path, str]] = []
        batch: dict[str, importer.Prepared] = {}
        for cand in (progress(found) if progress else found):
            try:
                item = importer.prepare(cand)
            except AudioError as exc:
                report.rejected.append(importer.Rejected(cand.path, str(exc).split(": ", 1)[-1]))
                continue
            same = item.hash if item.hash in known or item.hash in batch else near.find(item)
            if same is not None:
                duplicates.append((cand.path, same))
            else:
                batch[item.hash] = item
                near.add_pending(item)
        self._commit(list(batch.values()), report)
        report.duplicates += [(path, self.by_hash(digest).id) for path, digest in duplicates]

    def _commit(self, items: list[importer.Prepared], report: ImportReport) -> None:
        """Classify and insert `items` in one transaction, with their normalised copies."""
        if not items:
            return
        classes = self._classify(items)
        written: list[Path] = []
        with self._lock:
            try:
                with db.transaction(self.conn):
                    for item, (cls, conf, how) in zip(items, classes):
                        copy = importer.write_copy(self.home, item)
                        written.append(copy)
                        c = item.candidate
                        cur = self.conn.execute(
                            "INSERT INTO oneshots (hash, path, copy, name, class, confidence, class_source, kit,"
                            " source, velocity_low, velocity_high, duration, orig_sr, orig_peak, name_class)"
                            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            (item.hash, str(c.path), importer.copy_relpath(item.hash), c.name, cls, conf, how,
                             c.kit, c.source, c.velocity_low, c.velocity_high, len(item.y) / LIBRARY_SR,
                             item.orig_sr, item.orig_peak, c.name_class))
                        self.conn.execute("INSERT INTO features (oneshot_id, layering, mfcc) VALUES (?,?,?)",
                                          (cur.lastrowid, item.layering.tobytes(), item.mfcc.tobytes()))
                        report.added.append(cur.lastrowid)
            except BaseException:
                for path in written:  # copies are named by content: none of them is in use
                    path.unlink(missing_ok=True)
                report.added.clear()
                raise

    # -- queries ----------------------------------------------------------

    def rows(self, query: str, args: tuple | list = ()) -> list:
        """Run a read query to completion (one connection serves every thread, one at a time)."""
        with self._lock:
            return self.conn.execute(query, args).fetchall()

    def list(self, cls: str | None = None, kit: str | None = None) -> list[Oneshot]:
        if cls is not None and cls not in ONESHOT_CLASSES:
            raise LibraryError(f"unknown class {cls!r}; choose from {', '.join(ONESHOT_CLASSES)}")
        query, args = "SELECT * FROM oneshots WHERE 1=1", []
        if cls:
            query, args = query + " AND class = ?", args + [cls]
        if kit:
            query, args = query + " AND kit = ?", args + [self.source_kit(kit)]
        return [Oneshot.from_row(r) for r in self.rows(query + " ORDER BY id", args)]

    def get(self, oneshot_id: int) -> Oneshot:
        found = self.rows("SELECT * FROM oneshots WHERE id = ?", (int(oneshot_id),))
        if not found:
            raise LibraryError(f"no oneshot with id {oneshot_id} (see `redrum library list`)")
        return Oneshot.from_row(found[0])

    def by_hash(self, digest: str) -> Oneshot | None:
        found = self.rows("SELECT * FROM oneshots WHERE hash = ?", (digest,))
        return Oneshot.from_row(found[0]) if found else None

    def kit_names(self) -> list[str]:
        """Names of the source kits (folders, Hydrogen kits, synth kits) in the library."""
        return [r[0] for r in self.rows("SELECT DISTINCT kit FROM oneshots ORDER BY kit")]

    def source_kit(self, given: str) -> str:
        """The library's name for a source kit given as named or by its folder, case and spacing aside
        (Hydrogen's ForzeeStereo folder holds "Forzee Stereo Drumkit"); `given` itself when none matches."""
        names = self.kit_names()
        if given in names:
            return given
        key = _loose(given)
        found = {n for n in names if _loose(n) == key}
        found |= {kit for kit, path in self.rows("SELECT DISTINCT kit, path FROM oneshots")
                  if _loose(Path(path).parent.name) == key}
        if len(found) > 1:
            raise LibraryError(f"kit {given!r} could be any of {', '.join(sorted(found))}; give its full name")
        return found.pop() if found else given

    def count(self) -> int:
        return self.rows("SELECT COUNT(*) FROM oneshots")[0][0]

    def source_file(self, oneshot: Oneshot) -> Path:
        """The file to play or export: the original at full quality, else (moved or deleted) the normalised copy."""
        original = Path(oneshot.path)
        return original if original.is_file() else self.home / oneshot.copy

    def audio(self, oneshot: Oneshot) -> np.ndarray:
        """The normalised copy at LIBRARY_SR, `(time,)` float32."""
        y, _ = audio.load(self.home / oneshot.copy)
        return y

    def set_class(self, oneshot_id: int, cls: str) -> Oneshot:
        """Correct a classification by hand; the model never overrides it afterwards."""
        if cls not in ONESHOT_CLASSES:
            raise LibraryError(f"unknown class {cls!r}; choose from {', '.join(ONESHOT_CLASSES)}")
        self.get(oneshot_id)
        with self._lock, db.transaction(self.conn):
            self.conn.execute("UPDATE oneshots SET class = ?, confidence = 1.0, class_source = 'user' WHERE id = ?",
                              (cls, int(oneshot_id)))
        return self.get(oneshot_id)

    def features(self, ids: list[int], kind: str = "mfcc") -> np.ndarray:
        """Stored features of `ids`, `(len(ids), dim)` float32; kind 'mfcc' or 'layering'."""
        if kind not in ("mfcc", "layering"):
            raise ValueError(kind)
        if not ids:
            return np.zeros((0, MFCC_DIM if kind == "mfcc" else LAYERING_DIM), np.float32)
        rows = dict(self.rows(f"SELECT oneshot_id, {kind} FROM features"))
        return np.stack([np.frombuffer(rows[i], np.float32) for i in ids])

    def similar(self, oneshot_id: int, n: int = 10, same_class: bool = False) -> list[tuple[Oneshot, float]]:
        """Nearest neighbours by MFCC summary (each dimension standardised over the library)."""
        target = self.get(oneshot_id)
        pool = [o for o in self.list(cls=target.cls if same_class else None) if o.id != target.id]
        return self._nearest(pool, self.features([target.id])[0], n)

    def similar_to_file(self, path: Path, n: int = 10, same_class: bool = False) -> tuple[str, list[tuple[Oneshot, float]]]:
        """The library's nearest neighbours of a sound that need not be in it (nothing is imported);
        `same_class`: only oneshots of the class the classifier hears in it. -> (its class, neighbours)."""
        item = importer.prepare(importer.Candidate(path=Path(path), kit="", name=Path(path).stem, source="folder"))
        cls = self._classify([item])[0][0]
        return cls, self._nearest(self.list(cls=cls if same_class else None), item.mfcc, n)

    def _nearest(self, pool: list[Oneshot], query: np.ndarray, n: int) -> list[tuple[Oneshot, float]]:
        """The `n` oneshots of `pool` nearest `query` (an MFCC summary), each dimension standardised
        over the pool and the query."""
        if n < 1:
            raise LibraryError("the number of similar oneshots must be at least 1")
        if not pool:
            return []
        everything = np.concatenate([self.features([o.id for o in pool]), np.asarray(query, np.float32)[None]])
        scale = everything.std(0) + 1e-6
        z = (everything - everything.mean(0)) / scale
        dist = np.linalg.norm(z[:-1] - z[-1], axis=1)
        order = np.argsort(dist)[:n]
        return [(pool[i], float(dist[i])) for i in order]

    def search(self, text: str, cls: str | None = None, kit: str | None = None) -> list[Oneshot]:
        """Oneshots whose name, kit or original file name holds every word of `text`, case aside
        (no words: all of them), of class `cls` and from source kit `kit` when given."""
        words = text.lower().split()
        return [o for o in self.list(cls=cls, kit=kit)
                if all(w in f"{o.name} {o.kit} {Path(o.path).name}".lower() for w in words)]

    def remove(self, ids: list[int]) -> list[Oneshot]:
        """Take oneshots out of the library: their entries and normalised copies (the original files
        stay where they are). A sound a kit plays is refused, naming the kits; then nothing is removed."""
        shots = [self.get(i) for i in dict.fromkeys(ids)]
        playing: dict[str, list[str]] = {}
        for name in self.kits.names():
            try:
                kit = self.kits.load(name)
            except LibraryError:
                continue                            # a kit that cannot be read plays nothing
            hashes = {layer.hash for pad in kit.pads for layer in pad.layers}
            for o in shots:
                if o.hash in hashes:
                    playing.setdefault(f"{o.id} ({o.name})", []).append(name)
        if playing:
            raise LibraryError("kits play " + "; ".join(f"oneshot {k}: {', '.join(v)}" for k, v in playing.items())
                               + "; take it out of those kits first (nothing was removed)")
        with self._lock, db.transaction(self.conn):
            for o in shots:
                self.conn.execute("DELETE FROM features WHERE oneshot_id = ?", (o.id,))
                self.conn.execute("DELETE FROM oneshots WHERE id = ?", (o.id,))
        for o in shots:                             # content-addressed: no other entry shares the copy
            (self.home / o.copy).unlink(missing_ok=True)
        return shots

    def exemplars(self, cls: str, n: int) -> tuple[list[Oneshot], list[float]]:
        """The `n` oneshots of `cls` that best rebuild the whole class as non-negative mixes.

        Returns (exemplars in order of choice, relative residual after each).
        """
        if n < 1:
            raise LibraryError("the number of exemplars must be at least 1")
        pool = self.list(cls=cls)
        if not pool:
            raise LibraryError(f"the library has no {cls} oneshots")
        spectra = self.features([o.id for o in pool], "layering")[:, :-1]  # spectrum part
        chosen, residuals = greedy_frank_wolfe(spectra.T, n)
        return [pool[i] for i in chosen], residuals

    # -- kits -------------------------------------------------------------

    def ensure_default_kit(self, progress: Callable | None = None) -> Kit:
        """The kit named `default`, made on first use: from a real Hydrogen kit
        when one is installed, else from the synthesiser."""
        if self.kits.exists("default"):
            return self.kits.load("default")
        real = workspace.HYDROGEN_DRUMKITS / DEFAULT_REAL_KIT
        if real.is_dir():
            self.import_paths([real], progress)
            kit = self.kit_from_source("default", self._hydrogen_kit_name(real),
                                       description=f"built from the Hydrogen kit {DEFAULT_REAL_KIT}")
        else:
            self.import_synth([DEFAULT_SYNTH_SEED], progress)
            kit = self.kit_from_source("default", synth.kit_name(DEFAULT_SYNTH_SEED),
                                       description="built from the built-in synthesiser")
        self.kits.save(kit)
        return kit

    @staticmethod
    def _hydrogen_kit_name(folder: Path) -> str:
        from redrum_kit.hydrogen import read_drumkit
        return read_drumkit(folder).name

    def kit_from_source(self, name: str, source_kit: str, description: str = "") -> Kit:
        """A kit with one pad per instrument (velocity layers kept) of a library source kit."""
        members = self.list(kit=source_kit)
        if not members:
            raise LibraryError(f"the library has no oneshots from kit {source_kit!r} "
                               f"(known: {', '.join(self.kit_names()) or 'none'})")
        groups: dict[str, list[Oneshot]] = {}
        for o in members:
            groups.setdefault(o.name, []).append(o)
        pads = []
        for pad_name, shots in groups.items():
            shots.sort(key=lambda o: o.velocity_low)
            classes = [o.cls for o in shots]
            cls = max(set(classes), key=classes.count)
            # a layer deduplicated away (the same sound at another gain) must not leave a
            # velocity gap: each layer reaches up to where the next one starts
            starts = [0] + [o.velocity_low for o in shots[1:]]
            ends = [max(s, n - 1) for s, n in zip(starts, starts[1:])] + [127]
            pads.append(Pad(name=pad_name, cls=cls, note=0, choke=default_choke(cls),
                            layers=[self._layer(o, (lo, hi)) for o, lo, hi in zip(shots, starts, ends)]))
        return self._keyed(Kit(name=check_name(name), pads=pads, description=description), toms_by_pitch=True)

    def kit_from_ids(self, name: str, pad_ids: list[list[int]], description: str = "") -> Kit:
        """A kit with one pad per list of oneshot ids (several ids: velocity layers, soft to loud)."""
        pads = []
        for ids in pad_ids:
            shots = [self.get(i) for i in ids]
            span = 128 / len(shots)
            layers = [self._layer(o, (int(k * span), int((k + 1) * span) - 1)) for k, o in enumerate(shots)]
            cls = shots[0].cls
            pads.append(Pad(name=shots[0].name, cls=cls, note=0, choke=default_choke(cls), layers=layers))
        return self._keyed(Kit(name=check_name(name), pads=pads, description=description), toms_by_pitch=True)

    def add_pad(self, kit_name: str, oneshot_id: int, pad_name: str | None = None) -> Kit:
        """Add a pad playing `oneshot_id` to the user kit `kit_name` (made if it does not exist;
        a shipped kit of that name is copied first), keyed by class, and save it."""
        o = self.get(oneshot_id)
        kit = self.kits.load(kit_name) if self.kits.exists(kit_name) else Kit(name=check_name(kit_name))
        names = {p.name for p in kit.pads}
        name = pad_name or o.name
        k = 2
        while name in names:
            name, k = f"{pad_name or o.name} {k}", k + 1
        kit.pads.append(Pad(name=name, cls=o.cls, note=0, choke=default_choke(o.cls),
                            layers=[self._layer(o, (0, 127))]))
        self.kits.save(self._keyed(kit), replace=self.kits.is_user_kit(kit_name))
        return kit

    def kit_from_exemplars(self, name: str, classes: list[str] | None = None, description: str = "") -> Kit:
        """One pad per class: the oneshot that best represents the class in this library."""
        pad_ids = []
        for cls in classes or ONESHOT_CLASSES:
            if self.list(cls=cls):
                pad_ids.append([self.exemplars(cls, 1)[0][0].id])
        if not pad_ids:
            raise LibraryError("the library is empty; import some oneshots first")
        return self.kit_from_ids(name, pad_ids, description or "the most representative sound of each class")

    @staticmethod
    def _layer(o: Oneshot, velocity: tuple[int, int]) -> Layer:
        return Layer(hash=o.hash, path=o.path, velocity=velocity)

    def _keyed(self, kit: Kit, toms_by_pitch: bool = False) -> Kit:
        """Pads in class order, keyed to General MIDI notes by class (`assign_notes`). `toms_by_pitch`
        (a new kit): its toms low to high first, so their notes climb as GM's toms do (45, 47, 48, 50)
        and a DAW's low tom plays the low one; an existing kit's toms keep their notes."""
        order = {c: i for i, c in enumerate(ONESHOT_CLASSES)}
        pitch = {id(p): self._tom_pitch(p) for p in kit.pads if p.cls == "tom"} if toms_by_pitch else {}
        kit.pads.sort(key=lambda p: (order[p.cls], pitch.get(id(p), 0.0)))
        assign_notes(kit.pads)
        return kit

    def rekey_toms(self, kit: Kit) -> list[tuple[str, int, int]]:
        """Key `kit`'s toms low to high by the pitch of their samples (`kits.key_toms`: the notes they
        already use; other pads, and a tom whose pitch cannot be measured, keep theirs). Changes `kit`
        in place: -> (pad, old note, new note) for each tom that moved."""
        toms = [p for p in kit.pads if p.cls == "tom"]
        return key_toms(toms, [self._tom_pitch(p) for p in toms])

    def _tom_pitch(self, pad: Pad) -> float:
        """log2 Hz of a tom pad's loudest layer (`variants.oneshot_pitch`; unmeasurable: after the others)."""
        from redrum_kit import variants
        try:
            y, sr = audio.load(self.source_file(self.resolve_layer(pad.layers[-1])))
        except (AudioError, LibraryError):
            return float("inf")
        found = variants.oneshot_pitch(y, sr)
        return float("inf") if found is None else found

    def resolve_layer(self, layer: Layer) -> Oneshot:
        """The library oneshot a kit layer plays, importing it first if needed."""
        if layer.hash and (found := self.by_hash(layer.hash)):
            return found
        if layer.synth:
            seed_text, _, pad = layer.synth.partition("/")
            try:
                seed = int(seed_text)
            except ValueError:
                raise LibraryError(f"bad synth layer {layer.synth!r}: expected SEED/PAD") from None
            self.import_synth([seed])
            for o in self.list(kit=synth.kit_name(seed)):
                if o.name == pad:
                    return o
            raise LibraryError(f"the synthesiser has no pad {pad!r}")
        if layer.path and Path(layer.path).is_file():
            report = self.import_paths([Path(layer.path)])
            if report.added:
                return self.get(report.added[0])
            if report.duplicates:
                return self.get(report.duplicates[0][1])
        raise LibraryError(f"a kit sample is missing from the library and from disk: {layer.path or layer.hash}")

    def export_kit(self, name: str, fmt: str, out_dir: Path) -> Path:
        kit = self.ensure_default_kit() if name == "default" else self.kits.load(name)
        resolved = []
        for pad in kit.pads:
            files = []
            for layer in pad.layers:
                files.append(ResolvedLayer(source=self.source_file(self.resolve_layer(layer)),
                                           velocity=layer.velocity))
            resolved.append(files)
        return export(kit, resolved, fmt, out_dir)


def _loose(name: str) -> str:
    """A kit name compared without case, spaces or punctuation."""
    return "".join(ch for ch in name.lower() if ch.isalnum())
