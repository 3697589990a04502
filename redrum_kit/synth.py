"""The built-in drum synthesiser: procedural oneshots and whole kits from a seed.

Each voice is a small recipe of classic drum-synthesis parts: sine or FM
bodies with pitch and amplitude envelopes, modal partials (membranes), banks
of detuned square oscillators (metal), and filtered noise (wires, air),
finished by saturation through pedalboard. Every parameter is drawn from a
wide range by a seeded generator, so the same seed always gives the same
sample and a thousand seeds give a thousand different ones.

A kit shares a *style* (a character: acoustic, analogue machine, lo-fi,
industrial...) across its voices, so a synthetic kit sounds like one kit.

Voices: kick, snare, clap, hat_closed, hat_open, tom, cymbal, rim. All
functions return mono float32 at `sr` (default 44.1 kHz), peak-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pedalboard
from scipy import signal

SR = 44100
VOICES = ("kick", "snare", "clap", "hat_closed", "hat_open", "tom", "cymbal", "rim")
# Library class of each voice (the rim is a percussion hit)
VOICE_CLASS = {v: v for v in VOICES} | {"rim": "perc"}
STYLES = ("acoustic", "analog", "digital", "lofi", "industrial")

# Frequencies (Hz) of the six square oscillators of the TR-808 cymbal/hat
_METAL_808 = np.array([205.3, 304.4, 369.6, 522.7, 540.0, 800.0])


@dataclass(frozen=True)
class Style:
    """Character shared by all voices of a kit."""
    name: str
    drive_db: float      # saturation
    noise_tilt: float    # >0 brighter noise, <0 darker
    decay_scale: float   # global length
    body_noise: float    # acoustic kits have more noise in bodies
    bit_depth: int       # 0 = no bit reduction


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator from a seed and a key, independent for each (seed, key)."""
    words = [seed & 0xFFFFFFFF] + [sum(ord(c) * 131 ** i for i, c in enumerate(str(k))) & 0xFFFFFFFF
                                   for k in key]
    return np.random.default_rng(np.random.SeedSequence(words))


def style_for(seed: int) -> Style:
    """The style of kit `seed`."""
    r = _rng(seed, "style")
    name = STYLES[int(r.integers(len(STYLES)))]
    base = {
        "acoustic":   (r.uniform(0, 4), r.uniform(-0.3, 0.2), r.uniform(0.9, 1.3), r.uniform(0.3, 0.6), 0),
        "analog":     (r.uniform(0, 8), r.uniform(-0.2, 0.3), r.uniform(0.8, 1.4), r.uniform(0.0, 0.2), 0),
        "digital":    (r.uniform(0, 6), r.uniform(0.0, 0.5), r.uniform(0.6, 1.1), r.uniform(0.0, 0.3), 0),
        "lofi":       (r.uniform(6, 16), r.uniform(-0.6, -0.1), r.uniform(0.7, 1.2), r.uniform(0.1, 0.4),
                       int(r.integers(8, 13))),
        "industrial": (r.uniform(12, 28), r.uniform(0.0, 0.6), r.uniform(0.6, 1.2), r.uniform(0.2, 0.6), 0),
    }[name]
    return Style(name, *base)


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(int(seconds * sr), dtype=np.float64) / sr


def _decay(t: np.ndarray, tau: float, attack: float = 0.0005, curve: float = 1.0) -> np.ndarray:
    """Amplitude envelope: linear attack then exponential decay (tau in seconds)."""
    env = np.exp(-((t / tau) ** curve))
    if attack > 0:
        env *= np.clip(t / attack, 0, 1)
    return env


def _noise(r: np.random.Generator, n: int, tilt: float) -> np.ndarray:
    """White noise, tilted brighter (tilt > 0) or darker (< 0) by a first-order filter."""
    w = r.standard_normal(n)
    if tilt > 0:
        w = w - tilt * np.concatenate(([0.0], w[:-1]))
    elif tilt < 0:
        w = signal.lfilter([1.0], [1.0, tilt], w)
    return w / (np.std(w) + 1e-9)


