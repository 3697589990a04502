"""Train the stage-1 autoencoder: `redrum train stage1 --config presets/training/stage1.toml`.

Phase 1 (steps below `adversarial_after`): multi-scale spectral distance on
the full-band signal and on the PQMF bands, plus beta * KL with beta rising
linearly over `warmup` steps. Phase 2: the encoder is frozen; multi-scale and
multi-period critics with hinge losses, and feature matching, sharpen the
decoder.

Data: 3 s clips from the dataset builder (Hydrogen and synthesiser kits, the
build of `dataset_config`, made or resumed first) plus any folders of the
user's own drum recordings (`data`, `--data DIR`), cut into clips; random
crops of `n_signal` samples with RAVE's augmentations. Validation is the
builder's val split (kits never in training).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from redrum_kit import audio, features, workspace
from redrum_kit.config import from_dict, load_config
from redrum_kit.datasets import augment as aug
from redrum_kit.datasets.build import Dataset, DatasetConfig
from redrum_kit.errors import RedrumError
from redrum_kit.models import discriminators as disc
from redrum_kit.models import stage1 as model_lib
from training import trainer as trainer_lib
from training.trainer import Trainer

BAND_FFTS = (256, 128, 64, 32)


@dataclass
class TrainConfig:
    seed: int = 0
    dataset_config: str = "presets/training/dataset.toml"
    data_dir: str = "runs/datasets/clips"
    data: list = field(default_factory=list)   # folders of the user's own drum recordings
    run_dir: str = "runs/stage1"
    out: str = "presets/models/stage1.safetensors"
    device: str = "auto"
    steps: int = 200_000
    adversarial_after: int = 150_000
    batch_size: int = 8
    n_signal: int = 32768      # samples per training crop (1.49 s at 22,050 Hz); a multiple of the compression
    lr: float = 1e-4
    beta: float = 0.1          # KL weight after warm-up
    warmup: int = 20_000       # steps for beta to rise from 0
    adversarial_weight: float = 1.0
    feature_matching: float = 10.0
    log_every: int = 10
    val_every: int = 500
    save_every: int = 500
    val_clips: int = 32
    eval_patterns: int = 8     # per held-out kit, for the card's comparison
    max_minutes: float = 0.0   # stop (resumably) after this long; 0: run to `steps`
    config_file: str = "presets/training/stage1.toml"   # the file this config came from (for the card)
    model: dict = field(default_factory=dict)
    discriminator: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)


def user_clips(folders: list, sr: int, seconds: float) -> list[np.ndarray]:
    """The user's recordings cut into clips of `seconds` (silent clips left out)."""
    clips = []
    paths = sorted(p for folder in folders for p in Path(folder).rglob("*")
                   if p.suffix.lower() in audio.READ_EXTENSIONS)
    if folders and not paths:
        raise RedrumError(f"no audio files found in {', '.join(map(str, folders))}")
    size = int(seconds * sr)
    for path in paths:
        try:
            y, _ = audio.load(path, sr=sr, max_seconds=3600)
        except audio.AudioError as exc:
            print(f"skipped {exc}")
            continue
        for start in range(0, max(1, len(y) - size // 2), size):
            clip = y[start:start + size]
            if clip.size and float(np.max(np.abs(clip))) > 1e-3:
                clips.append(clip)
    return clips


class Stage1Recipe:
    def __init__(self, cfg: TrainConfig, trainer: Trainer):
        self.cfg = cfg
        self.model_cfg = from_dict(model_lib.Stage1Config, cfg.model, "stage-1 config [model]")
        if cfg.n_signal % self.model_cfg.compression:
            raise RedrumError(f"n_signal ({cfg.n_signal}) must be a multiple of the compression "
                              f"({self.model_cfg.compression})")
        self.augment = from_dict(aug.ClipAugmentConfig, cfg.augment, "stage-1 config [augment]")
        data_cfg = load_config(DatasetConfig, Path(cfg.dataset_config))
        if data_cfg.sr != self.model_cfg.sr:
            raise RedrumError(f"the dataset's rate ({data_cfg.sr} Hz) differs from the model's ({self.model_cfg.sr} Hz)")
        trainer_lib.prepare_dataset(trainer, data_cfg, Path(cfg.data_dir))
        self.train_ds = Dataset(Path(cfg.data_dir), "train", in_memory=True)
        self.val_ds = Dataset(Path(cfg.data_dir), "val")
        self.extra = user_clips(cfg.data, self.model_cfg.sr, data_cfg.clip_seconds)
        self.data_manifest = self.train_ds.manifest

    # -- trainer interface -------------------------------------------------------

    def setup(self, device: torch.device, wrap) -> None:
        self.device = device
        self.model = model_lib.Stage1(self.model_cfg).to(device)
        critic_cfg = from_dict(disc.DiscriminatorConfig, self.cfg.discriminator, "stage-1 config [discriminator]")
        self.critics = disc.Discriminators(critic_cfg).to(device)
        self.model_ddp, self.critics_ddp = wrap(self.model), wrap(self.critics)
        betas = (0.5, 0.9)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.critics.parameters(), lr=self.cfg.lr, betas=betas)
        self.rng = np.random.default_rng(torch.initial_seed() % 2**32)

    def modules(self) -> dict:
        return {"model": self.model, "critics": self.critics}

    def optimizers(self) -> dict:
        return {"generator": self.opt_g, "critics": self.opt_d}

    def batch(self) -> torch.Tensor:
        n_data, n_extra = len(self.train_ds), len(self.extra)
        clips = []
        for _ in range(self.cfg.batch_size):
            i = int(self.rng.integers(n_data + n_extra))
            y = self.train_ds[i]["audio"] if i < n_data else self.extra[i - n_data]
            clips.append(aug.augment_clip(y, self.cfg.n_signal, self.model_cfg.sr, self.rng, self.augment))
        return torch.from_numpy(np.stack(clips))[:, None].to(self.device)

    def reconstruction_loss(self, x, bands, y_hat, bands_hat) -> torch.Tensor:
        return features.spectral_distance(x, y_hat) + features.spectral_distance(bands, bands_hat, BAND_FFTS)

    def step(self, step: int) -> dict:
        cfg = self.cfg
        x = self.batch()
        adversarial = step >= cfg.adversarial_after
        self.model.train()
        y_hat, bands, bands_hat, mean, std = self.model_ddp(x, freeze_encoder=adversarial)
        rec = self.reconstruction_loss(x, bands, y_hat, bands_hat)
        kl = model_lib.kl_divergence(mean, std)
        out = {"spectral": rec.item(), "kl": kl.item()}
        if not adversarial:
            beta = cfg.beta * min(1.0, step / max(1, cfg.warmup))
            loss = rec + beta * kl
            out["beta"] = beta
        else:
            adv, figures = disc.adversarial_step(self.critics_ddp, self.opt_d, x, y_hat,
                                                 cfg.adversarial_weight, cfg.feature_matching)
            loss = rec + adv
            out.update(figures)
        self.opt_g.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.opt_g.step()
        return out

    @torch.no_grad()
    def validate(self, step: int = 0) -> dict:
        """Spectral and log-mel (dB) distances of val clips (kits never in training) to their reconstructions."""
        self.model.eval()
        comp = self.model_cfg.compression
        n = min(self.cfg.val_clips, len(self.val_ds))
        if not n:
            return {}
        clips = [self.val_ds[i]["audio"] for i in range(n)]
        length = min(len(c) for c in clips) // comp * comp
        x = torch.from_numpy(np.stack([c[:length] for c in clips]))[:, None].to(self.device)
        spectral, mel = [], []
        for k in range(0, n, 8):
            xb = x[k:k + 8]
            y_hat = self.model.decode(self.model.encode(xb)[0])
            spectral.append(features.spectral_distance(xb, y_hat).item() * len(xb))
            mel += features.log_mel_distance(xb[:, 0].cpu(), y_hat[:, 0].cpu(), self.model_cfg.sr).tolist()
        return {"spectral": sum(spectral) / n, "log_mel_db": float(np.mean(mel))}

    def export(self, history: list[dict], summary: dict) -> dict:
        cfg = self.cfg
        out = Path(cfg.out)
        comparison = heldout_comparison(self.model.cpu(), cfg.eval_patterns, seed=cfg.seed) if cfg.eval_patterns else {}
        self.model.to(self.device)
        val = [r for r in history if "val_log_mel_db" in r]
        metrics = {**trainer_lib.run_facts(summary), "val": val[-1] if val else {},
                   "heldout": comparison, "config": asdict(cfg),
                   "kits": {s: len(k) for s, k in self.data_manifest["kits"].items()},
                   "user_clips": len(self.extra)}
        trainer_lib.publish(out, lambda path: model_lib.save(self.model, path, extra={"steps": summary["step"]}),
                            metrics, model_card(self.model, metrics))
        return {"out": str(out), "heldout": comparison}


def heldout_comparison(model: model_lib.Stage1, patterns: int, seed: int = 0, kits=None) -> dict:
    """Reconstruction vs. another kit, on real kits never seen in training.

    Each held-out Hydrogen kit (synthesiser test kits when Hydrogen's are not
    installed) plays the same generated 3 s parts, dry and at the same RMS.
    For each rendering: the log-mel distance (dB) to its reconstruction, and
    to the same part played by each other held-out kit. The reconstruction
    should be closer than the nearest other kit. `kits`: SampleKits to use instead.
    """
    from redrum_kit.datasets.kits import from_hydrogen, from_synth
    from redrum_kit.render import render
    from redrum_kit.rhythm.generator import STYLES, generate
    sr = model.cfg.sr
    folders = [workspace.HYDROGEN_DRUMKITS / k for k in workspace.HELD_OUT_KITS]
    if kits is not None:
        source = "given kits"
    elif all((f / "drumkit.xml").is_file() for f in folders):
        kits, source = [from_hydrogen(f, sr) for f in folders], "held-out Hydrogen kits"
    else:
        kits, source = [from_synth(seed, sr) for seed in range(900_000, 900_005)], "unseen synthesiser kits"
    length = int(3.0 * sr) // model.cfg.compression * model.cfg.compression
    recon, nearest, mean_other, closer = [], [], [], 0
    for p in range(patterns):
        pattern = generate(STYLES[p % len(STYLES)], bars=2, seed=seed + p, tom_notes=False, one_hat=False).looped(length / sr)
        ys = []
        for kit in kits:
            y, _ = render(pattern, kit.kit, kit.samples, sr, tail=0.0)
            y = np.pad(y, (0, max(0, length - len(y))))[:length]
            ys.append(y * (0.1 / max(float(np.sqrt(np.mean(y ** 2))), 1e-6)))
        batch = torch.from_numpy(np.stack(ys))
        rec = torch.from_numpy(np.stack([model.reconstruct(y) for y in ys]))
        d_rec = features.log_mel_distance(batch, rec, sr).numpy()
        for i in range(len(ys)):
            others = features.log_mel_distance(batch[i].expand(len(ys) - 1, -1),
                                               torch.cat([batch[:i], batch[i + 1:]]), sr).numpy()
            recon.append(float(d_rec[i]))
            nearest.append(float(others.min()))
            mean_other.append(float(others.mean()))
            closer += int(d_rec[i] < others.min())
    n = len(recon)
    return {"source": source, "kits": [k.name for k in kits], "renderings": n,
            "reconstruction_db": round(float(np.mean(recon)), 3),
            "nearest_other_kit_db": round(float(np.mean(nearest)), 3),
            "mean_other_kit_db": round(float(np.mean(mean_other)), 3),
            "share_closer_than_nearest_kit": round(closer / n, 3) if n else 0.0}


def model_card(model: model_lib.Stage1, m: dict) -> str:
    c = model.cfg
    h = m["heldout"]
    if h:
        heldout = f"""- Held-out comparison ({h['source']}: {', '.join(h['kits'])}; {h['renderings']} renderings of generated parts):
  reconstruction {h['reconstruction_db']:.2f} dB from the original, against {h['nearest_other_kit_db']:.2f} dB for the
  nearest other kit playing the same part (mean other kit {h['mean_other_kit_db']:.2f} dB); reconstruction closer in
  {100 * h['share_closer_than_nearest_kit']:.0f}% of renderings."""
    else:
        heldout = "- Held-out comparison: not measured in this run (`eval_patterns = 0`)."
    params = sum(p.numel() for p in model.parameters())
    val = m["val"]
    return f"""# Stage-1 drum autoencoder (`stage1.safetensors`)

RAVE-style VAE: {c.n_bands}-band PQMF, residual convolutional encoder and decoder
(widths {c.channels}, ratios {c.ratios}), {c.latent} latent channels, one latent frame
per {c.compression} samples ({c.latent_rate:.1f} frames a second at {c.sr} Hz), amplitude-gated
waveform plus filtered-noise branch. {params / 1e6:.2f} M parameters, stored as fp16.

- Data: clips rendered by `redrum dataset build` from `{m['config']['dataset_config']}`
  (kits per split: {m['kits']}; split by kit), plus {m['user_clips']} clips of user recordings.
- Training: {trainer_lib.steps_phrase(m)},
  batch {m['config']['batch_size']} x {m['config']['n_signal']} samples; adversarial phase from step {m['config']['adversarial_after']}.
  Hardware: {m['hardware']}.
- Validation (val kits, never in training): spectral distance {val.get('val_spectral', float('nan')):.3f},
  log-mel distance {val.get('val_log_mel_db', float('nan')):.2f} dB.
{heldout}

Reproduce: `redrum train stage1 --config {m['config'].get('config_file', 'presets/training/stage1.toml')}` (resumes from
`{m['config']['run_dir']}/last.pt`).
"""


def train(cfg: TrainConfig) -> dict:
    return trainer_lib.train(cfg, Stage1Recipe)
