"""The engine: the one facade every front end (OSC, browser, CLI, MIDI) calls.

It owns the workspace, the device, model loading (lazily, once per model),
the rules on which files may be read and written, and the job queue:

    engine = Engine(allow_roots=[...])          # None: any path (the CLI, a local user)
    engine.layer("kick.wav")                    # run now, in this thread -> {"path": ..., "layers": ...}
    job = engine.submit("layer", target="kick.wav", progress=callback)   # queued, run by the worker
    job.wait(); job.result / job.error

Operations read audio only under the allowed roots and write new files only
under the workspace's `renders/` folder or an allowed root, through a
temporary name and an atomic rename, never over an existing file. A
`RedrumError` from here is a message for the user.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from redrum_kit import __version__
from redrum_kit.errors import RedrumError

log = logging.getLogger("redrum.engine")

OPERATIONS = ("transform", "interpolate", "layer", "layer_interpolate", "transcribe", "render", "save_pad")
MAX_QUEUE = 16                 # jobs waiting or running; one more is refused as busy
MAX_SECONDS = 600.0            # longest audio an operation reads (the models' own limits may be lower)
BATCHED = ("layer",)           # job kinds the worker runs together when batching (on a GPU)
BATCH_SIZE = 32


class Busy(RedrumError):
    """The job queue is full."""


class Cancelled(RedrumError):
    """A job was cancelled before it finished; it wrote nothing."""


def pick_device(requested: str = "auto") -> str:
    """'auto' -> 'cuda' when a CUDA GPU is usable, else 'cpu'."""
    import torch
    if requested not in ("auto", "cpu", "cuda"):
        raise RedrumError(f"unknown device {requested!r}; choose auto, cpu or cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RedrumError("--device cuda was asked for, but no CUDA GPU is available")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def save_audio(out: Path, y: np.ndarray, sr: int) -> None:
    """A result the user asked for: 24-bit FLAC, or 32-bit float WAV (no clipping of hot mixes);
    through a temporary file, never over an existing one."""
    from redrum_kit import audio
    audio.save(out, y, sr, subtype="PCM_24" if out.suffix.lower() == ".flac" else "FLOAT")


def refuse_existing(*paths) -> None:
    """Outputs are new files: an existing one is the user's and stays as it is."""
    for path in paths:
        if path is not None and Path(path).exists():
            raise RedrumError(f"{path}: already exists; choose another name (nothing was overwritten)")


def morph_paths(a: Path, b: Path, steps: int, folder: Path) -> list[Path]:
    """The files of a morph from A to B (`A-to-B-00.wav` ...) in `folder`, checked before any work:
    a sane step count, a folder (made later), no file of the user's in the way."""
    if not 2 <= steps <= 64:
        raise RedrumError("steps must be between 2 and 64")
    if folder.exists() and not folder.is_dir():
        raise RedrumError(f"{folder}: exists and is not a folder")
    paths = [folder / f"{a.stem}-to-{b.stem}-{k:02d}.wav" for k in range(steps)]
    refuse_existing(*paths)
    return paths


def safe_name(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit] or "audio"


