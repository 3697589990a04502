"""The augmentations of the research, as small functions of (input, rng).

- on patterns: tempo scaling, swing, microtiming, event dropouts;
- on kits: oneshot pitch and gain, and (training clips only) shorter decays and
  a random EQ per pad (a kit's snare brighter, its toms boomier: kits no one recorded);
- on the mix: a pedalboard chain of compression, EQ, room reverb and saturation;
- under the mix: a synth bass line (`under_bass`), for a transcriber that must
  not hear a bass note as a kick or a tom; a noise floor (`under_noise`: hiss to
  rumble), for one that must not hear a recording's noise, or its start out of
  silence, as drums.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pedalboard
import scipy.fft

from redrum_kit import audio, synth
from redrum_kit.datasets.kits import SampleKit
from redrum_kit.rhythm.events import Pattern


@dataclass
class AugmentConfig:
    tempo_range: tuple[float, float] = (0.85, 1.15)   # tempo scale factor
    swing_max: float = 0.25                          # fraction of a 16th note
    microtiming_ms: float = 8.0                      # std of timing jitter
    dropout: float = 0.05                            # probability of dropping an event
    pitch_semitones: float = 2.0                     # oneshot retune range (+-)
    gain_db: float = 6.0                             # oneshot gain range (+-)
    mix_chain: float = 0.7                           # probability of the pedalboard chain on a mix
    decay: float = 0.0                               # probability that a pad's decay is shortened
    pad_eq_db: float = 0.0                           # each pad through its own smooth random EQ, +-dB (0: off)
    pad_tilt_db: float = 0.0                         # each pad darker or brighter: a random tilt, +-dB an octave
    pad_pitch_semitones: float = 0.0                 # training pads retuned within this range instead (0: off)
    bleed: float = 0.0                               # probability that a kit rings as one recorded in a room


def augment_pattern(p: Pattern, rng: np.random.Generator, cfg: AugmentConfig) -> Pattern:
    """Tempo scaling, swing (off-16ths delayed), microtiming, dropouts. Classes and order of bars stay."""
    p = p.stretched(float(rng.uniform(*cfg.tempo_range)))
    step = 60.0 / p.tempo / 4
    swing = float(rng.uniform(0, cfg.swing_max))
    jitter = cfg.microtiming_ms / 1000
    events = []
    for e in p.events:
        if rng.random() < cfg.dropout:
            continue
        position = e.time / step
        t = e.time
        if abs(position - round(position)) < 0.2 and round(position) % 2 == 1:
            t += swing * step
        events.append(replace(e, time=max(0.0, t + float(rng.normal(0, jitter)))))
    return Pattern(events, p.tempo, p.length, p.beats_per_bar, p.name, dict(p.meta))


def augment_kit(kit: SampleKit, rng: np.random.Generator, cfg: AugmentConfig) -> SampleKit:
    """Each pad retuned and re-gained by its own random amount (all its layers alike); with
    probability `cfg.decay` its decay shortened too (see `shorten_decay`), and with `cfg.pad_eq_db`
    its spectrum tilted by its own smooth EQ curve (see `equalise`), with `cfg.pad_tilt_db` made darker
    or brighter by its own straight tilt (see `tilt`): a hat as dark as a cymbal, a tom as dark as a kick;
    `cfg.pad_pitch_semitones` (when set) widens the retune: a hat played slower rings darker and longer;
    with probability `cfg.bleed` every pad rings with the kit's shells as in a room (see `room_rings`)."""
    samples = {}
    pads = range(len(kit.kit.pads))
    semitones = cfg.pad_pitch_semitones or cfg.pitch_semitones
    amounts = {i: (float(rng.uniform(-semitones, semitones)),
                   float(10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20))) for i in pads}
    # from child generators: `rng`'s own draws (rhythm, mix) stay those of a build without them
    fades, curves = {}, {}
    if cfg.decay > 0:
        child = rng.spawn(1)[0]
        fades = {i: float(child.uniform(0.2, 1.0)) for i in pads if child.random() < cfg.decay}
    if cfg.pad_eq_db > 0:
        child = rng.spawn(1)[0]
        curves = {i: [child.uniform(size=3) for _ in range(3)] for i in pads}
    tilts = {}
    if cfg.pad_tilt_db > 0:
        child = rng.spawn(1)[0]
        tilts = {i: float(child.uniform(-cfg.pad_tilt_db, cfg.pad_tilt_db)) for i in pads}
    rings = {}
    if cfg.bleed > 0:
        child = rng.spawn(1)[0]
        if child.random() < cfg.bleed:
            rings = room_rings(kit, child)
    for (i, j), y in kit.samples.items():
        semis, gain = amounts[i]
        y = audio.retune(y, semis) * gain if abs(semis) > 0.05 else y * gain
        y = shorten_decay(y, kit.sr, fades[i]) if i in fades else y
        y = equalise(y, kit.sr, cfg.pad_eq_db, curves[i]) if i in curves else y
        y = tilt(y, kit.sr, tilts[i]) if i in tilts else y
        samples[(i, j)] = with_ring(y, kit.sr, rings[i]) if i in rings else y
    return SampleKit(kit.kit, samples, kit.sr)


