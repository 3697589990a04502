"""Stage 1: a RAVE-style variational autoencoder on drum audio.

After Caillon & Esling, "RAVE: A variational autoencoder for fast and
high-quality neural audio synthesis" (2021), sized for drums on a laptop CPU:

    y (batch, 1, time) --PQMF--> bands (batch, n_bands, time / n_bands)
      --Encoder--> mean, std (batch, latent, time / compression)
      z = mean + std * eps
      --Decoder--> amplitude-gated waveform + filtered noise, per band
      --inverse PQMF--> y_hat (batch, 1, time)

`compression = n_bands * prod(ratios)` samples of audio per latent frame
(512 by default: one frame every 23 ms at 22,050 Hz, fine enough for drum
timing). The noise branch filters white noise per band with a few
magnitudes per frame: hats and snares are mostly noise, which a waveform
decoder of this size renders poorly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from redrum_kit.models import checkpoint
from redrum_kit.models.pqmf import PQMF


@dataclass
class Stage1Config:
    sr: int = 22050
    n_bands: int = 16
    latent: int = 16
    channels: list[int] = field(default_factory=lambda: [32, 96, 192])  # width at each resolution
    ratios: list[int] = field(default_factory=lambda: [4, 4, 2])        # downsampling after each
    kernel: int = 3
    dilations: list[int] = field(default_factory=lambda: [1, 3, 9])
    noise_bands: int = 5     # magnitudes per PQMF band in the noise branch
    noise_ratio: int = 4     # band samples per noise frame
    std_floor: float = 1e-4

    @property
    def compression(self) -> int:
        return self.n_bands * math.prod(self.ratios)

    @property
    def latent_rate(self) -> float:
        return self.sr / self.compression


def mod_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """RAVE's amplitude nonlinearity: 0 to 2, quiet near zero, smooth gradient."""
    return 2 * torch.sigmoid(x) ** 2.3 + 1e-7