def _band(x: np.ndarray, sr: int, low: float | None, high: float | None, order: int = 2) -> np.ndarray:
    nyq = sr / 2 * 0.98
    if low and high:
        sos = signal.butter(order, [min(low, nyq * 0.9), min(high, nyq)], "bandpass", fs=sr, output="sos")
    elif low:
        sos = signal.butter(order, min(low, nyq * 0.9), "highpass", fs=sr, output="sos")
    elif high:
        sos = signal.butter(order, min(high, nyq), "lowpass", fs=sr, output="sos")
    else:
        return x
    return signal.sosfilt(sos, x)


def _sweep_phase(t: np.ndarray, f_end: float, f_start: float, sweep: float, sr: int) -> np.ndarray:
    """Phase (radians) of an exponential pitch drop from f_start to f_end over ~sweep seconds."""
    freq = f_end + (f_start - f_end) * np.exp(-t / max(sweep, 1e-4))
    return 2 * np.pi * np.cumsum(freq) / sr


def _metal(r: np.random.Generator, t: np.ndarray, sr: int, scale: float) -> np.ndarray:
    """A bank of six detuned square oscillators (the 808/909 metal)."""
    freqs = _METAL_808 * scale * r.uniform(0.97, 1.03, size=6)
    phases = r.uniform(0, 2 * np.pi, size=6)
    x = np.sign(np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phases[:, None])).sum(axis=0)
    return x / 6.0


def _modes(r: np.random.Generator, t: np.ndarray, f0: float, ratios: np.ndarray, tau: float) -> np.ndarray:
    """Decaying sinusoidal partials at f0 * ratios, higher ones shorter."""
    amps = r.uniform(0.3, 1.0, size=len(ratios)) / np.arange(1, len(ratios) + 1) ** 0.7
    taus = tau / ratios ** r.uniform(0.3, 0.9)
    phases = r.uniform(0, 2 * np.pi, size=len(ratios))
    return sum(a * np.sin(2 * np.pi * f0 * k * t + p) * np.exp(-t / d)
               for a, k, d, p in zip(amps, ratios, taus, phases))


def kick(r: np.random.Generator, st: Style, sr: int) -> np.ndarray:
    f_end = r.uniform(38, 75)
    f_start = f_end * r.uniform(2.0, 7.0)
    length = r.uniform(0.25, 1.3) * st.decay_scale
    t = _t(length + 0.1, sr)
    sweep = r.uniform(0.008, 0.07)
    phase = _sweep_phase(t, f_end, f_start, sweep, sr)
    if r.random() < 0.3:  # FM body: a sub-audio modulator thickens the tone
        phase = phase + r.uniform(0.2, 1.5) * np.sin(2 * np.pi * f_end * r.uniform(0.5, 1.5) * t) * np.exp(-t / 0.05)
    body = np.sin(phase) * _decay(t, length / 3, curve=r.uniform(0.8, 1.6))
    click = _band(_noise(r, len(t), st.noise_tilt), sr, r.uniform(1500, 4000), r.uniform(6000, 12000))
    click *= _decay(t, r.uniform(0.002, 0.008)) * r.uniform(0.03, 0.3)
    return body + click + st.body_noise * 0.05 * _noise(r, len(t), -0.5) * _decay(t, 0.04)


def snare(r: np.random.Generator, st: Style, sr: int) -> np.ndarray:
    f0 = r.uniform(150, 280)
    length = r.uniform(0.18, 0.6) * st.decay_scale
    t = _t(length + 0.05, sr)
    body = _modes(r, t, f0, np.array([1.0, 1.59, 2.14, 2.3]) * r.uniform(0.97, 1.03, 4), r.uniform(0.03, 0.12))
    body += 0.5 * np.sin(_sweep_phase(t, f0, f0 * r.uniform(1.2, 2.0), 0.01, sr)) * _decay(t, 0.04)
    wires = _band(_noise(r, len(t), st.noise_tilt), sr, r.uniform(800, 3000), r.uniform(7000, 16000))
    wires *= _decay(t, length / r.uniform(2.5, 5), curve=r.uniform(0.7, 1.3))
    mix = r.uniform(0.3, 0.85)
    return (1 - mix) * body / (np.abs(body).max() + 1e-9) + mix * wires / (np.abs(wires).max() + 1e-9)