DRUMS = {"kick", "snare", "tom"}
SHELLS = {"snare", "tom"}      # what rings along with anything hit in a room (a kick's ring lies too low to matter)


def room_rings(kit: SampleKit, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Per pad, what a room microphone hears ringing along with it: two of the kit's shells (snare, toms;
    their dry first layers) band-passed between corners drawn once for the kit (150-300 Hz and 0.8-2.5 kHz,
    -12 dB an octave outside), their attacks swelled over 5-20 ms, summed at RMS 1 over their first 100 ms
    and scaled by the pad's own -3..+9 dB (hats, cymbals, percussion) or -24..-12 dB (the drums themselves).
    A closed hat from a stereo room recording (ForzeeStereo) holds 2-4 dB more energy at 250-1000 Hz than at
    4-8 kHz over its first 100 ms, the training kits' 0.5-29 dB less: that is the kit ringing, not the hat.
    {} without shells."""
    sr, head = kit.sr, int(0.1 * kit.sr)
    shells = [y for (i, j), y in kit.samples.items()
              if j == 0 and kit.kit.pads[i].cls in SHELLS and len(y)]
    if not shells:
        return {}
    low, high = float(rng.uniform(150, 300)), float(rng.uniform(800, 2500))
    swell = int(rng.uniform(0.005, 0.02) * sr)
    soft = []
    for y in shells:
        x = _through(y, sr, lambda f: -12 * np.abs(np.log2(np.clip(f, low, high) / np.maximum(f, 1.0))))
        x = x.astype(np.float64)
        x[:swell] *= np.linspace(0, 1, len(x[:swell]))
        soft.append(x / max(np.sqrt(np.mean(x[:head] ** 2)), 1e-9))
    rings = {}
    for i in range(len(kit.kit.pads)):
        picked = [soft[k] for k in rng.choice(len(soft), size=min(2, len(soft)), replace=False)]
        ring = np.zeros(max(len(x) for x in picked))
        for x in picked:
            ring[:len(x)] += x / len(picked)
        loud = (-24, -12) if kit.kit.pads[i].cls in DRUMS else (-3, 9)   # over a hat as loud as it, or louder
        rings[i] = ring * 10 ** (rng.uniform(*loud) / 20)
    return rings


def with_ring(y: np.ndarray, sr: int, ring: np.ndarray) -> np.ndarray:
    """`y` plus `ring` (from `room_rings`) scaled to `y`'s RMS over its first 100 ms, cut to `y`'s length."""
    level = np.sqrt(np.mean(np.square(y[:int(0.1 * sr)], dtype=np.float64))) if len(y) else 0.0
    out = np.asarray(y, np.float64).copy()
    n = min(len(y), len(ring))
    out[:n] += level * ring[:n]
    return out.astype(np.float32)


def smooth_curve(x: np.ndarray, bumps) -> np.ndarray:
    """A smooth random gain curve over positions `x` in 0..1, within -1..1: the sum of Gaussian
    bumps, each `(centre, width, gain)` drawn uniform in 0..1 (width mapped to 0.05-0.3 of the
    axis, gain to -1..1), clipped. The shape of a few broad EQ moves."""
    curve = np.zeros_like(x, dtype=float)
    for centre, width, gain in bumps:
        curve += (2 * gain - 1) * np.exp(-0.5 * ((x - centre) / (0.05 + 0.25 * width)) ** 2)
    return np.clip(curve, -1, 1)


def equalise(y: np.ndarray, sr: int, max_db: float, bumps, low_hz: float = 30.0) -> np.ndarray:
    """`y` through a smooth EQ (`smooth_curve` on a log-frequency axis from `low_hz` to Nyquist,
    +-`max_db`), at the RMS it had: the timbre moves, not the level."""
    def gain_db(freqs):
        x = np.clip(np.log(np.maximum(freqs, low_hz) / low_hz) / np.log(sr / 2 / low_hz), 0, 1)
        return max_db * smooth_curve(x, bumps)
    return _through(y, sr, gain_db)


def tilt(y: np.ndarray, sr: int, db_per_octave: float, pivot_hz: float = 1000.0, low_hz: float = 30.0) -> np.ndarray:
    """`y` darker (negative) or brighter (positive): a straight line on a log-frequency axis through 0 dB
    at `pivot_hz` (flat below `low_hz`), at the RMS it had."""
    return _through(y, sr, lambda freqs: db_per_octave * np.log2(np.maximum(freqs, low_hz) / pivot_hz))


def _through(y: np.ndarray, sr: int, gain_db) -> np.ndarray:
    """`y` through the zero-phase filter `gain_db(frequencies in Hz) -> dB`, rescaled to the RMS it had."""
    if not len(y):
        return y
    n = scipy.fft.next_fast_len(len(y), real=True)     # zero-padded: a prime length would be slow
    out = scipy.fft.irfft(scipy.fft.rfft(y, n) * 10 ** (gain_db(np.fft.rfftfreq(n, 1 / sr)) / 20), n)[:len(y)]
    rms_in, rms_out = np.sqrt(np.mean(np.square(y, dtype=np.float64))), np.sqrt(np.mean(out ** 2))
    return (out * (rms_in / rms_out if rms_out > 0 else 0.0)).astype(np.float32)


def blend(y: np.ndarray, other: np.ndarray, weight: float, sr: int) -> np.ndarray:
    """`y` layered with `other`, a drum of the same class from another kit, as a producer layers two
    samples: their starts (first sample at a tenth of the peak) aligned, each brought to one RMS over its
    first 100 ms, mixed `1 - weight` to `weight`, the result at `y`'s level over that window. A new drum
    between two kits, where seven recorded kits give only their own."""
    def level(x: np.ndarray, at: int) -> float:
        return float(np.sqrt(np.mean(np.square(x[at:at + int(0.1 * sr)], dtype=np.float64)))) if x.size else 0.0

    a, b = audio.start_sample(y), audio.start_sample(other)
    ly, lo = level(y, a), level(other, b)
    if not (ly > 0 and lo > 0):
        return y
    other = other[b:] * (ly / lo)
    out = np.zeros(max(len(y), a + len(other)), np.float64)
    out[:len(y)] += (1 - weight) * y
    out[a:a + len(other)] += weight * other
    mixed = level(out, a)
    return (out * (ly / mixed if mixed > 0 else 1.0)).astype(np.float32)


def shorten_decay(y: np.ndarray, sr: int, share: float, floor_s: float = 0.03) -> np.ndarray:
    """`y` with an exponential fade that reaches -30 dB after `share` of the time `y` itself takes to
    fall 30 dB below its peak (at least `floor_s`): the same drum with a shorter amp envelope, as a
    sampler's decay knob or a gate gives (short 808 toms, choked cymbals). The attack is untouched."""
    level = np.abs(y)
    if not level.size or level.max() <= 0:
        return y
    peak = int(np.argmax(level))
    loud = np.nonzero(level > level.max() * 10 ** (-30 / 20))[0]
    natural = (loud[-1] - peak) / sr
    target = max(floor_s, share * natural)
    if target >= natural:
        return y
    return synth.fade_from_peak(y, sr, target, 30)


