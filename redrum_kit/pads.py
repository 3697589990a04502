"""Playable pads: a kit's sound per hit, live (MIDI, OSC) and offline (`redrum render`).

A pad either plays its samples (the velocity layer the velocity falls in) or,
when its kit entry has a `[pads.layering]` table, a layered oneshot: the
layering model encodes the pad's sample once, and each velocity moves that
latent along one PCA direction (soft hits at -depth, hard at +depth standard
deviations), on top of the pad's own slider positions. So every hit gets its
own blend: continuous velocity layers instead of a fixed few.

    sounds = PadSounds(kit, library, sr, layerer_for)   # renders are cached per velocity bucket
    sounds.sound(pad_index, velocity)                   # -> (time,) float32 at sr, before gain
    player = Player(sounds, sr)                         # the live mixer
    player.note_on(36, 100); block = player.render(256)

Gain (the SFZ curve and the pad's gain) and choke groups are applied by the
caller that places the hit, the same way in `Player` and `render.render`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from redrum_kit import audio
from redrum_kit.errors import RedrumError
from redrum_kit.library.kits import Kit
from redrum_kit.render import CHOKE_FADE, pad_gain, velocity_layer

BUCKETS = 16                # velocity buckets rendered per layered pad (1-127 split evenly)
POLYPHONY = 32              # voices sounding at once; the oldest is stolen beyond
SLIDER_CC = range(20, 31)   # CC 20-30 move PCA sliders 1-11 of the last pad played


def bucket_of(velocity: int, buckets: int = BUCKETS) -> int:
    return min(buckets - 1, (max(1, min(127, velocity)) - 1) * buckets // 127)


def bucket_velocity(bucket: int, buckets: int = BUCKETS) -> float:
    """The velocity a bucket is rendered at (its middle)."""
    return 1 + (bucket + 0.5) * 126 / buckets


def make_layered(kit: Kit, velocity_pc: int = 1, velocity_depth: float = 1.5) -> list[str]:
    """Give every pad of `kit` whose class has an installed layering model a layering table
    (in place). -> the names of those pads."""
    from redrum_kit.layering import checkpoint_path
    from redrum_kit.library.kits import PadLayering
    layered = []
    for pad in kit.pads:
        if checkpoint_path(pad.cls).is_file():
            pad.layering = PadLayering(velocity_pc=velocity_pc, velocity_depth=velocity_depth)
            layered.append(pad.name)
    return layered


class PadSounds:
    """The sound of every pad of `kit` at `sr`, per velocity, cached.

    layerer_for(cls) -> a `layering.Layerer` (only asked for pads with a layering table).
    """

    def __init__(self, kit: Kit, library, sr: int, layerer_for: Callable | None = None, buckets: int = BUCKETS,
                 mono: bool = True):
        from redrum_kit.render import load_kit_samples
        if not kit.pads:
            raise RedrumError(f"kit {kit.name!r} has no pads")
        self.kit, self.sr, self.buckets = kit, sr, buckets
        self.samples = load_kit_samples(kit, library, sr, mono)    # `mono` false: stereo files stay stereo
        self.notes = {p.note: i for i, p in enumerate(kit.pads)}
        self._lock = threading.Lock()
        self._layered: dict[int, list[np.ndarray]] = {}
        self._latent: dict[int, tuple] = {}
        for i, pad in enumerate(kit.pads):
            if pad.layering is not None:
                if layerer_for is None:
                    raise RedrumError(f"pad {pad.name!r} is layered, but no layering models were given")
                self._prepare(i, layerer_for(pad.layering.cls or pad.cls))

    def _prepare(self, index: int, layerer) -> None:
        """Encode the pad's sample once, then render every velocity bucket."""
        from redrum_kit import layering
        pad = self.kit.pads[index]
        y = self.samples[(index, velocity_layer(pad, 127))]
        hit, _ = layering.first_hit(y.mean(1) if y.ndim == 2 else y, self.sr)
        feat = layering.feature(audio.resample(hit, self.sr, layering.SR))
        self._latent[index] = (layerer, feat)
        self._layered[index] = [self._render(index, bucket_velocity(b, self.buckets)) for b in range(self.buckets)]

    def _render(self, index: int, velocity: float) -> np.ndarray:
        from redrum_kit import layering
        pad = self.kit.pads[index]
        spec = pad.layering
        layerer, feat = self._latent[index]
        sliders = {k: v for k, v in enumerate(spec.pca) if v}
        if spec.velocity_pc:
            k = spec.velocity_pc - 1
            sliders[k] = sliders.get(k, 0.0) + spec.velocity_depth * (2 * (velocity - 1) / 126 - 1)
        weights, _ = layerer.weights(feat, sliders)
        layers = layering.threshold_layers(weights, spec.threshold)
        y = layerer.library.render(layers, self.sr)
        return audio.retune(y, pad.tune) if pad.tune else y

    def sound(self, index: int, velocity: int) -> np.ndarray:
        """The pad's audio for a hit at `velocity` (before gain)."""
        layered = self._layered.get(index)
        if layered is not None:
            return layered[bucket_of(velocity, self.buckets)]
        return self.samples[(index, velocity_layer(self.kit.pads[index], velocity))]

    @property
    def channels(self) -> int:
        """2 when any sample is stereo (loaded with `mono` false), else 1."""
        return 2 if any(y.ndim == 2 for y in self.samples.values()) else 1

    def is_layered(self, index: int) -> bool:
        return index in self._layered

    def set_slider(self, index: int, slider: int, value: float) -> bool:
        """Move PCA slider `slider` (0-based) of a layered pad and re-render its buckets (the old
        renders keep playing until the new ones are ready). -> whether the pad is layered."""
        if index not in self._layered:
            return False
        pad = self.kit.pads[index]
        with self._lock:
            pca = list(pad.layering.pca) + [0.0] * max(0, slider + 1 - len(pad.layering.pca))
            pca[slider] = value
            pad.layering.pca = pca
            renders = [self._render(index, bucket_velocity(b, self.buckets)) for b in range(self.buckets)]
            self._layered[index] = renders
        return True


