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
from redrum_kit.errors import ModelError
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
    classes: list[str] = field(default_factory=list)    # conditioned model: the classes it serves, and
    library_sizes: list[int] = field(default_factory=list)  # how many of `library` are each one's (in order)


def normalise(feat: torch.Tensor) -> torch.Tensor:
    """Layering features `(B, D)` -> the model's input: log of the spectrum over its sum (loudness
    removed: a quiet and a loud snare are the same sound) and the log-attack time."""
    spec = feat[:, :-1].clamp_min(0)
    shape = spec / spec.sum(-1, keepdim=True).clamp_min(1e-9)
    return torch.cat([torch.log(shape + 1e-6), feat[:, -1:]], -1)


class Sliders:
    """PCA slider directions over the latent: `_pca()` gives mean `(latent,)`, unit directions
    `(pca, latent)` and the std along each `(pca,)`."""

    def to_pca(self, z: torch.Tensor) -> torch.Tensor:
        """z `(B, latent)` -> slider coordinates `(B, pca)` in standard deviations."""
        mean, components, scale = self._pca()
        return ((z - mean) @ components.T) / scale

    def move(self, z: torch.Tensor, sliders: dict[int, float]) -> torch.Tensor:
        """Set slider k (0-based) to the given coordinate (in standard deviations), the rest kept."""
        _, components, scale = self._pca()
        coords = self.to_pca(z)
        for k, value in sliders.items():
            z = z + (value - coords[:, k:k + 1]) * scale[k] * components[k]
        return z


class LayeringVAE(Sliders, nn.Module):
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

    def _pca(self):
        return self.pca_mean, self.pca_components, self.pca_scale

    def set_pca(self, z: torch.Tensor) -> None:
        """Slider directions: the principal axes of the latents `z` `(n, latent)` of the training targets."""
        fit_pca(z, self.pca_mean, self.pca_components, self.pca_scale)


def fit_pca(z: torch.Tensor, mean: torch.Tensor, components: torch.Tensor, scale: torch.Tensor) -> None:
    """Principal axes of `z` `(n, latent)` into the buffers given (in place)."""
    centred = z - z.mean(0)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    k = len(components)
    mean.copy_(z.mean(0))
    components.copy_(vt[:k])
    scale.copy_((s[:k] / max(1, len(z) - 1) ** 0.5).clamp_min(1e-6))


class ConditionedLayeringVAE(nn.Module):
    """One layering model for several classes (`cfg.classes`): the class, one-hot, goes into the
    encoder and the decoder beside their usual inputs; `cfg.library` holds the classes' libraries one
    after the other (`cfg.library_sizes`) and each class mixes only its own. `for_class(cls)` gives a
    view with the one-class model's interface (encode, decode, sliders, cfg), so everything that
    layers with a one-class model layers with it."""

    def __init__(self, cfg: LayeringConfig):
        super().__init__()
        self.cfg = cfg
        c = len(cfg.classes)
        if c < 1 or len(cfg.library_sizes) != c or sum(cfg.library_sizes) != len(cfg.library):
            raise ValueError("a conditioned layering model needs its classes and each one's library size")
        if min(cfg.library_sizes) < 2:
            raise ValueError("a layering library needs at least 2 oneshots")
        self.encoder = nn.Sequential(nn.Linear(cfg.feature_dim + c, cfg.hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(cfg.hidden, 2 * cfg.latent))
        self.decoder = nn.Sequential(nn.Linear(cfg.latent + c, cfg.decoder_hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(cfg.decoder_hidden, len(cfg.library)))
        self.register_buffer("input_mean", torch.zeros(cfg.feature_dim))
        self.register_buffer("input_std", torch.ones(cfg.feature_dim))
        self.register_buffer("pca_mean", torch.zeros(c, cfg.latent))
        self.register_buffer("pca_components", torch.zeros(c, cfg.pca, cfg.latent))
        self.register_buffer("pca_scale", torch.ones(c, cfg.pca))

    def _onehot(self, k: int, n: int, like: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(n, len(self.cfg.classes), dtype=like.dtype, device=like.device)
        out[:, k] = 1.0
        return out

    def span(self, k: int) -> slice:
        """Class `k`'s part of the library."""
        start = sum(self.cfg.library_sizes[:k])
        return slice(start, start + self.cfg.library_sizes[k])

    def encode(self, feat: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = (normalise(feat) - self.input_mean) / self.input_std
        mean, logvar = self.encoder(torch.cat([x, self._onehot(k, len(x), x)], -1)).chunk(2, -1)
        return mean, logvar.clamp(-10, 5)

    def decode(self, z: torch.Tensor, k: int) -> torch.Tensor:
        """-> weights `(B, library_sizes[k])` over class k's own library, summing to 1."""
        return self.decoder(torch.cat([z, self._onehot(k, len(z), z)], -1))[:, self.span(k)].softmax(-1)

    def forward(self, feat: torch.Tensor, k: int):
        mean, logvar = self.encode(feat, k)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return self.decode(z, k), mean, logvar

    def for_class(self, cls: str) -> "ClassView":
        if cls not in self.cfg.classes:
            raise ValueError(f"this layering model serves {', '.join(self.cfg.classes)}, not {cls}")
        return ClassView(self, self.cfg.classes.index(cls))


class ClassView(Sliders, nn.Module):
    """One class of a conditioned layering model, with the one-class model's interface."""

    def __init__(self, model: ConditionedLayeringVAE, k: int):
        super().__init__()
        self.model, self.k = model, k
        c = model.cfg
        self.cfg = LayeringConfig(cls=c.classes[k], library=c.library[model.span(k)], feature_dim=c.feature_dim,
                                  hidden=c.hidden, latent=c.latent, decoder_hidden=c.decoder_hidden, pca=c.pca,
                                  free_bits=c.free_bits)

    def encode(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(feat, self.k)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z, self.k)

    def forward(self, feat: torch.Tensor):
        return self.model(feat, self.k)

    def _pca(self):
        m = self.model
        return m.pca_mean[self.k], m.pca_components[self.k], m.pca_scale[self.k]

    def set_pca(self, z: torch.Tensor) -> None:
        m = self.model
        fit_pca(z, m.pca_mean[self.k], m.pca_components[self.k], m.pca_scale[self.k])


def kl_free_bits(mean: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL to N(0, 1) per latent dimension, each at least `free_bits` (nats), summed, averaged over the batch."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).mean(0)
    return kl.clamp_min(free_bits).sum()


def save(model: LayeringVAE | ConditionedLayeringVAE, path: Path, extra: dict | None = None) -> None:
    checkpoint.save(model, path, extra)


def build(cfg: LayeringConfig) -> LayeringVAE | ConditionedLayeringVAE:
    return ConditionedLayeringVAE(cfg) if cfg.classes else LayeringVAE(cfg)


def load(path: Path, cls: str | None = None) -> LayeringVAE | ClassView:
    """A layering checkpoint; a conditioned one as its view for `cls` (its first class when None)."""
    model = checkpoint.load(path, LayeringConfig, build, "layering", "redrum train layering")
    if isinstance(model, ConditionedLayeringVAE):
        try:
            return model.for_class(cls or model.cfg.classes[0]).eval()
        except ValueError as exc:
            raise ModelError(f"{path}: {exc}") from None
    return model
