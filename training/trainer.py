"""One trainer for the generative models: steps, resuming, logs, devices, torchrun.

A recipe (stage 1, stage 2, layering) says what a step is; the trainer does
the rest, the same way for all of them:

- fixed seeds; the device picked automatically (CUDA when present) or named;
- several GPUs through `torchrun --nproc_per_node N -m redrum_kit.cli train ...`
  (DistributedDataParallel; the same entry point, rank 0 logs and saves);
- `run_dir/last.pt` after every `save_every` steps and on stopping, and a
  resume from it on the next run of the same command (a time budget,
  `max_minutes`, ends a run cleanly part-way);
- `run_dir/log.jsonl` and `log.csv` (one row per logged step), a loss-curve
  `loss.png`, and a progress bar.

A recipe provides:

    setup(device, wrap)            build models and optimisers; `wrap(module)` adds DDP
    modules() -> {name: Module}    what a checkpoint holds
    optimizers() -> {name: Optimizer}
    step(step) -> {name: float}    draw a batch, update, return losses
    validate(step) -> {name: float}
    export(history, seconds)       write the shipped checkpoint and its card
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from redrum_kit import files


@dataclass
class Schedule:
    steps: int
    log_every: int = 10
    val_every: int = 200
    save_every: int = 200
    max_minutes: float = 0.0  # 0: no time limit


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu' / 'cuda' / 'cuda:N' as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        world = dist.get_world_size() if dist.is_initialized() else 1
        return f"{world} x {torch.cuda.get_device_name(device)}"
    n = torch.get_num_threads()
    return f"{platform.machine()} CPU, {n} thread{'s' if n != 1 else ''}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Create it first (under torchrun it joins the process group), then the recipe, then `fit(recipe)`."""

    def __init__(self, schedule: Schedule, run_dir: Path, seed: int = 0, device: str = "auto"):
        self.schedule, self.run_dir, self.seed = schedule, Path(run_dir), seed
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            use_cuda = torch.cuda.is_available() and device != "cpu"
            dist.init_process_group("nccl" if use_cuda else "gloo")
            self.device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
            if use_cuda:
                torch.cuda.set_device(self.device)
        else:
            self.device = pick_device(device)
        self.main = self.rank == 0
        self.history: list[dict] = []

    def main_first(self, fn):
        """Run `fn` on rank 0, then on the others (for data preparation: they find it done)."""
        if self.world > 1 and not self.main:
            dist.barrier()
        result = fn()
        if self.world > 1 and self.main:
            dist.barrier()
        return result

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    # -- checkpoints -----------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.run_dir / "last.pt"

    def save(self, step: int) -> None:
        if not self.main:
            return
        state = {"step": step, "history": self.history,
                 "modules": {k: m.state_dict() for k, m in self.recipe.modules().items()},
                 "optimizers": {k: o.state_dict() for k, o in self.recipe.optimizers().items()}}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        files.write_bytes(self.state_path, buffer.getvalue(), overwrite=True)

    def resume(self) -> int:
        if not self.state_path.is_file():
            return 0
        state = torch.load(self.state_path, map_location=self.device, weights_only=False)
        for k, m in self.recipe.modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.recipe.optimizers().items():
            if k in state["optimizers"]:
                o.load_state_dict(state["optimizers"][k])
        self.history = state["history"]
        return int(state["step"])

    # -- logs ----------------------------------------------------------------

    def log(self, row: dict) -> None:
        self.history.append(row)
        if not self.main:
            return
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def write_logs(self) -> None:
        """CSV of every logged row (columns: the union of keys) and the loss curves as PNG."""
        if not self.main or not self.history:
            return
        columns = sorted({k for row in self.history for k in row}, key=lambda k: (k != "step", k))
        out = io.StringIO()
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        writer.writerows(self.history)
        files.write_text(self.run_dir / "log.csv", out.getvalue(), overwrite=True)
        plot_losses(self.history, self.run_dir / "loss.png")

    # -- the loop --------------------------------------------------------------

    def fit(self, recipe) -> dict:
        """Train to `schedule.steps` (or the time budget), then export. -> summary."""
        self.recipe = recipe
        seed_everything(self.seed + self.rank)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.recipe.setup(self.device, self.wrap)
        start = self.resume()
        if start:
            seed_everything(self.seed + 1000 * start + self.rank)  # a resumed run draws fresh batches
        sched, began = self.schedule, time.time()
        bar = tqdm(total=sched.steps, initial=start, desc="training", unit="step", disable=None if self.main else True)
        step = start
        stopped_early = False
        while step < sched.steps:
            losses = self.recipe.step(step)
            step += 1
            bar.update(1)
            if step % sched.log_every == 0 or step == sched.steps:
                self.log({"step": step, **{k: round(float(v), 5) for k, v in losses.items()}})
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
            if self.main and (step % sched.val_every == 0 or step == sched.steps):
                self.log({"step": step, **{f"val_{k}": round(float(v), 5) for k, v in self.recipe.validate(step).items()}})
            if step % sched.save_every == 0:
                self.save(step)
                self.write_logs()
            if sched.max_minutes and time.time() - began > 60 * sched.max_minutes and step < sched.steps:
                stopped_early = True
                break
        bar.close()
        self.save(step)
        self.write_logs()
        seconds = time.time() - began
        summary = {"step": step, "steps": sched.steps, "complete": step >= sched.steps, "seconds": round(seconds, 1),
                   "hardware": hardware(self.device), "stopped_early": stopped_early}
        if self.main:
            summary.update(self.recipe.export(self.history, summary))
        if dist.is_initialized():
            dist.barrier()
        return summary