def clap(r: np.random.Generator, st: Style, sr: int, wide: bool = False) -> np.ndarray:
    """A hand clap: a few bursts of band-passed noise, then a tail. `wide`: the kind recorded kits have
    (measured on the training kits' claps: after the loudest burst they fall 20 dB in 3-45 ms and 40 dB in
    70-250 ms, where the narrow design takes 15-225 ms and 150-510 ms; their spectra run from 100-1100 Hz
    to 1.6-5.9 kHz, where the narrow design's sit within 900-4500 Hz): a wider, gentler band, bursts
    that may swell to the last, a short tail and sometimes a low-mid body."""
    if wide:
        return _wide_clap(r, st, sr)
    length = r.uniform(0.2, 0.6) * st.decay_scale
    t = _t(length + 0.05, sr)
    noise = _band(_noise(r, len(t), st.noise_tilt), sr, r.uniform(700, 1400), r.uniform(2000, 5000), order=3)
    env = np.zeros_like(t)
    gap = r.uniform(0.006, 0.014)
    for k in range(int(r.integers(3, 6))):
        start = k * gap * r.uniform(0.8, 1.2)
        env += _struck(t, start, r.uniform(0.002, 0.006))
    tail_start = gap * 3
    env += r.uniform(0.2, 0.6) * _struck(t, tail_start, length / 4)
    return noise * env


def _struck(t: np.ndarray, start: float, tau: float) -> np.ndarray:
    """An exponential decay (tau in seconds) struck at `start`, silent before it."""
    return np.where(t >= start, np.exp(-(t - start) / tau), 0.0)


def _wide_clap(r: np.random.Generator, st: Style, sr: int) -> np.ndarray:
    low = float(np.exp(r.uniform(np.log(250), np.log(1400))))
    high = max(low * 1.8, float(np.exp(r.uniform(np.log(1800), np.log(8000)))))
    t = _t(0.5, sr)
    env = np.zeros_like(t)
    bursts, gap, swell = int(r.integers(2, 6)), r.uniform(0.004, 0.012), r.random() < 0.5
    start = 0.0
    for k in range(bursts):
        start = k * gap * r.uniform(0.7, 1.3)
        amp = (0.4 + 0.6 * (k + 1) / bursts) if swell else r.uniform(0.4, 1.0)
        env += amp * _struck(t, start, r.uniform(0.001, 0.008))
    tail, level = np.exp(r.uniform(np.log([0.015, 0.03]), np.log([0.07, 0.25])))
    env += level * _struck(t, start, tail * st.decay_scale)
    x = _band(_noise(r, len(t), st.noise_tilt), sr, low, high, order=int(r.integers(1, 4))) * env
    if r.random() < 0.35:
        f = float(np.exp(r.uniform(np.log(350), np.log(1200))))
        body = _band(_noise(r, len(t), 0.0), sr, f / 1.25, f * 1.25, order=2)
        x = x / (np.abs(x).max() + 1e-9) + r.uniform(0.3, 1.0) * body / (np.abs(body).max() + 1e-9) * _struck(
            t, start, r.uniform(0.01, 0.04))
    return x


def hat(r: np.random.Generator, st: Style, sr: int, open_: bool, dark: bool = False) -> np.ndarray:
    """A hi-hat: metal and noise over a high-pass. `dark`: a recorded acoustic hat's spectrum (measured on
    the training kits' closed hats: spectral centroids from 2 to 7.6 kHz, where the bright design sits at
    8-9.6 kHz): the high-pass far lower, a duller top and the stick's "chick" in the low mids, so that only
    its length and its texture tell it from a cymbal."""
    length = (r.uniform(0.35, 1.2) if open_ else r.uniform(0.04, 0.16)) * st.decay_scale
    t = _t(length * (3 if open_ else 4) + 0.02, sr)
    metal = _metal(r, t, sr, r.uniform(0.8, 2.2))
    noise = _noise(r, len(t), st.noise_tilt + 0.3)
    mix = r.uniform(0.2, 0.8)
    low, high, order = r.uniform(5000, 9000), r.uniform(12000, 18000), 3
    if dark:
        low, high, order = (float(np.exp(r.uniform(np.log(1000), np.log(4500)))),
                            float(np.exp(r.uniform(np.log(3000), np.log(9000)))), 2)
    x = _band(mix * metal + (1 - mix) * noise, sr, low, None, order=order)
    x = _band(x, sr, None, high)
    x = x * _decay(t, length / 2, attack=0.0003, curve=r.uniform(0.8, 1.2))
    if dark:
        chick = _band(_noise(r, len(t), st.noise_tilt), sr, r.uniform(500, 1200), r.uniform(2500, 5000))
        x = x / (np.abs(x).max() + 1e-9) + r.uniform(0.3, 1.0) * chick * _decay(t, r.uniform(0.003, 0.015))
    return x


