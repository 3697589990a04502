"""Layering: a VAE whose decoder outputs mixing weights over a sample library.

After the layering research (a learned space of layering strategies over a
small curated library):

    feature (LAYERING_DIM: RMS-weighted mean spectrum + log-attack time)
      --normalise--> log spectrum shape + attack
      --Encoder (MLP, hidden 1500)--> mean, logvar (latent 32)
      --Decoder (MLP, hidden 144)--> N logits --softmax--> weights (sum 1)
    output audio = sum_i weights[i] * library oneshot i

The library's audio lives outside the model (`redrum_kit.layering`); the
checkpoint holds the library's sources, in order, so the weights always
refer to the right files. PCA directions over the latents of the training
targets (the sliders) are buffers of the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from redrum_kit import features
from redrum_kit.models import checkpoint


@dataclass
class LayeringConfig:
    cls: str = "snare"
    library: list[str] = field(default_factory=list)   # sources: file paths or "synth:VOICE:SEED"
    feature_dim: int = features.LAYERING_DIM
    hidden: int = 1500
    latent: int = 32
    decoder_hidden: int = 144
    pca: int = 11                                       # slider directions
    free_bits: float = 0.25                             # nats per latent dimension kept free of the KL


def normalise(feat: torch.Tensor) -> torch.Tensor:
    """Layering features `(B, D)` -> the model's input: log of the spectrum over its sum (loudness
    removed: a quiet and a loud snare are the same sound) and the log-attack time."""
    spec = feat[:, :-1].clamp_min(0)
    shape = spec / spec.sum(-1, keepdim=True).clamp_min(1e-9)
    return torch.cat([torch.log(shape + 1e-6), feat[:, -1:]], -1)


class LayeringVAE(nn.Module):
    def __init__(self, cfg: LayeringConfig):
        super().__init__()
        self.cfg = cfg
        n = len(cfg.library)
        if n < 2:
            raise ValueError("a layering library needs at least 2 oneshots")
        self.encoder = nn.Sequential(nn.Linear(cfg.feature_dim, cfg.hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(cfg.hidden, 2 * cfg.latent))
        self.decoder = nn.Sequential(nn.Linear(cfg.latent, cfg.decoder_hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(cfg.decoder_hidden, n))
        self.register_buffer("input_mean", torch.zeros(cfg.feature_dim))
        self.register_buffer("input_std", torch.ones(cfg.feature_dim))
        self.register_buffer("pca_mean", torch.zeros(cfg.latent))
        self.register_buffer("pca_components", torch.zeros(cfg.pca, cfg.latent))   # rows: unit directions
        self.register_buffer("pca_scale", torch.ones(cfg.pca))                     # std along each

    def encode(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layering features `(B, D)` -> mean, logvar `(B, latent)`."""
        x = (normalise(feat) - self.input_mean) / self.input_std
        mean, logvar = self.encoder(x).chunk(2, -1)
        return mean, logvar.clamp(-10, 5)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z `(B, latent)` -> weights `(B, N)`, non-negative, summing to 1."""
        return self.decoder(z).softmax(-1)

    def forward(self, feat: torch.Tensor):
        mean, logvar = self.encode(feat)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return self.decode(z), mean, logvar

    def to_pca(self, z: torch.Tensor) -> torch.Tensor:
        """z `(B, latent)` -> slider coordinates `(B, pca)` in standard deviations."""
        return ((z - self.pca_mean) @ self.pca_components.T) / self.pca_scale

    def move(self, z: torch.Tensor, sliders: dict[int, float]) -> torch.Tensor:
        """Set slider k (0-based) to the given coordinate (in standard deviations), the rest kept."""
        coords = self.to_pca(z)
        for k, value in sliders.items():
            z = z + (value - coords[:, k:k + 1]) * self.pca_scale[k] * self.pca_components[k]
        return z


def kl_free_bits(mean: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL to N(0, 1) per latent dimension, each at least `free_bits` (nats), summed, averaged over the batch."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).mean(0)
    return kl.clamp_min(free_bits).sum()


def save(model: LayeringVAE, path: Path, extra: dict | None = None) -> None:
    checkpoint.save(model, path, extra)


def load(path: Path) -> LayeringVAE:
    return checkpoint.load(path, LayeringConfig, LayeringVAE, "layering", "redrum train layering")
