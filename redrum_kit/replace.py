"""Drum replacement, the DSP redrum: the source's own hits on the target's events.

1. Transcribe the target: its events (time, class, velocity) are the part to play,
   each of a voice (`variants`: which tom by pitch, closed or open hat by ring).
2. Transcribe the source and cut one hit per voice out of it: the one that
   can ring longest before its class plays again (a layered one counts half),
   separated from the drums played over it by score-informed NMF (`separate`:
   each voice's spectral templates may sound only after its own onsets), so
   a crash keeps its wash under the hats that follow it and each tom its pitch.
3. Play each of the target's voices with the source's voice in the same place
   (`variants.match`: the lowest tom with the lowest, the open hat with the
   open), through the sampler of `render.py` (hats choke), at the target's
   rate and length. Each hit keeps the source's own balance: a voice sounds
   at the level the source plays it (the median of its hits that no other
   drum shares), moved by how much louder or softer the target plays that
   event than its other hits of the voice (`source_levels`). So a soft hat
   under a loud kick stays soft, and the target's accents and ghost notes
   come through.
A class the source never plays falls back to the nearest one, and the result
says so; with no drum near it either (a source of hats alone under a target
with kicks), the built-in synthesiser's drum plays it (`builtin`), at the
target's level for it, and the result says that too. With a library kit
instead of a source, step 2 is skipped and the
target's velocities play the kit as a sampler would, its toms in pitch order
(`variants.pad_toms`) and its hats by their notes. `only` replaces some
drums inside the target's mix (its own taken out by the same separation,
`remove_classes`) and `double` lays the new hits over the target's own;
then the new hits sit at the level of the drums they replace.

This is both a feature and the baseline the learned redrum must beat.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from redrum_kit import audio, variants
from redrum_kit.errors import AudioError, RedrumError
from redrum_kit.library.kits import Kit, Layer, Pad, assign_notes, default_choke
from redrum_kit.render import render, stand_in
from redrum_kit.rhythm.events import GM_CLASS, TRANSCRIPTION_CLASS, TRANSCRIPTION_CLASSES, Event, Pattern
from redrum_kit.transcription import MAX_SECONDS, Transcription, transcribe_signal
from redrum_kit.variants import LAYERED    # seconds: onsets of two classes this close are one layered hit

PRE_ROLL = 0.005     # seconds kept before an onset
MAX_HIT = 1.5        # seconds: the longest hit cut from the source
MIN_HIT = 0.03
ACCENT_DB = (-30.0, 12.0)   # how far a target event may sit under or over its class's typical level
RING = {"kick": 0.6, "snare": 0.6, "hat": 0.6, "tom": 1.0, "cymbal": MAX_HIT}   # s a class's hit may ring
SEPARATE_CONTEXT = 0.5      # seconds of the source around a hit that its separation hears
SEPARATE_CHUNK = 10.0       # seconds of a target separated at a time (`remove_classes`)
NMF_FFT, NMF_HOP, NMF_COMPONENTS, NMF_ITERATIONS = 2048, 512, 2, 60


@dataclass
class ReplaceResult:
    y: np.ndarray
    sr: int
    events: int
    source_hits: dict[str, float] = field(default_factory=dict)   # voice -> time of the hit used (s)
    substitutions: dict[str, str] = field(default_factory=dict)   # class -> class played instead
    only: tuple[str, ...] = ()          # the classes replaced, the target's others kept (empty: all replaced)
    double: bool = False                # the target's own drums kept under the new hits
    voices: dict[str, str] = field(default_factory=dict)   # target's voice -> the source's voice (kit pad) playing it
    builtin: tuple[str, ...] = ()       # classes neither the source nor a drum near them plays: the synthesiser's do

    def to_json(self) -> dict:
        return {"method": "replace", "events": self.events, "sample_rate": self.sr,
                "source_hits": {k: round(v, 4) for k, v in self.source_hits.items()},
                "voices": self.voices, "substitutions": self.substitutions, "builtin": list(self.builtin),
                "only": list(self.only), "double": self.double}

    def describe(self, source: str = "the source") -> str:
        text = f"{self.events} hits"
        if self.builtin:
            text += (f"; {source} has no {' or '.join(self.builtin)} (nor a drum to stand in), so the built-in "
                     f"synthesiser's {'plays it' if len(self.builtin) == 1 else 'play them'}")
        return text


def cut_hits(y: np.ndarray, sr: int, found: Transcription) -> dict[str, tuple[float, np.ndarray]]:
    """One hit per voice (each tom, the closed and the open hat: `variants`) from a transcribed
    recording: voice -> (onset time, audio).

    The hit that can ring longest (the most time to its class's next onset, up to the class's RING),
    played with confidence and alone (a layered one counts half), separated from the other drums
    around it (`separate`), from just before its onset to that next onset. Hits whose separations
    would hear overlapping audio share one (`regions`): each voice has its own templates there."""
    shared = layered_flags(found.events)
    parts = [found.voice(k) for k in range(len(found.events))]
    chosen = {}                                     # voice -> (onset, start, end) of its hit, s
    for voice in dict.fromkeys(parts):
        mine = [k for k, p in enumerate(parts) if p == voice]
        cls = found.events[mine[0]].cls
        onsets = sorted(e.time for e in found.events if e.cls == cls)
        best, best_score, length = None, -1.0, 0.0
        for e, is_layered in ((found.events[k], shared[k]) for k in mine):
            k = bisect.bisect_right(onsets, e.time + 1e-4)              # the class's next onset
            ring = min(onsets[k] - e.time if k < len(onsets) else MAX_HIT, RING[cls], len(y) / sr - e.time)
            score = ring * (0.5 + e.confidence) * (0.5 if is_layered else 1.0)
            if score > best_score:
                best, best_score, length = e, score, ring
        start = max(0.0, best.time - PRE_ROLL)
        if best.time + length - start >= MIN_HIT:
            chosen[voice] = (best.time, start, best.time + length)
    hits = {}
    for lo, hi, voices in regions({v: (start, end) for v, (_, start, end) in chosen.items()}):
        a, stems = separate_around(y, sr, found.events, lo, hi, parts, keep=voices)
        for voice in voices:
            onset, start, end = chosen[voice]
            hit = stems[voice][int((start - a) * sr):int((end - a) * sr)]
            hits[voice] = (onset, audio.fade_out(hit, sr, min(0.05, len(hit) / sr / 4)))
    return hits


def regions(spans: dict[str, tuple[float, float]]) -> list[tuple[float, float, list[str]]]:
    """Spans (key -> start, end s) grouped where their separations, each hearing SEPARATE_CONTEXT either
    side, would overlap: -> (start, end, keys) per group, in time order. One separation of a group
    hears no more audio than one per span would, and usually much less."""
    out: list[tuple[float, float, list[str]]] = []
    for key, (start, end) in sorted(spans.items(), key=lambda kv: kv[1]):
        if out and start - out[-1][1] < 2 * SEPARATE_CONTEXT:
            out[-1] = (out[-1][0], max(out[-1][1], end), out[-1][2] + [key])
        else:
            out.append((start, end, [key]))
    return out


def layered_flags(events: list) -> list[bool]:
    """For each onset of `events`, whether another class's onset shares it (within LAYERED); found
    through the sorted onset times, so a ten-minute recording's thousands of hits cost milliseconds."""
    order = sorted(range(len(events)), key=lambda k: events[k].time)
    times = [events[k].time for k in order]
    flags = []
    for e in events:                    # the onsets near it, then the exact test on those alone
        lo, hi = bisect.bisect_left(times, e.time - 2 * LAYERED), bisect.bisect_right(times, e.time + 2 * LAYERED)
        flags.append(any(o.cls != e.cls and abs(o.time - e.time) < LAYERED
                         for o in (events[order[j]] for j in range(lo, hi))))
    return flags