class Residual(nn.Module):
    """Dilated convolution block with a skip: `(B, C, T) -> (B, C, T)`."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Conv1d(channels, channels, kernel, dilation=dilation,
                                         padding=dilation * (kernel - 1) // 2),
            nn.LeakyReLU(0.2), nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def _stack(channels: int, cfg: Stage1Config) -> list[nn.Module]:
    return [Residual(channels, cfg.kernel, d) for d in cfg.dilations]


class Encoder(nn.Module):
    """Bands `(B, n_bands, T)` -> mean and std `(B, latent, T / prod(ratios))`."""

    def __init__(self, cfg: Stage1Config):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv1d(cfg.n_bands, ch[0], 7, padding=3)]
        for i, r in enumerate(cfg.ratios):
            c_out = ch[min(i + 1, len(ch) - 1)]
            layers += _stack(ch[i], cfg)
            layers += [nn.LeakyReLU(0.2), nn.Conv1d(ch[i], c_out, 2 * r, stride=r, padding=r // 2)]
        layers += [nn.LeakyReLU(0.2), nn.Conv1d(ch[-1], 2 * cfg.latent, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, bands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, scale = self.net(bands).chunk(2, dim=1)
        return mean, nn.functional.softplus(scale) + self.cfg.std_floor


class NoiseBranch(nn.Module):
    """Hidden `(B, C, T)` at the band rate -> filtered noise `(B, n_bands, T)`."""

    def __init__(self, channels: int, cfg: Stage1Config):
        super().__init__()
        self.cfg = cfg
        r = cfg.noise_ratio
        self.net = nn.Sequential(
            nn.Conv1d(channels, channels, 2 * r, stride=r, padding=r // 2), nn.LeakyReLU(0.2),
            nn.Conv1d(channels, cfg.n_bands * cfg.noise_bands, 3, padding=1))

    def forward(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        cfg = self.cfg
        b, _, t = h.shape
        mags = mod_sigmoid(self.net(h) - 5.0)                       # start quiet
        frames = mags.shape[-1]
        mags = mags.reshape(b, cfg.n_bands, cfg.noise_bands, frames).transpose(2, 3)  # (B, bands, frames, K)
        # zero-phase, windowed impulse response from the magnitudes, then circular convolution per frame
        ir = torch.fft.irfft(mags.to(torch.complex64), dim=-1)     # (..., 2K - 2)
        half = ir.shape[-1] // 2
        ir = torch.roll(ir, half, dims=-1) * torch.hann_window(ir.shape[-1], device=h.device)
        size = max(cfg.noise_ratio, ir.shape[-1])
        ir = torch.roll(nn.functional.pad(ir, (0, size - ir.shape[-1])), -half, dims=-1)
        noise = torch.rand(b, cfg.n_bands, frames, size, device=h.device, generator=generator) * 2 - 1
        out = torch.fft.irfft(torch.fft.rfft(noise) * torch.fft.rfft(ir), n=size)[..., : cfg.noise_ratio]
        return out.reshape(b, cfg.n_bands, frames * cfg.noise_ratio)[..., :t]


class Decoder(nn.Module):
    """z `(B, latent, T')` -> bands `(B, n_bands, T' * prod(ratios))`."""

    def __init__(self, cfg: Stage1Config):
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv1d(cfg.latent, ch[-1], 3, padding=1)]
        for i in reversed(range(len(cfg.ratios))):
            r, c_in = cfg.ratios[i], ch[min(i + 1, len(ch) - 1)]
            layers += [nn.LeakyReLU(0.2), nn.ConvTranspose1d(c_in, ch[i], 2 * r, stride=r, padding=r // 2)]
            layers += _stack(ch[i], cfg)
        layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)
        self.wave = nn.Conv1d(ch[0], cfg.n_bands, 7, padding=3)
        self.amp = nn.Conv1d(ch[0], cfg.n_bands, 7, padding=3)
        self.noise = NoiseBranch(ch[0], cfg) if cfg.noise_bands else None

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h = self.net(z)
        bands = self.wave(h) * mod_sigmoid(self.amp(h))
        if self.noise is not None:
            bands = bands + self.noise(h, generator)
        return bands


class Stage1(nn.Module):
    """The autoencoder: `encode`, `decode`, and `forward` for training."""

    def __init__(self, cfg: Stage1Config):
        super().__init__()
        self.cfg = cfg
        self.pqmf = PQMF(cfg.n_bands)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def encode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio `(B, 1, time)`, time a multiple of `compression` -> mean, std `(B, latent, frames)`."""
        return self.encoder(self.pqmf.analysis(y))

    def decode(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latent `(B, latent, frames)` -> audio `(B, 1, frames * compression)`.

        `generator` seeds the noise branch (for output that repeats exactly).
        """
        return self.pqmf.synthesis(self.decoder(z, generator))

    def forward(self, y: torch.Tensor, freeze_encoder: bool = False):
        """Training pass: -> reconstruction, bands, reconstructed bands, mean, std (z is sampled).

        `freeze_encoder` (the adversarial phase) keeps gradients out of the encoder.
        """
        bands = self.pqmf.analysis(y)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_encoder):
            mean, std = self.encoder(bands)
        bands_hat = self.decoder(mean + std * torch.randn_like(std))
        return self.pqmf.synthesis(bands_hat), bands, bands_hat, mean, std

    @torch.no_grad()
    def reconstruct(self, y: np.ndarray, window_seconds: float = 3.0, overlap_seconds: float = 0.25,
                    batch_size: int = 8) -> np.ndarray:
        """Encode and decode a mono signal at cfg.sr, any length -> the same length.

        Long signals go through in windows of `window_seconds`, overlapping by
        `overlap_seconds` and joined with linear crossfades (the two windows
        decode the same audio, so their sum keeps the level). The latent is
        the mean, not a sample: the same input gives the same output.
        """
        self.eval()
        comp = self.cfg.compression
        win = max(comp, int(window_seconds * self.cfg.sr) // comp * comp)
        fade = min(win // 2, int(overlap_seconds * self.cfg.sr) // comp * comp)
        padded = np.pad(np.asarray(y, np.float32), (0, win))
        starts = window_starts(len(y), win, fade)
        device = next(self.parameters()).device
        noise = torch.Generator(device).manual_seed(0)
        pieces = []
        for k in range(0, len(starts), batch_size):
            batch = np.stack([padded[s:s + win] for s in starts[k:k + batch_size]])
            mean = self.encode(torch.from_numpy(batch)[:, None].to(device))[0]
            pieces += list(self.decode(mean, noise)[:, 0].cpu().numpy())
        return join_windows(pieces, starts, fade, len(y))


def window_starts(n: int, win: int, fade: int) -> list[int]:
    """Starts of windows of `win` samples overlapping by `fade` that cover `n` samples."""
    return list(range(0, max(1, n), win - fade))


def join_windows(pieces: list[np.ndarray], starts: list[int], fade: int, n: int) -> np.ndarray:
    """Windows decoded from overlapping input -> one signal of `n` samples, linear crossfades.

    Overlapping windows render the same stretch of audio, so the crossfade keeps the level.
    """
    win = len(pieces[0])
    out = np.zeros(max(starts) + win, np.float32)
    ramp = np.linspace(0, 1, fade, endpoint=False, dtype=np.float32)
    for s, piece in zip(starts, pieces):
        head = fade if s > 0 else 0
        out[s:s + head] = out[s:s + head] * (1 - ramp[:head]) + piece[:head] * ramp[:head]
        out[s + head:s + win] = piece[head:]
    return np.pad(out, (0, max(0, n - len(out))))[:n]


def kl_divergence(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std) || N(0, 1)), summed over latent channels, averaged over batch and frames."""
    var = std.pow(2)
    return 0.5 * (mean.pow(2) + var - torch.log(var) - 1).sum(1).mean()


def save(model: Stage1, path: Path, extra: dict | None = None) -> None:
    checkpoint.save(model, path, extra)


def load(path: Path) -> Stage1:
    return checkpoint.load(path, Stage1Config, Stage1, "stage-1 autoencoder", "redrum train stage1")
