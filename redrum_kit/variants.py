"""Which drum of its class a hit is: the low or the high tom, the closed or the open hat.

The transcriber hears five classes, but a kit has more drums than that: two to four toms tuned
apart, a hat played closed and open. One measure per class tells them apart on any recording
(`measures`):
- a tom's pitch: its fundamental, the lowest strong peak (log2 Hz) of its 70-500 Hz spectrum 20-60 ms
  after the hit that grew at the hit (`tom_pitch`; a kick's tail rings below 70 Hz, the drum before
  under it does not grow), beside the centroid of that band while it rings (`tom_centroid`);
- a hat's ring: log2 of the seconds its level above 5 kHz takes to fall 20 dB before the next
  bright onset, over the level a crash left there (`hat_ring`).
Toms whose pitches lie close are one voice (a gap of SPLIT between sorted pitches starts another
where their centroids part too);
a hat is open when it rings past OPEN_RING, or well past the recording's closed hats (`split`). Then
- transcription writes each voice on its own General MIDI note (toms low to high, closed hat 42,
  open hat 46; `Voices.note`),
- replacement plays, for each of the target's voices, the source's voice in the same place (the
  lowest tom on the lowest, the open hat on the open; `match`),
- a kit's toms are voices too, pitched on their samples (`pad_toms`).
Hits whose measure cannot be taken (another drum too soon after, or on them) join their class's
commonest voice.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import torch

from redrum_kit import audio
from redrum_kit.drums import GM_NOTE
from redrum_kit.models.transcriber import parabolic_offset
from redrum_kit.rhythm.events import EVENT_CLASS

MEASURED = ("tom", "hat")
SPLIT = 0.15                        # octaves between two toms' pitches that make them two voices
AGREE = 0.05                        # octaves their centroids' medians must part by as well
MOST = 4                            # toms
OPEN_RING = -1.8                    # log2 s: a hat that takes longer than 0.29 s to fall 20 dB is open
OPEN_OVER = 1.5                     # octaves over the recording's closed hats (the lower quartile of its rings)
OPEN_FLOOR = np.log2(0.1)           # that rise is open on a drum machine's hats, from 0.1 s on
TOM_BAND = (50.0, 500.0)            # Hz: the centroid's band
TOM_LOWEST = 70.0                   # Hz: the fundamental's floor (the synthesiser's lowest tom; kick tails ring below)
TOM_WINDOW = (0.02, 0.06)           # s after the hit: the fundamental's window, before a falling pitch settles
TOM_PEAK_DB = 6.0                   # a peak this close to the strongest may be the fundamental
TOM_GROWN_DB = 1.0                  # when it is this much louder than in the 30 ms before the hit
HAT_HZ = 5000.0
FRAME = 0.005                       # s: the hop of the level above HAT_HZ
LOW = ("kick", "snare", "tom")      # the onsets that end a tom's measure
BRIGHT = ("hat", "snare", "cymbal")  # and a hat's
LAYERED = 0.03                      # s: onsets this close are one hit's layers
WASH = 2.0                          # s a cymbal's wash lies under the hats after it
TOM_NOTES = {1: [45], 2: [43, 48], 3: [43, 47, 50], 4: [41, 45, 48, 50]}   # General MIDI, low to high
CLASS_NOTE = {cls: GM_NOTE[of] for cls, of in EVENT_CLASS.items()}
OPEN_HAT_NOTE = GM_NOTE["hat_open"]


@dataclass
class Voices:
    """The voices of a recording (or a kit): the drums of each class told apart."""
    cls: dict[str, str] = field(default_factory=dict)       # voice -> transcription class
    key: dict[str, float] = field(default_factory=dict)     # voice -> its measure (median of its hits)
    note: dict[str, int] = field(default_factory=dict)      # voice -> General MIDI note
    of_event: list[str] = field(default_factory=list)       # each event's voice

    def of_class(self, cls: str) -> list[str]:
        """The class's voices, lowest measure first (unmeasured ones last)."""
        return sorted((v for v, c in self.cls.items() if c == cls), key=lambda v: self.key.get(v, np.inf))


class _Levels:
    """The level above HAT_HZ of a signal, FRAME by FRAME, for the hats' ring."""

    def __init__(self, y: np.ndarray, sr: int):
        n_fft = 256
        self.hop = max(1, int(FRAME * sr))
        x = torch.stft(torch.from_numpy(np.ascontiguousarray(y, np.float32)), n_fft, self.hop,
                       window=torch.hann_window(n_fft), return_complex=True).abs() ** 2
        bins = np.fft.rfftfreq(n_fft, 1 / sr) >= HAT_HZ
        self.power = x[torch.from_numpy(bins)].sum(0).double().numpy()
        self.sr = sr

    def frame(self, t: float) -> int:
        return int(round(t * self.sr / self.hop))


