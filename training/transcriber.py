"""Train and evaluate the drum transcriber on clips from the dataset builder.

    redrum train transcriber --config presets/training/transcriber.toml

The clips are built first (or resumed) from the dataset config the recipe
names, so one command reproduces the checkpoint. Targets are onset frames;
each is widened to its neighbours with weight 0.5 (a hit on a frame boundary
is not a miss), and the loss is BCE with positive weighting for the rare
onset frames. Runs on the shared trainer (`training/trainer.py`: resumes
from `run_dir/last.pt`, `--minutes`, logs and loss curve, CUDA when
present, torchrun). Batches draw `real_share` of their clips from real kits
(there are far fewer of them than synthesiser kits, and real kits are what
users bring), and each clip's spectrum gets a random smooth EQ. Model
selection on validation F; the test split holds kits never seen in training
(see `workspace.HELD_OUT_KITS`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import mir_eval
import numpy as np
import torch

from redrum_kit.config import load_config
from redrum_kit.datasets.augment import smooth_curve, under_bass, under_noise
from redrum_kit.datasets.build import Dataset, DatasetConfig, is_recorded
from redrum_kit.errors import RedrumError
from redrum_kit.models import transcriber as model_lib
from redrum_kit.rhythm.events import TRANSCRIPTION_CLASS
from redrum_kit.transcription import at_level
from training import trainer as trainer_lib


@dataclass
class TrainConfig:
    seed: int = 0
    dataset_config: str = "presets/training/dataset.toml"
    data_dir: str = "runs/datasets/clips"
    run_dir: str = "runs/transcriber"
    device: str = "auto"
    steps: int = 5000
    batch_size: int = 16
    lr: float = 1e-3
    pos_weight: float = 8.0
    real_share: float = 0.5         # of each batch from real (Hydrogen, library) kits; 0: uniform over clips
    eq_db: float = 6.0              # random smooth EQ on the log-mel, up to +-eq_db (0: off)
    freq_masks: int = 0             # SpecAugment: bands of the log-mel set to the clip's mean, per clip (0: off)
    freq_mask_bins: int = 8         # each band up to this many mel bins wide
    bass_share: float = 0.0         # of training clips with a synth bass line under the drums (0: off)
    bass_db: list = field(default_factory=lambda: [-12.0, 3.0])   # its level range, dB to the drums' RMS
    gain_db: list = field(default_factory=lambda: [0.0, 0.0])     # each training clip turned by a gain drawn
                                    # from this range (dB), as quiet recordings come in; [0, 0]: off, the draws
                                    # as before
    noise_share: float = 0.0        # of training clips over a noise floor, hiss to rumble (0: off, the draws as
    noise_db: list = field(default_factory=lambda: [-80.0, -40.0])   # before); its RMS range, dB under the peak
    threshold: float = 0.5          # during training; then tuned per class on validation
    tune_thresholds: bool = True
    select: str = "mean"            # weights kept: best val F over every val kit ("mean") or recorded ones ("real")
    ema: float = 0.0                # > 0: what is validated and kept is the moving average of the weights (and
                                    # batch-norm statistics) with this decay a step; 0: the weights as trained
    log_every: int = 25
    val_every: int = 500
    save_every: int = 250
    max_minutes: float = 0.0
    loader_workers: int = 0         # processes assembling batches ahead of the model (a GPU outruns one); 0: inline
    out: str = "presets/models/transcriber.safetensors"
    config_file: str = "presets/training/transcriber.toml"   # the file this config came from (for the card)
    init: str = ""                  # start from these weights (fine-tuning; their model config wins but for
                                    # `model.n_ffts`, new windows starting at zero weight); "": fresh
    aux_classes: list = field(default_factory=list)   # finer drums a second output learns beside the five
                                    # classes (library classes: clap, hat_open, perc; each clip's events say
                                    # which was played); [] : off
    aux_weight: float = 0.5         # that output's loss against the five classes'
    kit_adversary: float = 0.0      # > 0: a kit classifier hears the GRU's states through a reversed gradient of
                                    # up to this weight (ramped in over the run), so they learn to say which drum
                                    # plays and not which kit (each recorded training kit its own label, the
                                    # synthesiser's kits one, hybrids none); 0: off, the run as before
    mix_styles: float = 0.0         # > 0: this share of training clips hear their log-mel with each band's mean and
                                    # spread over time mixed with another clip's of the batch (frequency-wise
                                    # MixStyle: a recording's colour and dynamics per band, another kit's);
                                    # 0: off, the draws as before
    mix_alpha: float = 0.4          # the mix's weight drawn from Beta(mix_alpha, mix_alpha)
    adversary_on: str = "gru"       # the states it hears: "gru" (what the output layer reads) or "conv"
    soup: list = field(default_factory=list)   # seeds: one run of the recipe per seed (`run_dir/seed-N`, each
                                    # exported there), then their kept weights averaged (a model soup, Wortsman et
                                    # al. 2022: runs from one init share a basin) and that exported; []: one run
    model: dict = field(default_factory=dict)


def widen(targets: torch.Tensor) -> torch.Tensor:
    """Onset frames (1) get neighbours at 0.5: `(batch, classes, frames)` float."""
    t = targets.float()
    side = torch.zeros_like(t)
    side[..., 1:] = torch.maximum(side[..., 1:], t[..., :-1])
    side[..., :-1] = torch.maximum(side[..., :-1], t[..., 1:])
    return torch.maximum(t, 0.5 * side)


QUIET_DB = -30.0    # the card's quiet test: every clip this much quieter, as a recording left with headroom
NOISY_DB = -60.0    # the card's noisy test: a noise floor this far under every clip's peak, as a live recording's

AUX_CLASSES = ("kick", "snare", "clap", "hat_closed", "hat_open", "tom", "cymbal", "perc")


def aux_targets(events: list, classes: list[str], frames: int, frame_rate: float) -> np.ndarray:
    """Onset frames `(len(classes), frames)` uint8 of the events played as each library class (`clap`,
    `hat_open`, ...): what the five transcription classes fold together, for the second output."""
    out = np.zeros((len(classes), frames), np.uint8)
    for t, cls, _ in events:
        frame = int(round(t * frame_rate))
        if cls in classes and 0 <= frame < frames:
            out[classes.index(cls), frame] = 1
    return out


def merged(times: np.ndarray, window: float) -> np.ndarray:
    """Sorted onset times with any closer than `window` s to the last one kept dropped, as `peak_pick` keeps
    its peaks: two notes of one class struck together (a closed and an open hat on one step, a clap layered
    on a snare) are one onset of that class."""
    keep: list[float] = []
    for t in np.sort(times):
        if not keep or t - keep[-1] >= window:
            keep.append(float(t))
    return np.array(keep)


def reference_onsets(item: dict, classes: list[str], merge: float = model_lib.MIN_GAP) -> dict[str, np.ndarray]:
    """Onset times per transcription class of the events a clip was rendered from, those of one class
    closer than `merge` s made one (`merged`; 0 keeps every note: the measure before session 39)."""
    out: dict[str, list[float]] = {c: [] for c in classes}
    for t, cls, _ in item["events"]:
        tc = TRANSCRIPTION_CLASS.get(cls)
        if tc in out:
            out[tc].append(t)
    return {c: merged(np.unique(np.array(v)), merge) for c, v in out.items()}


def match_counts(ref: np.ndarray, est: np.ndarray, window: float = 0.05) -> np.ndarray:
    """(true positives, reference count, estimate count) of onset times matched within `window` s (mir_eval)."""
    matched = len(mir_eval.util.match_events(ref, est, window)) if len(ref) and len(est) else 0
    return np.array([matched, len(ref), len(est)], dtype=float)


def tune_thresholds(source, ds: Dataset, grid=tuple(np.round(np.arange(0.2, 0.976, 0.025), 3))) -> list[float]:
    """Per class, the peak-picking threshold of the best onset F on `ds` (the validation kits)."""
    classes = source.cfg.classes
    clips = []
    for i in range(len(ds)):
        item = ds[i]
        clips.append((source.activations(at_level(item["audio"])), reference_onsets(item, classes)))
    best = []
    for k, c in enumerate(classes):
        scores = []
        for th in grid:
            tp, n_ref, n_est = sum((match_counts(ref[c], np.array([t for t, _, _ in model_lib.peak_pick(
                probs[k:k + 1], source.cfg.frame_rate, [c], th)])) for probs, ref in clips), np.zeros(3))
            scores.append(2 * tp / (n_ref + n_est) if n_ref + n_est else 0.0)
        best.append(float(grid[int(np.argmax(scores))]))
    return best


def kit_group(kit: str) -> str:
    """'real' for recorded (Hydrogen, library) kits, 'synth' for the synthesiser's."""
    return "real" if is_recorded(kit) else "synth"


