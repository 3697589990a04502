"""Pseudo-quadrature mirror filter (PQMF) bank: split audio into bands and back.

A cosine-modulated filter bank (Nguyen 1994; Lin & Vaidyanathan 1998) as
used by RAVE: one low-pass prototype `h`, designed with a Kaiser window whose
cutoff is tuned so that `h` convolved with itself is close to a Nyquist(2M)
filter, which is what near-perfect reconstruction needs. Analysis is a
strided convolution (only the kept samples are computed), synthesis a
transposed one.

    y (batch, 1, time) --analysis--> bands (batch, n_bands, time / n_bands)
                        --synthesis--> y_hat (batch, 1, time)

Delays are compensated so that `synthesis(analysis(y))` lines up with `y`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.signal import firwin, kaiserord
from torch import nn


@functools.lru_cache(maxsize=8)
def prototype(n_bands: int, attenuation_db: float = 100.0) -> np.ndarray:
    """Low-pass prototype filter of the bank, an even number of taps `(taps,)`.

    The transition width follows from the band count; the cutoff is chosen to
    minimise the worst aliasing term of `h * h` at lags that are multiples of
    `2 * n_bands`.
    """
    taps, beta = kaiserord(attenuation_db, 0.5 / n_bands)
    taps += taps % 2  # even length: the bank's delay is then a whole number of band samples' worth

    def objective(cutoff: float) -> float:
        h = firwin(taps, cutoff, window=("kaiser", beta), scale=False)
        g = np.convolve(h, h[::-1])
        centre = len(g) // 2
        side = g[centre % (2 * n_bands)::2 * n_bands]
        side = np.delete(side, centre // (2 * n_bands))
        return float(np.max(np.abs(side)))

    best = minimize_scalar(objective, bounds=(0.5 / n_bands * 0.5, 0.5 / n_bands * 1.5), method="bounded")
    return firwin(taps, best.x, window=("kaiser", beta), scale=False)


def filters(n_bands: int, attenuation_db: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Analysis and synthesis filters, each `(n_bands, taps)`."""
    h = prototype(n_bands, attenuation_db)
    n = np.arange(len(h)) - (len(h) - 1) / 2
    k = np.arange(n_bands)[:, None]
    phase = (-1.0) ** k * np.pi / 4
    arg = (2 * k + 1) * np.pi / (2 * n_bands) * n
    return 2 * h * np.cos(arg + phase), 2 * h * np.cos(arg - phase)


class PQMF(nn.Module):
    """`analysis` / `synthesis` with fixed (non-trained) filters; `n_bands` a power of two."""

    def __init__(self, n_bands: int = 16, attenuation_db: float = 100.0):
        super().__init__()
        if n_bands < 1 or n_bands & (n_bands - 1):
            raise ValueError(f"n_bands must be a power of two, got {n_bands}")
        self.n_bands = n_bands
        if n_bands == 1:
            self.taps = 0
            return
        analysis, synthesis = filters(n_bands, attenuation_db)
        self.taps = analysis.shape[1]
        # conv1d correlates, so the analysis filters are stored time-reversed
        self.register_buffer("h", torch.tensor(analysis[:, ::-1].copy(), dtype=torch.float32)[:, None],
                             persistent=False)
        self.register_buffer("g", torch.tensor(synthesis.copy(), dtype=torch.float32)[:, None], persistent=False)

    def analysis(self, y: torch.Tensor) -> torch.Tensor:
        """`(batch, 1, time)` -> `(batch, n_bands, time // n_bands)`; time a multiple of n_bands."""
        if self.n_bands == 1:
            return y
        m, taps = self.n_bands, self.taps
        # centre the filters on the kept samples: pad half the filter each side
        x = nn.functional.pad(y, (taps // 2, taps // 2 - 1 + m))
        return nn.functional.conv1d(x, self.h, stride=m)[..., : y.shape[-1] // m]

    def synthesis(self, bands: torch.Tensor) -> torch.Tensor:
        """`(batch, n_bands, frames)` -> `(batch, 1, frames * n_bands)`."""
        if self.n_bands == 1:
            return bands
        m = self.n_bands
        y = nn.functional.conv_transpose1d(bands, self.g * m, stride=m)
        return y[..., self.taps // 2: self.taps // 2 + bands.shape[-1] * m]  # the analysis padding's delay
