"""Train and evaluate the oneshot classifier.

Data: labelled oneshots from Debian's Hydrogen drumkits (labels from the
instrument names) and from the built-in synthesiser (labels from the voice),
split by kit: the held-out kits named in the config never reach training, and
a sound that also appears in a held-out kit (kits share samples) is dropped
from training. Training examples are augmented (pitch, EQ, room, saturation,
truncation) so the model hears more than these kits.

    redrum train classifier --config presets/training/classifier.toml
    redrum eval classifier
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pedalboard
import torch

from redrum_kit import audio, synth, workspace
from redrum_kit.drums import ONESHOT_CLASSES, class_from_name
from redrum_kit.hydrogen import read_drumkit
from redrum_kit.library.oneshot import LIBRARY_SR, content_hash, normalise
from redrum_kit.errors import RedrumError
from redrum_kit.models import classifier as model_lib
from training import trainer as trainer_lib

CROP_SECONDS = 4.0


@dataclass
class TrainConfig:
    seed: int = 0
    hydrogen_dir: str = str(workspace.HYDROGEN_DRUMKITS)
    test_kits: list[str] = field(default_factory=lambda: list(workspace.HELD_OUT_KITS))
    val_kits: list[str] = field(default_factory=lambda: list(workspace.VALIDATION_KITS))
    synth_train_kits: int = 300
    synth_val_kits: int = 20
    synth_test_kits: int = 20
    epochs: int = 30
    examples_per_epoch: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = True
    real_share: float = 0.5  # of training examples drawn from real (Hydrogen) kits, the rest synthetic
    out: str = "presets/models/classifier.safetensors"
    run_dir: str = "runs/classifier"    # last.pt (resume), best.pt, logs and loss curve
    device: str = "auto"
    log_every: int = 10
    max_minutes: float = 0.0
    model: dict = field(default_factory=dict)  # ClassifierConfig overrides


@dataclass
class Example:
    y: np.ndarray   # at model rate, cropped
    label: int
    kit: str
    name: str


def _example(y: np.ndarray, sr: int, label: str, kit: str, name: str, model_sr: int) -> tuple[Example, str]:
    copy = normalise(y, sr)
    digest = content_hash(copy)
    y_model = audio.resample(copy, LIBRARY_SR, model_sr)[: int(CROP_SECONDS * model_sr)]
    return Example(y_model.astype(np.float32), ONESHOT_CLASSES.index(label), kit, name), digest


def hydrogen_examples(folder: Path, kits: list[str], model_sr: int) -> list[tuple[Example, str]]:
    """Labelled oneshots of the Hydrogen kits `kits` (folder names) with their content hashes."""
    out = []
    for kit_dir in kits:
        path = folder / kit_dir
        if not path.is_dir():
            continue
        kit = read_drumkit(path)
        for inst in kit.instruments:
            label = class_from_name(inst.name)
            if label is None:
                continue
            for layer in inst.layers:
                try:
                    y, sr = audio.load(layer.path, require_sound=True, max_seconds=30)
                except audio.AudioError:
                    continue
                out.append(_example(y, sr, label, kit_dir, inst.name, model_sr))
    return out


def synth_examples(seeds: range, model_sr: int) -> list[tuple[Example, str]]:
    return [_example(y, synth.SR, synth.VOICE_CLASS[voice], synth.kit_name(s), name, model_sr)
            for s in seeds for name, voice, y in synth.kit(s)]


def _dedupe(items: list[tuple[Example, str]], banned: set[str]) -> list[Example]:
    seen = set(banned)
    out = []
    for ex, digest in items:
        if digest not in seen:
            seen.add(digest)
            out.append(ex)
    return out


def _synth_seeds(cfg: TrainConfig) -> dict[str, range]:
    """Synth kit seeds of each split; they start at 100000 so the library's own synth kits stay unseen."""
    base, n1, n2, n3 = 100_000, cfg.synth_train_kits, cfg.synth_val_kits, cfg.synth_test_kits
    return {"train": range(base, base + n1), "val": range(base + n1, base + n1 + n2),
            "synth_test": range(base + n1 + n2, base + n1 + n2 + n3)}


def held_out_splits(cfg: TrainConfig, model_sr: int) -> dict[str, list[Example]]:
    """The held-out data only: real kits `cfg.test_kits` and unseen synthetic kits."""
    folder = Path(cfg.hydrogen_dir)
    return {"test": _dedupe(hydrogen_examples(folder, cfg.test_kits, model_sr), set()),
            "synth_test": _dedupe(synth_examples(_synth_seeds(cfg)["synth_test"], model_sr), set())}