def f_measures(counts: dict[str, np.ndarray]) -> dict:
    """Per-class onset F from summed (true positives, references, estimates); mean over classes present."""
    per_class = {}
    for c, (tp, n_ref, n_est) in counts.items():
        p = tp / n_est if n_est else 0.0
        r = tp / n_ref if n_ref else 0.0
        per_class[c] = {"f": round(2 * p * r / (p + r), 4) if p + r else 0.0, "precision": round(p, 4),
                        "recall": round(r, 4), "n": int(n_ref)}
    present = [v["f"] for v in per_class.values() if v["n"]]
    return {"mean_f": round(float(np.mean(present)), 4) if present else 0.0, "per_class": per_class}


BOOTSTRAP = 2000


def bootstrap_interval(items, statistic=np.mean, seed: int = 0, kits=None) -> list[float]:
    """95% bootstrap interval of `statistic` over `items` (an array whose first axis is the clips or
    pairs, resampled with replacement). With `kits` (each item's kit), whole kits are resampled
    instead, each drawn kit bringing all its items: how far the figure could move on other kits like
    these, which for five test kits is far wider than over their clips."""
    items = np.asarray(items, np.float64)
    rng = np.random.default_rng(seed)
    if kits is None:
        draws = (rng.integers(0, len(items), len(items)) for _ in range(BOOTSTRAP))
    else:
        kits = np.asarray(kits)
        members = [np.flatnonzero(kits == k) for k in np.unique(kits)]
        draws = (np.concatenate([members[j] for j in rng.integers(0, len(members), len(members))])
                 for _ in range(BOOTSTRAP))
    stats = [statistic(items[draw]) for draw in draws]
    return [round(float(x), 4) for x in np.percentile(stats, [2.5, 97.5])]