def separate_around(y: np.ndarray, sr: int, events: list, start: float, end: float,
                    parts: list[str] | None = None, keep=None) -> tuple[float, dict]:
    """`separate` over `start`..`end` s of `y` and SEPARATE_CONTEXT either side, with the onsets that
    can ring there. -> (where the stems start, s; part -> stem, for the parts in `keep` if given)."""
    a, b = max(0.0, start - SEPARATE_CONTEXT), min(len(y) / sr, end + SEPARATE_CONTEXT)
    near = [k for k, e in enumerate(events) if a - RING[e.cls] <= e.time < b]
    return a, separate(y[int(a * sr):int(b * sr)], sr, [events[k] for k in near], a,
                       [parts[k] for k in near] if parts else None, keep)


def separate(y: np.ndarray, sr: int, events: list, offset: float = 0.0,
             parts: list[str] | None = None, keep=None) -> dict[str, np.ndarray]:
    """Each transcribed part's share of `y`, mono `(time,)` or stereo `(time, 2)` (score-informed NMF,
    the masks found on the channels' mean): -> part -> audio of `y`'s shape. A part is a class, or
    what `parts` names each event (a voice: each tom its own part).

    Each part gets NMF_COMPONENTS spectral templates (started from the spectra just after its
    onsets) whose activations may be non-zero only from its onsets until its class's RING later; a
    free residual component takes what no part explains. KL-divergence multiplicative updates, then
    each part's soft mask (its share of the model) on the complex STFT. `events` (transcribed
    onsets) are timed `offset` s ahead of `y`'s start. `keep`: the parts whose audio is wanted (all
    by default; the others still take their share). Deterministic."""
    x = torch.stft(torch.from_numpy(np.ascontiguousarray(np.asarray(y, np.float32).T)), NMF_FFT, NMF_HOP,
                   window=torch.hann_window(NMF_FFT), return_complex=True)     # ([channels,] bins, frames)
    v = (x.mean(0) if x.ndim == 3 else x).abs().numpy() + np.float32(1e-9)     # (bins, frames), float32
    bins, frames = v.shape
    rng = np.random.default_rng(0)
    parts = parts or [e.cls for e in events]
    templates, activations, owner = [], [], []
    for part in dict.fromkeys(parts):
        mine = [e for e, p in zip(events, parts) if p == part]
        onsets = [int(round((e.time - offset) * sr / NMF_HOP)) for e in mine]
        allowed = np.zeros(frames)
        for f in onsets:
            allowed[max(0, f - 1):max(0, f + int(RING[mine[0].cls] * sr / NMF_HOP) + 1)] = 1.0
        heard = [v[:, f:f + 3].mean(1) for f in onsets if 0 <= f < frames] or [v.mean(1)]
        for _ in range(NMF_COMPONENTS):
            templates.append(np.mean(heard, 0) * (0.5 + rng.random(bins)))
            activations.append(allowed * (0.5 + rng.random(frames)))
            owner.append(part)
    templates.append(v.mean(1) * (0.5 + rng.random(bins)))                # the residual: free everywhere
    activations.append(np.full(frames, 0.1))
    owner.append(None)
    w, h = np.stack(templates, 1).astype(np.float32), np.stack(activations).astype(np.float32)
    for _ in range(NMF_ITERATIONS):
        h *= (w.T @ (v / (w @ h + 1e-12))) / (w.sum(0)[:, None] + 1e-12)
        w *= ((v / (w @ h + 1e-12)) @ h.T) / (h.sum(1)[None] + 1e-12)
        scale = w.sum(0) + 1e-12
        w, h = w / scale, h * scale[:, None]
    model = w @ h + 1e-12
    out = {}
    for part in (p for p in dict.fromkeys(parts) if keep is None or p in keep):
        mine = [k for k, o in enumerate(owner) if o == part]
        mask = torch.from_numpy(w[:, mine] @ h[mine] / model)
        out[part] = torch.istft(x * mask, NMF_FFT, NMF_HOP, window=torch.hann_window(NMF_FFT),
                               length=len(y)).numpy().astype(np.float32).T
    return out