def hat_ring(levels: _Levels, time: float, until: float, washed: bool = False) -> float | None:
    """log2 of the seconds a hat at `time` takes to fall 20 dB above HAT_HZ, before `until` (the next
    bright onset); when it does not, from the rate it falls there. `washed`: over the level a ringing
    cymbal left before it. None when under 50 ms can be heard."""
    p = levels.power
    lo = levels.frame(time - 0.02)
    if lo < 0 or lo >= len(p):
        return None
    peak = lo + int(np.argmax(p[lo:levels.frame(time + 0.03) + 1]))
    a, b = peak + levels.frame(0.02), min(len(p), levels.frame(min(until - 0.005, time + 0.25)))
    if b - a < levels.frame(0.05):
        return None
    before = p[max(0, levels.frame(time - 0.03)):max(1, levels.frame(time - 0.005))].mean() if washed else 0.0
    top = p[peak] - before
    if top <= 0:
        return None
    db = 10 * np.log10(np.maximum(p[peak:b] - before, top * 1e-6) / top)
    fallen = np.flatnonzero(db <= -20.0)
    if len(fallen):                                     # it fell 20 dB in time: how long it took
        return float(np.log2(max(fallen[0], 1) * levels.hop / levels.sr))
    t = np.arange(peak, b)[a - peak:] * levels.hop / levels.sr
    rate = -np.polyfit(t, db[a - peak:], 1)[0]           # else: the dB a second it falls, on
    return float(np.log2(20.0 / np.clip(rate, 5.0, 1000.0)))


def _power(y: np.ndarray, a: int, b: int, n: int) -> np.ndarray:
    """The Hann-windowed power spectrum of `y[a:b]`, zero-padded to `n`."""
    seg = np.asarray(y[a:b], np.float64)
    return np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n)) ** 2