def evaluate(source, ds: Dataset, threshold: float | None = None, limit: int | None = None,
             bass_db: float | None = None, kits: set[str] | None = None, gain_db: float | None = None,
             noise_db: float | None = None, merge: float = model_lib.MIN_GAP) -> dict:
    """Onset F-measure per class (mir_eval, 50 ms window), counts summed over clips before dividing.

    `source` is anything with `.activations(y)` and `.cfg` (the CRNN or the DSP baseline).
    The same figures follow for the real and the synthesised kits apart, and per kit.
    `bass_db`: each clip with a bass line under it at this level to the drums' RMS (`under_bass`,
    seeded by the clip's index, so every model hears the same lines).
    `noise_db`: each clip (with its bass line) over a noise floor this far under its peak (`under_noise`,
    seeded by the clip's index).
    `gain_db`: each clip (with its bass line and noise) turned by this gain, as a quieter or louder recording.
    `kits`: only the clips of these kits (ids as in the manifest, `hydrogen:GMRockKit`), among the first
    `limit`; each clip keeps its bass line.
    `merge`: a class's reference notes closer than this (s) count as one onset (`reference_onsets`).
    Each group's mean F comes with a 95% bootstrap interval over its clips (`mean_f_ci95`) and one over
    its kits (`mean_f_ci95_kits`: other kits like these).
    """
    threshold = threshold if threshold is not None else getattr(source, "threshold", 0.5)
    classes = source.cfg.classes
    counts: dict[str, dict[str, np.ndarray]] = {}  # kit -> class -> (true positives, references, estimates)
    per_clip: dict[str, list[np.ndarray]] = {}     # group -> each clip's (classes, 3) counts
    clip_kits: dict[str, list[str]] = {}           # group -> each clip's kit
    n = len(ds) if limit is None else min(limit, len(ds))
    clips = 0
    for i in range(n):
        item = ds[i]
        if kits is not None and item["kit"] not in kits:
            continue
        clips += 1
        y = item["audio"]
        if bass_db is not None:
            y = under_bass(y, ds.manifest["config"]["sr"], item["events"], np.random.default_rng(i), bass_db)
        if noise_db is not None:
            y = under_noise(y, ds.manifest["config"]["sr"], np.random.default_rng([i, 1]), noise_db)
        if gain_db is not None:
            y = (y * 10 ** (gain_db / 20)).astype(np.float32)
        probs = source.activations(at_level(y))          # as `redrum transcribe` hears it
        found = model_lib.peak_pick(probs, source.cfg.frame_rate, classes, threshold)
        ref = reference_onsets(item, classes, merge)
        kit = counts.setdefault(item["kit"], {c: np.zeros(3) for c in classes})
        clip = np.stack([match_counts(ref[c], np.array([t for t, cls, _ in found if cls == c])) for c in classes])
        for c, row in zip(classes, clip):
            kit[c] += row
        per_clip.setdefault(kit_group(item["kit"]), []).append(clip)
        clip_kits.setdefault(kit_group(item["kit"]), []).append(item["kit"])

    def total(kits) -> dict[str, np.ndarray]:
        return {c: sum((counts[k][c] for k in kits), np.zeros(3)) for c in classes}

    def mean_f(sample: np.ndarray) -> float:
        return f_measures(dict(zip(classes, sample.sum(0))))["mean_f"]

    groups = {g: [k for k in counts if kit_group(k) == g] for g in ("real", "synth")}
    return {**f_measures(total(counts)), "clips": clips, "merge_s": merge,
            "groups": {g: dict(f_measures(total(kits)), mean_f_ci95=bootstrap_interval(per_clip[g], mean_f),
                               mean_f_ci95_kits=bootstrap_interval(per_clip[g], mean_f, kits=clip_kits[g]))
                       for g, kits in groups.items() if kits},
            "per_kit": {k: f_measures(counts[k])["mean_f"] for k in sorted(counts) if kit_group(k) == "real"},
            "per_kit_class": {k: {c: v["f"] for c, v in f_measures(counts[k])["per_class"].items() if v["n"]}
                              for k in sorted(counts) if kit_group(k) == "real"}}


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient flipped and scaled by `weight` backward (Ganin and Lempitsky, 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.weight * grad, None


class KitAdversary(torch.nn.Module):
    """Which training kit played a clip, from the mean and standard deviation over time of per-frame states
    `(B, T, D)` -> logits `(B, kits)`."""

    def __init__(self, dim: int, kits: int, hidden: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2 * dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, kits))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([seq.mean(1), seq.std(1)], 1))


class WithAdversary(torch.nn.Module):
    """The transcriber and its kit adversary as one module (one DDP wrap): log-mel and the reversed gradient's
    weight -> `(logits, finer drums' logits or None, kit logits)`."""

    def __init__(self, model: model_lib.Transcriber, adversary: KitAdversary, on: str):
        super().__init__()
        self.model, self.adversary, self.on = model, adversary, on

    def forward(self, mel: torch.Tensor, weight: float):
        seq = self.model.frames(mel)
        states, _ = self.model.gru(seq)
        logits, aux = self.model.read(states, aux=True) if self.model.aux is not None \
            else (self.model.read(states), None)
        heard = GradientReversal.apply(states if self.on == "gru" else seq, weight)
        return logits, aux, self.adversary(heard)


def adversary_weight(step: int, steps: int, top: float) -> float:
    """The reversed gradient's weight at `step`: 0 rising to `top` as in Ganin and Lempitsky's schedule
    (2 / (1 + exp(-10 p)) - 1 over the run's progress p), so the classes are learnt before the kits are fought."""
    return top * (2.0 / (1.0 + np.exp(-10.0 * step / max(steps, 1))) - 1.0)