def source_levels(hits: dict[str, tuple[float, np.ndarray]], source: np.ndarray, source_events: Transcription,
                  target: np.ndarray, target_events: Transcription, sr: int, plays: dict[str, str],
                  at_target: bool = False) -> tuple[dict[str, np.ndarray], list[int]]:
    """A sample per target voice at the source's balance, and a velocity per target event that plays its accent.

    `plays`: target voice -> the source voice (a key of `hits`) that plays it. Each target voice's
    sample is that hit scaled to the median level of the source's hits of its voice (`at_target`: of
    the target voice's own, for a hit that takes the place of the target's drum in its mix), plus the
    headroom its loudest accent needs; each target event's velocity then gives the gain
    (`render.velocity_gain`) that puts it at its own level above or below its voice's median in the
    target. -> (target voice -> audio, a velocity per target event)."""
    def levels(y: np.ndarray, found: Transcription) -> tuple[list[float], dict[str, float]]:
        """Each event's level, and each voice's typical one: over its hits alone (a layered hit's
        peak is its loudest layer's)."""
        each = [audio.peak_db(y, sr, e.time) for e in found.events]
        shared = layered_flags(found.events)
        typical = {}
        parts = [found.voice(k) for k in range(len(found.events))]
        for voice in set(parts):
            mine = [k for k, p in enumerate(parts) if p == voice]
            alone = [k for k in mine if not shared[k]]
            typical[voice] = float(np.median([each[k] for k in alone or mine]))
        return each, typical

    _, source_typical = levels(source, source_events)
    target_each, target_typical = levels(target, target_events)
    voice = [target_events.voice(k) for k in range(len(target_events.events))]
    accent = [float(np.clip(level - target_typical[v], *ACCENT_DB)) for level, v in zip(target_each, voice)]
    samples, headroom = {}, {}
    for theirs, mine in plays.items():
        hit = hits[mine][1]
        headroom[theirs] = max([0.0] + [a for a, v in zip(accent, voice) if v == theirs])
        typical = target_typical[theirs] if at_target else source_typical[mine]
        gain_db = typical - audio.peak_db(hit, sr, PRE_ROLL) + headroom[theirs]
        samples[theirs] = (hit * 10 ** (gain_db / 20)).astype(np.float32)
    velocities = [int(np.clip(round(127 * 10 ** ((a - headroom.get(v, 0.0)) / 40)), 1, 127))
                  for a, v in zip(accent, voice)]
    return samples, velocities