def mix_chain(rng: np.random.Generator, probability: float = 1.0) -> pedalboard.Pedalboard:
    """With `probability`, a random but plausible mix bus: compression, EQ, room, saturation
    (each maybe); else an empty chain. Each call on audio starts from a clean state."""
    chain = []
    if rng.random() >= probability:
        return pedalboard.Pedalboard(chain)
    if rng.random() < 0.6:
        chain.append(pedalboard.Compressor(threshold_db=float(rng.uniform(-30, -8)), ratio=float(rng.uniform(1.5, 8)),
                                           attack_ms=float(rng.uniform(1, 30)), release_ms=float(rng.uniform(40, 300))))
    if rng.random() < 0.6:
        chain.append(pedalboard.LowShelfFilter(cutoff_frequency_hz=float(rng.uniform(60, 300)),
                                               gain_db=float(rng.uniform(-6, 6))))
        chain.append(pedalboard.HighShelfFilter(cutoff_frequency_hz=float(rng.uniform(3000, 9000)),
                                                gain_db=float(rng.uniform(-9, 6))))
    if rng.random() < 0.4:
        chain.append(pedalboard.Reverb(room_size=float(rng.uniform(0.05, 0.5)), damping=float(rng.uniform(0.2, 0.9)),
                                       wet_level=float(rng.uniform(0.03, 0.25)), dry_level=1.0))
    if rng.random() < 0.25:
        chain.append(pedalboard.Distortion(drive_db=float(rng.uniform(2, 15))))
    return pedalboard.Pedalboard(chain)