def tom(r: np.random.Generator, st: Style, sr: int, pitch: float | None = None) -> np.ndarray:
    f0 = pitch if pitch is not None else r.uniform(70, 260)
    length = r.uniform(0.3, 1.0) * st.decay_scale
    t = _t(length + 0.1, sr)
    phase = _sweep_phase(t, f0, f0 * r.uniform(1.1, 1.8), r.uniform(0.02, 0.12), sr)
    body = np.sin(phase) * _decay(t, length / 3)
    body += 0.4 * _modes(r, t, f0, np.array([1.59, 2.14, 2.65]), length / 5)
    head = _band(_noise(r, len(t), st.noise_tilt), sr, 400, 5000) * _decay(t, 0.03)
    return body + (0.05 + st.body_noise) * 0.25 * head


def cymbal(r: np.random.Generator, st: Style, sr: int, dark: bool = False) -> np.ndarray:
    """A crash or a ride: two metal banks, FM and noise over a band-pass, a ride with a ping on top.
    `dark`: struck hard, a cymbal blooms in the low mids before it washes (the training kits' crashes have
    spectral centroids down to 1-1.5 kHz in their first 50 ms): the band-pass opens far lower and a few
    low inharmonic modes ring under the wash."""
    ride = r.random() < 0.4
    length = (r.uniform(0.7, 1.6) if ride else r.uniform(1.0, 2.5)) * st.decay_scale
    t = _t(min(length * 2.0, 4.5), sr)
    metal = _metal(r, t, sr, r.uniform(1.0, 3.0)) + 0.7 * _metal(r, t, sr, r.uniform(1.3, 4.0))
    fm = np.sin(2 * np.pi * r.uniform(300, 700) * t + r.uniform(2, 9) * np.sin(2 * np.pi * r.uniform(400, 1300) * t))
    noise = _noise(r, len(t), st.noise_tilt + 0.2)
    x = 0.5 * metal + 0.3 * fm + r.uniform(0.3, 1.2) * noise
    low = float(np.exp(r.uniform(np.log(300), np.log(2000)))) if dark else r.uniform(2500, 6000)
    x = _band(x, sr, low, r.uniform(12000, 19000), order=2)
    env = _decay(t, length / 2.5, attack=0.001, curve=r.uniform(0.7, 1.0))
    if ride:  # a ride has a clear ping on top of its wash
        ping = _modes(r, t, r.uniform(2000, 4500), np.array([1.0, 1.47, 2.09]), length / 2)
        x = 0.6 * x / (np.abs(x).max() + 1e-9) + 0.4 * ping / (np.abs(ping).max() + 1e-9)
    x = x * env
    if dark:
        bloom = _modes(r, t, r.uniform(250, 800), np.array([1.0, 1.41, 1.93, 2.53, 3.17, 3.9]), length / 4)
        x = x / (np.abs(x).max() + 1e-9) + r.uniform(0.5, 1.2) * bloom / (np.abs(bloom).max() + 1e-9)
    return x


def machine_kick(r: np.random.Generator, st: Style, sr: int) -> np.ndarray:
    """A drum-machine kick (the 808 kind): a low sine with little pitch drop and a long tail, hardly a click."""
    f_end = r.uniform(40, 62)
    length = r.uniform(0.4, 1.5) * st.decay_scale
    t = _t(length + 0.1, sr)
    body = np.sin(_sweep_phase(t, f_end, f_end * r.uniform(1.0, 2.0), r.uniform(0.005, 0.04), sr))
    click = _band(_noise(r, len(t), st.noise_tilt), sr, 1000, 6000) * _decay(t, 0.002) * r.uniform(0.0, 0.1)
    return body * _decay(t, length / 3, curve=r.uniform(0.9, 1.4)) + click


