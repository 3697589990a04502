"""The learned redrum: the source's drum sounds playing the target's rhythm.

A chain of small steps, each inspectable:

    source, target --resample--> the model's rate (22,050 Hz)
      --transcriber--> onset probabilities, pooled to the latent frame rate
      source: the most varied window (`choose_source_window`) --encoder--> mu_s
      target: overlapping windows of the probabilities
      --rhythm transformer (stage 2)--> mu_hat per window --decoder--> audio
      --crossfades--> the target's length
      --decay shaping (`decays.shape_decays`)--> no drum rings longer than the source's do
      --resample--> the target's rate

and gradual rhythm morphs between two recordings (`interpolate_signals`), each
step decay-shaped after the hits of both rhythms (`decays.shape_to_rhythms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from redrum_kit import audio, workspace
from redrum_kit.decays import shape_decays, shape_to_rhythms
from redrum_kit.errors import AudioError, ModelError
from redrum_kit.models import transcriber as crnn
from redrum_kit.models import stage2 as stage2_lib
from redrum_kit.models.stage1 import join_windows, window_starts
from redrum_kit.rhythm.events import TRANSCRIPTION_CLASSES

MAX_SECONDS = 600.0
WINDOW_FRAMES = 128     # latent frames per window (2.97 s at 22,050 Hz), the training clips' length
FADE_FRAMES = 8         # latent frames of crossfade between target windows (0.19 s)
INTERPOLATION_SPACES = ("latent", "conditioning")
DECAYS = ("source", "model")     # decay shaping on, or the model's output as decoded


def checkpoint_path() -> Path:
    """Where the shipped redrum (stage-2) checkpoint lives (it may not be installed)."""
    return workspace.model_file("stage2.safetensors")


def load_model(path: Path | None = None, device: str | torch.device = "cpu") -> stage2_lib.Redrum:
    return stage2_lib.load(path or checkpoint_path()).to(device)


def conditioning_path(model_path: Path | None = None) -> Path:
    """The transcriber a redrum checkpoint was trained with, kept beside it (`stage2.safetensors` ->
    `stage2-transcriber.safetensors`): its probabilities are the model's input, so retraining the
    shared transcriber must not change them."""
    model_path = Path(model_path or checkpoint_path())
    return model_path.with_name(model_path.stem + "-transcriber.safetensors")


def load_conditioning(model_path: Path | None = None):
    """The transcriber to condition the redrum checkpoint at `model_path` (default: the installed one)
    with: the one it was trained with when kept beside it, else the shared one."""
    from redrum_kit.transcription import load_model as load_transcriber
    path = conditioning_path(model_path)
    return crnn.load(path) if path.is_file() else load_transcriber("auto")


def latent_probs(probs: np.ndarray, ratio: int, frames: int, sub_frames: int = 1) -> np.ndarray:
    """Onset probabilities `(classes, F)` at the transcriber's rate -> `(classes * sub_frames, frames)`:
    each latent frame's `ratio` transcriber frames in `sub_frames` groups, the max of each (with one
    group, an onset anywhere in the frame counts); rows class by class, sub-frames within a class."""
    need = frames * ratio
    p = np.pad(probs, ((0, 0), (0, max(0, need - probs.shape[1]))))[:, :need]
    p = p.reshape(len(p), frames, sub_frames, ratio // sub_frames).max(-1)      # (classes, frames, sub)
    return p.transpose(0, 2, 1).reshape(len(probs) * sub_frames, frames).astype(np.float32)


LEVEL_RANGE_DB = 40.0    # loudness feature: 0 dB under the loudest frame nearby -> 1, this far under -> 0
LEVEL_SECONDS = 3.0      # the neighbourhood whose loudest frame is the reference (a training clip's length)
LEVEL_AHEAD = 3          # frames after an onset whose peak is the hit's level (35 ms at hop 256 and 22,050 Hz)


def onset_levels(y: np.ndarray, hop: int, sr: int) -> np.ndarray:
    """Relative loudness `(frames,)` in [0, 1] at `hop`: each frame's peak RMS level over it and the next
    LEVEL_AHEAD - 1 frames (a hit's level just after its onset), in dB under the loudest frame within
    LEVEL_SECONDS around it, mapped to 1 (as loud) .. 0 (LEVEL_RANGE_DB or more under). Relative, so the
    velocity pattern carries over while a recording's overall gain does not."""
    from scipy.ndimage import maximum_filter1d
    frames = -(-len(y) // hop)
    x = np.pad(np.asarray(y, np.float32), (0, frames * hop - len(y))).reshape(frames, hop)
    level = 10 * np.log10(np.mean(x.astype(np.float64) ** 2, axis=1) + 1e-10)
    onset = maximum_filter1d(level, LEVEL_AHEAD, origin=-(LEVEL_AHEAD // 2), mode="nearest")
    return under_loudest(onset, level, hop, sr)


def under_loudest(level: np.ndarray, loudness: np.ndarray, hop: int, sr: int) -> np.ndarray:
    """Levels in dB `(..., frames)` -> [0, 1]: 1 at the loudest frame of `loudness` (dB, `(frames,)`)
    within LEVEL_SECONDS around each frame, 0 at LEVEL_RANGE_DB or more under it."""
    from scipy.ndimage import maximum_filter1d
    reference = maximum_filter1d(loudness, max(1, int(LEVEL_SECONDS * sr / hop)), mode="nearest")
    return np.clip(1 + (level - reference) / LEVEL_RANGE_DB, 0, 1).astype(np.float32)


def band_levels(y: np.ndarray, hop: int, sr: int, edges=stage2_lib.BAND_EDGES_HZ) -> np.ndarray:
    """Relative loudness per frequency band `(len(edges) + 1, frames)` in [0, 1] at `hop`: each frame's
    power in each band (a Hann window of 4 hops centred on the frame), in dB under the loudest band
    and frame within LEVEL_SECONDS around it, mapped like `onset_levels`. The shape of each hit in
    time and frequency (how long it rings, where its energy sits), not the recording's gain."""
    frames = -(-len(y) // hop)
    n_fft = 4 * hop
    x = np.pad(np.asarray(y, np.float32), ((n_fft - hop) // 2, frames * hop + n_fft))
    spec = torch.stft(torch.from_numpy(x), n_fft, hop, window=torch.hann_window(n_fft), center=False,
                      return_complex=True)[:, :frames].abs().square().numpy().astype(np.float64)
    bins = np.searchsorted(np.fft.rfftfreq(n_fft, 1 / sr), edges)
    power = np.stack([band.sum(0) for band in np.split(spec, bins)])            # (bands, frames)
    level = 10 * np.log10(power + 1e-10)
    return under_loudest(level, level.max(0), hop, sr)


class Conditioner:
    """Audio at the model's rate -> the conditioning at the latent frame rate: transcription probabilities,
    then (models with `level`) the relative loudness, then (models with `bands`) that of each band."""

    def __init__(self, model: stage2_lib.Redrum, transcriber=None):
        self.transcriber = transcriber or load_conditioning()
        self.compression = model.compression
        if self.compression % self.transcriber.cfg.hop_length or self.transcriber.cfg.sr != model.sr:
            raise ModelError("the transcriber's frames do not fit the redrum model's latent frames")
        self.ratio = self.compression // self.transcriber.cfg.hop_length
        self.cfg = model.cfg
        if self.ratio % self.cfg.sub_frames:
            raise ModelError("the redrum model's sub-frames do not divide its latent frames")

    def __call__(self, y: np.ndarray, activations: np.ndarray | None = None) -> np.ndarray:
        """-> `(channels, frames)` at the latent frame rate: `classes * sub_frames` probabilities, then
        with `level` `sub_frames` of loudness, then with `bands` `sub_frames` per band. `activations`:
        the transcriber's of `y`, when already computed."""
        frames = -(-len(y) // self.compression)
        sub, hop, sr = self.cfg.sub_frames, self.transcriber.cfg.hop_length, self.transcriber.cfg.sr
        activations = self.transcriber.activations(y) if activations is None else activations
        parts = [latent_probs(activations, self.ratio, frames, sub)]
        if self.cfg.level:
            parts.append(latent_probs(onset_levels(y, hop, sr)[None], self.ratio, frames, sub))
        if self.cfg.bands:
            parts.append(latent_probs(band_levels(y, hop, sr), self.ratio, frames, sub))
        return np.concatenate(parts)

    def onsets(self, activations: np.ndarray) -> list[tuple[float, str]]:
        """The transcriber's activations -> its onsets (time s, class)."""
        t = self.transcriber
        return [(time, cls) for time, cls, _ in crnn.peak_pick(activations, t.cfg.frame_rate, t.cfg.classes,
                                                               t.threshold)]

    def pooled(self, p: np.ndarray) -> np.ndarray:
        """The conditioning `(channels, T)` -> probabilities `(classes, T)`, the max over sub-frames."""
        return p[:self.cfg.probabilities].reshape(self.cfg.classes, self.cfg.sub_frames, -1).max(1)


def choose_source_window(p_s: np.ndarray, frames: int, hop: int = 8) -> int:
    """The start frame of the source window that plays the most of its drums.

    Score: the sum over classes of each class's peak probability in the window
    (every drum heard at least once), plus a little of the total activity.
    """
    total = p_s.shape[1]
    if total <= frames:
        return 0
    best, best_score = 0, -1.0
    for start in range(0, total - frames + 1, hop):
        w = p_s[:, start:start + frames]
        score = float(w.max(1).sum() + 0.01 * w.sum())
        if score > best_score:
            best, best_score = start, score
    return best


@dataclass
class TransformResult:
    y: np.ndarray
    sr: int
    source_start: float                 # seconds: where the source window begins
    source_seconds: float
    windows: int
    target_probs: np.ndarray = field(repr=False)        # (classes, frames) at the latent rate
    attention: np.ndarray = field(repr=False)           # (layers, heads, T_t, T_s) of the first window
    frame_rate: float = 0.0
    decays: str = "source"
    guessed: tuple[str, ...] = ()       # classes the target plays and the source's window does not: the model's guess

    def to_json(self) -> dict:
        return {"method": "model", "sample_rate": self.sr, "source_window": [round(self.source_start, 3),
                round(self.source_start + self.source_seconds, 3)], "windows": self.windows,
                "decays": self.decays, "guessed": list(self.guessed)}

    def describe(self) -> str:
        """Where the sounds came from, and which drums the model had to guess, in a line."""
        return describe_window("the source", self.source_start, self.source_seconds, self.guessed)


def describe_window(whose: str, start: float, seconds: float, guessed: tuple[str, ...]) -> str:
    """"sounds from the source's 1.20-4.17 s[; no snare there, so the output's snare hits are the
    model's guess]": where a result's sounds came from, and which drums the model made up."""
    window = f"sounds from {whose}'s {start:.2f}-{start + seconds:.2f} s"
    if not guessed:
        return window
    return f"{window}; no {' or '.join(guessed)} there, so the output's {' and '.join(guessed)} hits are the model's guess"


def guessed_classes(source_onsets, target_onsets, window: tuple[float, float]) -> tuple[str, ...]:
    """The classes the target plays that the source does not within `window` (s): the drums the model
    has never heard from this source and must make up."""
    heard = {cls for time, cls in source_onsets if window[0] <= time < window[1]}
    return tuple(cls for cls in TRANSCRIPTION_CLASSES if cls in {c for _, c in target_onsets} - heard)


@dataclass
class Morph:
    """`interpolate_signals`' result: the steps, and what the sounds came from."""
    steps: list[np.ndarray]
    source_start: float                 # seconds into A: the window its sounds come from
    source_seconds: float
    guessed: tuple[str, ...] = ()       # classes B plays and A's window does not: the model's guess

    def describe(self) -> str:
        return describe_window("A", self.source_start, self.source_seconds, self.guessed)


class Redrummer:
    """The model and its conditioner, loaded once; `transform` and `interpolate` on signals."""

    def __init__(self, model: stage2_lib.Redrum | None = None, transcriber=None):
        self.model = (model or load_model()).eval()
        self.condition = Conditioner(self.model, transcriber)
        self.device = next(self.model.parameters()).device
        self.comp = self.model.compression

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.device)

    def source_memory(self, s_y: np.ndarray, p_s: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Source at the model's rate (and its conditioning, when already computed) -> mu_s `(1, latent, W)`,
        p_s `(1, channels, W)`, start frame."""
        p_s = self.condition(s_y) if p_s is None else p_s
        start = choose_source_window(self.condition.pooled(p_s), WINDOW_FRAMES)
        seg = s_y[start * self.comp:(start + WINDOW_FRAMES) * self.comp]
        seg = np.pad(seg, (0, WINDOW_FRAMES * self.comp - len(seg)))
        p = np.pad(p_s[:, start:start + WINDOW_FRAMES], ((0, 0), (0, max(0, start + WINDOW_FRAMES - p_s.shape[1]))))
        mu_s = self.model.encode(self._tensor(seg)[None, None])
        return mu_s, self._tensor(p)[None], start

    @staticmethod
    def target_windows(p_t: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Target probabilities `(channels, frames)` -> window starts (frames) and the windows
        `(n, channels, WINDOW_FRAMES)`, overlapping by FADE_FRAMES, the last padded with silence."""
        starts = window_starts(p_t.shape[1], WINDOW_FRAMES, FADE_FRAMES)
        p = np.pad(p_t, ((0, 0), (0, starts[-1] + WINDOW_FRAMES - p_t.shape[1])))
        return starts, np.stack([p[:, s:s + WINDOW_FRAMES] for s in starts])

    def render(self, mu_s, p_s, p_t: np.ndarray, n: int, batch_size: int = 4, progress=None):
        """Target probabilities `(classes, frames)` -> audio of `n` samples at the model's rate,
        in overlapping windows; also the attention of the first window and the number of windows.
        `progress(fraction)` is called after each batch of windows (and may raise to stop)."""
        starts, windows = self.target_windows(p_t)
        noise = torch.Generator(self.device).manual_seed(0)
        pieces, first = [], None
        for k in range(0, len(starts), batch_size):
            pt = self._tensor(windows[k:k + batch_size])
            mu_hat, _, attention = self.model(mu_s.expand(len(pt), -1, -1), p_s.expand(len(pt), -1, -1), pt)
            if first is None:
                first = torch.stack([a[0] for a in attention]).cpu().numpy()
            pieces += list(self.model.autoencoder.decode(mu_hat, noise)[:, 0].cpu().numpy())
            if progress is not None:
                progress(len(pieces) / len(starts))
        y = join_windows(pieces, [s * self.comp for s in starts], FADE_FRAMES * self.comp, n)
        return y, first, len(starts)

    def drums(self, y: np.ndarray, name: str) -> tuple[np.ndarray, list[tuple[float, str]]]:
        """`y` at the model's rate -> the conditioning transcriber's activations and onsets (time s, class).
        An `AudioError` when it hears no drum hit (a tone, a hum, a held pad: no sounds or rhythm to take)."""
        activations = self.condition.transcriber.activations(y)
        onsets = self.condition.onsets(activations)
        if not onsets:
            raise AudioError(f"{name}: no drum events found")
        return activations, onsets

    def transform_signal(self, s_y: np.ndarray, t_y: np.ndarray, sr: int, progress=None,
                         decays: str = "source", names: tuple[str, str] = ("source", "target")) -> TransformResult:
        """Source and target, mono at `sr` -> the source's sounds on the target's rhythm, at `sr`,
        the target's length. `decays`: "source" (shaped to the source's decays) or "model" (as decoded).
        Either without a drum hit is an `AudioError` naming it (`names`)."""
        return self.transform_signals(s_y, t_y, sr, progress, (decays,), names)[decays]

    @torch.no_grad()
    def transform_signals(self, s_y: np.ndarray, t_y: np.ndarray, sr: int, progress=None,
                          decays: tuple[str, ...] = DECAYS,
                          names: tuple[str, str] = ("source", "target")) -> dict[str, TransformResult]:
        """`transform_signal`'s result for each of `decays`, from one run of the model (the shaping
        comes last): {decays: result}."""
        if not decays or set(decays) - set(DECAYS):
            raise ValueError(f"decays must be some of {DECAYS}")
        msr = self.model.sr
        s, t = audio.resample(s_y, sr, msr), audio.resample(t_y, sr, msr)
        (a_s, on_s), (a_t, on_t) = self.drums(s, names[0]), self.drums(t, names[1])
        mu_s, p_s, start = self.source_memory(s, self.condition(s, a_s))
        p_t = self.condition(t, a_t)
        decoded, attention, windows = self.render(mu_s, p_s, p_t, len(t), progress=progress)
        shared = dict(sr=sr, source_start=start * self.comp / msr, source_seconds=WINDOW_FRAMES * self.comp / msr,
                      windows=windows, target_probs=self.condition.pooled(p_t), attention=attention,
                      frame_rate=msr / self.comp)
        shared["guessed"] = guessed_classes(on_s, on_t, (shared["source_start"],
                                                         shared["source_start"] + shared["source_seconds"]))
        results = {}
        for how in decays:
            y = shape_decays(decoded, s, t, msr, on_s, on_t) if how == "source" else decoded
            out = audio.resample(y, msr, sr)
            out = np.clip(np.pad(out, (0, max(0, len(t_y) - len(out))))[:len(t_y)], -1, 1).astype(np.float32)
            results[how] = TransformResult(out, decays=how, **shared)
        return results

    @torch.no_grad()
    def interpolate_signals(self, a_y: np.ndarray, b_y: np.ndarray, sr: int, steps: int,
                            space: str = "latent", names: tuple[str, str] = ("A", "B"),
                            decays: str = "source") -> Morph:
        """`steps` signals at `sr`, A's length, from A's rhythm (first) to B's (last), in A's sounds,
        with the window of A they come from and the drums of B's the model made up (`Morph`).
        Either without a drum hit is an `AudioError` naming it (`names`).

        latent: encode A, and A's sounds on B's rhythm (stage 2), interpolate the
        two latent sequences linearly and decode each step (the research's
        latent interpolation, with the timbre held to A's).
        conditioning: interpolate the transcription probabilities of A and B and
        let stage 2 play each mixture with A's sounds.
        decays: "source" shapes each step as `transform` shapes its output, after the hits of A's
        rhythm (every step but the last) and of B's (every step but the first), so that the last
        step sounds as `transform`'s output does; "model" leaves the steps as decoded.
        """
        if space not in INTERPOLATION_SPACES:
            raise ValueError(f"space must be one of {INTERPOLATION_SPACES}")
        if decays not in DECAYS:
            raise ValueError(f"decays must be one of {DECAYS}")
        msr = self.model.sr
        a, b = audio.resample(a_y, sr, msr), audio.resample(b_y, sr, msr)
        b = np.resize(b, len(a)) if len(b) < len(a) else b[:len(a)]     # B looped or cut to A's length
        (act_a, on_a), (act_b, on_b) = (self.drums(y, name) for y, name in zip((a, b), names))
        p_a, p_b = self.condition(a, act_a), self.condition(b, act_b)
        mu_s, p_s, start = self.source_memory(a, p_a)
        outs = []
        alphas = np.linspace(0.0, 1.0, steps)
        if space == "conditioning":
            for alpha in alphas:
                outs.append(self.render(mu_s, p_s, (1 - alpha) * p_a + alpha * p_b, len(a))[0])
        else:
            mu_a = self._latents(a)
            mu_ab = self._stage2_latents(mu_s, p_s, p_b)[..., :mu_a.shape[-1]]
            for alpha in alphas:
                z = (1 - alpha) * mu_a + alpha * mu_ab
                noise = torch.Generator(self.device).manual_seed(0)    # the same noise at every step
                y = self.model.autoencoder.decode(z, noise)[0, 0].cpu().numpy()
                outs.append(np.pad(y, (0, max(0, len(a) - len(y))))[:len(a)])
        if decays == "source":
            for k, alpha in enumerate(alphas):    # after A's hits (every step but the last), B's (all but the first)
                rhythms = ([(a, on_a)] if alpha < 1 else []) + ([(b, on_b)] if alpha > 0 else [])
                outs[k] = shape_to_rhythms(outs[k], a, msr, on_a, rhythms)
        window = start * self.comp / msr, WINDOW_FRAMES * self.comp / msr
        return Morph([np.clip(audio.resample(y, msr, sr)[:len(a_y)], -1, 1).astype(np.float32) for y in outs],
                     *window, guessed_classes(on_a, on_b, (window[0], window[0] + window[1])))

    def _latents(self, y: np.ndarray) -> torch.Tensor:
        frames = -(-len(y) // self.comp)
        return self.model.encode(self._tensor(np.pad(y, (0, frames * self.comp - len(y))))[None, None])

    def _stage2_latents(self, mu_s, p_s, p_t: np.ndarray) -> torch.Tensor:
        """mu_hat over the whole length of `p_t`: windows of WINDOW_FRAMES, joined at their midpoints."""
        starts, windows = self.target_windows(p_t)
        out = torch.zeros(1, mu_s.shape[1], starts[-1] + WINDOW_FRAMES, device=self.device)
        for s, window in zip(starts, windows):
            mu_hat = self.model(mu_s, p_s, self._tensor(window)[None])[0]
            keep = FADE_FRAMES // 2 if s else 0
            out[..., s + keep:s + WINDOW_FRAMES] = mu_hat[..., keep:]
        return out[..., :p_t.shape[1]]


def transform_files(source: Path, target: Path, redrummer: Redrummer | None = None,
                    progress=None, decays: str = "source") -> TransformResult:
    """Load both recordings (any format and rate, up to MAX_SECONDS) -> the result at the target's rate."""
    t_y, t_sr = audio.load(target, max_seconds=MAX_SECONDS, require_sound=True, what="target")
    s_y, _ = audio.load(source, sr=t_sr, max_seconds=MAX_SECONDS, require_sound=True, what="source")
    return (redrummer or Redrummer()).transform_signal(s_y, t_y, t_sr, progress, decays,
                                                       (Path(source).name, Path(target).name))


def interpolate_files(a: Path, b: Path, steps: int, space: str = "latent",
                      redrummer: Redrummer | None = None, decays: str = "source") -> tuple[Morph, int]:
    a_y, sr = audio.load(a, max_seconds=MAX_SECONDS, require_sound=True, what="A")
    b_y, _ = audio.load(b, sr=sr, max_seconds=MAX_SECONDS, require_sound=True, what="B")
    return (redrummer or Redrummer()).interpolate_signals(a_y, b_y, sr, steps, space,
                                                          (Path(a).name, Path(b).name), decays), sr


def plot(result: TransformResult, source: np.ndarray, target: np.ndarray, path: Path) -> None:
    """Source, output and target waveforms, the target's transcription and the attention heads (PNG)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from redrum_kit import files
    heads = result.attention[-1]                                     # last layer: (heads, T_t, T_s)
    fig = plt.figure(figsize=(11, 8))
    grid = fig.add_gridspec(5, max(1, len(heads)))
    for row, (name, y) in enumerate((("source", source), ("output", result.y), ("target", target))):
        ax = fig.add_subplot(grid[row, :])
        ax.plot(np.arange(len(y)) / result.sr, y, lw=0.4)
        ax.set_ylabel(name, fontsize=8)
        ax.set_xlim(0, len(target) / result.sr)
    ax = fig.add_subplot(grid[3, :])
    t = np.arange(result.target_probs.shape[1]) / result.frame_rate
    for cls, p in zip(TRANSCRIPTION_CLASSES, result.target_probs):
        ax.plot(t, p, lw=0.8, label=cls)
    ax.set_xlim(0, len(target) / result.sr)
    ax.set_ylabel("target\nprobability", fontsize=8)
    ax.legend(fontsize=6, ncol=5, loc="upper right")
    for h, w in enumerate(heads):
        ax = fig.add_subplot(grid[4, h])
        ax.imshow(w.T, aspect="auto", origin="lower", cmap="magma")
        ax.set_title(f"head {h + 1}", fontsize=8)
        ax.set_xlabel("target frame", fontsize=7)
        ax.set_ylabel("source frame", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    files.write_bytes(path, buffer.getvalue())
