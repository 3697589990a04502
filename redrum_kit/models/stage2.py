"""Stage 2: the rhythm transformer of the learned redrum.

The stage-1 encoder (frozen) turns the source into latent means `mu_s`
(sigma dropped). A small transformer re-times them: its queries come from
the conditioning (the target's drum-transcription probabilities at the
latent frame rate, plus a timbre embedding of the source), its keys and
values from the source's latents, so that each output frame is drawn from
source frames that sound like the drum the target plays there:

    mu_s (B, latent, T_s), p_s (B, 5, T_s), p_t (B, 5, T_t)
      conditioning: ConvStack(p_t) and ConvStack(mu_s) averaged over time,
                    merged by a learnable gate -> h (B, T_t, d_model)
      3 layers: cross-attention of h over mu_s with
                  relative positional bias (per head, by frame distance) and
                  rhythm bias (p_t[i] W_h . p_s[j]: a target kick frame
                  looks for source kick frames),
                then a feed-forward block; each layer's read-out o_l moves
                mu by linear interpolation, mu <- mu + alpha_l (o_l - mu)
      -> mu_hat (B, latent, T_t); sigma_hat from mu_hat through a gated
         residual std head; z = mu_hat + sigma_hat * eps -> stage-1 decoder

With `level = true` the conditioning also carries the relative loudness of
each frame (`transform.onset_levels`), so that soft and loud hits differ.
With `bands = true` it also carries the relative loudness in BAND_EDGES_HZ's
frequency bands (`transform.band_levels`): what the five classes leave open,
an open hat from a closed one, a low tom from a high one, a crash from a ride.

Optionally (`pointer = true`) a copy head follows the layers: each output
frame points at one source frame and a learned gate blends that frame's mu
with the layers' (`Pointer`); the shipped model has none.

`Redrum` bundles the stage-1 autoencoder it was trained on with the head, so
that one checkpoint always pairs a transformer with its own latent space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from redrum_kit.models import checkpoint
from redrum_kit.models import stage1 as stage1_lib

BAND_EDGES_HZ = (100, 250, 600, 1500, 4000, 8000)   # `bands` conditioning: seven bands, kick body to cymbal air


@dataclass
class Stage2Config:
    latent: int = 16            # the stage-1 latent channels
    classes: int = 5            # transcription classes (kick, snare, hat, tom, cymbal)
    sub_frames: int = 1         # probability values per class and latent frame (2: where in the frame a hit
                                # falls, at the transcriber's finer rate; latents are not shift-invariant)
    d_model: int = 128
    heads: int = 4
    layers: int = 3
    ffn: int = 256
    cond_layers: int = 4        # Conv1D layers of each conditioning stack
    max_distance: int = 64      # frames; relative positions beyond share a bias
    alpha_init: float = 2.0     # logit of each layer's interpolation weight (sigmoid(2) = 0.88)
    rhythm_init: float = 4.0    # the rhythm bias starts as this x "same class" (a target kick frame looks for
                                # source kick frames from the first step; 0: random like the other weights)
    std_floor: float = 1e-4
    pointer: bool = False       # a copy head: each output frame also points at one source frame, and a learned
                                # per-frame gate blends that frame's mu with the layers' mu_hat (see `Pointer`)
    level: bool = False         # also the conditioning's relative loudness (one channel per sub-frame, after
                                # the probabilities): how hard each drum is hit, which probabilities that
                                # saturate near 1 for soft and loud hits alike do not say
    bands: bool = False         # also the relative loudness per frequency band (BAND_EDGES_HZ; one channel per
                                # band and sub-frame, after the loudness): how long each hit rings, and where
    stage1: dict = field(default_factory=dict)  # the Stage1Config of the autoencoder it was trained on

    @property
    def probabilities(self) -> int:
        """Channels of transcription probabilities in the conditioning."""
        return self.classes * self.sub_frames

    @property
    def channels(self) -> int:
        """Channels of the conditioning: the probabilities, then the loudness (`level`), then the band
        loudness (`bands`)."""
        return self.probabilities + self.sub_frames * (int(self.level) + (len(BAND_EDGES_HZ) + 1) * self.bands)


class ConvStack(nn.Module):
    """`(B, C_in, T) -> (B, C_out, T)`: Conv1D layers with LeakyReLU, kernels 5 then 3."""

    def __init__(self, c_in: int, c_out: int, layers: int):
        super().__init__()
        mods: list[nn.Module] = []
        for i in range(layers):
            k = 5 if i < layers // 2 else 3
            mods += [nn.Conv1d(c_in if i == 0 else c_out, c_out, k, padding=k // 2)]
            if i < layers - 1:
                mods.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RhythmAttention(nn.Module):
    """Multi-head cross-attention with relative-position and rhythm biases.

    h `(B, T_t, d)`, mem `(B, T_s, d)`, p_t `(B, T_t, classes)`, p_s `(B, T_s, classes)`
    -> context `(B, T_t, d)`, weights `(B, heads, T_t, T_s)`.
    """

    def __init__(self, cfg: Stage2Config, values: bool = True):
        super().__init__()
        self.cfg = cfg
        d, h = cfg.d_model, cfg.heads
        self.q, self.k = nn.Linear(d, d), nn.Linear(d, d)
        if values:                      # without: scores only (the pointer's)
            self.v, self.o = nn.Linear(d, d), nn.Linear(d, d)
        self.relative = nn.Embedding(2 * cfg.max_distance + 1, h)
        nn.init.zeros_(self.relative.weight)
        self.rhythm = nn.Linear(cfg.classes, h * cfg.classes, bias=False)
        if cfg.rhythm_init:
            with torch.no_grad():   # weight[(head, c_s), c_t] = rhythm_init where c_s == c_t, for every head
                eye = torch.eye(cfg.classes) * cfg.rhythm_init
                self.rhythm.weight.copy_(eye.repeat(h, 1) + 0.01 * torch.randn(h * cfg.classes, cfg.classes))

    def scores(self, h, mem, p_t, p_s) -> torch.Tensor:
        """Attention logits `(B, heads, T_t, T_s)`."""
        cfg = self.cfg
        b, tq, d = h.shape
        tk = mem.shape[1]
        hd = d // cfg.heads
        q = self.q(h).view(b, tq, cfg.heads, hd).transpose(1, 2)
        k = self.k(mem).view(b, tk, cfg.heads, hd).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / math.sqrt(hd)                       # (B, H, Tq, Tk)
        dist = torch.arange(tq, device=h.device)[:, None] - torch.arange(tk, device=h.device)[None]
        dist = dist.clamp(-cfg.max_distance, cfg.max_distance) + cfg.max_distance
        logits = logits + self.relative(dist).permute(2, 0, 1)[None]
        rt = self.rhythm(p_t).view(b, tq, cfg.heads, cfg.classes)
        return logits + torch.einsum("bqhc,bkc->bhqk", rt, p_s)

    def forward(self, h, mem, p_t, p_s):
        b, tq, d = h.shape
        weights = self.scores(h, mem, p_t, p_s).softmax(-1)
        v = self.v(mem).view(b, mem.shape[1], self.cfg.heads, d // self.cfg.heads).transpose(1, 2)
        ctx = (weights @ v).transpose(1, 2).reshape(b, tq, d)
        return self.o(ctx), weights


class Layer(nn.Module):
    def __init__(self, cfg: Stage2Config):
        super().__init__()
        d = cfg.d_model
        self.norm_q, self.norm_f, self.norm_o = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = RhythmAttention(cfg)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn), nn.GELU(), nn.Linear(cfg.ffn, d))
        self.readout = nn.Linear(d, cfg.latent)
        self.alpha = nn.Parameter(torch.tensor(cfg.alpha_init))

    def forward(self, h, mem, mu, p_t, p_s):
        """-> h, mu (both at the target's frames), attention weights."""
        ctx, weights = self.attn(self.norm_q(h), mem, p_t, p_s)
        h = h + ctx
        h = h + self.ffn(self.norm_f(h))
        o = self.readout(self.norm_o(h)).transpose(1, 2)                       # (B, latent, T_t)
        mu = mu + torch.sigmoid(self.alpha) * (o - mu)
        return h, mu, weights


class StdHead(nn.Module):
    """Gated residual std head: mu_hat `(B, latent, T)` -> sigma_hat, same shape, > 0."""

    def __init__(self, cfg: Stage2Config):
        super().__init__()
        c = cfg.latent
        self.cfg = cfg
        self.net = nn.Sequential(nn.Conv1d(c, 2 * c, 1), nn.GELU(),
                                 nn.Conv1d(2 * c, 2 * c, 5, padding=2, groups=2 * c), nn.Conv1d(2 * c, c, 1))
        self.gate = nn.Conv1d(c, c, 1)
        self.base = nn.Parameter(torch.full((1, c, 1), -2.0))   # softplus(-2) = 0.13: a small std to start

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        scale = self.base + torch.sigmoid(self.gate(mu)) * self.net(mu)
        return nn.functional.softplus(scale) + self.cfg.std_floor


class Pointer(nn.Module):
    """The copy head: one attention head over the source frames, read as a choice, and a keep gate.

    Averaging source latents blurs them (a drum hit half-way between two
    source hits is neither), while a source frame copied whole keeps its
    timbre exactly. Each output frame points at one source frame (the
    argmax of the head; trained towards the source frame nearest the
    pseudo-target's), and a per-frame gate keeps some of the layers' mu_hat
    where no single source frame will do (hits layered in the target that
    the source never plays together):

        mu = copy + keep * (mu_hat - copy)
    """

    def __init__(self, cfg: Stage2Config):
        super().__init__()
        d, c = cfg.d_model, cfg.probabilities
        self.norm = nn.LayerNorm(d)
        self.queries = ConvStack(d + c, d, cfg.cond_layers)        # each target frame in its context
        self.keys = ConvStack(cfg.latent + c, d, cfg.cond_layers)  # each source frame in its context
        self.attn = RhythmAttention(replace(cfg, heads=1), values=False)
        self.keep = nn.Linear(d, 1)

    def forward(self, h, mu, mu_s, p_t, p_s, pt, ps):
        """h `(B, T_t, d)`, mu the layers' `(B, latent, T_t)`, the probabilities as given `(B, C, T)`
        and pooled by class `(B, T, classes)` -> blended mu `(B, latent, T_t)`, logits `(B, T_t, T_s)`."""
        q = self.queries(torch.cat([self.norm(h).transpose(1, 2), p_t], 1)).transpose(1, 2)
        k = self.keys(torch.cat([mu_s, p_s], 1)).transpose(1, 2)
        logits = self.attn.scores(q, k, pt, ps)[:, 0]
        idx = logits.argmax(-1)                                                  # (B, T_t)
        copy = torch.gather(mu_s, 2, idx[:, None, :].expand(-1, mu_s.shape[1], -1))
        keep = torch.sigmoid(self.keep(h)).transpose(1, 2)                      # (B, 1, T_t)
        return copy + keep * (mu - copy), logits


class RhythmTransformer(nn.Module):
    """Source latents and both transcriptions -> re-timed latents mu_hat, sigma_hat, attention weights."""

    def __init__(self, cfg: Stage2Config):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.rhythm_stack = ConvStack(cfg.channels, d, cfg.cond_layers)
        self.timbre_stack = ConvStack(cfg.latent, d, cfg.cond_layers)
        self.gate = nn.Parameter(torch.zeros(d))
        self.memory = nn.Linear(cfg.latent + cfg.probabilities, d)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.layers))
        self.pointer = Pointer(cfg) if cfg.pointer else None
        self.std = StdHead(cfg)

    def timbre(self, mu_s: torch.Tensor) -> torch.Tensor:
        """The source's timbre embedding `(B, d_model)`: its latents through a ConvStack, averaged over time."""
        return self.timbre_stack(mu_s).mean(-1)

    def pooled(self, p: torch.Tensor) -> torch.Tensor:
        """Conditioning `(B, channels, T)` -> `(B, classes, T)`: the max over each class's sub-frames."""
        b, _, t = p.shape
        return p[:, :self.cfg.probabilities].reshape(b, self.cfg.classes, self.cfg.sub_frames, t).amax(2)

    def forward(self, mu_s: torch.Tensor, p_s: torch.Tensor, p_t: torch.Tensor, named: bool = False):
        """mu_s `(B, latent, T_s)`, the conditioning p_s `(B, channels, T_s)`, p_t `(B, channels, T_t)`
        (probabilities, then with `level` the loudness, with `bands` each band's) -> mu_hat, sigma_hat
        `(B, latent, T_t)`, attention weights per layer `[(B, heads, T_t, T_s)]`.

        With T_t == T_s the interpolation starts from mu_s; otherwise from zero. `named`: a dict of
        them instead (`mu`, `sigma`, `attention`), with a copy head also `mu_layers` (the layers' mu_hat
        before it) and `pointer` (its logits `(B, T_t, T_s)`).
        """
        g = torch.sigmoid(self.gate)[None, :, None]
        cond = g * self.rhythm_stack(p_t) + (1 - g) * self.timbre(mu_s)[..., None]
        h = cond.transpose(1, 2)
        pt, ps = self.pooled(p_t).transpose(1, 2), self.pooled(p_s).transpose(1, 2)
        probs_t, probs_s = p_t[:, :self.cfg.probabilities], p_s[:, :self.cfg.probabilities]
        mem = self.memory(torch.cat([mu_s, probs_s], 1).transpose(1, 2))
        mu = mu_s if mu_s.shape[-1] == p_t.shape[-1] else mu_s.new_zeros(mu_s.shape[0], mu_s.shape[1], p_t.shape[-1])
        attention = []
        for layer in self.layers:
            h, mu, weights = layer(h, mem, mu, pt, ps)
            attention.append(weights)
        out = {"attention": attention}
        if self.pointer is not None:
            out["mu_layers"] = mu
            mu, out["pointer"] = self.pointer(h, mu, mu_s, probs_t, probs_s, pt, ps)
        out.update(mu=mu, sigma=self.std(mu))
        return out if named else (out["mu"], out["sigma"], out["attention"])