@dataclass
class Job:
    """One queued operation. `state`: queued, running, done, error or cancelled."""
    id: str
    kind: str
    kwargs: dict = field(repr=False)
    state: str = "queued"
    progress: float = 0.0
    result: dict | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    listener: Callable[[float], None] | None = field(default=None, repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def cancel(self) -> None:
        self._cancel.set()

    def report(self, fraction: float) -> None:
        """Progress from the running operation; raises Cancelled when a cancel was asked for."""
        if self._cancel.is_set():
            raise Cancelled(f"job {self.id} was cancelled")
        self.progress = float(min(1.0, max(0.0, fraction)))
        if self.listener is not None:
            try:
                self.listener(self.progress)
            except Exception:  # a front end that cannot show progress must not fail the job
                log.exception("progress listener of job %s failed", self.id)

    def to_json(self) -> dict:
        out = {"id": self.id, "kind": self.kind, "state": self.state, "progress": round(self.progress, 3)}
        if self.error is not None:
            out["error"] = self.error
        if self.result is not None:
            out["result"] = self.result
        return out


def _no_progress(fraction: float) -> None:
    return None


@dataclass
class LayerRequest:
    """A layer job checked and prepared, waiting for the model (alone or in a batch)."""
    layerer: object
    feat: object
    cut: bool
    threshold: float
    sliders: dict | None
    out: Path
    stems: Path | None
    json_path: str | Path | None
    refine: bool = False


class Engine:
    """Operations on audio files, the job queue, and the lazily loaded models.

    allow_roots: folders input files may come from and outputs may go to (besides the
    workspace); None allows any path (a local user on the command line).
    """

    def __init__(self, home: Path | None = None, device: str = "auto", allow_roots: list[Path] | None = None,
                 max_queue: int = MAX_QUEUE, max_seconds: float = MAX_SECONDS, audio_output: str | None = None,
                 batch: bool | None = None, batch_size: int = BATCH_SIZE):
        from redrum_kit import workspace
        self.device = pick_device(device)
        self._home = home
        self.workspace = Path(home) if home else workspace.home()
        self.roots = None if allow_roots is None else [Path(r).expanduser().resolve() for r in allow_roots]
        self.max_queue, self.max_seconds = max_queue, max_seconds
        self.batch = self.device == "cuda" if batch is None else batch   # concurrent layer jobs in one pass
        self.batch_size = batch_size
        self._library = None
        self._models: dict[str, object] = {}
        self.audio_output = audio_output       # pads: None = the default sound device, "null" = no sound
        self._players: dict[str, tuple] = {}
        self._handed_out: set[Path] = set()     # render names given to jobs that may not have written yet
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._closed = False

    # -- paths -------------------------------------------------------------------

    @property
    def renders(self) -> Path:
        folder = self.workspace / "renders"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _allowed(self, path: Path) -> bool:
        if self.roots is None:
            return True
        real = path.resolve()
        return any(real.is_relative_to(root) for root in [*self.roots, self.workspace.resolve()])

    def fresh_path(self, name: str, suffix: str = "") -> Path:
        """A name in the renders folder that nothing has and no other job was given:
        NAME-DATE-TIME[-K]SUFFIX."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        with self._lock:
            for k in itertools.count():
                p = self.renders / f"{name}-{stamp}{f'-{k}' if k else ''}{suffix}"
                if not p.exists() and p not in self._handed_out:
                    self._handed_out.add(p)
                    return p

    def input_path(self, path: str | Path, what: str = "input", folder: bool = False) -> Path:
        """A file (or folder) to read: it exists and lies under an allowed root."""
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise RedrumError(f"{what}: give a {'folder' if folder else 'file'} path")
        p = Path(path).expanduser()
        if not self._allowed(p):
            raise RedrumError(f"{what} {p}: outside the folders this server may read (allow it with --allow-root)")
        if not (p.is_dir() if folder else p.is_file()):
            raise RedrumError(f"{what} {p}: no such {'folder' if folder else 'file'}")
        return p

    def output_path(self, path: str | Path | None, default_name: str, suffixes=(".wav", ".flac")) -> Path:
        """Where a result goes: `path` when given (new, under an allowed root, in an existing folder),
        else a unique name in the workspace's renders folder."""
        if path is None or str(path) == "":
            return self.fresh_path(default_name, suffixes[0])
        p = Path(path).expanduser()
        if not self._allowed(p):
            raise RedrumError(f"output {p}: outside the folders this server may write (the workspace "
                              "or an --allow-root folder)")
        if p.suffix.lower() not in suffixes:
            raise RedrumError(f"output {p.name}: write {' or '.join(suffixes)}")
        if not p.parent.is_dir():
            raise RedrumError(f"output {p}: the folder {p.parent} does not exist")
        refuse_existing(p)
        return p

    def _side_outputs(self, *paths) -> None:
        """Extra files a caller asked for (a JSON report, a plot): new, and where it may write."""
        for p in paths:
            if p is not None and not self._allowed(Path(p).expanduser()):
                raise RedrumError(f"output {p}: outside the folders this server may write")
        refuse_existing(*paths)

    def output_folder(self, path: str | Path | None, default_name: str) -> Path:
        if path is None or str(path) == "":
            return self.fresh_path(default_name)
        p = Path(path).expanduser()
        if not self._allowed(p):
            raise RedrumError(f"output {p}: outside the folders this server may write")
        return p

    # -- models ------------------------------------------------------------------

    def _model(self, key: str, load: Callable[[], object]):
        with self._lock:   # each model loaded once, by whichever caller needs it first
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]

    def redrummer(self):
        from redrum_kit import transform
        return self._model("redrum", lambda: transform.Redrummer(
            transform.load_model(device=self.device), transform.load_conditioning()))

    def transcriber(self, method: str = "auto"):
        from redrum_kit.transcription import load_model
        return self._model(f"transcriber-{method}", lambda: load_model(method))

    def layerer(self, cls: str | None, y: np.ndarray, sr: int, name: str):
        """The layering model of `cls` (None: the class the classifier hears in `y`)."""
        from redrum_kit.drums import ONESHOT_CLASSES
        from redrum_kit.layering import Layerer, checkpoint_path, installed_classes
        if cls is None:
            from redrum_kit.library import _classifier_path
            from redrum_kit.models import classifier
            cls = self._model("classifier", lambda: classifier.load(_classifier_path())).predict([y], sr)[0][0]
        if cls not in ONESHOT_CLASSES:
            raise RedrumError(f"unknown class {cls!r}; choose one of {', '.join(ONESHOT_CLASSES)}")
        if not checkpoint_path(cls).is_file():
            raise RedrumError(f"{name}: no layering model for {cls} (installed: {', '.join(installed_classes()) or 'none'}); "
                              f"give a class, or run `redrum train layering --class {cls}`")
        return self._model(f"layering-{cls}", lambda: Layerer(cls))

    @property
    def library(self):
        with self._lock:  # opened once, on first use, by whichever thread asks first
            if self._library is None:
                from redrum_kit.library import Library
                self._library = Library(self._home)
            return self._library

    def kit(self, name: str):
        lib = self.library
        return lib.ensure_default_kit() if name == "default" else lib.kits.load(name)

    def pad_sounds(self, kit, sr: int = 44100, mono: bool = True):
        """The kit's sound per pad and velocity (layered pads through their layering models); `mono`
        false keeps stereo samples stereo."""
        from redrum_kit.pads import PadSounds
        return PadSounds(kit, self.library, sr, lambda cls: self.layerer(cls, None, 0, f"layered pad ({cls})"),
                         mono=mono)

    def player(self, kit: str = "default"):
        """The live pad player of `kit` with its audio output, made on first use."""
        from redrum_kit import live
        from redrum_kit.pads import Player
        with self._lock:
            if kit not in self._players:
                player = Player(self.pad_sounds(self.kit(kit), mono=False))
                sink = (live.NullSink(player).start() if self.audio_output == "null"
                        else live.open_audio_output(player, self.audio_output))
                self._players[kit] = (player, sink)
            return self._players[kit][0]

    def layer_kit(self, name: str, new_name: str | None = None, velocity_pc: int = 1,
                  velocity_depth: float = 1.5) -> dict:
        """Make the pads of kit `name` whose class has a layering model play as layered oneshots;
        saved as user kit `new_name` (default: `name`; a user kit of that name is kept as .bak)."""
        from redrum_kit.pads import make_layered
        if not 0 <= velocity_pc <= 11:
            raise RedrumError("the velocity direction must be a PCA slider 1-11 (0: gain only)")
        if not 0 <= velocity_depth <= 5:
            raise RedrumError("the velocity depth must be 0-5 standard deviations")
        kit = self.kit(name)
        kit.name = new_name or name
        layered = make_layered(kit, velocity_pc, velocity_depth)
        if not layered:
            raise RedrumError(f"kit {name!r} has no pad of a class with a layering model "
                              "(`redrum train layering --class C` makes one)")
        self.library.kits.save(kit, replace=self.library.kits.is_user_kit(kit.name))
        return {"kit": kit.name, "layered": layered}

    def rekey_kit(self, name: str, new_name: str | None = None) -> dict:
        """Key kit `name`'s toms low to high by the pitch of their samples (`Library.rekey_toms`; kits
        built since session 26 already are); saved as user kit `new_name` (default: `name`; a user kit
        of that name is kept as .bak) when a note moves, else nothing is written."""
        from redrum_kit.library.kits import check_name
        kit = self.kit(name)
        kit.name = check_name(new_name or name)
        moved = self.library.rekey_toms(kit)
        if moved:
            self.library.kits.save(kit, replace=self.library.kits.is_user_kit(kit.name))
        return {"kit": kit.name, "saved": bool(moved),
                "moved": [{"pad": pad, "from": old, "to": new} for pad, old, new in moved]}

    def pad_trigger(self, pad: int | str, velocity: int = 100, kit: str = "default") -> dict:
        """Play a pad (MIDI note or pad name) of `kit` on the server's audio output."""
        if isinstance(velocity, bool) or not isinstance(velocity, (int, float)) or int(velocity) != velocity:
            raise RedrumError(f"velocity must be a whole number 0-127, got {velocity!r}")
        player = self.player(kit)
        start = time.perf_counter()
        voice = player.note_on(pad, int(velocity))
        ms = 1000 * (time.perf_counter() - start)
        name = player.sounds.kit.pads[player.pad_index(pad)].name
        return {"pad": name, "velocity": int(velocity), "played": voice is not None, "latency_ms": round(ms, 3)}

    # -- operations (run in the caller's thread; `submit` queues them) -------------

    def ping(self) -> dict:
        return {"version": __version__, "device": self.device}

    def library_list(self, cls: str | None = None, kit: str | None = None, name: str | None = None) -> dict:
        """The library's oneshots, of a class, from a source kit, whose name holds every word of `name`."""
        return {"items": [o.to_json() for o in self.library.search(name or "", cls or None, kit or None)]}

    def transform(self, source: str | Path | None, target: str | Path, out: str | Path | None = None,
                  method: str = "model", kit: str | None = None, json_path: str | Path | None = None,
                  plot: str | Path | None = None, progress=_no_progress, decays: str = "source",
                  only: str | tuple[str, ...] = (), double: bool = False) -> dict:
        """The source's drum sounds on the target's rhythm (method model or replace; `kit` plays a
        library kit by replacement; `decays`, model only: "source", each drum dying away as the
        source's do, or "model", as decoded; `only` (classes, or "kick,snare") and `double`, replace
        only: replace those drums alone in the target's mix, or lay the new hits over the target's
        own). -> {"path", "method", ...}."""
        from redrum_kit import audio, files
        from redrum_kit.replace import drum_classes
        method = method or ("replace" if kit else "model")
        if method not in ("model", "replace"):
            raise RedrumError(f"unknown method {method!r}; choose model or replace")
        self._check_decays(decays)
        if kit and method == "model":
            raise RedrumError("a kit is played by drum replacement: use method replace")
        only = drum_classes(only)
        if (only or double) and method != "replace":
            raise RedrumError("replacing only some drums, or doubling them, is drum replacement: use method replace")
        if plot and method != "model":
            raise RedrumError("the plot draws the model's attention: use it with method model")
        target = self.input_path(target, "target")
        src = None if kit else self.input_path(source, "source")
        name = safe_name(f"{src.stem if src else kit}-on-{target.stem}")
        out = self.output_path(out, name)
        self._side_outputs(json_path, plot)
        self._check_length(target, "target")
        progress(0.05)
        if method == "model":
            from redrum_kit import transform
            redrummer = self.redrummer()
            progress(0.2)
            result = transform.transform_files(src, target, redrummer, lambda f: progress(0.2 + 0.7 * f), decays)
            data = dict(result.to_json(), message=result.describe())
            if plot:
                s_y, _ = audio.load(src, sr=result.sr, max_seconds=transform.MAX_SECONDS)
                t_y, _ = audio.load(target, sr=result.sr, max_seconds=transform.MAX_SECONDS)
                transform.plot(result, s_y, t_y, Path(plot))
        else:
            from redrum_kit.replace import replace_drums
            if kit:
                from redrum_kit.render import load_kit_samples
                _, sr, _ = audio.info(target)
                k = self.kit(kit)
                result = replace_drums(target, kit=k, kit_samples=load_kit_samples(k, self.library, sr, mono=False),
                                       only=only, double=double)
            else:
                result = replace_drums(target, source=src, only=only, double=double)
            progress(0.9)
            data = dict(result.to_json(), message=result.describe(f"kit {kit!r}" if kit else "the source"))
        save_audio(out, result.y, result.sr)
        data.update(path=str(out), seconds=round(len(result.y) / result.sr, 3))
        if json_path:
            files.write_text(Path(json_path), json.dumps(data, indent=1))
        return data

    def interpolate(self, a: str | Path, b: str | Path, steps: int = 8, out_dir: str | Path | None = None,
                    space: str = "latent", progress=_no_progress, decays: str = "source") -> dict:
        """`steps` files from A's rhythm to B's, in A's sounds (`decays` as in `transform`).
        -> {"paths", "space", "decays"}."""
        from redrum_kit import transform
        if space not in transform.INTERPOLATION_SPACES:
            raise RedrumError(f"unknown space {space!r}; choose {' or '.join(transform.INTERPOLATION_SPACES)}")
        self._check_decays(decays)
        a, b = self.input_path(a, "A"), self.input_path(b, "B")
        folder = self.output_folder(out_dir, safe_name(f"{a.stem}-to-{b.stem}"))
        paths = morph_paths(a, b, self._steps(steps), folder)
        progress(0.05)
        morph, sr = transform.interpolate_files(a, b, len(paths), space, self.redrummer(), decays)
        progress(0.9)
        self._write_set(folder, [(p, y, sr) for p, y in zip(paths, morph.steps)])
        return {"paths": [str(p) for p in paths], "space": space, "sample_rate": sr, "decays": decays,
                "source_window": [round(morph.source_start, 3), round(morph.source_start + morph.source_seconds, 3)],
                "guessed": list(morph.guessed), "message": morph.describe()}

    @staticmethod
    def _check_decays(decays: str) -> None:
        from redrum_kit.transform import DECAYS
        if decays not in DECAYS:
            raise RedrumError(f"unknown decays {decays!r}; choose {' or '.join(DECAYS)}")

    def layer(self, target: str | Path, threshold: float = 0.04, out: str | Path | None = None,
              cls: str | None = None, sliders: dict[int, float] | None = None, stems: str | Path | None = None,
              json_path: str | Path | None = None, refine: bool = False, progress=_no_progress) -> dict:
        """A new oneshot as a sparse mix of the class's library (`refine`: fitted more closely to
        the target, see `layering.refine_weights`). -> {"path", "layers", "class", ...}."""
        request = self._layer_request(target, threshold, out, cls, sliders, stems, json_path, refine)
        progress(0.1)
        w, z = request.layerer.weights(request.feat, request.sliders)
        progress(0.8)
        return self._layer_finish(request, w, z)

    def _layer_request(self, target, threshold=0.04, out=None, cls=None, sliders=None, stems=None,
                       json_path=None, refine=False) -> "LayerRequest":
        """Checks, the target's audio and feature, and its class's model: everything before the model runs."""
        from redrum_kit import audio, layering
        threshold = self._fraction(threshold, "threshold")
        target = self.input_path(target, "target")
        out = self.output_path(out, safe_name(f"{target.stem}-layered"))
        self._side_outputs(json_path)
        stems = Path(stems) if stems else None
        if stems is not None:
            if not self._allowed(stems):
                raise RedrumError(f"stems {stems}: outside the folders this server may write")
            if stems.exists() and (not stems.is_dir() or any(stems.iterdir())):
                raise RedrumError(f"{stems}: not an empty folder; choose a new folder for the stems "
                                  "(nothing was overwritten)")
        y, sr = audio.load(target, max_seconds=layering.MAX_SECONDS, require_sound=True, what="target")
        layerer = self.layerer(cls, y, sr, target.name)
        feat, cut = layerer.prepare(y, sr)
        if refine and sliders:
            raise RedrumError("refine fits the target, which would undo the sliders: use one or the other")
        return LayerRequest(layerer, feat, cut, threshold, sliders, out, stems, json_path, bool(refine))

    def _layer_finish(self, r: "LayerRequest", w: np.ndarray, z) -> dict:
        from redrum_kit import files
        result = r.layerer.result(w, z, r.threshold, r.cut, refine_to=r.feat if r.refine else None)
        save_audio(r.out, result.y, result.sr)
        data = dict(result.to_json(result.sources), path=str(r.out))
        if r.json_path:
            files.write_text(Path(r.json_path), json.dumps(data, indent=1))
        if r.stems is not None:
            parts = zip(result.layers, r.layerer.library.stems(result.layers, result.sr))
            self._write_set(r.stems, [(r.stems / f"{k + 1:02d}-{safe_name(Path(result.sources[i]).stem)}-{w:.3f}.wav",
                                       stem, result.sr) for k, ((i, w), stem) in enumerate(parts)])
            data["stems"] = sorted(str(p) for p in r.stems.iterdir())
        return data

    def _layer_batch(self, jobs: list[Job]) -> None:
        """Concurrent layer jobs through the model together, one forward pass per class
        (what a GPU is for); each job still gets its own result or error."""
        requests = {}
        for job in jobs:
            try:
                job.report(0.1)
                requests[job.id] = self._layer_request(**job.kwargs)
            except Exception as exc:
                self._fail(job, exc)
        groups: dict[int, list[Job]] = {}
        for job in jobs:
            if job.id in requests:
                groups.setdefault(id(requests[job.id].layerer), []).append(job)
        import torch
        for group in groups.values():
            reqs = [requests[j.id] for j in group]
            try:
                w, z = reqs[0].layerer.weights_batch(torch.stack([r.feat for r in reqs]), [r.sliders for r in reqs])
            except Exception as exc:
                for job in group:
                    self._fail(job, exc)
                continue
            for k, (job, r) in enumerate(zip(group, reqs)):
                try:
                    job.report(0.8)
                    job.result = dict(self._layer_finish(r, w[k], z[k]), batch=len(group))
                    job.state, job.progress = "done", 1.0
                except Exception as exc:
                    self._fail(job, exc)
                finally:
                    job._done.set()
        for job in jobs:
            job._done.set()

    def layer_interpolate(self, a: str | Path, b: str | Path, steps: int = 8, out_dir: str | Path | None = None,
                          threshold: float = 0.04, cls: str | None = None, progress=_no_progress) -> dict:
        """Oneshot morphs from A to B through the layering latent. -> {"paths", "layers"}."""
        from redrum_kit import audio, layering
        threshold = self._fraction(threshold, "threshold")
        a, b = self.input_path(a, "A"), self.input_path(b, "B")
        folder = self.output_folder(out_dir, safe_name(f"{a.stem}-to-{b.stem}-layered"))
        paths = morph_paths(a, b, self._steps(steps), folder)
        a_y, sr = audio.load(a, max_seconds=layering.MAX_SECONDS, require_sound=True, what="A")
        b_y, _ = audio.load(b, sr=sr, max_seconds=layering.MAX_SECONDS, require_sound=True, what="B")
        results = self.layerer(cls, a_y, sr, a.name).interpolate(a_y, b_y, sr, len(paths), threshold)
        progress(0.9)
        self._write_set(folder, [(p, r.y, r.sr) for p, r in zip(paths, results)])
        return {"paths": [str(p) for p in paths], "layers": [len(r.layers) for r in results]}

    def transcribe(self, audio_path: str | Path, out: str | Path | None = None, json_path: str | Path | None = None,
                   method: str = "auto", threshold: float | None = None, progress=_no_progress,
                   tempo: float | None = None) -> dict:
        """Drum events of a recording, written as MIDI at `tempo` bpm (None: estimated from the
        recording). -> {"path", "events", "method", "tempo", ...}."""
        from redrum_kit import files
        from redrum_kit.rhythm.generator import check_tempo
        from redrum_kit.rhythm.midi import write_midi
        from redrum_kit.transcription import BandBaseline, transcribe
        if method not in ("auto", "model", "baseline"):
            raise RedrumError(f"unknown method {method!r}; choose auto, model or baseline")
        if threshold is not None:
            threshold = self._fraction(threshold, "threshold")
        if tempo is not None:
            tempo = check_tempo(tempo)
        path = self.input_path(audio_path, "audio")
        out = self.output_path(out, safe_name(f"{path.stem}-drums"), suffixes=(".mid", ".midi"))
        self._side_outputs(json_path)
        self._check_length(path, "audio")
        source = self.transcriber(method)
        progress(0.1)
        result = transcribe(path, threshold=threshold, source=source, tempo=tempo)
        write_midi(result.pattern(), out)
        data = dict(result.to_json(), path=str(out),
                    method="baseline" if isinstance(source, BandBaseline) else "model")
        if json_path:
            files.write_text(Path(json_path), json.dumps(data, indent=1))
        return data

    def render(self, pattern: str | Path, kit: str = "default", out: str | Path | None = None, sr: int = 44100,
               channel: int | None = None, progress=_no_progress, mono: bool = False) -> dict:
        """A MIDI, JSON or Hydrogen pattern played by a library kit: in stereo when any of the kit's
        samples is (mono ones in the middle), unless `mono`. -> {"path", "seconds", "channels", notes}."""
        from redrum_kit.render import render
        from redrum_kit.rhythm.events import load
        if not isinstance(sr, int) or not 8000 <= sr <= 192000:
            raise RedrumError(f"sample rate must be between 8000 and 192000 Hz, got {sr}")
        if not isinstance(kit, str) or not kit:
            raise RedrumError("give a kit name (`redrum kit list` shows them)")
        path = self.input_path(pattern, "pattern")
        out = self.output_path(out, safe_name(f"{path.stem}-{kit}"))
        patt = load(path, channel=channel)
        k = self.kit(kit)
        progress(0.2)
        y, report = render(patt, k, self.pad_sounds(k, sr, mono), sr)    # layered pads bounce as they play
        save_audio(out, y, sr)
        notes = [f"kit {k.name!r} has no {c} pad; played {o} instead" for c, o in report.substitutions.items()]
        notes += [f"kit {k.name!r} has no pad for {n} {c} hits; they are silent" for c, n in report.skipped.items()]
        return {"path": str(out), "seconds": round(len(y) / sr, 3), "sample_rate": sr, "channels": y.ndim,
                "notes": notes}

    def save_pad(self, path: str | Path, kit: str, pad_name: str | None = None, progress=_no_progress) -> dict:
        """Keep a result (a layered hit, say) as a pad of user kit `kit`: copied to the workspace's
        `pads/KIT/` (so the kit does not depend on the renders folder), imported into the library
        under that kit's name, and added to the kit."""
        import shutil
        from redrum_kit import files
        from redrum_kit.library.kits import check_name
        path = self.input_path(path, "pad audio")
        folder = self.workspace / "pads" / check_name(kit)
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / f"{safe_name(pad_name or path.stem)}{path.suffix}"
        k = 2
        while copy.exists():
            copy, k = folder / f"{safe_name(pad_name or path.stem)}-{k}{path.suffix}", k + 1
        tmp = files.temp_sibling(copy)
        shutil.copyfile(path, tmp)
        files.publish(tmp, copy)
        report = self.library.import_paths([copy])
        if report.rejected:
            raise RedrumError(f"{path.name}: {report.rejected[0].reason}")
        oneshot_id = report.added[0] if report.added else report.duplicates[0][1]
        k = self.library.add_pad(kit, oneshot_id, pad_name)
        pad = next(p for p in k.pads if p.layers and p.layers[0].hash == self.library.get(oneshot_id).hash)
        return {"kit": k.name, "pad": pad.name, "note": pad.note, "class": pad.cls, "pads": len(k.pads),
                "path": str(copy)}

    def library_map(self) -> dict:
        """Every library oneshot placed in 2-D (the first two principal components of its MFCC
        features). -> {"items": [{id, name, class, kit, x, y}]}."""
        items = self.library.list()
        if len(items) < 3:
            return {"items": [dict(id=o.id, name=o.name, kit=o.kit, x=float(i), y=0.0, **{"class": o.cls})
                              for i, o in enumerate(items)]}
        feats = self.library.features([o.id for o in items])
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-8)
        _, _, vt = np.linalg.svd(feats, full_matrices=False)
        xy = feats @ vt[:2].T
        return {"items": [dict(id=o.id, name=o.name, kit=o.kit, x=float(x), y=float(y), **{"class": o.cls})
                          for o, (x, y) in zip(items, xy)]}

    # -- checks and writing ----------------------------------------------------------

    def _check_length(self, path: Path, what: str) -> None:
        from redrum_kit import audio
        seconds = audio.info(path)[2]
        if seconds > self.max_seconds:
            raise RedrumError(f"{what} {path.name}: {seconds:.0f} s is longer than this server's limit of "
                              f"{self.max_seconds:.0f} s")

    @staticmethod
    def _steps(steps) -> int:
        if isinstance(steps, bool) or not isinstance(steps, (int, float)) or int(steps) != steps:
            raise RedrumError(f"steps must be a whole number, got {steps!r}")
        return int(steps)

    @staticmethod
    def _fraction(value, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise RedrumError(f"{name} must be a number from 0 to 1, got {value!r}")
        return float(value)

    @staticmethod
    def _write_set(folder: Path, items: list[tuple[Path, np.ndarray, int]]) -> None:
        """Several files into `folder` all or nothing: a new folder is written whole under a temporary
        name and renamed; into an existing folder, files already written are removed on failure."""
        from redrum_kit import files
        fresh = not folder.exists()
        staging = files.temp_sibling(folder) if fresh else folder
        if fresh:
            if not folder.parent.is_dir():
                raise RedrumError(f"{folder.parent}: output folder does not exist")
            staging.mkdir()
        written = []
        try:
            for path, y, sr in items:
                save_audio(staging / path.name, y, sr)
                written.append(staging / path.name)
            if fresh:
                files.publish(staging, folder)
        except BaseException:
            for p in written if not fresh else []:
                files.remove(p)
            if fresh:
                files.remove(staging)
            raise

    # -- jobs ----------------------------------------------------------------------

    def submit(self, kind: str, listener: Callable[[float], None] | None = None, **kwargs) -> Job:
        """Queue an operation for the worker. Raises Busy when `max_queue` jobs are waiting or running."""
        if kind not in OPERATIONS:
            raise RedrumError(f"unknown operation {kind!r}")
        with self._lock:
            if self._closed:
                raise RedrumError("the server is shutting down")
            active = sum(not j.finished for j in self._jobs.values())
            if active >= self.max_queue:
                raise Busy(f"busy: {active} jobs queued or running; try again shortly")
            job = Job(f"j{next(self._ids)}", kind, kwargs, listener=listener)
            self._jobs[job.id] = job
            self._forget_old()
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"engine-{self.device}", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def run(self, kind: str, timeout: float | None = None, **kwargs) -> dict:
        """Submit and wait. -> the result; raises the job's error as a RedrumError."""
        job = self.submit(kind, **kwargs)
        job.wait(timeout)
        if job.state != "done":
            raise RedrumError(job.error or f"job {job.id} did not finish")
        return job.result

    def job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise RedrumError(f"no job {job_id!r}")
        return job

    def cancel(self, job_id: str) -> dict:
        job = self.job(job_id)
        if not job.finished:
            job.cancel()
        return job.to_json()

    def status(self) -> dict:
        jobs = list(self._jobs.values())
        return {**self.ping(), "queued": sum(j.state == "queued" for j in jobs),
                "running": sum(j.state == "running" for j in jobs), "max_queue": self.max_queue,
                "jobs": [j.to_json() for j in jobs[-20:]]}

    def _forget_old(self, keep: int = 200) -> None:
        finished = [k for k, j in self._jobs.items() if j.finished]
        for k in finished[:max(0, len(finished) - keep)]:
            del self._jobs[k]

    def _work(self) -> None:
        held: list[Job] = []                        # taken from the queue while gathering a batch
        while True:
            job = held.pop(0) if held else self._queue.get()
            if job is None:
                return
            if job._cancel.is_set():
                self._finish_cancelled(job)
                continue
            if self.batch and job.kind in BATCHED:
                batch = [job]
                while len(batch) < self.batch_size:
                    try:
                        other = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if other is not None and other.kind == job.kind and not other._cancel.is_set():
                        batch.append(other)
                    else:
                        held.append(other)
                for j in batch:
                    j.state = "running"
                self._layer_batch(batch)
                continue
            job.state = "running"
            try:
                job.result = getattr(self, job.kind)(**job.kwargs, progress=job.report)
                job.state, job.progress = "done", 1.0
            except Exception as exc:
                self._fail(job, exc)
            finally:
                job._done.set()

    @staticmethod
    def _finish_cancelled(job: Job) -> None:
        job.state, job.error = "cancelled", f"job {job.id} was cancelled"
        job._done.set()

    @staticmethod
    def _fail(job: Job, exc: BaseException) -> None:
        """A job's error as one line for the user (a bug is also logged in full)."""
        if isinstance(exc, Cancelled):
            job.state, job.error = "cancelled", str(exc)
        elif isinstance(exc, RedrumError):
            job.state, job.error = "error", str(exc)
        elif isinstance(exc, TypeError):      # arguments the operation does not take
            job.state, job.error = "error", f"bad arguments for {job.kind}: {exc}"
        else:
            log.error("job %s (%s) failed", job.id, job.kind, exc_info=exc)
            job.state, job.error = "error", f"internal error: {type(exc).__name__}: {exc}"

    def close(self, cancel_running: bool = False, timeout: float = 60.0) -> None:
        """Stop taking jobs; queued ones are cancelled, the running one finishes (or is cancelled)."""
        with self._lock:
            self._closed = True
            for job in self._jobs.values():
                if job.state == "queued" or (cancel_running and not job.finished):
                    job.cancel()
            worker = self._worker
        if worker is not None:
            self._queue.put(None)
            worker.join(timeout)
        for _, sink in self._players.values():
            sink.stop()
            if hasattr(sink, "close"):
                sink.close()
