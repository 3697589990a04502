"""Discriminators for the adversarial phases (stage 1 and stage 2 decoders).

- Multi-scale (MelGAN, Kumar et al. 2019): the same 1-D convolutional critic
  on the signal at full, half and quarter rate.
- Multi-period (HiFi-GAN, Kong et al. 2020): the signal folded into
  `(time / p, p)` for prime periods p, 2-D convolutions along time: each
  critic sees periodic structure (pitch, ringing toms) at its period.

Each critic returns its feature maps, the last being the score, so that one
call serves the hinge loss and feature matching:

    critics(y) -> [[feature, ..., score] for each critic]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class DiscriminatorConfig:
    scales: int = 3
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    capacity: int = 16   # channels of the first layer; later layers are multiples


def _feature_maps(layers: nn.ModuleList, score: nn.Module, h: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's activation (LeakyReLU 0.2), then the score."""
    out = []
    for layer in layers:
        h = nn.functional.leaky_relu(layer(h), 0.2)
        out.append(h)
    return out + [score(h)]


class ScaleCritic(nn.Module):
    def __init__(self, capacity: int):
        super().__init__()
        c = capacity
        self.layers = nn.ModuleList([
            nn.Conv1d(1, c, 15, padding=7),
            nn.Conv1d(c, 4 * c, 41, stride=4, padding=20, groups=min(4, c)),  # grouped, as in MelGAN
            nn.Conv1d(4 * c, 16 * c, 41, stride=4, padding=20, groups=min(16, 4 * c)),
            nn.Conv1d(16 * c, 16 * c, 41, stride=4, padding=20, groups=min(64, 16 * c)),
            nn.Conv1d(16 * c, 16 * c, 5, padding=2),
        ])
        self.score = nn.Conv1d(16 * c, 1, 3, padding=1)

    def forward(self, y: torch.Tensor) -> list[torch.Tensor]:
        return _feature_maps(self.layers, self.score, y)


class PeriodCritic(nn.Module):
    def __init__(self, period: int, capacity: int):
        super().__init__()
        self.period = period
        c = capacity
        widths = [1, 2 * c, 8 * c, 16 * c, 16 * c]
        self.layers = nn.ModuleList([nn.Conv2d(a, b, (5, 1), stride=(3, 1), padding=(2, 0))
                                     for a, b in zip(widths[:-1], widths[1:])])
        self.score = nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, y: torch.Tensor) -> list[torch.Tensor]:
        b, ch, t = y.shape
        pad = -t % self.period
        h = nn.functional.pad(y, (0, pad), mode="reflect" if pad < t else "constant")
        return _feature_maps(self.layers, self.score, h.reshape(b, ch, -1, self.period))


class Discriminators(nn.Module):
    """All critics: `(batch, 1, time)` -> list over critics of feature lists."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        self.scale = nn.ModuleList([ScaleCritic(cfg.capacity) for _ in range(cfg.scales)])
        self.period = nn.ModuleList([PeriodCritic(p, cfg.capacity) for p in cfg.periods])

    def forward(self, y: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        h = y
        for i, critic in enumerate(self.scale):
            if i:
                h = nn.functional.avg_pool1d(h, 4, stride=2, padding=1, count_include_pad=False)
            out.append(critic(h))
        out += [critic(y) for critic in self.period]
        return out


def hinge_d(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Discriminator hinge loss, summed over critics."""
    return sum(torch.relu(1 - r[-1]).mean() + torch.relu(1 + f[-1]).mean() for r, f in zip(real, fake))


def hinge_g(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Generator's adversarial loss, summed over critics."""
    return sum(-f[-1].mean() for f in fake)


def feature_matching(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 distance of the critics' inner features (real detached), summed over critics."""
    total = 0.0
    for r, f in zip(real, fake):
        total = total + sum((a.detach() - b).abs().mean() for a, b in zip(r[:-1], f[:-1])) / (len(r) - 1)
    return total


def adversarial_step(critics: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y_hat: torch.Tensor,
                     adversarial_weight: float, feature_matching_weight: float,
                     generator: bool = True) -> tuple[torch.Tensor, dict]:
    """One critic update on real `x` and generated `y_hat`, then the generator's adversarial loss
    (hinge + weighted feature matching, still to be backpropagated) and the figures to log.
    `generator=False` (critics warming up): the critic update only, and a loss of zero."""
    loss_d = hinge_d(critics(x), critics(y_hat.detach()))
    opt.zero_grad()
    loss_d.backward()
    opt.step()
    if not generator:
        return y_hat.new_zeros(()), {"critic": loss_d.item()}
    real, fake = critics(x), critics(y_hat)
    adv, fm = hinge_g(fake), feature_matching(real, fake)
    return (adversarial_weight * adv + feature_matching_weight * fm,
            {"critic": loss_d.item(), "adversarial": adv.item(), "feature_matching": fm.item()})