def machine_tom(r: np.random.Generator, st: Style, sr: int, pitch: float | None = None,
                bare: bool = False) -> np.ndarray:
    """A drum-machine tom (the 808 kind, a ringing bridged-T filter): a nearly pure sine with a slight
    pitch bend, no membrane overtones, a little noise at the attack; short (-30 dB in 0.05-0.4 s), most
    of its level gone in the first tens of ms, so that it starts like the kit's kick but dies sooner.
    `bare`: no noise at all, a sine alone (`oneshot` then neither saturates nor brightens it): as dark
    as a kick, so that only its pitch and its length tell it from one."""
    f0 = pitch if pitch is not None else r.uniform(70, 300)
    length = r.uniform(0.05, 0.35) * st.decay_scale
    t = _t(length * 1.5 + 0.05, sr)
    body = np.sin(_sweep_phase(t, f0, f0 * r.uniform(1.0, 1.25), r.uniform(0.01, 0.06), sr))
    fast = r.uniform(0.3, 0.8)   # the share of the level that falls away at once
    env = fast * _decay(t, length / 8) + (1 - fast) * _decay(t, length / 3, curve=r.uniform(0.9, 1.3))
    noise = _band(_noise(r, len(t), st.noise_tilt), sr, 200, 4000) * _decay(t, r.uniform(0.005, 0.03))
    return body * env + (0.0 if bare else r.uniform(0.0, 0.3)) * noise


def machine_cymbal(r: np.random.Generator, st: Style, sr: int) -> np.ndarray:
    """A drum-machine cymbal: the hats' six square oscillators through a mid and a high band-pass, the
    high band ringing longer, 0.5-1.6 s (the 808 design); no noise wash, no ping."""
    length = r.uniform(0.5, 1.6) * st.decay_scale
    t = _t(length * 2.0, sr)
    metal = _metal(r, t, sr, r.uniform(0.9, 1.2))
    mid = _band(metal, sr, r.uniform(3000, 4500), r.uniform(6000, 9000)) * _decay(t, length / 4)
    high = _band(metal, sr, r.uniform(7000, 9500), None, order=3) * _decay(t, length / 2.5)
    return r.uniform(0.3, 1.0) * mid + high


MACHINE_VOICES = {"kick": machine_kick, "tom": machine_tom, "cymbal": machine_cymbal}
BARE_MACHINE_TOMS = 0.5   # the share of drum-machine toms that are a bare sine (`machine_tom`)
METALS = ("hat_closed", "hat_open", "cymbal")


def rim(r: np.random.Generator, st: Style, sr: int) -> np.ndarray:
    t = _t(r.uniform(0.06, 0.25), sr)
    if r.random() < 0.35:  # cowbell: two square waves through a band-pass
        f = r.uniform(480, 620)
        x = np.sign(np.sin(2 * np.pi * f * t)) + np.sign(np.sin(2 * np.pi * f * 1.48 * t))
        return _band(x, sr, f * 0.9, f * 3.5) * _decay(t, r.uniform(0.03, 0.12))
    body = _modes(r, t, r.uniform(400, 1800), np.array([1.0, 1.71, 2.53]), r.uniform(0.008, 0.03))
    click = _band(_noise(r, len(t), st.noise_tilt), sr, 2000, 10000) * _decay(t, 0.002)
    return body + r.uniform(0.2, 0.8) * click


def fade_from_peak(y: np.ndarray, sr: int, seconds: float, db: float) -> np.ndarray:
    """`y` under an exponential fade from its peak that reaches -`db` dB after `seconds` (the attack
    untouched): a sampler's decay knob, or a gate."""
    peak = int(np.argmax(np.abs(y)))
    t = np.maximum(np.arange(len(y)) - peak, 0) / sr
    tau = seconds / np.log(10 ** (db / 20))
    return (y * np.exp(-t / tau)).astype(y.dtype)


# How long recorded metals ring: the time (s) the training kits' hats and cymbals take to fall 20 dB from
# their peak (loudest and softest layers; `Variants.recorded_rings`), where the designs above, saturated,
# take 0.14-0.43 s (closed hats; 10th-90th percentiles over 30 kits), 0.76-2.5 s (open hats), 1-5 s (cymbals)
RECORDED_RINGS = {"hat_closed": (0.015, 0.3), "hat_open": (0.09, 0.5), "cymbal": (0.06, 0.9)}


