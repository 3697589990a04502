"""Layering: new oneshots as sparse, visible mixes of a small sample library.

A chain of small steps:

    target audio --first_hit--> one hit --layering_feature--> feature
      --model (VAE) or a baseline (NNLS, matching pursuit, nearest)--> weights over the library
      --threshold (drop weights below 0.04, renormalise)--> layers
      --render--> the mix of the original files at full quality, peak-safe

`LayerLibrary` holds the library's oneshots (sources in a fixed order: file
paths, or "synth:VOICE:SEED" for the built-in synthesiser, which any machine
can rebuild) at the feature rate for training and featurising mixes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from redrum_kit import audio, features, synth, workspace
from redrum_kit.errors import AudioError, ModelError

SR = features.FEATURE_SR
LENGTH = SR                     # samples of each oneshot the model hears and mixes (1 s)
THRESHOLD = 0.04                # weights below are dropped when listening (the research's value)
MAX_SECONDS = 30.0              # longer input is not a oneshot
OUTPUT_SR = 44100
ATTACK_FRAMING = (features.ATTACK_FRAME, features.ATTACK_HOP)
VOICE_OF_CLASS = {synth.VOICE_CLASS[v]: v for v in synth.VOICES}


def checkpoint_path(cls: str) -> Path:
    return workspace.model_file(f"layering-{cls}.safetensors")


def installed_classes() -> list[str]:
    """The classes with a layering model: shipped, or in `$REDRUM_MODELS`."""
    return sorted({p.stem.removeprefix("layering-") for d in workspace.model_folders()
                   for p in d.glob("layering-*.safetensors")} - {"conditioned"})


def load_source(source: str, sr: int) -> np.ndarray:
    """One library oneshot at `sr`: a file path, or 'synth:VOICE:SEED'."""
    if source.startswith("synth:"):
        _, voice, seed = source.split(":")
        return synth.oneshot(voice, int(seed), sr)
    y, _ = audio.load(Path(source), sr=sr, max_seconds=MAX_SECONDS, require_sound=True, what="library oneshot")
    return y


def fit_length(y: np.ndarray, n: int = LENGTH) -> np.ndarray:
    return np.pad(y, (0, max(0, n - len(y))))[:n].astype(np.float32)


def first_hit(y: np.ndarray, sr: int) -> tuple[np.ndarray, bool]:
    """The first hit of `y`: up to the next onset when `y` holds several (a loop). -> (hit, was_cut)."""
    hop = max(1, sr // 200)                                     # 5 ms frames
    n = len(y) // hop
    if n < 4:
        return y, False
    env = np.sqrt(np.mean(y[: n * hop].reshape(n, hop) ** 2, axis=1))
    peak = float(env.max())
    if peak <= 0:
        return y, False
    level = 20 * np.log10(env / peak + 1e-9)
    start = int(np.argmax(level > -30))
    # a new onset: a jump of 12 dB or more within 20 ms to within 12 dB of the peak, after a drop
    rise = level[4:] - level[:-4]
    for i in range(start + 20, len(rise)):                      # at least 100 ms after the first
        if rise[i] >= 12 and level[i + 4] > -12:
            cut = (i + 1) * hop
            return audio.fade_out(y[:cut], sr, 0.005), True
    return y, False


def feature(y: np.ndarray) -> torch.Tensor:
    """Mono signal at SR -> layering feature `(LAYERING_DIM,)` of its first LENGTH samples."""
    return features.layering_feature(torch.from_numpy(fit_length(y)))


def feature_error(feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distance between layering features `(B, D)`: mean absolute difference of the log spectrum
    shapes (loudness removed) plus that of the log-attack times."""
    from redrum_kit.models.layering import normalise
    a, b = normalise(feat), normalise(target)
    return (a[:, :-1] - b[:, :-1]).abs().mean(-1) + (a[:, -1] - b[:, -1]).abs()


