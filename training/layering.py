"""Train a layering model for one drum class: `redrum train layering --class snare [--config ...]`.

Library: `library_size` exemplars chosen by greedy Frank-Wolfe from the
candidates: the synthesiser's oneshots of the class (`synth_candidates`
seeds; any machine can rebuild them), or the user's library
(`library = true`: every oneshot of the class, or only those of
`library_kits`). Fewer than 10 candidates is an error.

Targets: hits of the class from Hydrogen's training kits and synthesiser
training kits, each in `augment_copies` augmented copies (pitch, envelope,
filtering) to widen the space; validation on the validation kits, the
card's evaluation on the held-out real kits (`workspace.HELD_OUT_KITS`).

Steps below `pretrain_steps` classify the library's own oneshots (BCE of the
weights against the one-hot of the input); then the generative loss: the
mix of the library with the decoded weights, featurised the same way,
against the target (`layering.feature_error`) plus beta * KL with free bits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from redrum_kit import audio, features, layering, workspace
from redrum_kit.config import from_dict
from redrum_kit.drums import ONESHOT_CLASSES
from redrum_kit.errors import RedrumError
from redrum_kit.library.exemplars import greedy_frank_wolfe
from redrum_kit.models import layering as model_lib
from training import trainer as trainer_lib

MIN_LIBRARY = 10


@dataclass
class TrainConfig:
    seed: int = 0
    drum_class: str = "snare"
    run_dir: str = "runs/layering-{cls}"
    out: str = "presets/models/layering-{cls}.safetensors"
    device: str = "auto"
    library_size: int = 200
    synth_candidates: int = 600        # synthesiser oneshots the exemplars are chosen from
    library: bool = False              # choose from the user's library instead
    library_kits: list = field(default_factory=list)
    synth_target_kits: int = 120       # synthesiser kits whose hits are training targets
    augment_copies: int = 6
    steps: int = 6000
    pretrain_steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    beta: float = 0.02
    log_every: int = 50
    val_every: int = 500
    save_every: int = 500
    max_minutes: float = 0.0
    eval_hits: int = 200               # held-out real hits for the card's evaluation (0: skip)
    model: dict = field(default_factory=dict)
    classes: list = field(default_factory=list)  # several: one model conditioned on them ({cls}: "conditioned")
    config_file: str = ""

    def resolved(self) -> "TrainConfig":
        for cls in self.classes or [self.drum_class]:
            if cls not in ONESHOT_CLASSES:
                raise RedrumError(f"unknown class {cls!r}; choose one of {', '.join(ONESHOT_CLASSES)}")
        name = "conditioned" if self.classes else self.drum_class
        return TrainConfig(**{**asdict(self), "run_dir": self.run_dir.format(cls=name),
                              "out": self.out.format(cls=name)})


# -- data ------------------------------------------------------------------------------------

def synth_sources(cls: str, n: int, base: int = 300_000) -> list[str]:
    voice = layering.VOICE_OF_CLASS.get(cls)
    if voice is None:
        raise RedrumError(f"the synthesiser has no {cls} voice; train with --library")
    return [f"synth:{voice}:{base + i}" for i in range(n)]


def user_sources(cls: str, kits: list[str]) -> list[str]:
    from redrum_kit.library import Library
    lib = Library()
    pool = lib.list(cls=cls)
    if kits:
        names = {o.id for k in kits for pad in lib.kits.load(k).pads for layer in pad.layers
                 for o in [lib.resolve_layer(layer)] if o is not None}
        pool = [o for o in pool if o.id in names]
    return [str(lib.source_file(o)) for o in pool]


def choose_library(candidates: list[str], size: int) -> list[str]:
    """Greedy Frank-Wolfe exemplars of the candidates' layering spectra (shapes, loudness removed)."""
    if len(candidates) < MIN_LIBRARY:
        raise RedrumError(f"only {len(candidates)} oneshots of this class to layer from; at least {MIN_LIBRARY} "
                          "are needed (import more, or use the built-in library)")
    feats = torch.stack([layering.feature(layering.load_source(s, layering.SR)) for s in
                         tqdm(candidates, desc="library candidates", unit="oneshot", disable=None)])
    shapes = layering.spectrum_shapes(feats).T
    chosen, _ = greedy_frank_wolfe(shapes, min(size, len(candidates)))
    return [candidates[i] for i in chosen]


