"""Procedural drum patterns in the styles producers program every day.

Each style is a grid (16 steps a bar, 12 for triplet feels) of hit
probabilities and velocity ranges per class. A seed draws one groove from
it: the pattern is fixed for the song and varied slightly bar to bar, with
swing, microtiming, ghost notes and a fill (a run down the high, middle and
floor toms, or a snare roll; then a crash) every `fill_every` bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redrum_kit.rhythm.events import Event, Pattern, RhythmError

FILL_TOMS = (50, 47, 43)     # General MIDI high tom, low-mid tom, high floor tom: a fill runs down them

STYLES = ("rock", "funk", "hiphop", "house", "breakbeat", "shuffle", "jazz")
MAX_BARS = 1000                 # about 33 minutes at 120 bpm
TEMPO_RANGE = (20.0, 999.0)     # bpm, as DAWs allow


@dataclass(frozen=True)
class Style:
    steps: int                        # grid steps per 4/4 bar
    tempo: tuple[float, float]        # bpm range
    swing: tuple[float, float]        # delay of off-beat steps, fraction of a step
    grid: dict[str, list[float]]      # class -> probability per step (one bar)
    velocity: dict[str, tuple[int, int]]
    ghost: float = 0.0                # probability of a ghost snare on an empty step


def _steps(pattern: str) -> list[float]:
    """'x' = 1.0, 'o' = 0.5, '.' = 0.1, '-' = 0: a compact way to write a grid."""
    return [{"x": 1.0, "o": 0.5, ".": 0.1, "-": 0.0}[c] for c in pattern.replace(" ", "")]


STYLE_DEFS: dict[str, Style] = {
    "rock": Style(16, (90, 150), (0.0, 0.0), {
        "kick": _steps("x--- ---o x-o- ----"), "snare": _steps("---- x--- ---- x---"),
        "hat_closed": _steps("x-x- x-x- x-x- x-x-"), "hat_open": _steps("---- ---- ---- --.-")},
        {"kick": (95, 120), "snare": (100, 125), "hat_closed": (60, 95), "hat_open": (70, 95)}),
    "funk": Style(16, (90, 115), (0.0, 0.12), {
        "kick": _steps("x--o --x- --o- -o--"), "snare": _steps("---- x--- ---- x--o"),
        "hat_closed": _steps("xxxx xxxx xxxx xxxx"), "hat_open": _steps("---- ---o ---- ---.")},
        {"kick": (90, 120), "snare": (100, 127), "hat_closed": (45, 90), "hat_open": (65, 95)}, ghost=0.3),
    "hiphop": Style(16, (80, 98), (0.15, 0.35), {
        "kick": _steps("x--- ---o -ox- ----"), "snare": _steps("---- x--- ---- x---"),
        "hat_closed": _steps("x-x- x-x- x-x- x-xo"), "perc": _steps("---- ---- ---. ----")},
        {"kick": (95, 125), "snare": (95, 120), "hat_closed": (50, 90), "perc": (50, 80)}, ghost=0.08),
    "house": Style(16, (118, 128), (0.0, 0.08), {
        "kick": _steps("x--- x--- x--- x---"), "clap": _steps("---- x--- ---- x---"),
        "hat_closed": _steps("o-o- o-o- o-o- o-o-"), "hat_open": _steps("--x- --x- --x- --x-"),
        "perc": _steps("---. ---- ---. ----")},
        {"kick": (110, 127), "clap": (95, 120), "hat_closed": (55, 85), "hat_open": (70, 100), "perc": (50, 80)}),
    "breakbeat": Style(16, (130, 175), (0.0, 0.05), {
        "kick": _steps("x-x- ---- --x- -o--"), "snare": _steps("---- x--o -o-x ---o"),
        "hat_closed": _steps("x-x- x-x- x-x- x-x-"), "cymbal": _steps("x--- ---- ---- ----")},
        {"kick": (95, 125), "snare": (90, 127), "hat_closed": (55, 95), "cymbal": (85, 115)}, ghost=0.15),
    "shuffle": Style(12, (80, 130), (0.0, 0.0), {
        "kick": _steps("x-- --o x-- ---"), "snare": _steps("--- x-- --- x--"),
        "hat_closed": _steps("x-x x-x x-x x-x")},
        {"kick": (95, 120), "snare": (95, 120), "hat_closed": (55, 95)}, ghost=0.1),
    "jazz": Style(12, (110, 220), (0.0, 0.0), {
        "cymbal": _steps("x-- x-x x-- x-x"), "hat_closed": _steps("--- x-- --- x--"),
        "kick": _steps(".-- --- .-- ---"), "snare": _steps("--. --. --. --.")},
        {"cymbal": (70, 105), "hat_closed": (60, 85), "kick": (40, 75), "snare": (30, 70)}),
}


def _fill(rng: np.random.Generator, steps: int, start_step: int,
          toms: tuple[int | None, ...]) -> list[tuple[int, str, int, int | None]]:
    """Hits (step, class, velocity, GM note) for the last beat or two of a bar: a run down `toms`
    (notes, high to low; None: the class's note), or a snare roll."""
    out = []
    length = steps // 4 * int(rng.integers(1, 3))
    if rng.random() < 0.6:
        for i, step in enumerate(range(start_step - length, start_step)):
            if rng.random() < 0.85:
                out.append((step, "tom", int(rng.integers(85, 120)), toms[i * len(toms) // length]))
    else:
        for i, step in enumerate(range(start_step - length, start_step)):
            out.append((step, "snare", int(60 + 60 * (i + 1) / length), None))
    return out


def check_tempo(tempo) -> float:
    """`tempo` as a float, or a RhythmError unless it is a number of bpm within TEMPO_RANGE."""
    number = isinstance(tempo, (int, float)) and not isinstance(tempo, bool)
    if not number or not TEMPO_RANGE[0] <= tempo <= TEMPO_RANGE[1]:
        raise RhythmError(f"tempo must be from {TEMPO_RANGE[0]:g} to {TEMPO_RANGE[1]:g} bpm, "
                          f"got {f'{tempo:g}' if number else repr(tempo)}")
    return float(tempo)


def generate(style: str, bars: int = 4, seed: int = 0, tempo: float | None = None,
             swing: float | None = None, microtiming: float = 0.008, fill_every: int = 4,
             tom_notes: bool = True, one_hat: bool = True) -> Pattern:
    """A drum part of `bars` 4/4 bars.

    Args:
        style: one of STYLES.
        tempo: bpm; default drawn from the style's range.
        swing: delay of every second grid step as a fraction of a step; default from the style.
        microtiming: standard deviation of timing jitter in seconds (a human drummer ~ 5-10 ms).
        fill_every: a fill closes every this many bars (0: none).
        tom_notes: a tom fill runs down FILL_TOMS (high, low-mid, floor tom); False: every fill
            tom on the tom's one note (45), as the datasets and evaluations built before session 26
            were, so their figures stay reproducible. The draws are the same either way.
        one_hat: a step with an open hat has no closed hat on it: a hi-hat is one instrument, struck
            open or closed. False: both, the closed one choking the open one at once (the open hat a
            closed one in all but name), as the datasets and evaluations built before session 32
            were. The draws are the same either way.
    """
    if style not in STYLE_DEFS:
        raise RhythmError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    if not 1 <= bars <= MAX_BARS:
        raise RhythmError(f"bars must be from 1 to {MAX_BARS}, got {bars}")
    if tempo is not None:
        check_tempo(tempo)
    if swing is not None and not 0.0 <= swing < 1.0:
        raise RhythmError(f"swing is a fraction of a step, from 0 to below 1, got {swing:g}")
    st = STYLE_DEFS[style]
    rng = np.random.default_rng(seed)
    tempo = float(tempo if tempo is not None else rng.uniform(*st.tempo))
    swing = float(swing if swing is not None else rng.uniform(*st.swing))
    step_s = 60.0 / tempo * 4 / st.steps
    # one groove for the song: each probabilistic step decided once, then varied a little per bar
    groove = {cls: [p >= 1.0 or rng.random() < p for p in probs] for cls, probs in st.grid.items()}
    events = []
    for bar in range(bars):
        hits: list[tuple[int, str, int, int | None]] = []
        fill = fill_every and (bar + 1) % fill_every == 0 and bar > 0
        fill_hits = _fill(rng, st.steps, st.steps, FILL_TOMS if tom_notes else (None,)) if fill else []
        fill_from = min((s for s, *_ in fill_hits), default=st.steps)
        for cls, on in groove.items():
            lo, hi = st.velocity[cls]
            for step, hit in enumerate(on):
                if step >= fill_from and cls != "kick":
                    continue
                if hit != (rng.random() < 0.04):  # 4% of steps flip: a living groove
                    accent = 1.0 if step % (st.steps // 4) == 0 else 0.9
                    hits.append((step, cls, int(rng.integers(lo, hi + 1) * accent), None))
        if st.ghost and "snare" in st.grid:
            for step in range(st.steps):
                if not groove["snare"][step] and step < fill_from and rng.random() < st.ghost:
                    hits.append((step, "snare", int(rng.integers(22, 45)), None))
        if bar > 0 and (bar % fill_every == 0 if fill_every else False):
            hits.append((0, "cymbal", int(rng.integers(100, 127)), None))
        hits += fill_hits
        opened = {step for step, cls, *_ in hits if cls == "hat_open"} if one_hat else set()
        for step, cls, vel, note in hits:
            t = (bar * st.steps + step) * step_s
            if step % 2 == 1:
                t += swing * step_s
            t = max(0.0, t + rng.normal(0, microtiming))     # drawn for every hit, kept or not
            if cls != "hat_closed" or step not in opened:
                events.append(Event(t, cls, max(1, min(127, vel)), note))
    return Pattern(events, tempo, bars * 4 * 60.0 / tempo, 4, f"{style}-{seed}",
                   {"style": style, "swing": round(swing, 3), "seed": seed})
