"""Train the rhythm transformer: `redrum train stage2 --config presets/training/stage2.toml`.

Data: a kit-instance x rhythm grid (`redrum dataset build`, `grid_rhythms`),
built or resumed first. Every cell is encoded once by the frozen stage-1
encoder (mu) and transcribed once (probabilities at the latent frame rate);
every step then draws fresh pairs: source (kit a, rhythm 1), target (kit b,
rhythm 2) and the pseudo-target x_{s->t} (kit a, rhythm 2).

Losses (weights in the config):
- latent: mean squared error of mu_hat to the pseudo-target's mu, over the
  variance of that mu (1 = no better than predicting its mean);
- reconstruction: multi-scale spectral distance of the decoded z (a crop of
  `audio_frames`, for `audio_items` of the batch) to the pseudo-target's audio
  (`decode = "mean"`: of the decoded mu_hat, as in use, where the decoder has
  been adapted to it);
- transients: the same crop's band-wise spectral flux against the pseudo-target's
  (`features.transient_distance`: the attacks where they are, as sharp);
- onsets: the same crop as a transcriber hears it: cross-entropy of the onset
  probabilities of `onset_transcriber` (the shipped CRNN, not the model's own
  conditioning transcriber, which `redrum eval transform` listens with) on the
  crop against its probabilities on the pseudo-target (no drum added or lost);
- cycle: the output, re-timed with the source's own transcription, should
  give the source's mu back (normalised like the latent term);
- attention entropy: minus the divergence between heads (head diversity);
- spread (off by default): minus the divergence between a head's target
  frames, so that a head does not copy the same few source frames to all;
- KL of z = mu_hat + sigma_hat * eps to the stage-1 prior, beta rising over
  `warmup` steps;
- from `adversarial_after`: the decoder adapts, with critics of stage 1's kind
  (multi-scale and multi-period, hinge loss plus feature matching), which
  learn alone for `critic_warmup` steps first;
- pointer (models with a copy head): cross-entropy of the head's choice of
  source frame against soft targets from the source frames nearest the
  pseudo-target's, in mu (`pointer_temperature` times the median squared
  distance). `init` starts from a shipped model; `train_only = "pointer"`
  then trains the copy head alone on the frozen transformer;
- `train_only = "decoder"`: the transformer frozen, the decoder adapts from
  step 0 to decode its mu_hat (without noise, as in use) into the
  pseudo-target (reconstruction), adversarially too from `adversarial_after`.

Validation pairs come from the val split (kits never in training).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from redrum_kit import features, transform
from redrum_kit.config import from_dict, load_config
from redrum_kit.datasets.build import Dataset, DatasetConfig, grid_block
from redrum_kit.errors import RedrumError
from redrum_kit.models import discriminators as disc
from redrum_kit.models import stage1 as stage1_lib
from redrum_kit.models import stage2 as model_lib
from redrum_kit.models import transcriber as crnn
from training import trainer as trainer_lib
from training.trainer import Trainer


@dataclass
class TrainConfig:
    seed: int = 0
    dataset_config: str = "presets/training/dataset-grid.toml"
    data_dir: str = "runs/datasets/grid"
    stage1: str = "presets/models/stage1.safetensors"
    init: str = ""                     # start from this stage-2 checkpoint (its autoencoder and weights; [model]
                                       # may add a pointer head, which starts fresh); "": from `stage1`
    train_only: str = ""               # "pointer": only the copy head learns; "decoder": only the decoder
                                       # (on the frozen transformer's mu_hat); "": the whole transformer
    transcriber: str = "auto"          # 'model' (the shipped CRNN), 'baseline', or 'auto' (with `init`: the
                                       # transcriber kept beside it, else as 'model' when installed)
    run_dir: str = "runs/stage2"
    out: str = "presets/models/stage2.safetensors"
    device: str = "auto"
    steps: int = 30_000
    adversarial_after: int = 25_000
    batch_size: int = 16
    frames: int = 128                  # latent frames per example (2.97 s)
    audio_frames: int = 32             # latent frames decoded for the spectral loss (0.74 s)
    audio_items: int = 8               # batch items decoded for the spectral loss (decoding is the costly part)
    lr: float = 3e-4
    latent: float = 1.0
    reconstruction: float = 0.1
    transients: float = 0.0            # weight of the decoded crop's spectral-flux distance (attacks kept sharp)
    onsets: float = 0.0                # weight of the decoded crop's onset-probability cross-entropy
    mel: float = 0.0                   # weight of the evaluation's own measure on the decoded crop: multi-resolution
                                       # log-mel distance (dB), floored at -80 dB as in `features.log_mel_distance`
    onset_transcriber: str = "presets/models/transcriber.safetensors"
    decode: str = "sample"             # what the audio terms decode: "sample" (z = mu_hat + sigma_hat * eps, as
                                       # in the research) or "mean" (mu_hat, as in use; always so for "decoder")
    cycle: float = 0.3
    entropy: float = 0.1
    spread: float = 0.0                # weight of the diversity over target frames (attention_spread_loss)
    pointer: float = 0.0               # weight of the copy head's loss (models with [model] pointer = true)
    pointer_temperature: float = 0.0625
    beta: float = 0.05
    warmup: int = 5000
    adversarial_weight: float = 1.0
    feature_matching: float = 10.0
    critic_warmup: int = 0             # steps from `adversarial_after` in which only the critics learn (fresh
                                       # critics give the decoder noise, not a direction)
    log_every: int = 25
    val_every: int = 500
    save_every: int = 500
    val_pairs: int = 32
    eval_pairs: int = 0                # test pairs for the card's evaluation (0: skip)
    max_minutes: float = 0.0
    config_file: str = "presets/training/stage2.toml"   # the file this config came from (for the card)
    model: dict = field(default_factory=dict)
    discriminator: dict = field(default_factory=dict)


class Grid:
    """One split of a grid dataset, encoded and transcribed: tensors indexed by (kit instance, rhythm)."""

    def __init__(self, ds: Dataset, model: model_lib.Redrum, conditioner: transform.Conditioner,
                 frames: int, device: torch.device, desc: str):
        cfg = ds.manifest["config"]
        self.rhythms = int(cfg.get("grid_rhythms") or 0)
        if not self.rhythms:
            raise RedrumError(f"{ds.folder}: not a grid dataset (set grid_rhythms in its config)")
        self.kits = len(ds) // self.rhythms
        # pairs come from within a rhythm block (cell (a, r) and (b, r) play one rhythm only there)
        blocks = [grid_block(cfg, ds.split, k) for k in range(self.kits)]
        self.blocks = [np.flatnonzero(np.array(blocks) == b) for b in sorted(set(blocks))]
        comp = model.compression
        self.frames = frames
        length = (frames + 1) * comp
        audio, mus, probs = [], [], []
        batch = []
        for i in tqdm(range(len(ds)), desc=f"encoding {desc}", unit="clip", disable=None):
            item = ds[i]
            y = np.pad(item["audio"], (0, max(0, length - len(item["audio"]))))[:length]
            audio.append(torch.from_numpy((y * 32767).astype(np.int16)))
            probs.append(torch.from_numpy(conditioner(y)[:, :frames + 1]))
            batch.append(y)
            if len(batch) == 16 or i == len(ds) - 1:
                with torch.no_grad():
                    x = torch.from_numpy(np.stack(batch))[:, None].to(device)
                    mus += list(model.encode(x).cpu())
                batch = []
        self.audio, self.mu, self.probs = torch.stack(audio), torch.stack(mus), torch.stack(probs)

    def index(self, kit: int, rhythm: int) -> int:
        return kit * self.rhythms + rhythm

    def draw(self, rng: np.random.Generator, n: int) -> list[tuple[int, int, int, int]]:
        """n pairs (kit a, rhythm 1, kit b, rhythm 2) with a != b and 1 != 2."""
        out = []
        for _ in range(n):
            block = self.blocks[int(rng.integers(len(self.blocks)))] if len(self.blocks) > 1 else self.blocks[0]
            a, b = rng.choice(block, 2, replace=False) if len(block) > 1 else (block[0], block[0])
            r1, r2 = rng.choice(self.rhythms, 2, replace=False) if self.rhythms > 1 else (0, 0)
            out.append((int(a), int(r1), int(b), int(r2)))
        return out

    def batch(self, pairs, offsets, device) -> dict:
        """Tensors of a batch of pairs; `offsets` (source, target) crop starts in frames."""
        f = self.frames
        def take(t, cells, offs):
            return torch.stack([t[c][..., o:o + f] for c, o in zip(cells, offs)]).to(device)
        src = [self.index(a, r1) for a, r1, _, _ in pairs]
        tgt = [self.index(b, r2) for _, _, b, r2 in pairs]
        pseudo = [self.index(a, r2) for a, _, _, r2 in pairs]
        so, to = [o[0] for o in offsets], [o[1] for o in offsets]
        return {"mu_s": take(self.mu, src, so), "p_s": take(self.probs, src, so),
                "p_t": take(self.probs, tgt, to), "mu_st": take(self.mu, pseudo, to),
                "pseudo": pseudo, "target": tgt, "target_offsets": to}

    def audio_of(self, cells, frame_offsets, frames: int, comp: int, device) -> torch.Tensor:
        """`(B, 1, frames * comp)` float audio of cells from the given latent frames."""
        clips = [self.audio[c][o * comp:(o + frames) * comp] for c, o in zip(cells, frame_offsets)]
        return (torch.stack(clips).float() / 32767)[:, None].to(device)


def pointer_loss(logits: torch.Tensor, mu_s: torch.Tensor, mu_st: torch.Tensor,
                 temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the copy head's logits `(B, T_t, T_s)` against soft targets: the source frames
    whose mu is nearest the pseudo-target's, softmax of minus the squared distance over `temperature`
    times its median (per item: several frames of a kit's hit are often nearly the same). -> the loss,
    and the share of target frames whose choice is the nearest frame itself."""
    d2 = torch.cdist(mu_st.transpose(1, 2), mu_s.transpose(1, 2)) ** 2          # (B, T_t, T_s)
    scale = d2.flatten(1).median(1).values.clamp_min(1e-6)[:, None, None]
    target = torch.softmax(-d2 / (temperature * scale), -1)
    loss = -(target * torch.log_softmax(logits, -1)).sum(-1).mean()
    match = (logits.argmax(-1) == d2.argmin(-1)).float().mean()
    return loss, match.detach()