def kit_labels(kits: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each training clip's label for the kit adversary, and the label names: each recorded kit (not a hybrid)
    its own, every synthesiser kit `synth`; hybrids -1 (no label: their classes come from several kits)."""
    names = sorted({k for k in kits if kit_group(k) == "real" and not k.startswith("hybrid:")}) + ["synth"]
    index = {k: i for i, k in enumerate(names)}
    return np.array([-1 if k.startswith("hybrid:") else index.get(k, index["synth"]) for k in kits]), names


def mix_styles(mel: torch.Tensor, share: float, alpha: float, rng: np.random.Generator) -> torch.Tensor:
    """Frequency-wise MixStyle (Zhou et al. 2021; per frequency band as in Kim et al. 2022) on `(B, bands,
    frames)` or `(B, windows, bands, frames)`: for `share` of the clips, each band is normalised by its own mean
    and standard deviation over time and given a blend of its own and another clip's of the batch (weight from
    Beta(alpha, alpha)). Where and when the onsets are stays, so the targets do too."""
    b = len(mel)
    chosen = torch.from_numpy(rng.random(b) < share).to(mel.device)
    if b < 2 or not chosen.any():
        return mel
    mean = mel.mean(-1, keepdim=True)
    std = (mel.var(-1, keepdim=True) + 1e-6).sqrt()
    other = torch.from_numpy(rng.permutation(b)).to(mel.device)
    each = (b,) + (1,) * (mel.dim() - 1)      # one draw a clip, whatever windows it is heard through
    lam = torch.from_numpy(rng.beta(alpha, alpha, each)).float().to(mel.device)
    mixed = (mel - mean) / std * (lam * std + (1 - lam) * std[other]) + lam * mean + (1 - lam) * mean[other]
    return torch.where(chosen.view(each), mixed, mel)


def _check_number(name: str, value, fits, what: str) -> None:
    """A config's number (not a bool) for which `fits(value)` holds; else a one-line error naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not fits(value):
        raise RedrumError(f"{name} = {value!r}: {what}")


def _check_db_range(name: str, value, what: str, low: float, high: float, example: str) -> None:
    """A config's `[lowest, highest]` dB range, within `low`..`high`; else a one-line error naming it."""
    if (not isinstance(value, list) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
            or not low <= value[0] <= value[1] <= high):
        raise RedrumError(f"{name} = {value!r}: [lowest, highest] {what}, from {low:g} to {high:g}, such as {example}")