def _finish(x: np.ndarray, r: np.random.Generator, st: Style, sr: int, tone_hz: float | None = None,
            saturate: bool = True) -> np.ndarray:
    """Saturation (pedalboard), optional bit reduction, tone (low-pass), DC removal, fade, peak normalise.
    `saturate=False`: none of the kit style's saturation or bit reduction (a bare sine stays one)."""
    x = np.asarray(x, dtype=np.float32)
    x /= np.abs(x).max() + 1e-9
    drive = st.drive_db + r.uniform(0, 6)
    chain = [pedalboard.Distortion(drive_db=float(drive))] if drive > 1 and saturate else []
    if st.bit_depth and saturate:
        chain.append(pedalboard.Bitcrush(bit_depth=float(st.bit_depth)))
    if chain:
        x = pedalboard.Pedalboard(chain)(x[None, :], sr)[0]
    x = _band(x.astype(np.float64), sr, 20, tone_hz, order=2)  # remove DC the saturation adds
    n = min(len(x), int(0.005 * sr))
    x[-n:] *= np.linspace(1, 0, n)
    return (0.99 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


@dataclass(frozen=True)
class Variants:
    """The shares (0-1) of hits of each variant design, each drawn per seed, voice and index; all 0, the
    default, keeps every hit of the first designs, to the bit.

    dark_metals: hats and (non-machine) cymbals of the dark, acoustic kind (`hat`, `cymbal`).
    wide_claps: claps of the wide kind recorded kits have (`clap`).
    recorded_rings: hats and cymbals faded to fall 20 dB within a time drawn from the span recorded ones
        take (`RECORDED_RINGS`, log-uniform).
    """
    dark_metals: float = 0.0
    wide_claps: float = 0.0
    recorded_rings: float = 0.0


def oneshot(voice: str, seed: int, sr: int = SR, *, style: Style | None = None,
            index: int = 0, pitch: float | None = None, machine: bool = False,
            variants: Variants = Variants()) -> np.ndarray:
    """Synthesise one drum hit.

    Args:
        voice: one of `VOICES`.
        seed: any integer; the same (voice, seed, index) gives the same hit.
        sr: sample rate in Hz.
        style: the kit's character; default: the style of kit `seed`.
        index: a second, third... hit of the same voice in the same kit.
        pitch: fundamental in Hz (toms only), for tuned tom sets.
        machine: the drum-machine designs of kick, tom and cymbal (`machine_kick`...) instead.
        variants: the share of hits of each variant design (`Variants`); by default none.

    Returns:
        `(time,)` float32, peak 0.99.
    """
    if voice not in VOICES:
        raise ValueError(f"unknown voice {voice!r}; choose from {', '.join(VOICES)}")
    st = style or style_for(seed)
    machine = machine and voice in MACHINE_VOICES
    r = _rng(seed, voice, index, "machine") if machine else _rng(seed, voice, index)
    bare = False
    v = variants
    dark = voice in METALS and v.dark_metals > 0 and _rng(seed, voice, index, "dark").random() < v.dark_metals
    if machine and voice == "tom":
        bare = _rng(seed, voice, index, "bare").random() < BARE_MACHINE_TOMS
        x = machine_tom(r, st, sr, pitch, bare)
    elif machine:
        x = MACHINE_VOICES[voice](r, st, sr)
    elif voice == "hat_closed":
        x = hat(r, st, sr, open_=False, dark=dark)
    elif voice == "hat_open":
        x = hat(r, st, sr, open_=True, dark=dark)
    elif voice == "cymbal":
        x = cymbal(r, st, sr, dark=dark)
    elif voice == "tom":
        x = tom(r, st, sr, pitch)
    elif voice == "clap":
        x = clap(r, st, sr, wide=v.wide_claps > 0 and _rng(seed, voice, index, "wide").random() < v.wide_claps)
    else:
        x = {"kick": kick, "snare": snare, "rim": rim}[voice](r, st, sr)
    # saturation brightens everything; drums with a low body get a tone control after it
    tone_hz = {"kick": r.uniform(1500, 8000), "tom": r.uniform(2500, 10000)}.get(voice)
    y = _finish(x, r, st, sr, tone_hz, saturate=not bare)
    if voice in RECORDED_RINGS and v.recorded_rings > 0:
        ring = _rng(seed, voice, index, "ring")
        if ring.random() < v.recorded_rings:
            y = fade_from_peak(y, sr, float(np.exp(ring.uniform(*np.log(RECORDED_RINGS[voice])))), 20)
    return y


def kit(seed: int, sr: int = SR, machine: bool = False,
        variants: Variants = Variants()) -> list[tuple[str, str, np.ndarray]]:
    """A whole synthetic kit: `[(pad name, voice, y), ...]`.

    Twelve pads: kick, snare, clap, closed and open hat, three toms tuned as a
    set (low, mid, high), crash and ride, rim. `machine`: a drum machine's
    kick, toms and cymbals (see `machine_tom`), the toms tuned further apart. `variants`: the share of hits of
    each variant design (`Variants`).
    """
    st = style_for(seed)
    if machine:
        low, ratio = _rng(seed, "machine kit").uniform([65, 1.2], [130, 1.6])
    else:
        r = _rng(seed, "kit")
        low, ratio = r.uniform(75, 130), r.uniform(1.2, 1.45)
    pads = [("Kick", "kick", {}), ("Snare", "snare", {}), ("Clap", "clap", {}),
            ("Hat Closed", "hat_closed", {}), ("Hat Open", "hat_open", {}),
            ("Tom Low", "tom", {"pitch": low}), ("Tom Mid", "tom", {"pitch": low * ratio, "index": 1}),
            ("Tom High", "tom", {"pitch": low * ratio ** 2, "index": 2}),
            ("Crash", "cymbal", {}), ("Ride", "cymbal", {"index": 1}), ("Rim", "rim", {})]
    return [(name, voice, oneshot(voice, seed, sr, style=st, machine=machine, variants=variants, **kw))
            for name, voice, kw in pads]


def kit_name(seed: int, machine: bool = False) -> str:
    return f"{'machine' if machine else 'synth'}-{seed:04d}"


def bass_line(r: np.random.Generator, n: int, sr: int, onsets=(), kick_onsets=()) -> np.ndarray:
    """A monophonic synth bass line, `n` samples at `sr`, RMS 1 where it plays: not a drum.

    Mixed under drum clips, it teaches a transcriber that a low note is not a
    kick: a bass note holds its pitch (41-165 Hz), where a kick's falls and
    dies. Notes start on most of `kick_onsets` (a bass player locks to the
    kick), on some other `onsets` (seconds) and at random times; each lasts
    to the next note or sooner, a sine with a little second harmonic or a
    low-passed saw, with a soft or hard attack and a decay like a pluck or
    an organ.
    """
    seconds = n / sr
    starts = ([t for t in kick_onsets if r.random() < 0.6] + [t for t in onsets if r.random() < 0.15]
              + list(r.uniform(0, seconds, size=int(r.integers(1, 6)))))
    starts = np.unique(np.round(np.clip(starts, 0, seconds) * sr).astype(int))
    starts = starts[starts < n - int(0.01 * sr)]          # a note needs room to sound
    out = np.zeros(n)
    for i, s in enumerate(starts):
        end = min(n, s + int(r.uniform(0.08, 1.0) * sr), starts[i + 1] if i + 1 < len(starts) else n)
        t = np.arange(end - s) / sr
        f = 440.0 * 2 ** ((int(r.integers(28, 53)) - 69) / 12)
        phase = 2 * np.pi * f * t + r.uniform(0, 2 * np.pi)
        if r.random() < 0.5:
            x = np.sin(phase) + r.uniform(0, 0.4) * np.sin(2 * phase)
        else:
            saw = 2 * ((phase / (2 * np.pi)) % 1.0) - 1
            x = _band(saw, sr, None, f * r.uniform(2, 10))
        env = _decay(t, r.uniform(0.15, 3.0), attack=r.uniform(0.002, 0.025))
        release = min(len(t), int(r.uniform(0.005, 0.03) * sr))
        env[len(t) - release:] *= np.linspace(1, 0, release)
        out[s:end] += r.uniform(0.6, 1.0) * x * env
    playing = np.abs(out) > 1e-4
    if playing.any():
        out /= np.sqrt(np.mean(out[playing] ** 2))
    return out.astype(np.float32)