def splits(cfg: TrainConfig, model_sr: int) -> dict[str, list[Example]]:
    """train / val / test (real held-out kits) / synth_test, without shared sounds across splits."""
    folder = Path(cfg.hydrogen_dir)
    all_kits = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    train_kits = [k for k in all_kits if k not in cfg.test_kits and k not in cfg.val_kits]
    seeds = _synth_seeds(cfg)
    test = hydrogen_examples(folder, cfg.test_kits, model_sr)
    val = hydrogen_examples(folder, cfg.val_kits, model_sr) + synth_examples(seeds["val"], model_sr)
    train = hydrogen_examples(folder, train_kits, model_sr) + synth_examples(seeds["train"], model_sr)
    test_hashes = {d for _, d in test}
    val_hashes = {d for _, d in val}
    return {"train": _dedupe(train, test_hashes | val_hashes), "val": _dedupe(val, test_hashes),
            **held_out_splits(cfg, model_sr)}


def augment(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A random but plausible version of a oneshot: retuned, EQ'd, roomier, driven or cut short."""
    if rng.random() < 0.7:  # retune like a sampler does (speed change)
        y = audio.retune(y, rng.uniform(-4, 4))
    chain = []
    if rng.random() < 0.6:
        chain.append(pedalboard.LowShelfFilter(cutoff_frequency_hz=float(rng.uniform(80, 400)),
                                               gain_db=float(rng.uniform(-9, 9))))
    if rng.random() < 0.6:
        chain.append(pedalboard.HighShelfFilter(cutoff_frequency_hz=float(rng.uniform(2000, 8000)),
                                                gain_db=float(rng.uniform(-12, 6))))
    if rng.random() < 0.4:
        chain.append(pedalboard.PeakFilter(cutoff_frequency_hz=float(np.exp(rng.uniform(np.log(150), np.log(6000)))),
                                           gain_db=float(rng.uniform(-9, 9)), q=float(rng.uniform(0.5, 3))))
    if rng.random() < 0.2:
        chain.append(pedalboard.Distortion(drive_db=float(rng.uniform(3, 20))))
    if rng.random() < 0.25:
        chain.append(pedalboard.Reverb(room_size=float(rng.uniform(0.05, 0.4)), wet_level=float(rng.uniform(0.05, 0.25)),
                                       dry_level=1.0, damping=float(rng.uniform(0.2, 0.8))))
    if chain:
        y = pedalboard.Pedalboard(chain)(y[None, :].astype(np.float32), sr)[0]
    if rng.random() < 0.15:  # a sample cut short by its maker
        keep = int(len(y) * rng.uniform(0.3, 0.9))
        y = audio.fade_out(y[: max(keep, 256)], sr, 0.01)
    if rng.random() < 0.2:  # noise floor of a recording
        y = y + rng.normal(0, 10 ** (rng.uniform(-70, -45) / 20), len(y)).astype(np.float32)
    return audio.peak_normalize(y.astype(np.float32))


def _batch(ys: list[np.ndarray]) -> torch.Tensor:
    width = max(len(y) for y in ys)
    out = torch.zeros(len(ys), width)
    for i, y in enumerate(ys):
        out[i, : len(y)] = torch.from_numpy(y)
    return out


@torch.no_grad()
def evaluate(model: model_lib.OneshotClassifier, examples: list[Example]) -> dict:
    """Accuracy, balanced accuracy, per-class recall and the confusion matrix."""
    if not examples:
        return {"n": 0}
    names, _ = model.predict([e.y for e in examples], model.cfg.sr)
    pred = np.array([ONESHOT_CLASSES.index(n) for n in names])
    true = np.array([e.label for e in examples])
    k = len(ONESHOT_CLASSES)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (true, pred), 1)
    present = confusion.sum(1) > 0
    recall = np.divide(np.diag(confusion), confusion.sum(1), out=np.zeros(k), where=present)
    kits = np.array([e.kit for e in examples])
    per_kit = {k: {"accuracy": round(float((pred[kits == k] == true[kits == k]).mean()), 3),
                   "n": int((kits == k).sum())} for k in dict.fromkeys(kits)}
    return {"n": int(len(true)), "accuracy": float((pred == true).mean()),
            "balanced_accuracy": float(recall[present].mean()),
            "per_class": {ONESHOT_CLASSES[i]: {"recall": round(float(recall[i]), 3), "n": int(confusion[i].sum())}
                          for i in range(k) if present[i]},
            "per_kit": per_kit if len(per_kit) <= 12 else {},
            "confusion": confusion.tolist(), "classes": list(ONESHOT_CLASSES)}