class TranscriberRecipe:
    """The transcriber on the shared trainer: batches drawn with `real_share` of them from real kits,
    each clip's log-mel tilted by a random smooth EQ curve (timbre the kits did not have); the best
    validation F so far kept in `run_dir/best.pt`."""

    def __init__(self, cfg: TrainConfig, trainer: trainer_lib.Trainer):
        if cfg.select not in ("mean", "real"):
            raise RedrumError(f"select = {cfg.select!r}: use \"mean\" (every validation kit) "
                              "or \"real\" (the recorded ones)")
        _check_number("ema", cfg.ema, lambda v: 0 <= v < 1, "a decay a step from 0 (off) to under 1, such as 0.998")
        unknown = [c for c in cfg.aux_classes if c not in AUX_CLASSES]
        if unknown or len(set(cfg.aux_classes)) != len(cfg.aux_classes):
            raise RedrumError(f"aux_classes = {cfg.aux_classes!r}: each once, from {', '.join(AUX_CLASSES)}")
        _check_number("aux_weight", cfg.aux_weight, lambda v: v >= 0, "the second output's loss weight, 0 or more")
        for name in ("freq_masks", "freq_mask_bins"):
            value = getattr(cfg, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 40:
                raise RedrumError(f"{name} = {value!r}: a whole number from 0 to 40")
        _check_db_range("gain_db", cfg.gain_db, "in dB", -60, 20, "[-30, 0]")
        _check_db_range("noise_db", cfg.noise_db, "in dB under the peak", -120, 0, "[-80, -40]")
        for name in ("noise_share", "mix_styles"):
            _check_number(name, getattr(cfg, name), lambda v: 0 <= v <= 1, "a share of training clips from 0 (off) to 1")
        _check_number("kit_adversary", cfg.kit_adversary, lambda v: 0 <= v <= 10,
                      "the reversed gradient's top weight, from 0 (off) to 10, such as 0.3")
        _check_number("mix_alpha", cfg.mix_alpha, lambda v: v > 0, "Beta's parameter, over 0, such as 0.4")
        if cfg.adversary_on not in ("gru", "conv"):
            raise RedrumError(f"adversary_on = {cfg.adversary_on!r}: use \"gru\" or \"conv\"")
        self.cfg = cfg
        self.data_dir = Path(cfg.data_dir)
        data_cfg = load_config(DatasetConfig, Path(cfg.dataset_config))
        trainer_lib.prepare_dataset(trainer, data_cfg, self.data_dir)
        self.train_ds = Dataset(self.data_dir, "train", in_memory=True)
        self.val_ds, self.test_ds = Dataset(self.data_dir, "val"), Dataset(self.data_dir, "test")
        kits = [self.train_ds[i]["kit"] for i in range(len(self.train_ds))]
        self.real = np.array([i for i, k in enumerate(kits) if kit_group(k) == "real"])
        self.synth = np.array([i for i, k in enumerate(kits) if kit_group(k) != "real"])
        self.kit_label, self.kit_names = kit_labels(kits)
        self.run_dir = Path(cfg.run_dir)

    def setup(self, device, wrap) -> None:
        cfg = self.cfg
        self.device = device
        if cfg.init:
            self.model = model_lib.load(Path(cfg.init)).float().to(device)
            self.model.cfg.thresholds = []         # tuned again on validation at export
            n_ffts = cfg.model.get("n_ffts")       # the one model setting a run from `init` may change
            if n_ffts and list(n_ffts) != self.model.cfg.n_ffts:
                self.model.add_inputs(list(n_ffts))
            if cfg.aux_classes and self.model.cfg.aux_classes != cfg.aux_classes:
                self.model.add_aux(cfg.aux_classes)
                self.model.to(device)
        else:
            self.model = model_lib.Transcriber(model_lib.TranscriberConfig(
                **{**cfg.model, "aux_classes": list(cfg.aux_classes)})).to(device)
        self.averaged = (torch.optim.swa_utils.AveragedModel(
            self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            if cfg.ema else None)
        self.adversary = None
        if cfg.kit_adversary:
            c = self.model.cfg
            dim = 2 * c.hidden if cfg.adversary_on == "gru" else c.channels[-1] * (c.n_mels // 2 ** len(c.channels))
            self.adversary = KitAdversary(dim, len(self.kit_names)).to(device)
        self.net = wrap(WithAdversary(self.model, self.adversary, cfg.adversary_on) if self.adversary else self.model)
        params = list(self.model.parameters()) + (list(self.adversary.parameters()) if self.adversary else [])
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
        self.pos_weight = torch.full((len(self.model.cfg.classes), 1), cfg.pos_weight, device=device)
        self.rng = np.random.default_rng(torch.initial_seed() % 2**32)
        self.batches = None

    def modules(self) -> dict:
        return {"model": self.model, **({"averaged": self.averaged} if self.averaged is not None else {}),
                **({"adversary": self.adversary} if self.adversary is not None else {})}

    @property
    def kept(self) -> model_lib.Transcriber:
        """The weights validated and kept: the moving average with `ema`, else the trained ones."""
        return self.averaged.module if self.averaged is not None else self.model

    def optimizers(self) -> dict:
        return {"adamw": self.opt}

    def draw(self, rng: np.random.Generator) -> list[int]:
        """Training clip indices for one batch: real-kit clips with probability `real_share` (uniform
        over all clips when it is 0 or one of the two kinds is missing)."""
        cfg, out = self.cfg, []
        weighted = cfg.real_share > 0 and len(self.real) and len(self.synth)
        for _ in range(cfg.batch_size):
            if weighted:
                pool = self.real if rng.random() < cfg.real_share else self.synth
            else:
                pool = np.arange(len(self.train_ds))
            out.append(int(pool[rng.integers(len(pool))]))
        return out

    def batch_arrays(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One training batch as arrays: `(audio (batch, samples), onset targets (batch, classes, frames),
        kit labels (batch,))` (`kit_labels`); with `aux_classes`, the finer drums' targets follow the five
        classes' along the class axis."""
        drawn = self.draw(rng)
        items = [self.train_ds[i] for i in drawn]
        targets = np.stack([it["targets"] for it in items])
        if self.cfg.aux_classes:
            rate = self.train_ds.manifest["config"]["sr"] / self.train_ds.manifest["config"]["hop_length"]
            targets = np.concatenate([targets, np.stack([aux_targets(
                it["events"], self.cfg.aux_classes, targets.shape[-1], rate) for it in items])], 1)
        audio = self.turned(np.stack([self.with_noise(self.with_bass(it, rng), rng) for it in items]), rng)
        return audio, targets, self.kit_label[drawn]

    def next_batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inline from `self.rng` or, with `loader_workers`, from worker processes (each its own stream,
        seeded when the first batch is asked for, so a resumed run draws fresh ones)."""
        if not self.cfg.loader_workers:
            return self.batch_arrays(self.rng)
        if self.batches is None:
            stream = BatchStream(self, torch.initial_seed() % 2**32)
            self.batches = iter(torch.utils.data.DataLoader(
                stream, batch_size=None, num_workers=self.cfg.loader_workers, prefetch_factor=4,
                persistent_workers=True, multiprocessing_context="fork",
                worker_init_fn=lambda _: torch.set_num_threads(1)))
        return tuple(a.numpy() for a in next(self.batches))

    def eq_curves(self, n: int, bins: int) -> torch.Tensor:
        """`(n, bins, 1)` random smooth gains in the model's log-mel units (a few broad bumps, +-eq_db)."""
        x = np.linspace(0, 1, bins)
        curves = np.stack([smooth_curve(x, [self.rng.uniform(size=3) for _ in range(3)]) for _ in range(n)])
        db = self.cfg.eq_db * curves
        return torch.from_numpy(db / 10 / 2).float()[..., None]    # dB -> log10 power, then the /2 scaling

    def masked(self, mel: torch.Tensor) -> torch.Tensor:
        """SpecAugment's frequency masks: `freq_masks` bands per clip, each 0 to `freq_mask_bins` mel bins
        wide, set to the clip's mean as it stands when the band is drawn (the onsets stay, so the targets
        do too)."""
        mel = mel.clone()
        for i in range(len(mel)):
            for _ in range(self.cfg.freq_masks):
                width = int(self.rng.integers(0, self.cfg.freq_mask_bins + 1))
                start = int(self.rng.integers(0, mel.shape[-2] - width + 1))
                mel[i, ..., start:start + width, :] = mel[i].mean()
        return mel

    def turned(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`(batch, samples)` audio, each clip turned by a gain drawn from `gain_db` (off: untouched, no draw)."""
        low, high = self.cfg.gain_db
        if low == high == 0:
            return audio
        return (audio * 10 ** (rng.uniform(low, high, (len(audio), 1)) / 20)).astype(audio.dtype)

    def with_bass(self, item: dict, rng: np.random.Generator) -> np.ndarray:
        """The clip's audio, with a bass line under it for `bass_share` of clips (a bass note is not a kick)."""
        if not self.cfg.bass_share or rng.random() >= self.cfg.bass_share:   # off: the draws as before
            return item["audio"]
        return under_bass(item["audio"], self.model.cfg.sr, item["events"], rng, float(rng.uniform(*self.cfg.bass_db)))

    def with_noise(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`y` over a noise floor (`under_noise`) for `noise_share` of clips, at a level drawn from `noise_db`
        (off: untouched, no draw)."""
        if not self.cfg.noise_share or rng.random() >= self.cfg.noise_share:
            return y
        return under_noise(y, self.model.cfg.sr, rng, float(rng.uniform(*self.cfg.noise_db)))

    def step(self, step: int) -> dict:
        self.model.train()
        trainer_lib.schedule_lr(self.opt, step, self.cfg.steps, self.cfg.lr)
        audio, targets, kit = self.next_batch()
        y, targets = torch.from_numpy(audio).to(self.device), torch.from_numpy(targets).to(self.device)
        mel = self.model.features(y)
        if self.cfg.eq_db:   # one curve a clip, every window's log-mel alike
            curves = self.eq_curves(len(y), mel.shape[-2]).to(self.device)
            mel = mel + (curves[:, None] if mel.dim() == 4 else curves)
        if self.cfg.freq_masks:
            mel = self.masked(mel)
        if self.cfg.mix_styles:
            mel = mix_styles(mel, self.cfg.mix_styles, self.cfg.mix_alpha, self.rng)
        n = len(self.model.cfg.classes)
        if self.adversary is not None:
            weight = adversary_weight(step, self.cfg.steps, self.cfg.kit_adversary)
            logits, aux, kit_logits = self.net(mel, weight)
        else:
            logits, aux = self.net(mel, aux=True) if self.cfg.aux_classes else (self.net(mel), None)
        frames = min(logits.shape[-1], targets.shape[-1])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[..., :frames], widen(targets[:, :n, :frames]), pos_weight=self.pos_weight)
        if aux is not None:
            loss = loss + self.cfg.aux_weight * torch.nn.functional.binary_cross_entropy_with_logits(
                aux[..., :frames], widen(targets[:, n:, :frames]), pos_weight=self.pos_weight[:1])
        out = {}
        if self.adversary is not None:
            kit = torch.from_numpy(kit).to(self.device)
            kit_loss = (torch.nn.functional.cross_entropy(kit_logits, kit, ignore_index=-1) if (kit >= 0).any()
                        else kit_logits.sum() * 0)
            loss = loss + kit_loss
            out = {"kit_loss": kit_loss.item(), "kit_weight": weight}
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.opt.step()
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)
        return {"loss": loss.item(), **out}

    @torch.no_grad()
    def validate(self, step: int = 0) -> dict:
        self.kept.eval()
        val = evaluate(self.kept, self.val_ds, self.cfg.threshold)
        out = {"mean_f": val["mean_f"], "real_f": val["groups"].get("real", {}).get("mean_f", 0.0)}
        trainer_lib.keep_best(self.run_dir, out[f"{self.cfg.select}_f"], step, self.kept)
        return out

    def export(self, history: list[dict], summary: dict) -> dict:
        cfg, model = self.cfg, self.model.cpu().eval()
        if self.averaged is not None:
            model.load_state_dict(self.averaged.module.state_dict())
        if cfg.soup:
            model.load_state_dict(averaged_weights([soup_run(cfg, seed).run_dir for seed in cfg.soup]))
            best_step = None
        else:
            best_step = trainer_lib.load_best(self.run_dir, model) or summary["step"]
        untuned = evaluate(model, self.test_ds, cfg.threshold)
        model.cfg.thresholds = (tune_thresholds(model, self.val_ds) if cfg.tune_thresholds
                                else [cfg.threshold] * len(model.cfg.classes))
        from redrum_kit.transcription import BandBaseline
        metrics = {**trainer_lib.run_facts(summary), "best_step": best_step,
                   "test": evaluate(model, self.test_ds), "val": evaluate(model, self.val_ds),
                   "test_untuned": untuned, "test_baseline": evaluate(BandBaseline(), self.test_ds),
                   "test_bass": evaluate(model, self.test_ds, bass_db=0.0),
                   "test_bass_baseline": evaluate(BandBaseline(), self.test_ds, bass_db=0.0),
                   "test_quiet": evaluate(model, self.test_ds, gain_db=QUIET_DB),
                   "test_noisy": evaluate(model, self.test_ds, noise_db=NOISY_DB),
                   "thresholds": dict(zip(model.cfg.classes, model.cfg.thresholds)),
                   "history": [r for r in history if "val_mean_f" in r], "config": asdict(cfg),
                   "kits": self.test_ds.manifest["kits"],
                   "left_out_kits": self.test_ds.manifest.get("left_out_kits", {})}
        out = Path(cfg.out)
        trainer_lib.publish(out, lambda path: model_lib.save(model, path, extra={"dataset": str(self.data_dir)}),
                            metrics, model_card(model, metrics))
        self.model.to(self.device)
        return {"out": str(out), "metrics": metrics}


class BatchStream(torch.utils.data.IterableDataset):
    """Endless training batches of a recipe (`batch_arrays`), one random stream per loader worker."""

    def __init__(self, recipe: TranscriberRecipe, seed: int):
        self.recipe, self.seed = recipe, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            yield self.recipe.batch_arrays(rng)


def soup_run(cfg: TrainConfig, seed: int) -> TrainConfig:
    """One run of a soup (`cfg.soup`): the recipe with `seed`, in and exported to `run_dir/seed-N`."""
    folder = Path(cfg.run_dir) / f"seed-{seed}"
    return replace(cfg, seed=seed, soup=[], run_dir=str(folder), out=str(folder / "transcriber.safetensors"))


def averaged_weights(run_dirs: list) -> dict:
    """The mean of the weights (and batch-norm statistics) each run kept in `best.pt`; counters from the first."""
    states = [torch.load(Path(d) / "best.pt", weights_only=False, map_location="cpu")["model"] for d in run_dirs]
    return {k: sum(s[k] for s in states) / len(states) if v.is_floating_point() else v for k, v in states[0].items()}


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) and export; with `soup`, each seed's run first (resuming where one stopped), then
    their average exported. -> the metrics of the exported model."""
    seeds = cfg.soup
    if seeds != [] and (not isinstance(seeds, list) or len(seeds) < 2 or len(set(seeds)) != len(seeds)
                        or not cfg.init or any(isinstance(v, bool) or not isinstance(v, int) for v in seeds)):
        raise RedrumError(f"soup = {cfg.soup!r}: two or more different whole-number seeds, for runs from one "
                          "`init` (weights averaged from unrelated starts are no model)")
    for seed in cfg.soup:
        trainer_lib.train(soup_run(cfg, seed), TranscriberRecipe)
    summary = trainer_lib.train(cfg, TranscriberRecipe, steps=0 if cfg.soup else None)  # a soup's export averages
    return summary.get("metrics", {})


def _mask_phrase(cfg: dict) -> str:
    if not cfg.get("freq_masks"):
        return ""
    return f", {cfg['freq_masks']} frequency masks a clip (up to {cfg['freq_mask_bins']} mel bins each)"


def _ema_phrase(cfg: dict) -> str:
    return f"moving average (decay {cfg['ema']:g} a step) of the " if cfg.get("ema") else ""


def _gain_phrase(cfg: dict) -> str:
    low, high = cfg.get("gain_db") or (0, 0)
    return "" if low == high == 0 else f", each clip turned by {low:+g} to {high:+g} dB"


def _noise_phrase(cfg: dict) -> str:
    if not cfg.get("noise_share"):
        return ""
    low, high = cfg["noise_db"]
    return f", a noise floor under {cfg['noise_share']:.0%} of clips ({low:+g} to {high:+g} dB under the peak)"


def _bass_phrase(cfg: dict) -> str:
    if not cfg.get("bass_share"):
        return ""
    low, high = cfg["bass_db"]
    return f", a synth bass line under {cfg['bass_share']:.0%} of clips ({low:+g} to {high:+g} dB to the drums' RMS)"


def _real_figures(result: dict) -> str:
    """"0.751 (kick 0.913, snare ...)": the unseen real kits' mean F and each class's, from `evaluate`."""
    real = result["groups"].get("real", {})
    classes = ", ".join(f"{c} {v['f']:.3f}" for c, v in real.get("per_class", {}).items())
    return f"{real.get('mean_f', 0):.3f} ({classes})"


def _bass_figures(m: dict) -> str:
    """The card's line on the test clips with a bass line under each (`redrum eval transcriber --bass 0`)."""
    if "test_bass" not in m:
        return ""
    base = m["test_bass_baseline"]["groups"].get("real", {})
    return (f"\nWith a bass line under each test clip, as loud as the drums (`--bass 0`): unseen real kits "
            f"{_real_figures(m['test_bass'])}, DSP baseline {base.get('mean_f', 0):.3f}.\n")


def _quiet_figures(m: dict) -> str:
    """The card's line on the test clips turned down (`redrum eval transcriber --gain QUIET_DB`)."""
    if "test_quiet" not in m:
        return ""
    return (f"\nWith each test clip {-QUIET_DB:g} dB quieter (`--gain {QUIET_DB:g}`): unseen real kits "
            f"{_real_figures(m['test_quiet'])}.\n")


def _noisy_figures(m: dict) -> str:
    """The card's line on the test clips over a noise floor (`redrum eval transcriber --noise NOISY_DB`)."""
    if "test_noisy" not in m:
        return ""
    return (f"\nWith a noise floor {-NOISY_DB:g} dB under each test clip's peak (`--noise {NOISY_DB:g}`): unseen real "
            f"kits {_real_figures(m['test_noisy'])}.\n")


def _aux_phrase(cfg: dict) -> str:
    if not cfg.get("aux_classes"):
        return ""
    return (f", a second output learning the finer drums {', '.join(cfg['aux_classes'])} (loss weight "
            f"{cfg['aux_weight']:g}; not used in transcription)")


def _mix_phrase(cfg: dict) -> str:
    if not cfg.get("mix_styles"):
        return ""
    return (f", each band's mean and spread mixed with another clip's in {cfg['mix_styles']:.0%} of clips "
            f"(Beta({cfg['mix_alpha']:g}, {cfg['mix_alpha']:g}))")


def _adversary_phrase(cfg: dict) -> str:
    if not cfg.get("kit_adversary"):
        return ""
    on = "GRU's states" if cfg.get("adversary_on", "gru") == "gru" else "convolutions' output"
    return (f", a kit classifier on the {on} fought through a reversed gradient (weight rising to "
            f"{cfg['kit_adversary']:g})")


def _left_out_phrase(m: dict) -> str:
    left = m.get("left_out_kits") or {}
    return "".join(f"\n  Left out of training: {k}, which {why}." for k, why in left.items())


def _soup_phrase(m: dict) -> str:
    """How long it trained: the run's steps, or a soup's runs."""
    seeds = m["config"].get("soup")
    if not seeds:
        return trainer_lib.steps_phrase(m)
    return (f"the weights of {len(seeds)} runs (seeds {', '.join(map(str, seeds))}) averaged, each "
            f"{m['config']['steps']} steps")


def _kept_phrase(m: dict) -> str:
    return f"step {m['best_step']}" if m.get("best_step") is not None else "each run's, before averaging"


def _windows_phrase(c: model_lib.TranscriberConfig) -> str:
    """The card's words for the log-mels' windows when the model hears several (one: the phrase as before)."""
    if len(c.n_ffts) == 1:
        return ""
    windows = ", ".join(f"{n} ({1000 * n / c.sr:.0f} ms)" for n in c.n_ffts)
    return f"; heard through windows of {windows} samples at once"


def model_card(model: model_lib.Transcriber, m: dict) -> str:
    c = model.cfg
    params = sum(p.numel() for p in model.parameters())
    real, base = m["test"]["groups"].get("real", {}), m["test_baseline"]["groups"].get("real", {})
    rows = "\n".join(
        f"| {cls} | {real['per_class'][cls]['f']:.3f} | {base['per_class'][cls]['f']:.3f} | "
        f"{m['test']['groups']['synth']['per_class'][cls]['f']:.3f} | {real['per_class'][cls]['n']} |"
        for cls in c.classes) if real and base and "synth" in m["test"]["groups"] else ""
    kits = m["kits"]
    return f"""# Drum transcriber (`transcriber.safetensors`)

CRNN on log-mel ({c.n_mels} bands, {c.sr} Hz, hop {c.hop_length}: {c.frame_rate:.1f} frames a second{_windows_phrase(c)}): convolutions
{c.channels} pooled over frequency only, a bidirectional GRU ({c.hidden} units) over 3 s windows, a sigmoid per class
({', '.join(c.classes)}). {params / 1e3:.0f} k parameters, stored as fp16. Peak picking with per-class thresholds tuned
on the validation kits: {', '.join(f'{k} {v:g}' for k, v in m['thresholds'].items())}.

- Data: `{m['config']['dataset_config']}` built by `redrum dataset build` (3 s clips of generated and Hydrogen demo-song
  rhythms, augmented, mixed through random pedalboard chains). Kits split by kit: train {len(kits['train'])}
  (synthesiser and Hydrogen), validation {', '.join(k for k in kits['val'] if not k.startswith('synth'))} + synthesiser,
  test (never in training) {', '.join(k.split(':')[1] for k in kits['test'] if k.startswith('hydrogen'))} + synthesiser.{_left_out_phrase(m)}
- Training: {_soup_phrase(m)}{f" from the weights of `{m['config']['init']}`" if m['config'].get('init') else ''}, batch {m['config']['batch_size']} ({m['config']['real_share']:.0%} from real
  kits), AdamW lr {m['config']['lr']} with cosine decay, BCE with positive weight {m['config']['pos_weight']} on onset frames
  widened to their neighbours, random EQ of +-{m['config']['eq_db']:g} dB on the log-mel{_mask_phrase(m['config'])}{_bass_phrase(m['config'])}{_noise_phrase(m['config'])}{_gain_phrase(m['config'])}{_aux_phrase(m['config'])}{_mix_phrase(m['config'])}{_adversary_phrase(m['config'])}; the {_ema_phrase(m['config'])}weights of the best
  validation F{' on the recorded validation kits' if m['config'].get('select') == 'real' else ''} ({_kept_phrase(m)}) kept. Hardware: {m['hardware']}.

Onset F-measure (mir_eval, 50 ms; a class's notes within 30 ms count as one onset) on the test split ({m['test']['clips']} clips):

| class | CRNN, unseen real kits | DSP baseline, same clips | CRNN, unseen synth kits | real hits |
|---|---|---|---|---|
{rows}
| **mean** | **{real.get('mean_f', 0):.3f}** | {base.get('mean_f', 0):.3f} | {m['test']['groups'].get('synth', {}).get('mean_f', 0):.3f} | |

Per unseen real kit (mean F): {', '.join(f"{k.split(':')[1]} {v:.3f}" for k, v in m['test']['per_kit'].items())}.
{_bass_figures(m)}{_quiet_figures(m)}{_noisy_figures(m)}
Reproduce: `redrum train transcriber --config {m['config'].get('config_file') or 'presets/training/transcriber.toml'}`; measure: `redrum eval transcriber --data runs/datasets/clips`.
"""