def tom_pitch(y: np.ndarray, sr: int, time: float, until: float) -> float | None:
    """log2 Hz of a tom's fundamental: the lowest peak of its TOM_LOWEST-500 Hz spectrum 20-60 ms after
    `time` (or until `until`, the next low onset) within TOM_PEAK_DB of the strongest and TOM_GROWN_DB
    louder than in the 30 ms before the hit (the strongest always counts). None when under 30 ms can be heard.

    Session 30. The centroid (`tom_centroid`) moves with how hard a tom is hit, its overtones ringing
    louder; the fundamental does not. Early, since a tom's pitch falls as it rings (the synthesiser's
    toms start up to 1.8 times higher): a fill on one tom is measured at the same point of its fall
    each time. A kick's tail rings below TOM_LOWEST, and the drum before, still ringing, did not grow."""
    a, b = int((time + TOM_WINDOW[0]) * sr), int(min(until - 0.005, time + TOM_WINDOW[1]) * sr)
    if b - a < int(0.03 * sr) or a < 0:
        return None
    n = 1 << int(np.ceil(np.log2(max(b - a, 8192 * sr // 22050))))
    f = np.fft.rfftfreq(n, 1 / sr)
    band = (f >= TOM_LOWEST) & (f <= TOM_BAND[1])
    p = _power(y, a, b, n)[band]
    if not p.max() > 0:
        return None
    db = 10 * np.log10(np.maximum(p / p.max(), 1e-12))
    inner = db[1:-1]
    ok = (inner >= db[:-2]) & (inner >= db[2:]) & (inner > -TOM_PEAK_DB)
    pre, hit = int((time - 0.035) * sr), int((time - 0.005) * sr)
    if pre >= 0:
        before = _power(y, pre, hit, n)[band] * (b - a) / (hit - pre)       # as long a window as after the hit
        ok &= (10 * np.log10((p[1:-1] + 1e-20) / (before[1:-1] + 1e-20)) > TOM_GROWN_DB) | (inner >= 0.0)
    peaks = np.flatnonzero(ok) + 1
    k = int(peaks[0]) if len(peaks) else int(np.argmax(db))
    shift = parabolic_offset(db[k - 1], db[k], db[k + 1]) if 0 < k < len(db) - 1 else 0.0
    return float(np.log2(f[band][k] + shift * (f[1] - f[0])))


def tom_centroid(y: np.ndarray, sr: int, time: float, until: float) -> float | None:
    """log2 Hz of the centroid of a tom's 50-500 Hz spectrum from 20 to 200 ms after `time` (or until
    `until`, the next low onset); None when under 50 ms can be heard. The tom's pitch until session 30."""
    a, b = int((time + 0.02) * sr), int(min(until - 0.005, time + 0.2) * sr)
    if b - a < int(0.05 * sr) or a < 0:
        return None
    n = 1 << int(np.ceil(np.log2(max(b - a, 8192 * sr // 22050))))
    power = _power(y, a, b, n)
    f = np.fft.rfftfreq(n, 1 / sr)
    band = (f >= TOM_BAND[0]) & (f <= TOM_BAND[1])
    total = power[band].sum()
    return float(np.log2((power[band] * f[band]).sum() / total)) if total > 0 else None


def tom_measures(y: np.ndarray, sr: int, time: float, until: float) -> tuple[float, float] | None:
    """(`tom_pitch`, `tom_centroid`) of a tom hit, the pitch standing in for a centroid too short to take."""
    pitch = tom_pitch(y, sr, time, until)
    if pitch is None:
        return None
    centroid = tom_centroid(y, sr, time, until)
    return pitch, pitch if centroid is None else centroid


class _Onsets:
    """The sorted onset times of some classes, asked what lies near a time."""

    def __init__(self, events: list, classes: tuple[str, ...], end: float):
        self.times, self.end = sorted(e.time for e in events if e.cls in classes), end

    def next(self, t: float) -> float:
        """The first onset after `t`'s own layers (LAYERED later), else the recording's end."""
        k = bisect.bisect_right(self.times, t + LAYERED)
        return self.times[k] if k < len(self.times) else self.end

    def last(self, t: float) -> float | None:
        """The last onset before `t`'s own layers, else None."""
        k = bisect.bisect_left(self.times, t - LAYERED)
        return self.times[k - 1] if k else None

    def on(self, t: float) -> bool:
        """Whether an onset lies within LAYERED of `t`."""
        k = bisect.bisect_left(self.times, t - LAYERED)
        return k < len(self.times) and self.times[k] <= t + LAYERED


def measures(y: np.ndarray, sr: int, events: list) -> list:
    """Each event's measure (`tom_measures`, `hat_ring`); None for other classes, for a hit layered with a
    drum that sounds where it is measured (a tom with a kick, a hat with a snare), and
    where too little can be heard. `events` have `time` and `cls` (transcription classes)."""
    if not any(e.cls in MEASURED for e in events):
        return [None] * len(events)
    end = len(y) / sr
    low, bright, hats = _Onsets(events, LOW, end), _Onsets(events, BRIGHT, end), _Onsets(events, ("hat",), end)
    cymbals = _Onsets([e for e in events if e.cls == "cymbal" and not hats.on(e.time)], ("cymbal",), end)
    over_tom, over_hat = _Onsets(events, ("kick",), end), _Onsets(events, ("snare",), end)
    levels = _Levels(y, sr) if any(e.cls == "hat" for e in events) else None

    def washed(t: float) -> bool:
        """Whether a cymbal rings on under the hat at `t` (one on a hat is the transcriber hearing an
        open hat's wash twice)."""
        crash = cymbals.last(t)
        return crash is not None and t - crash < WASH

    out: list = []
    for e in events:
        if e.cls == "tom" and not over_tom.on(e.time):
            out.append(tom_measures(y, sr, e.time, low.next(e.time)))
        elif e.cls == "hat" and not over_hat.on(e.time):
            out.append(hat_ring(levels, e.time, bright.next(e.time), washed(e.time)))
        else:
            out.append(None)
    return out


def split(keys: list, cls: str) -> list[int]:
    """Voices among one class's measures: each key's voice, 0 the lowest.

    Hats: open (1) when the hit rings past OPEN_RING, or (session 32) OPEN_OVER octaves past the
    lower quartile of the recording's rings and OPEN_FLOOR: a drum machine's open hat may fall 20 dB
    in 0.15-0.25 s, where its closed one does in 0.03 s. Else closed (0); one hit at a time, since a
    recording's closed and open hats overlap too much for a gap between them (a closed hat under a
    crash's wash, an open one choked soon). Toms (keys `(pitch, centroid)`, or a pitch alone): a gap of
    SPLIT between sorted pitches starts a new voice where the centroids' medians on either side of it
    differ by AGREE as well (session 30: one stray pitch, a partial taken for the fundamental, no longer
    makes a drum of its own), at most MOST (the widest gaps win)."""
    if not keys:
        return []
    if cls == "hat":
        line = min(OPEN_RING, max(float(np.percentile(keys, 25)) + OPEN_OVER, OPEN_FLOOR))
        return [int(k > line) for k in keys]
    pairs = np.asarray(keys, np.float64).reshape(len(keys), -1)
    order = np.argsort(pairs[:, 0], kind="stable")
    pitch, centroid = pairs[order, 0], pairs[order, -1]
    gaps = np.diff(pitch)
    cuts: list[int] = []
    for i in np.argsort(gaps, kind="stable")[::-1]:
        if gaps[i] <= SPLIT or len(cuts) == MOST - 1:
            break
        lo = max([c for c in cuts if c < i], default=-1) + 1
        hi = min([c for c in cuts if c > i], default=len(pitch) - 1) + 1
        if np.median(centroid[i + 1:hi]) - np.median(centroid[lo:i + 1]) > AGREE:
            cuts.append(int(i))
    labels = np.zeros(len(keys), int)
    for i in cuts:
        labels[order[i + 1:]] += 1
    return labels.tolist()


def voices(y: np.ndarray, sr: int, events: list) -> Voices:
    """The voices of a mono recording `y` whose transcribed `events` (time, cls) are given: toms
    "tom" (one) or "tom 1" (the lowest) to "tom 4", hats "hat" (closed) and "hat open"; other classes
    one voice each, named by their class. A hit that cannot be measured joins its class's commonest voice."""
    keys = measures(y, sr, events)
    out = Voices(of_event=[e.cls for e in events])
    for cls in dict.fromkeys(e.cls for e in events):
        mine = [k for k, e in enumerate(events) if e.cls == cls]
        measured = [k for k in mine if keys[k] is not None]
        if cls not in MEASURED or not measured:
            out.cls[cls], out.note[cls] = cls, CLASS_NOTE[cls]
            continue
        labels = dict(zip(measured, split([keys[k] for k in measured], cls)))
        found = sorted(set(labels.values()))
        names = {i: voice_name(cls, i, found) for i in found}
        commonest = int(np.bincount(list(labels.values())).argmax())
        for k in mine:
            out.of_event[k] = names[labels.get(k, commonest)]
        for i, name in names.items():
            out.cls[name] = cls
            out.key[name] = float(np.median([np.ravel(keys[k])[0] for k in measured if labels[k] == i]))
            out.note[name] = (OPEN_HAT_NOTE if i else CLASS_NOTE[cls]) if cls == "hat" else TOM_NOTES[len(found)][i]
    return out


def voice_name(cls: str, label: int, found: list[int]) -> str:
    if cls == "hat":
        return "hat open" if label else "hat"
    return cls if len(found) == 1 else f"{cls} {label + 1}"


def pad_toms(kit, samples: dict, sr: int) -> Voices:
    """A kit's tom pads as voices named by pad index, pitched on each pad's loudest layer (`samples`:
    (pad, layer) -> audio at `sr`, as `render.load_kit_samples` gives). A kit's hats need no measure:
    its closed and open hats are pads of their own classes, found by their General MIDI notes."""
    out = Voices()
    for i, pad in enumerate(kit.pads):
        if pad.cls != "tom":
            continue
        y = np.asarray(samples[(i, len(pad.layers) - 1)], np.float32)
        if not y.size or not np.abs(y).max() > 0:
            continue
        key = oneshot_pitch(y, sr)
        out.cls[str(i)], out.note[str(i)] = "tom", pad.note
        if key is not None:
            out.key[str(i)] = key
    return out


def oneshot_pitch(y: np.ndarray, sr: int, centroid: bool = False) -> float | None:
    """`tom_pitch` of a oneshot, mono `(time,)` or stereo `(time, 2)`, from where it starts (its first
    sample at a tenth of its peak); None when silent or too short to tell. `centroid`: `tom_centroid`
    instead (how datasets key their toms, so that a grid builds as it did before session 30)."""
    y = np.asarray(y, np.float32)
    y = y.mean(1) if y.ndim == 2 else y
    peak = float(np.abs(y).max()) if y.size else 0.0
    if not peak > 0:
        return None
    return (tom_centroid if centroid else tom_pitch)(y, sr, audio.start_sample(y) / sr, len(y) / sr)


def match(target: Voices, source: Voices) -> dict[str, str]:
    """For each of the target's voices, the source's voice to play it (classes the source lacks are
    left out): the same place among the class's voices, lowest to lowest and highest to highest; one
    target voice takes the source's nearest measure; one source voice plays them all."""
    out = {}
    for cls in dict.fromkeys(target.cls.values()):
        theirs, mine = target.of_class(cls), source.of_class(cls)
        if not mine:
            continue
        for i, voice in enumerate(theirs):
            if len(mine) == 1 or cls not in MEASURED:
                out[voice] = mine[0]
            elif len(theirs) == 1:
                key = target.key.get(voice)
                out[voice] = mine[0] if key is None else min(mine, key=lambda v: abs(source.key.get(v, np.inf) - key))
            else:
                out[voice] = mine[round(i * (len(mine) - 1) / (len(theirs) - 1))]
    return out