def class_hits(cls: str, split: str, synth_kits: int = 0) -> list[tuple[str, np.ndarray]]:
    """(kit, hit) of the class at SR: Hydrogen kits of the split, plus synthesiser kits (train/val)."""
    from redrum_kit.datasets.build import DatasetConfig, leaking_kits
    from redrum_kit.datasets.kits import from_hydrogen, from_synth
    held, val = set(workspace.HELD_OUT_KITS), set(workspace.VALIDATION_KITS)
    folders = sorted(p for p in workspace.HYDROGEN_DRUMKITS.iterdir() if (p / "drumkit.xml").is_file()) \
        if workspace.HYDROGEN_DRUMKITS.is_dir() else []
    # a kit repackaging a held-out kit's sounds is that kit: never trained on (hashed for the training split only)
    leaking = leaking_kits(DatasetConfig(hydrogen_dir=str(workspace.HYDROGEN_DRUMKITS), test_kits=sorted(held),
                                         val_kits=sorted(val), exclude_kits=[])) if split == "train" else {}
    pick = {"train": lambda n: n not in held and n not in val and n not in leaking, "val": lambda n: n in val,
            "test": lambda n: n in held}[split]
    kits = [from_hydrogen(f, layering.SR) for f in folders if pick(f.name)]
    base = {"train": 500_000, "val": 600_000, "test": 700_000}[split]
    kits += [from_synth(base + i, layering.SR) for i in range(synth_kits)]
    out = []
    for kit in kits:
        for (pad, _), y in kit.samples.items():
            if kit.kit.pads[pad].cls == cls:
                out.append((kit.name, y))
    return out