@dataclass
class Voice:
    index: int
    y: np.ndarray
    gain: float
    position: int = 0
    fade: np.ndarray | None = field(default=None, repr=False)   # a choked voice's last samples


class Player:
    """The live mixer: note-ons start voices, `render(frames)` mixes the next block.

    Thread-safe: MIDI/OSC threads call `note_on` / `control_change` while the audio
    callback calls `render`.
    """

    def __init__(self, sounds: PadSounds, polyphony: int = POLYPHONY):
        self.sounds, self.sr, self.polyphony = sounds, sounds.sr, polyphony
        self.channels = sounds.channels                  # 2: blocks are (frames, 2), mono sounds in the middle
        self.voices: list[Voice] = []
        self.last_pad: int | None = None
        self._lock = threading.Lock()
        self._fade = max(1, int(CHOKE_FADE * self.sr))
        self._moves: dict[tuple[int, int], int] = {}      # (pad, slider) -> latest CC value not yet rendered
        self._moved = threading.Condition()
        self._rendering = False
        self._renderer: threading.Thread | None = None

    def pad_index(self, pad: int | str) -> int:
        """A pad by MIDI note (int) or by name."""
        kit = self.sounds.kit
        if isinstance(pad, str):
            for i, p in enumerate(kit.pads):
                if p.name.lower() == pad.lower():
                    return i
            raise RedrumError(f"kit {kit.name!r} has no pad named {pad!r} "
                              f"(pads: {', '.join(p.name for p in kit.pads)})")
        if pad not in self.sounds.notes:
            raise RedrumError(f"no pad on note {pad} in kit {kit.name!r} "
                              f"(notes: {', '.join(str(n) for n in sorted(self.sounds.notes))})")
        return self.sounds.notes[pad]

    def note_on(self, pad: int | str, velocity: int) -> Voice | None:
        """Start pad `pad` (note or name) at `velocity` (1-127; 0 is a note-off: nothing to do
        for a oneshot). -> the voice."""
        if not 0 <= velocity <= 127:
            raise RedrumError(f"velocity must be 0-127, got {velocity}")
        index = self.pad_index(pad)
        if velocity == 0:
            return None
        p = self.sounds.kit.pads[index]
        voice = Voice(index, self.sounds.sound(index, velocity), pad_gain(p, velocity))
        with self._lock:
            if p.choke:
                for v in self.voices:
                    if v.fade is None and self.sounds.kit.pads[v.index].choke == p.choke:
                        self._choke(v)
            live = [v for v in self.voices if v.fade is None]
            if len(live) >= self.polyphony:
                self._choke(live[0])                     # voice stealing: the oldest goes
            self.voices.append(voice)
            self.last_pad = index
        return voice

    def _choke(self, v: Voice) -> None:
        rest = v.y[v.position:v.position + self._fade] * v.gain
        v.fade = rest * audio.fit_channels(np.linspace(1.0, 0.0, len(rest), dtype=np.float32), rest.ndim)
        v.position = 0

    def control_change(self, control: int, value: int) -> bool:
        """CC 20-30: PCA sliders 1-11 of the last pad played (0-127 -> -3..+3 standard deviations)."""
        if control not in SLIDER_CC or self.last_pad is None:
            return False
        return self.sounds.set_slider(self.last_pad, control - SLIDER_CC.start, 6.0 * value / 127 - 3.0)

    def handle(self, msg) -> None:
        """A mido message: note_on (velocity 0 = note-off), control_change; others ignored.
        Slider moves re-render in a background thread; a knob turned fast renders only its latest
        value, and notes keep playing the previous sound meanwhile."""
        if msg.type == "note_on":
            try:
                self.note_on(msg.note, msg.velocity)
            except RedrumError:
                pass                                     # a note with no pad: silence, as a sampler does
        elif msg.type == "control_change" and msg.control in SLIDER_CC and self.last_pad is not None:
            with self._moved:
                self._moves[(self.last_pad, msg.control)] = msg.value
                self._rendering = True
                self._moved.notify_all()
                if self._renderer is None:
                    self._renderer = threading.Thread(target=self._render_moves, daemon=True)
                    self._renderer.start()

    def _render_moves(self) -> None:
        while True:
            with self._moved:
                while not self._moves:
                    self._rendering = False
                    self._moved.notify_all()
                    self._moved.wait()
                self._rendering = True
                (index, control), value = self._moves.popitem()
            try:
                self.sounds.set_slider(index, control - SLIDER_CC.start, 6.0 * value / 127 - 3.0)
            except Exception:                             # a failed render keeps the previous sound
                pass

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until every slider move so far has been rendered (tests, offline use). -> settled."""
        with self._moved:
            return self._moved.wait_for(lambda: not self._moves and not self._rendering, timeout)

    def render(self, frames: int) -> np.ndarray:
        """The next `frames` samples of the mix, float32, clipped to +-1: `(frames,)`, or
        `(frames, 2)` for a kit with stereo samples."""
        out = np.zeros((frames, 2) if self.channels == 2 else frames, np.float32)
        with self._lock:
            keep = []
            for v in self.voices:
                src = v.fade if v.fade is not None else v.y
                gain = 1.0 if v.fade is not None else v.gain
                chunk = src[v.position:v.position + frames]
                out[:len(chunk)] += audio.fit_channels(chunk, out.ndim) * gain
                v.position += len(chunk)
                if v.position < len(src):
                    keep.append(v)
            self.voices = keep
        return np.clip(out, -1.0, 1.0)