WIDENED = "transformer.rhythm_stack.net.0.weight"   # the conditioning's first convolution


def start_from(init: model_lib.Redrum, overrides: dict) -> model_lib.Redrum:
    """A model with `init`'s config updated by `overrides` and `init`'s weights; parts `init` lacks (a new
    copy head) start fresh, and conditioning channels it lacks (`level`) start with zero weights, so that
    the model starts out playing exactly as `init`. Anything else that does not fit is an error."""
    cfg = replace(init.cfg, **overrides)
    model = model_lib.Redrum(cfg)
    state = init.state_dict()
    new = model.state_dict()[WIDENED]
    if new.shape[1] > state[WIDENED].shape[1] and new.shape[0::2] == state[WIDENED].shape[0::2]:
        wide = torch.zeros_like(new)
        wide[:, :state[WIDENED].shape[1]] = state[WIDENED]
        state[WIDENED] = wide
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:                      # shapes differ
        first = str(exc).splitlines()[1].strip()
        raise RedrumError(f"init: the checkpoint does not fit the configured model ({first})") from None
    if unexpected or any(not k.startswith("transformer.pointer.") for k in missing):
        raise RedrumError(f"init: the checkpoint does not fit the configured model (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
    return model


def normalised_mse(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the target's variance: 0 perfect, 1 no better than its mean."""
    return torch.mean((estimate - target) ** 2) / target.var().detach().clamp_min(1e-6)


class Stage2Recipe:
    def __init__(self, cfg: TrainConfig, trainer: Trainer):
        self.cfg = cfg
        if cfg.train_only not in ("", "pointer", "decoder"):
            raise RedrumError(f"train_only = {cfg.train_only!r}: use \"pointer\", \"decoder\" or leave it empty")
        if cfg.decode not in ("sample", "mean"):
            raise RedrumError(f"decode = {cfg.decode!r}: use \"sample\" or \"mean\"")
        if cfg.train_only == "decoder" and not (cfg.reconstruction or cfg.transients or cfg.onsets or cfg.mel):
            raise RedrumError('train_only = "decoder" learns from the decoded audio: give reconstruction a weight')
        if cfg.init:
            self.init = model_lib.load(Path(cfg.init))
            self.autoencoder = self.init.autoencoder
            card = Path(cfg.init).with_suffix(".metrics.json")   # the init's card figures say what stage 1 it holds
            self.stage1_steps = json.loads(card.read_text()).get("stage1_steps") if card.is_file() else None
        else:
            self.init = None
            self.autoencoder = stage1_lib.load(Path(cfg.stage1))
            self.stage1_steps = stage1_steps(Path(cfg.stage1))   # now: the file may be replaced before export
        data_cfg = load_config(DatasetConfig, Path(cfg.dataset_config))
        if data_cfg.sr != self.autoencoder.cfg.sr:
            raise RedrumError(f"the dataset's rate ({data_cfg.sr} Hz) differs from stage 1's "
                              f"({self.autoencoder.cfg.sr} Hz)")
        if not data_cfg.grid_rhythms:
            raise RedrumError(f"{cfg.dataset_config}: stage 2 needs a grid dataset (set grid_rhythms)")
        if cfg.audio_frames > cfg.frames:
            raise RedrumError("audio_frames must not exceed frames")
        self.data_manifest = trainer_lib.prepare_dataset(trainer, data_cfg, Path(cfg.data_dir), "building grid")

    # -- trainer interface -------------------------------------------------------

    def setup(self, device: torch.device, wrap) -> None:
        cfg = self.cfg
        self.device = device
        overrides = {k: v for k, v in cfg.model.items()}
        from_dict(model_lib.Stage2Config, dict(overrides, latent=self.autoencoder.cfg.latent), "stage-2 config [model]")
        if self.init is not None:
            self.model = start_from(self.init, overrides).to(device)
        else:
            self.model = model_lib.from_stage1(self.autoencoder, **overrides).to(device)
        self.model.autoencoder.requires_grad_(False)
        if cfg.train_only == "pointer":
            if self.model.transformer.pointer is None:
                raise RedrumError('train_only = "pointer" needs a model with a copy head ([model] pointer = true)')
            self.model.transformer.requires_grad_(False)
            self.model.transformer.pointer.requires_grad_(True)
        if cfg.train_only == "decoder":
            self.model.transformer.requires_grad_(False)
        from redrum_kit.transcription import load_model as load_transcriber
        if self.init is not None and cfg.transcriber == "auto":   # the init's own conditioning, as in use
            transcriber = transform.load_conditioning(Path(cfg.init))
        else:
            transcriber = load_transcriber(cfg.transcriber)
        self.conditioner = transform.Conditioner(self.model, transcriber)
        self.model.eval()
        self.train_grid = Grid(Dataset(Path(cfg.data_dir), "train", in_memory=True), self.model, self.conditioner,
                               cfg.frames, device, "train grid")
        self.val_grid = Grid(Dataset(Path(cfg.data_dir), "val", in_memory=True), self.model, self.conditioner,
                             cfg.frames, device, "val grid")
        critic_cfg = from_dict(disc.DiscriminatorConfig, cfg.discriminator, "stage-2 config [discriminator]")
        self.critics = disc.Discriminators(critic_cfg).to(device)
        self.transformer_ddp = wrap(self.model.transformer)
        self.critics_ddp = wrap(self.critics)
        betas = (0.5, 0.9)
        # a frozen transformer ("decoder") keeps an optimizer over parameters that never get a gradient
        self.opt_g = torch.optim.Adam([p for p in self.model.transformer.parameters() if p.requires_grad]
                                      or list(self.model.transformer.parameters()), lr=cfg.lr, betas=betas)
        self.opt_dec = torch.optim.Adam(self.model.autoencoder.decoder.parameters(), lr=cfg.lr / 3, betas=betas)
        self.opt_d = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr, betas=betas)
        self.rng = np.random.default_rng(torch.initial_seed() % 2**32)
        self.listener = None
        if cfg.onsets:
            self.listener = crnn.load(Path(cfg.onset_transcriber)).to(device).eval().requires_grad_(False)
            if self.listener.cfg.sr != self.model.sr:
                raise RedrumError(f"onset_transcriber: its rate ({self.listener.cfg.sr} Hz) differs from the "
                                  f"model's ({self.model.sr} Hz)")

    def onset_loss(self, x: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the listener's onset logits on `y_hat` against its probabilities on `x`."""
        listen = self.listener
        with torch.no_grad():
            target = torch.sigmoid(listen(listen.features(x[:, 0])))
        return torch.nn.functional.binary_cross_entropy_with_logits(listen(listen.features(y_hat[:, 0])), target)

    def modules(self) -> dict:
        return {"model": self.model, "critics": self.critics}

    def optimizers(self) -> dict:
        return {"transformer": self.opt_g, "decoder": self.opt_dec, "critics": self.opt_d}

    def _offsets(self, n: int) -> list[tuple[int, int]]:
        return [(int(self.rng.integers(2)), int(self.rng.integers(2))) for _ in range(n)]

    def losses(self, grid: Grid, pairs, offsets, rng: np.random.Generator, train: bool) -> tuple[dict, dict]:
        """-> the loss terms, and the tensors behind them: `y_hat` (the decoded crop), `x` (the
        pseudo-target's audio under it), `mu_hat`, and the batch `b`. `rng` places the crops."""
        cfg, comp = self.cfg, self.model.compression
        b = grid.batch(pairs, offsets, self.device)
        net = self.transformer_ddp if train else self.model.transformer
        out = net(b["mu_s"], b["p_s"], b["p_t"], named=True)
        mu_hat, sigma_hat = out["mu"], out["sigma"]
        z = mu_hat + sigma_hat * torch.randn_like(sigma_hat)
        terms = {"latent": normalised_mse(mu_hat, b["mu_st"]),
                 "entropy": model_lib.attention_entropy_loss(out["attention"]),
                 "spread": model_lib.attention_spread_loss(out["attention"]),
                 "kl": stage1_lib.kl_divergence(mu_hat, sigma_hat)}
        if cfg.cycle:
            mu_back, _, _ = net(mu_hat, b["p_t"], b["p_s"])
            terms["cycle"] = normalised_mse(mu_back, b["mu_s"])
        if "pointer" in out:
            terms["pointer"], terms["pointer_match"] = pointer_loss(out["pointer"], b["mu_s"], b["mu_st"],
                                                                    cfg.pointer_temperature)
        y_hat = x = None
        if cfg.reconstruction or cfg.transients or cfg.onsets or cfg.mel or cfg.adversarial_after < cfg.steps:
            n = min(len(pairs), cfg.audio_items)
            crop = [int(rng.integers(0, cfg.frames - cfg.audio_frames + 1)) for _ in range(n)]
            mean = cfg.decode == "mean" or cfg.train_only == "decoder"   # the decoder adapts to what it gets in use
            decoded = mu_hat if mean else z
            z_crop = torch.stack([decoded[i, :, c:c + cfg.audio_frames] for i, c in enumerate(crop)])
            y_hat = self.model.autoencoder.decode(z_crop)
            x = grid.audio_of(b["pseudo"][:n], [o + c for o, c in zip(b["target_offsets"], crop)],
                              cfg.audio_frames, comp, self.device)
            terms["reconstruction"] = features.spectral_distance(x, y_hat)
            if cfg.transients:
                terms["transients"] = features.transient_distance(x, y_hat, self.model.sr)
            if cfg.onsets:
                terms["onsets"] = self.onset_loss(x, y_hat)
            if cfg.mel:
                terms["mel"] = features.log_mel_distance(x.reshape(n, -1), y_hat.reshape(n, -1), self.model.sr).mean()
        return terms, {"y_hat": y_hat, "x": x, "mu_hat": mu_hat, "b": b}

    def step(self, step: int) -> dict:
        cfg = self.cfg
        adversarial = step >= cfg.adversarial_after
        adapt = adversarial or cfg.train_only == "decoder"
        self.model.transformer.train(cfg.train_only != "decoder")   # frozen whole: as in use
        self.model.autoencoder.decoder.requires_grad_(adapt)
        pairs = self.train_grid.draw(self.rng, cfg.batch_size)
        terms, parts = self.losses(self.train_grid, pairs, self._offsets(len(pairs)), self.rng, train=True)
        beta = cfg.beta * min(1.0, step / max(1, cfg.warmup))
        weights = {"latent": cfg.latent, "reconstruction": cfg.reconstruction, "transients": cfg.transients,
                   "onsets": cfg.onsets, "mel": cfg.mel, "cycle": cfg.cycle, "entropy": cfg.entropy, "kl": beta,
                   "pointer": cfg.pointer, "spread": cfg.spread}
        loss = sum(w * terms[k] for k, w in weights.items() if w and k in terms)
        out = {k: v.item() for k, v in terms.items()}
        out["beta"] = beta
        if adversarial:
            adv, figures = disc.adversarial_step(self.critics_ddp, self.opt_d, parts["x"], parts["y_hat"],
                                                 cfg.adversarial_weight, cfg.feature_matching,
                                                 generator=step >= cfg.adversarial_after + cfg.critic_warmup)
            loss = loss + adv
            out.update(figures)
        self.opt_g.zero_grad()
        self.opt_dec.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.transformer.parameters(), 5.0)
        self.opt_g.step()
        if adapt:
            self.opt_dec.step()
        return out

    @torch.no_grad()
    def validate(self, step: int = 0) -> dict:
        """Loss terms on fixed val pairs, and the timbre ratio: log-mel distance (dB) of the decoded
        output to the pseudo-target, over that of the target itself (lower is better; 1: no better
        than returning the target)."""
        self.model.eval()
        grid, comp, cfg = self.val_grid, self.model.compression, self.cfg
        rng = np.random.default_rng(1234)            # the same pairs and crops at every validation
        pairs = grid.draw(rng, cfg.val_pairs)
        sums: dict[str, float] = {}
        ratios = []
        for k in range(0, len(pairs), 8):
            chunk = pairs[k:k + 8]
            offsets = [(0, 0)] * len(chunk)
            terms, parts = self.losses(grid, chunk, offsets, rng, train=False)
            for name, v in terms.items():
                sums[name] = sums.get(name, 0.0) + v.item() * len(chunk)
            b = parts["b"]
            y = self.model.autoencoder.decode(parts["mu_hat"])[:, 0].cpu()
            true = grid.audio_of(b["pseudo"], [0] * len(chunk), cfg.frames, comp, "cpu")[:, 0]
            target = grid.audio_of(b["target"], [0] * len(chunk), cfg.frames, comp, "cpu")[:, 0]
            ratios += (features.log_mel_distance(y, true, self.model.sr)
                       / features.log_mel_distance(target, true, self.model.sr).clamp_min(1e-3)).tolist()
        out = {k: v / len(pairs) for k, v in sums.items()}
        out["timbre_ratio"] = float(np.mean(ratios))
        return out

    def export(self, history: list[dict], summary: dict) -> dict:
        cfg = self.cfg
        out = Path(cfg.out)
        model = self.model.cpu().eval()
        evaluation = {}
        if cfg.eval_pairs:
            from training.evaluate_transform import evaluate
            evaluation = evaluate(transform.Redrummer(model, self.conditioner.transcriber),
                                  Path(cfg.data_dir), cfg.eval_pairs, seed=cfg.seed)
        self.model.to(self.device)
        val = [r for r in history if "val_timbre_ratio" in r]
        metrics = {**trainer_lib.run_facts(summary), "val": val[-1] if val else {},
                   "evaluation": evaluation, "config": asdict(cfg),
                   "kits": {s: len(k) for s, k in self.data_manifest["kits"].items()},
                   "grid": {s: self.data_manifest["config"]["items"][s] for s in ("train", "val", "test")},
                   "stage1_steps": self.stage1_steps}
        trainer_lib.publish(out, lambda path: model_lib.save(model, path, extra={"steps": summary["step"]}),
                            metrics, model_card(model, metrics))
        transcriber = self.conditioner.transcriber
        if isinstance(transcriber, crnn.Transcriber):     # the model's input: kept with it (the DSP baseline needs no file)
            crnn.save(transcriber, transform.conditioning_path(out))
        return {"out": str(out), "evaluation": evaluation}


def stage1_steps(path: Path) -> int | None:
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata().get("extra", "{}")).get("steps")