def augment_hit(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pitch (+-3 semitones), envelope (a faster decay) and filtering (low- or high-pass)."""
    from scipy.signal import butter, sosfilt
    sr = layering.SR
    y = audio.retune(y, float(rng.uniform(-3, 3))).astype(np.float32)
    if rng.random() < 0.5:
        t = np.arange(len(y)) / sr
        y = y * np.exp(-t / rng.uniform(0.05, 0.8)).astype(np.float32)
    if rng.random() < 0.5:
        kind = "lowpass" if rng.random() < 0.5 else "highpass"
        cutoff = rng.uniform(2000, 9000) if kind == "lowpass" else rng.uniform(60, 800)
        y = sosfilt(butter(2, cutoff, kind, fs=sr, output="sos"), y).astype(np.float32)
    return y


def hit_features(hits: list[np.ndarray]) -> torch.Tensor:
    feats = []
    for k in range(0, len(hits), 256):
        feats.append(features.layering_feature(torch.from_numpy(np.stack([layering.fit_length(h)
                                                                           for h in hits[k:k + 256]]))))
    return torch.cat(feats) if feats else torch.zeros(0, features.LAYERING_DIM)


# -- the recipe --------------------------------------------------------------------------------

class ClassData:
    """One class's library and targets: training features (augmented), validation features and
    NNLS's validation errors (the yardstick, fixed)."""

    def __init__(self, cfg: TrainConfig, cls: str, rng: np.random.Generator):
        self.cls = cls
        candidates = user_sources(cls, cfg.library_kits) if cfg.library else synth_sources(cls, cfg.synth_candidates)
        self.sources = choose_library(candidates, cfg.library_size)
        train_hits = [y for _, y in class_hits(cls, "train", cfg.synth_target_kits)]
        if not train_hits:
            raise RedrumError(f"no {cls} hits to train on")
        augmented = train_hits + [augment_hit(y, rng) for y in train_hits for _ in range(cfg.augment_copies)]
        self.train_feats = hit_features(augmented)
        self.val_feats = hit_features([y for _, y in class_hits(cls, "val", 10)])
        self.n_train_hits = len(train_hits)
        self.library = layering.LayerLibrary(self.sources)
        nnls = [layering.nnls_weights(self.library, f) for f in self.val_feats]
        self.val_nnls = (self.library.mix_error(torch.from_numpy(np.stack(nnls)).float(), self.val_feats)
                         if nnls else None)


class LayeringRecipe:
    """One class (`drum_class`), or one model conditioned on several (`classes`): each class mixes
    its own library; with several, every step takes a batch of each class."""

    def __init__(self, cfg: TrainConfig, trainer: trainer_lib.Trainer):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        self.data = [ClassData(cfg, cls, rng) for cls in (cfg.classes or [cfg.drum_class])]

    def setup(self, device, wrap) -> None:
        cfg, data = self.cfg, self.data
        self.device = device
        extra = {"classes": [d.cls for d in data], "library_sizes": [len(d.sources) for d in data]} \
            if cfg.classes else {}
        model_cfg = from_dict(model_lib.LayeringConfig, dict(cfg.model, cls=data[0].cls, **extra,
                                                             library=[s for d in data for s in d.sources]),
                              "layering config [model]")
        self.model = model_lib.build(model_cfg)
        inputs = model_lib.normalise(torch.cat([t for d in data for t in (d.train_feats, d.library.features)]))
        self.model.input_mean.copy_(inputs.mean(0))
        self.model.input_std.copy_(inputs.std(0).clamp_min(1e-3))
        self.model.to(device)
        self.net = wrap(self.model)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.lib_feats = [d.library.features.to(device) for d in data]
        self.rng = np.random.default_rng(torch.initial_seed() % 2**32)

    def views(self) -> list:
        """The one-class model (or each class's view of the conditioned one), in class order."""
        return [self.model.for_class(d.cls) for d in self.data] if self.cfg.classes else [self.model]

    def run(self, net, feats: torch.Tensor, k: int):
        return net(feats, k) if self.cfg.classes else net(feats)

    def modules(self) -> dict:
        return {"model": self.model}

    def optimizers(self) -> dict:
        return {"adam": self.opt}

    def generative_loss(self, feats: torch.Tensor, k: int = 0, net=None):
        weights, mean, logvar = self.run(net or self.model, feats, k)
        err = self.data[k].library.mix_error(weights, feats).mean()
        return err, model_lib.kl_free_bits(mean, logvar, self.model.cfg.free_bits), weights

    def step(self, step: int) -> dict:
        cfg = self.cfg
        self.model.train()
        losses, out = [], {}
        for k, d in enumerate(self.data):
            if step < cfg.pretrain_steps:
                idx = torch.from_numpy(self.rng.integers(len(d.library), size=cfg.batch_size))
                weights, mean, logvar = self.run(self.net, self.lib_feats[k][idx], k)
                target = torch.nn.functional.one_hot(idx, len(d.library)).float().to(self.device)
                losses.append(torch.nn.functional.binary_cross_entropy(weights.clamp(1e-6, 1 - 1e-6), target))
                out["pretrain_bce"] = out.get("pretrain_bce", 0.0) + losses[-1].item() / len(self.data)
            else:
                idx = torch.from_numpy(self.rng.integers(len(d.train_feats), size=cfg.batch_size))
                err, kl, weights = self.generative_loss(d.train_feats[idx].to(self.device), k, self.net)
                losses.append(err + cfg.beta * kl)
                for key, value in (("feature_error", err.item()), ("kl", kl.item()), ("active_layers", float(
                        (weights >= layering.THRESHOLD).sum(-1).float().mean()))):
                    out[key] = out.get(key, 0.0) + value / len(self.data)
        loss = torch.stack(losses).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return out

    @torch.no_grad()
    def validate(self, step: int = 0) -> dict:
        """Feature error of the model's mixes on the validation kits' hits, and over NNLS's (mean over
        the classes)."""
        self.model.eval()
        errors, ratios = [], []
        for view, d in zip(self.views(), self.data):
            if not len(d.val_feats):
                continue
            feats = d.val_feats.to(self.device)
            err = d.library.mix_error(view.decode(view.encode(feats)[0]), feats).cpu()
            errors.append(float(err.mean()))
            ratios.append(float((err / d.val_nnls).mean()))
        return {"feature_error": float(np.mean(errors)), "vs_nnls": float(np.mean(ratios))} if errors else {}

    def export(self, history: list[dict], summary: dict) -> dict:
        cfg = self.cfg
        self.model.cpu().eval()
        evaluation = {}
        for view, d in zip(self.views(), self.data):
            with torch.no_grad():
                view.set_pca(view.encode(d.train_feats)[0])
            if cfg.eval_hits:
                from training.evaluate_layering import evaluate
                hits = class_hits(d.cls, "test")[: cfg.eval_hits]
                evaluation[d.cls] = evaluate(view, d.library, hits) if hits else {}
        self.model.to(self.device)
        val = [r for r in history if "val_vs_nnls" in r]
        metrics = {**trainer_lib.run_facts(summary), "val": val[-1] if val else {},
                   "evaluation": evaluation if cfg.classes else evaluation.get(self.data[0].cls, {}),
                   "config": asdict(cfg), "library": [s for d in self.data for s in d.sources],
                   "train_hits": sum(d.n_train_hits for d in self.data),
                   "train_targets": sum(len(d.train_feats) for d in self.data)}
        out = Path(cfg.out)
        card = conditioned_card(self.model, metrics) if cfg.classes else model_card(self.model, metrics)
        trainer_lib.publish(out, lambda path: model_lib.save(self.model.cpu(), path, extra={"steps": summary["step"]}),
                            metrics, card)
        self.model.to(self.device)
        return {"out": str(out), "evaluation": evaluation}


def conditioned_card(model: model_lib.ConditionedLayeringVAE, m: dict) -> str:
    from training.evaluate_layering import table
    c, cfg = model.cfg, m["config"]
    params = sum(p.numel() for p in model.parameters())
    evaluation = "\n".join(f"{cls}, {ev['hits']} hits of the held-out real kits:\n\n{table(ev)}"
                           for cls, ev in m["evaluation"].items() if ev) or "Evaluation: not run."
    return f"""# Layering model conditioned on {', '.join(c.classes)} (`{Path(cfg['out']).name}`)

One MLP VAE (encoder hidden {c.hidden}, latent {c.latent}, decoder hidden {c.decoder_hidden}) for
{len(c.classes)} classes: the class, one-hot, goes into encoder and decoder; each class mixes its own library
({', '.join(f'{cls} {n}' for cls, n in zip(c.classes, c.library_sizes))} oneshots). {params / 1e6:.2f} M parameters, fp16.

- Targets: {m['train_hits']} hits of the training kits, {m['train_targets']} with augmented copies.
- Training: {trainer_lib.steps_phrase(m)}, a batch of {cfg['batch_size']} per class and step; classification
  pretraining for {cfg['pretrain_steps']} steps. Hardware: {m['hardware']}.

{evaluation}
Reproduce: `redrum train layering --config {cfg.get('config_file') or 'CONFIG'}`.
"""


def model_card(model: model_lib.LayeringVAE, m: dict) -> str:
    c, cfg = model.cfg, m["config"]
    ev = m["evaluation"]
    if ev:
        from training.evaluate_layering import table
        evaluation = (f"Evaluation on {ev['hits']} {c.cls} hits of the held-out real kits "
                      f"(`redrum eval layering --class {c.cls}`):\n\n" + table(ev))
    else:
        evaluation = "Evaluation: not run (no held-out real kits installed, or `eval_hits = 0`)."
    source = "the user's library" if cfg["library"] else f"{cfg['synth_candidates']} synthesiser {c.cls} oneshots"
    params = sum(p.numel() for p in model.parameters())
    val = m["val"]
    return f"""# Layering model, {c.cls} (`layering-{c.cls}.safetensors`)

MLP VAE (encoder hidden {c.hidden}, latent {c.latent}, decoder hidden {c.decoder_hidden}) whose decoder
outputs {len(c.library)} mixing weights (summing to 1) over its library; {c.pca} PCA slider directions over
the latents of its training targets. {params / 1e6:.2f} M parameters, fp16.

- Library: {len(c.library)} exemplars chosen by greedy Frank-Wolfe from {source}.
- Targets: {m['train_hits']} {c.cls} hits of the training kits (Hydrogen and synthesiser; split by kit),
  {m['train_targets']} with augmented copies (pitch, envelope, filtering).
- Training: {trainer_lib.steps_phrase(m)}; classification pretraining for {cfg['pretrain_steps']} steps,
  then mix-feature error + beta {cfg['beta']} x KL (free bits {c.free_bits}). Hardware: {m['hardware']}.
- Validation (validation kits): feature error {val.get('val_feature_error', float('nan')):.3f},
  {val.get('val_vs_nnls', float('nan')):.2f} x NNLS's.

{evaluation}
Reproduce: `redrum train layering --class {c.cls}`.
"""


def train(cfg: TrainConfig) -> dict:
    return trainer_lib.train(cfg.resolved(), LayeringRecipe)