class LayerLibrary:
    """The library's oneshots at SR, LENGTH samples each: `audio` `(N, LENGTH)`, `features` `(N, D)`.

    Both are made on first use: rendering a mix needs only its layers' files.
    """

    def __init__(self, sources: list[str]):
        if len(sources) < 2:
            raise ModelError("a layering library needs at least 2 oneshots")
        self.sources = list(sources)

    @functools.cached_property
    def audio(self) -> torch.Tensor:
        return torch.from_numpy(np.stack([fit_length(load_source(s, SR)) for s in self.sources]))

    @functools.cached_property
    def features(self) -> torch.Tensor:
        return features.layering_feature(self.audio)

    def __len__(self) -> int:
        return len(self.sources)

    def mix(self, weights: torch.Tensor) -> torch.Tensor:
        """Weights `(B, N)` -> mixes `(B, LENGTH)` at SR (differentiable)."""
        return weights @ self.audio.to(weights.device)

    def mix_error(self, weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """How far each mix is from its target: `feature_error` of the mixes' layering features
        against target features `(B, D)` -> `(B,)` (differentiable)."""
        return feature_error(features.layering_feature(self.mix(weights)), targets)

    def _weighted(self, layers: list[tuple[int, float]], sr: int) -> tuple[list[np.ndarray], float]:
        """Each layer's original file at `sr` times its weight, and the gain that brings their sum's
        peak to 1."""
        parts = [w * load_source(self.sources[i], sr) for i, w in layers]
        out = np.zeros(max(len(y) for y in parts), np.float32)
        for y in parts:
            out[:len(y)] += y
        top = float(np.abs(out).max())
        return parts, (1.0 / top if top > 0 else 1.0)

    def render(self, layers: list[tuple[int, float]], sr: int = OUTPUT_SR, peak: float = 0.9) -> np.ndarray:
        """The mix of the original files (full length, at `sr`) with the given (index, weight) layers,
        scaled so that its peak is `peak` (never clipping)."""
        parts, gain = self._weighted(layers, sr)
        out = np.zeros(max(len(y) for y in parts), np.float32)
        for y in parts:
            out[:len(y)] += y
        return out * (peak * gain)

    def stems(self, layers: list[tuple[int, float]], sr: int = OUTPUT_SR, peak: float = 0.9) -> list[np.ndarray]:
        """Each weighted layer alone, on the mix's scale (the stems sum to `render`)."""
        parts, gain = self._weighted(layers, sr)
        return [y * (peak * gain) for y in parts]


def threshold_layers(weights: np.ndarray, threshold: float = THRESHOLD) -> list[tuple[int, float]]:
    """Weights `(N,)` -> [(index, weight)] above the threshold, renormalised to sum 1, largest first
    (the largest weight is always kept)."""
    keep = [i for i in np.argsort(-weights) if weights[i] >= threshold] or [int(np.argmax(weights))]
    total = float(sum(weights[i] for i in keep))
    return [(int(i), float(weights[i]) / total) for i in keep]


# -- baselines: the best possible fits in feature space -------------------------------------

def spectrum_shapes(feats: torch.Tensor) -> np.ndarray:
    """Layering features `(..., D)` -> their spectra over their sums `(..., D - 1)` (loudness removed)."""
    spec = feats[..., :-1].clamp_min(0).numpy().astype(np.float64)
    return spec / np.maximum(spec.sum(-1, keepdims=True), 1e-12)


def nnls_weights(library: LayerLibrary, target: torch.Tensor) -> np.ndarray:
    """Non-negative least squares of the target's spectrum shape on the library's -> weights summing to 1."""
    from scipy.optimize import nnls
    A, b = spectrum_shapes(library.features).T, spectrum_shapes(target[None])[0]
    w, _ = nnls(A, b, maxiter=50 * A.shape[1])
    return w / w.sum() if w.sum() > 0 else np.full(len(library), 1 / len(library))


def matching_pursuit_weights(library: LayerLibrary, target: torch.Tensor, layers: int = 15) -> np.ndarray:
    """Non-negative orthogonal matching pursuit: add the atom best correlated with the residual, refit
    the chosen atoms by NNLS, up to `layers` atoms."""
    from scipy.optimize import nnls
    A, b = spectrum_shapes(library.features).T, spectrum_shapes(target[None])[0]
    norms = np.linalg.norm(A, axis=0) + 1e-12
    chosen: list[int] = []
    w = np.zeros(0)
    residual = b
    for _ in range(min(layers, A.shape[1])):
        scores = (A.T @ residual) / norms
        scores[chosen] = -np.inf
        k = int(np.argmax(scores))
        if scores[k] <= 0:
            break
        chosen.append(k)
        w, _ = nnls(A[:, chosen], b)
        residual = b - A[:, chosen] @ w
    out = np.zeros(A.shape[1])
    out[chosen] = w
    return out / out.sum() if out.sum() > 0 else out + 1 / len(out)


def heard_weights(weights: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The weights a user hears: below `threshold` dropped, the rest renormalised, `(N,)`."""
    out = np.zeros(len(weights), np.float32)
    for k, v in threshold_layers(weights, threshold):
        out[k] = v
    return out


REFINE_SHARES = (0.1, 0.2, 0.35, 0.5)     # the weight a refining round may give one oneshot
REFINE_LAYERS = 12                         # refining stops growing a mix at this many layers
REFINE_POOL = 24                           # oneshots a round tries exactly (scouted on their features)


def refine_weights(library: LayerLibrary, target: torch.Tensor, weights: np.ndarray,
                   threshold: float = THRESHOLD, shares: tuple[float, ...] = REFINE_SHARES,
                   max_layers: int = REFINE_LAYERS) -> np.ndarray:
    """Fit a mix more closely to one target (`redrum layer --refine`): grow it greedily from two
    starts, the model's mix as heard and the nearest single oneshot. Each round tries every library
    oneshot at each of `shares` (the other layers scaled down to make room) and keeps the one change
    heard closest, until none helps or the mix has `max_layers` layers; so a grown mix is never
    further from the target than its start. The model's mix is kept unless a grown one is closer.
    About a second per hit on a CPU core: for designing sounds, not for MIDI."""
    starts = [heard_weights(weights, threshold), nearest_weights(library, target)]
    grown = [_grow(library, target, w, threshold, shares, max_layers) for w in starts]
    candidates = [np.asarray(weights, np.float64)] + grown
    with torch.no_grad():
        errors = library.mix_error(torch.from_numpy(np.stack([heard_weights(w, threshold) for w in candidates])),
                                   target[None].expand(len(candidates), -1))
    return candidates[int(errors.argmin())].astype(np.float64)


@torch.no_grad()
def _grow(library: LayerLibrary, target: torch.Tensor, start: np.ndarray, threshold: float,
          shares: tuple[float, ...], max_layers: int) -> np.ndarray:
    """Greedy growth of one mix (see `refine_weights`). The features of all the library's candidate
    mixes `(1 - a) * mix + a * oneshot` of a round are exact and cheap: the STFT is linear in the
    signal and a frame's energy quadratic, so the library is analysed once per call."""
    audio = library.audio
    spectra = features.stft(audio)
    real, imag = spectra.real.contiguous(), spectra.imag.contiguous()
    power = real.pow(2) + imag.pow(2)
    energy = [features.frame_mean(audio.pow(2)), features.frame_mean(audio.pow(2), *ATTACK_FRAMING)]
    targets = target[None].expand(len(audio), -1)
    share = torch.tensor(shares)[:, None, None]                                 # (S, 1, 1)

    def heard_error(w: np.ndarray) -> float:
        return float(library.mix_error(torch.from_numpy(w)[None], target[None])[0])

    current = heard_weights(start, threshold)
    error = heard_error(current)
    while (current > 0).sum() < max_layers:
        mix = torch.from_numpy(current) @ audio
        mix_feature = features.layering_feature(mix[None])
        # scout: mixes of features (the spectrum part scales with gain) rank the oneshots at every share
        guess = (1 - share) * mix_feature[:, None] + share * library.features[None]   # (S, N, D)
        guesses = feature_error(guess.flatten(0, 1), target[None].expand(guess.shape[0] * guess.shape[1], -1))
        pool = guesses.view(len(shares), -1).min(0).values.topk(min(REFINE_POOL, len(audio)), largest=False).indices
        mix_spectrum = features.stft(mix[None])
        mix_power = mix_spectrum.abs().pow(2)
        cross_power = mix_spectrum.real * real[pool] + mix_spectrum.imag * imag[pool]   # Re(conj(mix) * oneshot)
        mix_energy = [features.frame_mean(mix[None].pow(2)), features.frame_mean(mix[None].pow(2), *ATTACK_FRAMING)]
        cross = [features.frame_mean(audio[pool] * mix), features.frame_mean(audio[pool] * mix, *ATTACK_FRAMING)]
        pool_power, pool_energy = power[pool], [e[pool] for e in energy]

        def errors_at(a: float) -> torch.Tensor:
            """Exact feature errors of the mixes `(1 - a) * mix + a * oneshot` for the pool's oneshots."""
            b = 1.0 - a
            # |b m + a s|^2 = b^2 |m|^2 + 2ab Re(conj(m) s) + a^2 |s|^2, and likewise for frame energies
            magnitude = (pool_power * (a * a)).add_(cross_power, alpha=2 * a * b).add_(mix_power * (b * b))
            rms, envelope = ((b * b * m + 2 * a * b * c + a * a * e).clamp_min(0).add(1e-12).sqrt()
                             for m, c, e in zip(mix_energy, cross, pool_energy))
            feats = features.layering_feature_from(magnitude.clamp_min_(0).sqrt_(), rms,
                                                   features.attack_from_envelope(envelope))
            return feature_error(feats, targets[: len(pool)])

        best, change = error, None
        for a in shares:
            errors = errors_at(a)
            k = int(errors.argmin())
            if float(errors[k]) < best:
                best, change = float(errors[k]), (a, int(pool[k]))
        if change is None:
            break
        a, k = change
        grown = (1 - a) * current
        grown[k] += a
        grown = heard_weights(grown, threshold)
        grown_error = heard_error(grown)
        if grown_error >= error:
            break
        current, error = grown, grown_error
    return current.astype(np.float64)


def nearest_weights(library: LayerLibrary, target: torch.Tensor) -> np.ndarray:
    """The single library oneshot closest in feature error (a one-hot weight vector)."""
    err = feature_error(library.features, target[None].expand(len(library), -1))
    out = np.zeros(len(library))
    out[int(err.argmin())] = 1.0
    return out


# -- the model ------------------------------------------------------------------------------

@dataclass
class LayerResult:
    y: np.ndarray
    sr: int
    cls: str
    layers: list[tuple[int, float]]
    sources: list[str]
    z: list[float] = field(default_factory=list)
    pca: list[float] = field(default_factory=list)
    cut_from_loop: bool = False

    def to_json(self, library_paths: list[str]) -> dict:
        return {"class": self.cls, "sample_rate": self.sr, "library": library_paths,
                "layers": [{"path": library_paths[i], "id": i, "weight": round(w, 5)} for i, w in self.layers],
                "z": [round(v, 5) for v in self.z], "pca": [round(v, 4) for v in self.pca],
                "cut_from_loop": self.cut_from_loop}


class Layerer:
    """One class's model and library, loaded once."""

    def __init__(self, cls: str, path: Path | None = None):
        from redrum_kit.models import layering as model_lib
        self.model = model_lib.load(path or checkpoint_path(cls), cls).eval()
        self.cls = self.model.cfg.cls
        self.library = LayerLibrary(self.model.cfg.library)

    @torch.no_grad()
    def weights(self, feat: torch.Tensor, sliders: dict[int, float] | None = None) -> tuple[np.ndarray, torch.Tensor]:
        w, z = self.weights_batch(feat[None], [sliders])
        return w[0], z[0]

    @torch.no_grad()
    def weights_batch(self, feats: torch.Tensor, sliders: list[dict[int, float] | None]
                      ) -> tuple[np.ndarray, torch.Tensor]:
        """Features `(N, dim)` and each one's slider moves -> mix weights `(N, library)`, latents `(N, latent)`,
        in one pass through the model (how a GPU serves concurrent requests)."""
        z = self.model.encode(feats)[0]
        for i, moves in enumerate(sliders):
            if moves:
                bad = [k for k in moves if not 0 <= k < self.model.cfg.pca]
                if bad:
                    raise ModelError(f"PCA sliders are numbered 1 to {self.model.cfg.pca}")
                z[i:i + 1] = self.model.move(z[i:i + 1], moves)
        return self.model.decode(z).numpy().astype(np.float64), z

    @staticmethod
    def prepare(y: np.ndarray, sr: int) -> tuple[torch.Tensor, bool]:
        """A recording -> the layering feature of its first hit, and whether it was cut from a loop."""
        hit, cut = first_hit(y, sr)
        return feature(audio.resample(hit, sr, SR)), cut

    @torch.no_grad()
    def result(self, w: np.ndarray, z: torch.Tensor, threshold: float = THRESHOLD, cut: bool = False,
               out_sr: int = OUTPUT_SR, refine_to: torch.Tensor | None = None) -> LayerResult:
        """The mix heard from weights `w` (refined towards feature `refine_to` when given)."""
        if refine_to is not None:
            with torch.enable_grad():
                w = refine_weights(self.library, refine_to, w)
        layers = threshold_layers(w, threshold)
        coords = self.model.to_pca(z[None])[0]
        return LayerResult(self.library.render(layers, out_sr), out_sr, self.cls, layers, self.library.sources,
                           z.tolist(), coords.tolist(), cut)

    def layer_signal(self, y: np.ndarray, sr: int, threshold: float = THRESHOLD,
                     sliders: dict[int, float] | None = None, out_sr: int = OUTPUT_SR) -> LayerResult:
        feat, cut = self.prepare(y, sr)
        w, z = self.weights(feat, sliders)
        return self.result(w, z, threshold, cut, out_sr)

    @torch.no_grad()
    def interpolate(self, a: np.ndarray, b: np.ndarray, sr: int, steps: int, threshold: float = THRESHOLD,
                    out_sr: int = OUTPUT_SR) -> list[LayerResult]:
        """Oneshot morphs: the latents of A's and B's first hits, interpolated linearly."""
        za = self.model.encode(feature(audio.resample(first_hit(a, sr)[0], sr, SR))[None])[0]
        zb = self.model.encode(feature(audio.resample(first_hit(b, sr)[0], sr, SR))[None])[0]
        out = []
        for alpha in np.linspace(0, 1, steps):
            z = (1 - alpha) * za + alpha * zb
            layers = threshold_layers(self.model.decode(z)[0].numpy().astype(np.float64), threshold)
            out.append(LayerResult(self.library.render(layers, out_sr), out_sr, self.cls, layers,
                                   self.library.sources, z[0].tolist(), self.model.to_pca(z)[0].tolist()))
        return out


def check_oneshot(y: np.ndarray, sr: int, name: str) -> None:
    if len(y) > MAX_SECONDS * sr:
        raise AudioError(f"{name}: longer than {MAX_SECONDS:g} s; give a drum oneshot")
