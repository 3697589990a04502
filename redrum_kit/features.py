"""Features of oneshots, as plain functions on tensors.

- `layering_feature`: the feature of the layering research: the magnitude
  spectrum averaged over time, each frame weighted by its RMS, plus the
  log-attack time. Differentiable, so the layering model can featurise its
  own mixes the same way.
- `mfcc_summary`: mean and standard deviation of MFCCs over the sound, for
  similarity search.
- `log_mel`: the log-mel spectrogram the classifier reads.

All functions take `y` of shape `(time,)` or `(batch, time)` at `FEATURE_SR`.
"""

from __future__ import annotations

import functools

import torch
import torchaudio.transforms as T

FEATURE_SR = 22050
N_FFT = 1024
HOP_LENGTH = 256
N_MFCC = 20
LAYERING_DIM = N_FFT // 2 + 1 + 1  # spectrum bins + log-attack time
MFCC_DIM = 2 * N_MFCC


def _batched(y: torch.Tensor) -> tuple[torch.Tensor, bool]:
    return (y[None], True) if y.dim() == 1 else (y, False)


def stft(y: torch.Tensor, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """`(batch, time)` -> `(batch, n_fft // 2 + 1, frames)` complex STFT (Hann window, centred)."""
    window = torch.hann_window(n_fft, device=y.device, dtype=y.dtype)
    return torch.stft(y, n_fft, hop_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)


def stft_magnitude(y: torch.Tensor, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """`(batch, time)` -> `(batch, n_fft // 2 + 1, frames)` linear magnitude."""
    return stft(y, n_fft, hop_length).abs()


def frame_mean(y: torch.Tensor, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """`(batch, time)` -> `(batch, frames)` mean of centred frames (same framing as the STFT)."""
    padded = torch.nn.functional.pad(y[:, None], (n_fft // 2, n_fft // 2), mode="constant")[:, 0]
    return padded.unfold(-1, n_fft, hop_length).mean(-1)


def frame_rms(y: torch.Tensor, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """`(batch, time)` -> `(batch, frames)` RMS of centred frames (same framing as the STFT)."""
    return frame_mean(y.pow(2), n_fft, hop_length).add(1e-12).sqrt()


ATTACK_FRAME, ATTACK_HOP = 256, 64      # the envelope the log-attack time is read from


def log_attack_time(y: torch.Tensor, sr: int = FEATURE_SR, hop_length: int = ATTACK_HOP) -> torch.Tensor:
    """Log10 of the time (s) the RMS envelope takes from 20% to 90% of its peak.

    `(batch, time)` -> `(batch,)`. Floored at 1 ms so a perfect click is -3.
    """
    return attack_from_envelope(frame_rms(y, n_fft=ATTACK_FRAME, hop_length=hop_length), sr, hop_length)


def attack_from_envelope(env: torch.Tensor, sr: int = FEATURE_SR, hop_length: int = ATTACK_HOP) -> torch.Tensor:
    """`log_attack_time` from an RMS envelope `(batch, frames)` -> `(batch,)`."""
    peak = env.max(dim=-1, keepdim=True).values.clamp_min(1e-9)
    idx = torch.arange(env.shape[-1], device=env.device).expand_as(env)
    big = env.shape[-1]
    start = torch.where(env >= 0.2 * peak, idx, big).min(-1).values
    end = torch.where(env >= 0.9 * peak, idx, big).min(-1).values
    seconds = (end - start).clamp_min(0).to(env.dtype) * hop_length / sr
    return torch.log10(seconds.clamp_min(1e-3))


def layering_feature(y: torch.Tensor, sr: int = FEATURE_SR) -> torch.Tensor:
    """RMS-weighted mean magnitude spectrum plus log-attack time.

    `(time,)` or `(batch, time)` -> `(LAYERING_DIM,)` or `(batch, LAYERING_DIM)`.
    The spectrum part scales linearly with the signal's gain (so mixes of
    sounds map to roughly the sum of their features); the last value is the
    log-attack time in log10 seconds.
    """
    y, squeeze = _batched(y)
    feat = layering_feature_from(stft_magnitude(y), frame_rms(y), log_attack_time(y, sr))
    return feat[0] if squeeze else feat


def layering_feature_from(mag: torch.Tensor, rms: torch.Tensor, attack: torch.Tensor) -> torch.Tensor:
    """`layering_feature` from its parts: magnitudes `(batch, bins, frames)`, frame RMS
    `(batch, frames)` and log-attack times `(batch,)`."""
    rms = rms[:, : mag.shape[-1]]
    weights = rms / rms.sum(-1, keepdim=True).clamp_min(1e-9)
    spectrum = torch.einsum("bft,bt->bf", mag, weights)
    return torch.cat([spectrum, attack[:, None]], dim=-1)


@functools.lru_cache(maxsize=4)
def _mfcc_transform(sr: int) -> T.MFCC:
    return T.MFCC(sample_rate=sr, n_mfcc=N_MFCC,
                  melkwargs={"n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": 64, "center": True, "pad_mode": "constant"})


def mfcc_summary(y: torch.Tensor, sr: int = FEATURE_SR) -> torch.Tensor:
    """Mean and std over time of 20 MFCCs, frames weighted by RMS. -> `(..., 40)`."""
    y, squeeze = _batched(y)
    mfcc = _mfcc_transform(sr)(y)
    rms = frame_rms(y)[:, : mfcc.shape[-1]]
    w = (rms / rms.sum(-1, keepdim=True).clamp_min(1e-9))[:, None, :]
    mean = (mfcc * w).sum(-1)
    std = ((mfcc - mean[..., None]).pow(2) * w).sum(-1).sqrt()
    out = torch.cat([mean, std], dim=-1)
    return out[0] if squeeze else out


@functools.lru_cache(maxsize=16)
def _mel_transform(sr: int, n_mels: int, hop_length: int, n_fft: int) -> T.MelSpectrogram:
    return T.MelSpectrogram(sample_rate=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                            f_min=20.0, f_max=sr / 2, power=2.0, pad_mode="constant")


def log_mel(y: torch.Tensor, sr: int = FEATURE_SR, n_mels: int = 64,
            hop_length: int = HOP_LENGTH, n_fft: int = N_FFT) -> torch.Tensor:
    """`(batch, time)` -> `(batch, n_mels, frames)` log power mel spectrogram (dB / 10)."""
    mel = _mel_transform(sr, n_mels, hop_length, n_fft).to(y.device)(y)
    return torch.log10(mel + 1e-8)


SPECTRAL_FFTS = (2048, 1024, 512, 256, 128)


def spectral_distance(y: torch.Tensor, y_hat: torch.Tensor, n_ffts=SPECTRAL_FFTS, eps: float = 1e-7) -> torch.Tensor:
    """Multi-scale spectral distance of RAVE, the stage-1 reconstruction loss.

    Per FFT size (hop a quarter of it): relative Frobenius distance of the
    linear magnitudes plus mean absolute distance of their logs; summed over
    sizes. `(batch, time)` or `(batch, channels, time)` (channels are
    treated as more batch), differentiable.
    """
    y, y_hat = y.reshape(-1, y.shape[-1]), y_hat.reshape(-1, y_hat.shape[-1])
    total = y.new_zeros(())
    for n_fft in n_ffts:
        if n_fft > y.shape[-1]:
            continue
        s, s_hat = stft_magnitude(y, n_fft, n_fft // 4), stft_magnitude(y_hat, n_fft, n_fft // 4)
        total = total + torch.linalg.norm(s - s_hat) / (torch.linalg.norm(s) + eps)
        total = total + (torch.log(s + eps) - torch.log(s_hat + eps)).abs().mean()
    return total


FLUX_MELS, FLUX_HOP, FLUX_FFT = 16, 128, 512


def spectral_flux(y: torch.Tensor, sr: int = FEATURE_SR) -> torch.Tensor:
    """Band-wise onset strength: the rise (dB) of a 16-band log-mel from each 5.8 ms frame to the next,
    rises only. `(batch, time)` -> `(batch, FLUX_MELS, frames - 1)`, differentiable."""
    mel = 10 * torch.clamp(log_mel(y, sr, FLUX_MELS, FLUX_HOP, FLUX_FFT), min=-8.0)
    return torch.relu(mel[..., 1:] - mel[..., :-1])


def transient_distance(y: torch.Tensor, y_hat: torch.Tensor, sr: int = FEATURE_SR) -> torch.Tensor:
    """Mean absolute difference (dB) of the two signals' spectral flux: how far the attacks differ, in
    where, which band and how sharp. `(batch, time)` or `(batch, 1, time)`; a scalar, differentiable."""
    y, y_hat = y.reshape(-1, y.shape[-1]), y_hat.reshape(-1, y_hat.shape[-1])
    return (spectral_flux(y, sr) - spectral_flux(y_hat, sr)).abs().mean()


MEL_DISTANCE_FFTS = (2048, 1024, 512, 256)


def log_mel_distance(y: torch.Tensor, y_hat: torch.Tensor, sr: int = FEATURE_SR,
                     n_ffts=MEL_DISTANCE_FFTS, n_mels: int = 64) -> torch.Tensor:
    """Multi-resolution log-mel distance per item, in dB: the evaluation measure of closeness.

    Mean absolute difference of log-power mel spectrograms (floored at -80 dB
    so that silence does not dominate), averaged over FFT sizes (hop a
    quarter of each; at most `n_fft // 8` mel bands, so that small FFTs have
    no empty bands). `(batch, time)` -> `(batch,)`.
    """
    y, squeeze = _batched(y)
    y_hat = _batched(y_hat)[0]
    out = []
    for n_fft in n_ffts:
        bands = min(n_mels, n_fft // 8)
        a, b = (10 * torch.clamp(log_mel(v, sr, bands, n_fft // 4, n_fft), min=-8.0) for v in (y, y_hat))
        out.append((a - b).abs().mean(dim=(-2, -1)))
    d = torch.stack(out).mean(0)
    return d[0] if squeeze else d