def sampling_weights(labels: np.ndarray, synthetic: np.ndarray, real_share: float) -> np.ndarray:
    """Probabilities that balance the classes within each domain and give real kits `real_share`.

    There are ten times more synthetic sounds than real ones; drawn uniformly,
    the model would learn the synthesiser and little else.
    """
    weights = np.zeros(len(labels))
    for domain, share in ((synthetic, 1 - real_share), (~synthetic, real_share)):
        if not domain.any():
            continue
        counts = np.bincount(labels[domain], minlength=len(ONESHOT_CLASSES)).astype(float)
        w = 1.0 / counts[labels[domain]]
        weights[domain] = share * w / w.sum()
    return weights / weights.sum()


class ClassifierRecipe:
    """The classifier on the shared trainer: one epoch is `examples_per_epoch` augmented examples
    drawn with `sampling_weights`; validation (balanced accuracy on the val kits) after every epoch,
    the best weights kept in `run_dir/best.pt`; one-cycle learning rate."""

    def __init__(self, cfg: TrainConfig, trainer: trainer_lib.Trainer):
        self.cfg = cfg
        self.mcfg = model_lib.ClassifierConfig(**cfg.model)
        self.data = splits(cfg, self.mcfg.sr)
        self.train_set = self.data["train"]
        if not self.train_set:
            raise RedrumError("no training oneshots: install Debian's hydrogen-drumkits (make data) "
                              "or raise synth_train_kits")
        self.labels = np.array([e.label for e in self.train_set])
        self.weights = sampling_weights(self.labels, np.array([e.kit.startswith("synth-") for e in self.train_set]),
                                        cfg.real_share)

    def setup(self, device, wrap) -> None:
        self.device = device
        self.model = model_lib.OneshotClassifier(self.mcfg).to(device)
        self.net = wrap(self.model)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.rng = np.random.default_rng(torch.initial_seed() % 2**32)

    def modules(self) -> dict:
        return {"model": self.model}

    def optimizers(self) -> dict:
        return {"adamw": self.opt}

    def step(self, step: int) -> dict:
        cfg, sr = self.cfg, self.mcfg.sr
        self.model.train()
        lr = trainer_lib.schedule_lr(self.opt, step, steps_of(cfg), cfg.lr, warmup=0.3, floor=1e-4)
        chosen = self.rng.choice(len(self.train_set), size=cfg.batch_size, p=self.weights)
        ys = [augment(self.train_set[i].y, sr, self.rng) if cfg.augment else self.train_set[i].y for i in chosen]
        mel, desc = self.model.inputs(_batch([y[: int(CROP_SECONDS * sr)] for y in ys]).to(self.device))
        loss = torch.nn.functional.cross_entropy(self.net(mel, desc), torch.from_numpy(self.labels[chosen]).to(self.device),
                                                 label_smoothing=0.05)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "lr": lr}

    @torch.no_grad()
    def validate(self, step: int = 0) -> dict:
        self.model.eval()
        val = evaluate(self.model, self.data["val"] or self.data["synth_test"])
        trainer_lib.keep_best(Path(self.cfg.run_dir), val["balanced_accuracy"], step, self.model)
        return {"accuracy": val["accuracy"], "balanced_accuracy": val["balanced_accuracy"]}

    def export(self, history: list[dict], summary: dict) -> dict:
        cfg = self.cfg
        model = self.model.cpu().eval()
        best_step = trainer_lib.load_best(Path(cfg.run_dir), model) or summary["step"]
        metrics = {
            **trainer_lib.run_facts(summary), "best_step": best_step,
            "held_out_real": evaluate(model, self.data["test"]),
            "held_out_synth": evaluate(model, self.data["synth_test"]),
            "val": evaluate(model, self.data["val"]),
            "train_size": len(self.train_set), "history": epoch_history(history, steps_of(cfg) // cfg.epochs),
            "config": asdict(cfg), "seconds": summary["seconds"], "hardware": summary["hardware"],
        }
        out = Path(cfg.out)
        trainer_lib.publish(out, lambda path: model_lib.save(model, path, extra={"test_kits": cfg.test_kits,
                                                                                "val_kits": cfg.val_kits}),
                            metrics, model_card(metrics, out))
        self.model.to(self.device)
        return {"out": str(out), "metrics": metrics}


def steps_of(cfg: TrainConfig) -> int:
    return cfg.epochs * max(1, cfg.examples_per_epoch // cfg.batch_size)


def epoch_history(history: list[dict], per_epoch: int) -> list[dict]:
    """The trainer's rows as one row per epoch: mean training loss and the validation figures."""
    out = []
    for row in (r for r in history if "val_balanced_accuracy" in r):
        epoch = row["step"] // per_epoch
        losses = [r["loss"] for r in history if "loss" in r and (epoch - 1) * per_epoch < r["step"] <= row["step"]]
        out.append({"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                    "val_accuracy": row["val_accuracy"], "val_balanced_accuracy": row["val_balanced_accuracy"]})
    return out


def train(cfg: TrainConfig) -> dict:
    """Train (resumable from `run_dir/last.pt`), keep the best epoch by validation balanced accuracy,
    save and evaluate. -> metrics."""
    per_epoch = max(1, cfg.examples_per_epoch // cfg.batch_size)
    schedule = trainer_lib.Schedule(steps_of(cfg), min(cfg.log_every, per_epoch), per_epoch, per_epoch, cfg.max_minutes)
    trainer = trainer_lib.Trainer(schedule, Path(cfg.run_dir), cfg.seed, cfg.device)
    return trainer.fit(ClassifierRecipe(cfg, trainer))["metrics"]


def _table(m: dict) -> list[str]:
    rows = ["| class | recall | n |", "|---|---|---|"]
    rows += [f"| {c} | {v['recall']:.3f} | {v['n']} |" for c, v in m["per_class"].items()]
    return rows


def model_card(metrics: dict, checkpoint: Path) -> str:
    """The model card, written from the metrics of the run that made the checkpoint."""
    cfg = metrics["config"]
    real, syn = metrics["held_out_real"], metrics["held_out_synth"]
    size = checkpoint.stat().st_size / 1e6 if checkpoint.exists() else float("nan")
    lines = [
        "# Oneshot classifier", "",
        "Which drum is this hit? Classes: " + ", ".join(ONESHOT_CLASSES) + ". Reads the audio only.",
        "Model: a 4-block CNN on the log-mel spectrogram of the first 1.5 s (22.05 kHz, 64 mels) plus two",
        "descriptors (ring time, attack time); " + f"{size:.2f} MB as fp16 safetensors.", "",
        "## Data",
        f"- Training: Debian hydrogen-drumkits kits except the held-out ones ({metrics['train_size']} oneshots"
        f" with the synthesiser's), labels from instrument names; {cfg['synth_train_kits']} synthesiser kits"
        " (seeds from 100000). Augmented: retune +-4 semitones, EQ, room, saturation, truncation, noise floor.",
        f"- Model selection (best epoch): {', '.join(cfg['val_kits']) or 'none'} and {cfg['synth_val_kits']} synth kits.",
        f"- Held out, never trained on: {', '.join(cfg['test_kits'])}; a sound shared with a training kit"
        " is removed from training.", "",
        "## Training",
        f"- Sampling: {cfg.get('real_share', 0.5):.0%} of examples from real kits, the rest synthetic;"
        " classes balanced within each.",
        f"- {cfg['epochs']} epochs x {cfg['examples_per_epoch']} examples, batch {cfg['batch_size']},"
        f" AdamW lr {cfg['lr']} (one-cycle), seed {cfg['seed']}; the best epoch's weights kept"
        f" (step {metrics.get('best_step', '?')} of {metrics.get('steps', '?')}).",
        f"- Hardware: {metrics['hardware']}; {metrics['seconds'] / 60:.0f} minutes.",
        "- Reproduce: `redrum train classifier --config presets/training/classifier.toml`", "",
        "## Metrics (held-out kits)",
        f"- Real Hydrogen kits: accuracy **{real['accuracy']:.3f}**, balanced accuracy"
        f" **{real['balanced_accuracy']:.3f}**, n={real['n']}.",
        f"- Unseen synthesiser kits: accuracy {syn['accuracy']:.3f}, balanced {syn['balanced_accuracy']:.3f},"
        f" n={syn['n']}.", "",
        "Per class, real held-out kits:", "", *_table(real), "",
        "Measure again: `redrum eval classifier`.", ""]
    return "\n".join(lines)


def evaluate_shipped(cfg: TrainConfig, checkpoint: Path) -> dict:
    """Evaluate a checkpoint on the config's held-out real and synthetic kits."""
    model = model_lib.load(checkpoint)
    data = held_out_splits(cfg, model.cfg.sr)
    return {"held_out_real": evaluate(model, data["test"]), "held_out_synth": evaluate(model, data["synth_test"])}
