"""Train and evaluate the drum transcriber on clips from the dataset builder.

    redrum train transcriber --config presets/training/transcriber.toml

The clips are built first (or resumed) from the dataset config the recipe
names, so one command reproduces the checkpoint. Targets are onset frames;
each is widened to its neighbours with weight 0.5 (a hit on a frame boundary
is not a miss), and the loss is BCE with positive weighting for the rare
onset frames. Model selection on validation F; the test split holds kits
never seen in training (see `workspace.HELD_OUT_KITS`). Resumes from
`run_dir/last.pt` after an interruption.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mir_eval
import numpy as np
import torch
from tqdm import tqdm

from redrum_kit.config import load_config
from redrum_kit.datasets.build import Dataset, DatasetConfig, build
from redrum_kit.models import transcriber as model_lib
from redrum_kit.rhythm.events import TRANSCRIPTION_CLASS


@dataclass
class TrainConfig:
    seed: int = 0
    dataset_config: str = "presets/training/dataset.toml"
    data_dir: str = "runs/datasets/clips"
    run_dir: str = "runs/transcriber"
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    pos_weight: float = 8.0
    threshold: float = 0.5
    out: str = "presets/models/transcriber.safetensors"
    model: dict = field(default_factory=dict)


def widen(targets: torch.Tensor) -> torch.Tensor:
    """Onset frames (1) get neighbours at 0.5: `(batch, classes, frames)` float."""
    t = targets.float()
    side = torch.zeros_like(t)
    side[..., 1:] = torch.maximum(side[..., 1:], t[..., :-1])
    side[..., :-1] = torch.maximum(side[..., :-1], t[..., 1:])
    return torch.maximum(t, 0.5 * side)


def _batches(ds: Dataset, indices: np.ndarray, size: int):
    for start in range(0, len(indices), size):
        items = [ds[int(i)] for i in indices[start:start + size]]
        yield (torch.from_numpy(np.stack([it["audio"] for it in items])),
               torch.from_numpy(np.stack([it["targets"] for it in items])), items)


def reference_onsets(item: dict, classes: list[str]) -> dict[str, np.ndarray]:
    """Exact onset times per transcription class of the events a clip was rendered from."""
    out: dict[str, list[float]] = {c: [] for c in classes}
    for t, cls, _ in item["events"]:
        tc = TRANSCRIPTION_CLASS.get(cls)
        if tc in out:
            out[tc].append(t)
    return {c: np.unique(np.array(v)) for c, v in out.items()}


def kit_group(kit: str) -> str:
    """'real' for recorded (Hydrogen, library) kits, 'synth' for the synthesiser's."""
    return "synth" if kit.startswith("synth") else "real"


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


def evaluate(source, ds: Dataset, threshold: float | None = None, limit: int | None = None) -> dict:
    """Onset F-measure per class (mir_eval, 50 ms window), counts summed over clips before dividing.

    `source` is anything with `.activations(y)` and `.cfg` (the CRNN or the DSP baseline).
    The same figures follow for the real and the synthesised kits apart, and per kit.
    """
    threshold = threshold if threshold is not None else getattr(source, "threshold", 0.5)
    classes = source.cfg.classes
    counts: dict[str, dict[str, np.ndarray]] = {}  # kit -> class -> (true positives, references, estimates)
    n = len(ds) if limit is None else min(limit, len(ds))
    for i in range(n):
        item = ds[i]
        probs = source.activations(item["audio"])
        found = model_lib.peak_pick(probs, source.cfg.frame_rate, classes, threshold)
        ref = reference_onsets(item, classes)
        kit = counts.setdefault(item["kit"], {c: np.zeros(3) for c in classes})
        for c in classes:
            est = np.array([t for t, cls, _ in found if cls == c])
            matched = len(mir_eval.util.match_events(ref[c], est, 0.05)) if len(ref[c]) and len(est) else 0
            kit[c] += [matched, len(ref[c]), len(est)]

    def total(kits) -> dict[str, np.ndarray]:
        return {c: sum((counts[k][c] for k in kits), np.zeros(3)) for c in classes}

    groups = {g: [k for k in counts if kit_group(k) == g] for g in ("real", "synth")}
    return {**f_measures(total(counts)), "clips": n,
            "groups": {g: f_measures(total(kits)) for g, kits in groups.items() if kits},
            "per_kit": {k: f_measures(counts[k])["mean_f"] for k in sorted(counts) if kit_group(k) == "real"}}


def train(cfg: TrainConfig) -> dict:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data_dir = Path(cfg.data_dir)
    build(load_config(DatasetConfig, Path(cfg.dataset_config)), data_dir,
          progress=lambda total: tqdm(total=total, desc="building clips", unit="clip", disable=None))
    train_ds = Dataset(data_dir, "train", in_memory=True)  # random order: keep every shard once read
    val_ds, test_ds = Dataset(data_dir, "val"), Dataset(data_dir, "test")
    model = model_lib.Transcriber(model_lib.TranscriberConfig(**cfg.model))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "last.pt"
    start_epoch, history, best = 0, [], (-1.0, None)
    if state_path.is_file():  # resume
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start_epoch, history, best = state["epoch"], state["history"], state["best"]
        rng = np.random.default_rng([cfg.seed, start_epoch])
    pos_weight = torch.full((len(model.cfg.classes), 1), cfg.pos_weight)
    started = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        losses = []
        order = rng.permutation(len(train_ds))
        for y, targets, _ in tqdm(_batches(train_ds, order, cfg.batch_size), total=-(-len(order) // cfg.batch_size),
                                  desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None):
            logits = model(model.features(y))
            frames = min(logits.shape[-1], targets.shape[-1])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits[..., :frames], widen(targets[..., :frames]), pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
        val = evaluate(model, val_ds, cfg.threshold)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_mean_f": val["mean_f"],
                        "val_real_f": val["groups"].get("real", {}).get("mean_f")})
        print(json.dumps(history[-1]), flush=True)
        if val["mean_f"] > best[0]:
            best = (val["mean_f"], {k: v.clone() for k, v in model.state_dict().items()})
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1,
                    "history": history, "best": best}, state_path)
    model.load_state_dict(best[1])
    metrics = {"test": evaluate(model, test_ds, cfg.threshold), "val": evaluate(model, val_ds, cfg.threshold),
               "history": history, "config": asdict(cfg), "test_kits": test_ds.manifest["kits"]["test"],
               "seconds": round(time.time() - started, 1),
               "hardware": f"{platform.machine()}, {torch.get_num_threads()} threads, CPU"}
    out = Path(cfg.out)
    model_lib.save(model, out, extra={"dataset": str(data_dir)})
    out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