class Redrum(nn.Module):
    """The stage-1 autoencoder it was trained on plus the rhythm transformer."""

    def __init__(self, cfg: Stage2Config):
        super().__init__()
        self.cfg = cfg
        self.autoencoder = stage1_lib.Stage1(stage1_lib.Stage1Config(**cfg.stage1))
        if self.autoencoder.cfg.latent != cfg.latent:
            raise ValueError(f"stage-2 latent {cfg.latent} != stage-1 latent {self.autoencoder.cfg.latent}")
        self.transformer = RhythmTransformer(cfg)

    @property
    def compression(self) -> int:
        return self.autoencoder.cfg.compression

    @property
    def sr(self) -> int:
        return self.autoencoder.cfg.sr

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        """Audio `(B, 1, time)` -> latent means `(B, latent, frames)` (sigma dropped)."""
        return self.autoencoder.encode(y)[0]

    def forward(self, mu_s, p_s, p_t):
        return self.transformer(mu_s, p_s, p_t)


def _divergence(attention: list[torch.Tensor], dim: int) -> torch.Tensor:
    """Mean over layers of the Jensen-Shannon divergence of the attention rows along `dim` of
    `(B, H, Tq, Tk)`: H(their mean) - the mean of their H; large when each row is sharp and the rows
    look at different source frames."""
    def entropy(p):
        return -(p * torch.log(p + 1e-8)).sum(-1)
    total = 0.0
    for w in attention:
        total = total + (entropy(w.mean(dim)) - entropy(w).mean(dim)).mean()
    return total / len(attention)


def attention_entropy_loss(attention: list[torch.Tensor]) -> torch.Tensor:
    """Head diversity: minus the Jensen-Shannon divergence between the heads' attention."""
    return -_divergence(attention, 1)


def attention_spread_loss(attention: list[torch.Tensor]) -> torch.Tensor:
    """Diversity over target frames: minus the divergence between the attention of a head's target
    frames (the information a head's choice of source frame carries about the target frame), so that
    a head does not settle on a few fixed source frames for every target frame."""
    return -_divergence(attention, 2)


def save(model: Redrum, path: Path, extra: dict | None = None) -> None:
    checkpoint.save(model, path, extra)


def load(path: Path) -> Redrum:
    return checkpoint.load(path, Stage2Config, Redrum, "redrum (stage-2)", "redrum train stage2")


def from_stage1(autoencoder: stage1_lib.Stage1, **overrides) -> Redrum:
    """A new Redrum whose autoencoder is a copy of `autoencoder` (frozen by the trainer)."""
    from dataclasses import asdict
    cfg = Stage2Config(latent=autoencoder.cfg.latent, stage1=asdict(autoencoder.cfg), **overrides)
    model = Redrum(cfg)
    model.autoencoder.load_state_dict(autoencoder.state_dict())
    return model