def process_mix(y: np.ndarray, sr: int, chain: pedalboard.Pedalboard) -> np.ndarray:
    """Run the chain, then bring the peak back to at most 0.99 (never louder)."""
    if len(chain):
        y = chain(y[None, :].astype(np.float32), sr)[0]
    return _under_full_scale(y)


def _under_full_scale(y: np.ndarray) -> np.ndarray:
    """`y` turned down as a whole if its peak passes 0.99 (never turned up), as float32."""
    peak = audio.peak_level(y)
    return (y * (0.99 / peak) if peak > 0.99 else y).astype(np.float32)


def under_bass(y: np.ndarray, sr: int, events, rng: np.random.Generator, db: float) -> np.ndarray:
    """`y` with a bass line (`synth.bass_line`, locked to the kicks of `events`) at `db` dB to the
    drums' RMS; the mix turned down as a whole if its peak would pass 0.99."""
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0
    times = [t for t, _, _ in events]
    bass = synth.bass_line(rng, len(y), sr, times, [t for t, cls, _ in events if cls == "kick"])
    return _under_full_scale(y + bass * (max(rms, 1e-3) * 10 ** (db / 20)))


NOISE_TILT = (0.0, 2.0)   # a noise floor's power falls as 1/f**tilt: 0 hiss (white), 1 room (pink), 2 rumble


def noise_floor(n: int, sr: int, rng: np.random.Generator, tilt: float) -> np.ndarray:
    """`n` samples of Gaussian noise at unit RMS whose power falls as `1 / f**tilt` (flat under 20 Hz)."""
    spectrum = scipy.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    noise = scipy.fft.irfft(spectrum * f ** (-tilt / 2), n)
    return (noise / max(float(np.sqrt(np.mean(np.square(noise)))), 1e-12)).astype(np.float32)


def under_noise(y: np.ndarray, sr: int, rng: np.random.Generator, db: float) -> np.ndarray:
    """`y` over a noise floor `db` dB (RMS) under its peak, from its first sample to its last, of a
    colour drawn from NOISE_TILT (tape hiss to room rumble); turned down as a whole if its peak would
    pass 0.99."""
    peak = audio.peak_level(y)
    noise = noise_floor(len(y), sr, rng, float(rng.uniform(*NOISE_TILT)))
    return _under_full_scale(y + noise * (max(peak, 1e-3) * 10 ** (db / 20)))


@dataclass
class ClipAugmentConfig:
    """RAVE's augmentations of whole clips, for the autoencoders."""
    mute: float = 0.05          # probability of an all-silent clip (the model must learn silence)
    gain_db: float = 6.0        # clip gain range (+-), never pushing the peak past 0.99
    compress: float = 0.2       # probability of a random compressor
    pitch: float = 0.3          # probability of a retune ...
    pitch_semitones: float = 1.5  # ... within this range (+-)
    dequantise_bits: int = 16   # add uniform noise of one LSB at this depth (undoes int16 storage steps)


def augment_clip(y: np.ndarray, length: int, sr: int, rng: np.random.Generator,
                 cfg: ClipAugmentConfig) -> np.ndarray:
    """A random crop of `length` samples of `y`, retuned, compressed, re-gained, maybe muted."""
    if rng.random() < cfg.pitch:
        y = audio.retune(y, float(rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones)))
    if len(y) < length:
        y = np.pad(y, (0, length - len(y)))
    start = int(rng.integers(0, len(y) - length + 1))
    y = np.array(y[start:start + length], dtype=np.float32)
    if rng.random() < cfg.mute:
        return np.zeros(length, np.float32)
    if rng.random() < cfg.compress:
        chain = pedalboard.Pedalboard([pedalboard.Compressor(
            threshold_db=float(rng.uniform(-30, -10)), ratio=float(rng.uniform(2, 8)),
            attack_ms=float(rng.uniform(1, 20)), release_ms=float(rng.uniform(50, 250)))])
        y = chain(y[None], sr)[0]
    peak = float(np.max(np.abs(y)))
    gain = 10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20)
    if peak > 0:
        gain = min(gain, 0.99 / peak)
    y = y * gain
    if cfg.dequantise_bits:
        y = y + (rng.random(length, dtype=np.float32) - 0.5) / 2 ** (cfg.dequantise_bits - 1)
    return y.astype(np.float32)