def plot_losses(history: list[dict], path: Path) -> None:
    """One panel per quantity (training losses and validation figures) against step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = sorted({k for row in history for k in row if k != "step"})
    if not keys:
        return
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in history if key in r]
        ax.plot(*zip(*points), lw=1)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    files.write_bytes(path, buffer.getvalue(), overwrite=True)


def train(cfg, recipe_cls, steps: int | None = None) -> dict:
    """Train `recipe_cls(cfg, trainer)` with the schedule, run folder, seed and device of `cfg` (`steps`, when
    given, instead of `cfg.steps`: 0 only exports). -> summary."""
    schedule = Schedule(cfg.steps if steps is None else steps, cfg.log_every, cfg.val_every, cfg.save_every,
                        cfg.max_minutes)
    trainer = Trainer(schedule, Path(cfg.run_dir), cfg.seed, cfg.device)
    return trainer.fit(recipe_cls(cfg, trainer))


def prepare_dataset(trainer: Trainer, data_cfg, folder: Path, desc: str = "building clips") -> dict:
    """Build (or resume) a dataset with a progress bar, on rank 0 before the others. -> its manifest."""
    from redrum_kit.datasets.build import build
    return trainer.main_first(lambda: build(
        data_cfg, Path(folder), progress=lambda total: tqdm(total=total, desc=desc, unit="clip", disable=None)))


def run_facts(summary: dict) -> dict:
    """What a model card says about the run that made the checkpoint."""
    return {"steps": summary["step"], "complete": summary["complete"], "hardware": summary["hardware"],
            "seconds_this_run": summary["seconds"]}


def steps_phrase(metrics: dict) -> str:
    """'N steps (run to the configured end)' or 'N steps so far (resumable; ...)'."""
    if metrics["complete"]:
        return f"{metrics['steps']} steps (run to the configured end)"
    return (f"{metrics['steps']} steps so far (resumable; the configured run is "
            f"{metrics['config']['steps']} steps)")


def publish(out: Path, save, metrics: dict, card: str) -> None:
    """The shipped checkpoint (`save(out)`), its metrics JSON and its Markdown card, side by side."""
    out.parent.mkdir(parents=True, exist_ok=True)
    save(out)
    files.write_text(out.with_suffix(".metrics.json"), json.dumps(metrics, indent=1), overwrite=True)
    files.write_text(out.with_suffix(".md"), card, overwrite=True)


def schedule_lr(optimizer: torch.optim.Optimizer, step: int, steps: int, peak: float, *,
                warmup: float = 0.0, floor: float = 0.05) -> float:
    """Set and return the learning rate of `step` of `steps`: a linear rise over the first `warmup`
    share of the run (from peak / 25), then a cosine fall to `floor` x peak. A pure function of the step,
    so a resumed run continues the same curve (a scheduler object would restart)."""
    rise = int(warmup * steps)
    if step < rise:
        lr = peak / 25 + (peak - peak / 25) * step / rise
    else:
        t = (step - rise) / max(1, steps - rise)
        lr = floor * peak + (peak - floor * peak) * 0.5 * (1 + np.cos(np.pi * min(1.0, t)))
    for group in optimizer.param_groups:
        group["lr"] = lr
    return float(lr)


def keep_best(run_dir: Path, score: float, step: int, model: torch.nn.Module) -> bool:
    """Keep `model`'s weights in `run_dir/best.pt` when `score` beats the one kept there. -> kept."""
    path = Path(run_dir) / "best.pt"
    previous = torch.load(path, weights_only=False)["score"] if path.is_file() else -np.inf
    if score <= previous:
        return False
    buffer = io.BytesIO()
    torch.save({"score": score, "step": step, "model": model.state_dict()}, buffer)
    files.write_bytes(path, buffer.getvalue(), overwrite=True)
    return True


def load_best(run_dir: Path, model: torch.nn.Module) -> int | None:
    """Load the weights kept by `keep_best` into `model`. -> their step (None: nothing kept)."""
    path = Path(run_dir) / "best.pt"
    if not path.is_file():
        return None
    state = torch.load(path, weights_only=False, map_location="cpu")
    model.load_state_dict(state["model"])
    return int(state["step"])