def model_card(model: model_lib.Redrum, m: dict) -> str:
    c = model.cfg
    val = m["val"]
    params = sum(p.numel() for p in model.transformer.parameters())
    ev = m["evaluation"]
    if ev:
        from training.evaluate_transform import table
        evaluation = "Evaluation on test pairs (kits never in training; `redrum eval transform`):\n\n" + table(ev)
    else:
        evaluation = "Evaluation: not run in this training run (`eval_pairs = 0`); see `redrum eval transform`."
    cfg = m["config"]
    warm = cfg.get("critic_warmup", 0)
    adversarial = (f"decoder adapted adversarially from step {cfg['adversarial_after'] + warm} (adversarial weight "
                   f"{cfg['adversarial_weight']}, feature matching {cfg['feature_matching']}"
                   + (f"; the critics alone for {warm} steps before" if warm else "") + ")"
                   if cfg['adversarial_after'] < cfg['steps'] else "no adversarial phase")
    trained = {"decoder": " (the decoder alone, at a third of it; the transformer frozen)",
               "pointer": " (the copy head alone)"}.get(cfg.get("train_only", ""), "")
    decoded = (" (the audio terms decoding mu_hat, as in use)"     # a decoder run always does: said above
               if cfg.get("decode") == "mean" and cfg.get("train_only") != "decoder" else "")
    heard = "".join(f", {k} {cfg[k]}" + (f" (by `{cfg['onset_transcriber']}`)" if k == "onsets" else "")
                    for k in ("transients", "onsets", "mel") if cfg.get(k))
    return f"""# Redrum model (`stage2.safetensors`): rhythm transformer + its stage-1 autoencoder

Stage 2 of the learned redrum: {c.layers} layers x {c.heads} heads, d_model {c.d_model}, conditioning by
the target's transcription probabilities{" and relative loudness (how hard each drum is hit)" if c.level else ""}{
" and band loudness (how long each hit rings, and where)" if c.bands else ""}
(gated with a timbre embedding of the source), relative-position
and rhythm attention biases, per-layer interpolation of mu, gated residual std head.
{params / 1e6:.2f} M transformer parameters; the file also holds the stage-1 autoencoder it was trained on
(stage 1 at {m['stage1_steps']} steps), so the two always match. fp16.

- Data: the kit x rhythm grid of `{cfg['dataset_config']}` (cells per split {m['grid']}; kits per split
  {m['kits']}; split by kit), fresh source/target pairings every step.
- Training: {trainer_lib.steps_phrase(m)}{f" from the weights of `{cfg['init']}`" if cfg.get('init') else ''},
  batch {cfg['batch_size']} pairs x {cfg['frames']} latent frames, lr {cfg['lr']}{trained}; weights latent {cfg['latent']},
  reconstruction {cfg['reconstruction']}{heard}{decoded}, cycle {cfg['cycle']}, attention entropy {cfg['entropy']},
  {f"spread {cfg['spread']}, " if cfg.get('spread') else ''}beta {cfg['beta']}; {adversarial}.
  Hardware: {m['hardware']}.
- Validation (val kits): latent error {val.get('val_latent', float('nan')):.3f} (MSE over variance), timbre ratio
  {val.get('val_timbre_ratio', float('nan')):.3f} (log-mel distance of the output to the true rendering over
  that of the target; 0 perfect, 1 no better than returning the target).

{evaluation}

Reproduce: `redrum train stage2 --config {cfg.get('config_file', 'presets/training/stage2.toml')}` (resumes from
`{cfg['run_dir']}/last.pt`).
"""


def train(cfg: TrainConfig) -> dict:
    return trainer_lib.train(cfg, Stage2Recipe)