def remove_classes(y: np.ndarray, sr: int, found: Transcription, classes: tuple[str, ...]) -> np.ndarray:
    """`y` without its drums of `classes`: their separated parts (`separate`) taken out, SEPARATE_CHUNK
    seconds at a time (each heard with SEPARATE_CONTEXT around it), so a long recording costs no more
    per second than a short one."""
    out = np.array(y, np.float32, copy=True)
    seconds = len(y) / sr
    for a in np.arange(0.0, seconds, SEPARATE_CHUNK):
        b = min(seconds, a + SEPARATE_CHUNK)
        lo, stems = separate_around(y, sr, found.events, a, b, keep=classes)
        if not any(c in stems for c in classes):
            continue
        part = sum(stems[c] for c in classes if c in stems)
        i, j, k = int(a * sr), int(b * sr), int(lo * sr)
        out[i:j] -= part[i - k:j - k]
    return out


def drum_classes(given: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Transcription classes given as "kick,snare" or a sequence, checked: -> a tuple (empty: none)."""
    classes = tuple(c.strip() for c in given.split(",") if c.strip()) if isinstance(given, str) else tuple(given)
    unknown = sorted(set(classes) - set(TRANSCRIPTION_CLASSES))
    if unknown:
        raise RedrumError(f"no drum class {', '.join(unknown)}; choose from {', '.join(TRANSCRIPTION_CLASSES)}")
    return classes


def replace_drums(target: Path, source: Path | None = None, kit: Kit | None = None,
                  kit_samples: dict | None = None, method: str = "auto", only: tuple[str, ...] = (),
                  double: bool = False) -> ReplaceResult:
    """Redrum `target` with the hits of `source` (or with `kit` and its samples at the target's rate);
    `only` and `double` as in `replace_signal`."""
    t_y, t_sr = audio.load(target, max_seconds=MAX_SECONDS, require_sound=True, what="target")
    s_y = None
    if kit is None:
        if source is None:
            raise AudioError("give a source recording or a kit")
        s_y, _ = audio.load(source, sr=t_sr, max_seconds=MAX_SECONDS, require_sound=True, what="source", mono=False)
    return replace_signal(t_y, t_sr, s_y, kit, kit_samples, method,
                          Path(target).name, Path(source).name if source else "source", only=only, double=double)


def replace_signal(t_y: np.ndarray, sr: int, s_y: np.ndarray | None = None, kit: Kit | None = None,
                   kit_samples: dict | None = None, method: str = "auto", target_name: str = "target",
                   source_name: str = "source", transcriber=None, only: tuple[str, ...] = (),
                   double: bool = False) -> ReplaceResult:
    """`replace_drums` on signals at one rate `sr`: the target `t_y`, the source `s_y` (or a kit). A stereo
    source `(time, 2)` (or a kit with stereo samples) gives a stereo result: its hits keep their image.

    `only` (transcription classes): replace those drums alone; the target's others stay as they are
    (the replaced ones taken out of it by separation). `double`: keep the target's own drums and lay
    the new hits over them. Either way the new hits sit at the level of the target's drums they
    replace or double."""
    only = drum_classes(only)
    t_events = transcribe_signal(t_y, sr, target_name, method, source=transcriber)
    if only and not any(e.cls in only for e in t_events.events):
        raise AudioError(f"{target_name}: no {' or '.join(only)} hits found to replace")
    in_mix = bool(only) or double
    hits: dict[str, tuple[float, np.ndarray]] = {}
    voice = [t_events.voice(k) for k in range(len(t_events.events))]
    notes = [t_events.note(k) for k in range(len(t_events.events))]    # a voice no pad plays keeps its GM note
    shift, velocities = 0.0, [e.velocity for e in t_events.events]
    from_source = kit is None
    if from_source:
        s_events = transcribe_signal(s_y.mean(1) if s_y.ndim == 2 else s_y, sr, source_name, method,
                                     source=transcriber)
        hits = cut_hits(s_y, sr, s_events)
        if not hits:
            raise AudioError(f"{source_name}: no usable drum hits in the source")
        s_events.voices.cls = {v: c for v, c in s_events.voices.cls.items() if v in hits}   # voices with a hit
        plays = variants.match(t_events.voices, s_events.voices)
        samples, velocities = source_levels(hits, s_y, s_events, t_y, t_events, sr, plays, at_target=in_mix)
        kit = Kit(name="source", pads=assign_notes([Pad(name=v, cls=GM_CLASS[t_events.voices.note[v]], note=0,
                                                        layers=[Layer()],
                                                        choke=default_choke(GM_CLASS[t_events.voices.note[v]]))
                                                    for v in plays]))
        kit_samples = {(i, 0): samples[v] for i, v in enumerate(plays)}
        pad = {p.name: p for p in kit.pads}
        shift = PRE_ROLL                                    # the cut hits start PRE_ROLL early
    else:
        plays = variants.match(t_events.voices, variants.pad_toms(kit, kit_samples, sr))   # which tom
        pad = {v: kit.pads[int(i)] for v, i in plays.items()}
        plays = {v: p.name for v, p in pad.items()}
    played = [k for k, e in enumerate(t_events.events) if not only or e.cls in only]
    layered, unplayed = layered_flags(t_events.events), [k for k in played if voice[k] not in pad]
    # a class heard once or twice, always on another drum's hit, may be that drum heard twice: not borrowed
    needed = {c for c in {GM_CLASS[notes[k]] for k in unplayed}
              if sum(GM_CLASS[notes[k]] == c for k in unplayed) >= 3
              or any(GM_CLASS[notes[k]] == c and not layered[k] for k in unplayed)}
    level = None
    if from_source:                                 # a source's kit: its samples sit at the level they play
        level = {c: float(np.median([audio.peak_db(t_y, sr, t_events.events[k].time) for k in played
                                     if GM_CLASS[notes[k]] == c])) for c in needed}
    kit, kit_samples, builtin = with_builtin(kit, kit_samples, needed, sr, level)
    part = Pattern([Event(max(0.0, e.time - shift), pad[v].cls if v in pad else GM_CLASS[n], velocities[k],
                          pad[v].note if v in pad else n)
                    for k, (e, v, n) in enumerate(zip(t_events.events, voice, notes))
                    if not only or e.cls in only], t_events.tempo, t_events.duration)
    y, report = render(part, kit, kit_samples, sr, tail=0.0)
    y = np.pad(y, [(0, max(0, len(t_y) - len(y)))] + [(0, 0)] * (y.ndim - 1))[: len(t_y)]
    if in_mix:
        rest = t_y if double else remove_classes(t_y, sr, t_events, only)
        y = y + audio.fit_channels(rest, y.ndim)
        peak = float(np.abs(y).max())
        y = y * (0.99 / peak) if peak > 0.99 else y
    return ReplaceResult(y=y.astype(np.float32), sr=sr, events=len(report.played),
                         source_hits={cls: t for cls, (t, _) in hits.items()},
                         substitutions=dict(report.substitutions), only=tuple(only), double=double,
                         voices=dict(plays), builtin=builtin)


def with_builtin(kit: Kit, kit_samples: dict, classes: set[str], sr: int,
                 level: dict[str, float] | None = None) -> tuple[Kit, dict, tuple[str, ...]]:
    """`kit` and its samples with the built-in synthesiser's pads (the default kit's sounds) of each of
    `classes` (kit classes) that neither the kit nor a drum near it (`render.stand_in`) can play. `level`:
    class -> the peak (dBFS) the added samples are scaled to; None: as the synthesiser makes them.
    (`replace_signal` asks for the classes the target plays three times or more, or on a hit of its own.)
    -> (kit, samples, the classes added, as transcription classes)."""
    have = {p.cls for p in kit.pads}
    missing = sorted(c for c in classes if stand_in(c, have) is None)
    if not missing:
        return kit, kit_samples, ()
    from redrum_kit.datasets.kits import from_synth
    from redrum_kit.library import DEFAULT_SYNTH_SEED
    synth = from_synth(DEFAULT_SYNTH_SEED, sr)
    pads, samples, taken = list(kit.pads), dict(kit_samples), {p.note for p in kit.pads}
    for i, p in enumerate(synth.kit.pads):
        if p.cls in missing and p.note not in taken:
            y = synth.samples[(i, 0)]
            if level is not None:
                y = y * 10 ** ((level[p.cls] - audio.peak_db(y, sr, 0.0)) / 20)
            samples[(len(pads), 0)] = np.asarray(y, np.float32)
            pads.append(dataclasses.replace(p, layers=p.layers[:1]))
    return (dataclasses.replace(kit, pads=pads), samples,
            tuple(dict.fromkeys(TRANSCRIPTION_CLASS[c] for c in missing)))
