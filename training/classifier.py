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

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pedalboard
import torch
from tqdm import tqdm

from redrum_kit import audio, synth, workspace
from redrum_kit.drums import ONESHOT_CLASSES, class_from_name
from redrum_kit.hydrogen import read_drumkit
from redrum_kit.library.oneshot import LIBRARY_SR, content_hash, normalise
from redrum_kit.models import classifier as model_lib

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


def train(cfg: TrainConfig) -> dict:
    """Train, keep the best epoch by validation balanced accuracy, save, evaluate. -> metrics."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    mcfg = model_lib.ClassifierConfig(**cfg.model)
    started = time.time()
    data = splits(cfg, mcfg.sr)
    train_set = data["train"]
    if not train_set:
        raise RuntimeError("no training data")
    labels = np.array([e.label for e in train_set])
    weights = sampling_weights(labels, np.array([e.kit.startswith("synth-") for e in train_set]), cfg.real_share)
    model = model_lib.OneshotClassifier(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * (cfg.examples_per_epoch // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1))
    history = []
    best = (-1.0, None)
    for epoch in range(cfg.epochs):
        model.train()
        idx = rng.choice(len(train_set), size=cfg.examples_per_epoch, p=weights)
        losses = []
        bar = tqdm(range(0, len(idx) - cfg.batch_size + 1, cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   leave=False, disable=None)
        for start in bar:
            chosen = idx[start:start + cfg.batch_size]
            ys = [augment(train_set[i].y, mcfg.sr, rng) if cfg.augment else train_set[i].y for i in chosen]
            ys = [y[: int(CROP_SECONDS * mcfg.sr)] for y in ys]
            mel, desc = model.inputs(_batch(ys))
            loss = torch.nn.functional.cross_entropy(model(mel, desc), torch.from_numpy(labels[chosen]),
                                                     label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        val = evaluate(model, data["val"])
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_accuracy": val["accuracy"],
                        "val_balanced_accuracy": val["balanced_accuracy"]})
        print(json.dumps(history[-1]), flush=True)
        if val["balanced_accuracy"] > best[0]:
            best = (val["balanced_accuracy"], {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    metrics = {
        "held_out_real": evaluate(model, data["test"]),
        "held_out_synth": evaluate(model, data["synth_test"]),
        "val": evaluate(model, data["val"]),
        "train_size": len(train_set), "history": history,
        "config": asdict(cfg), "seconds": round(time.time() - started, 1),
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, CPU",
    }
    out = Path(cfg.out)
    model_lib.save(model, out, extra={"test_kits": cfg.test_kits, "val_kits": cfg.val_kits})
    out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=1))
    out.with_suffix(".md").write_text(model_card(metrics, out))
    return metrics


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
        f" AdamW lr {cfg['lr']} (one-cycle), seed {cfg['seed']}.",
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
