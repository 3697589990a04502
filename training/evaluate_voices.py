"""How well transcription tells the drums of a class apart (`redrum_kit.variants`), on kits never heard in training.

Each held-out Hydrogen kit plays generated grooves:
- hats: `grooves` 4-bar parts of each style with open hats (rock, funk, house; since session 32 with
  no closed hat struck on an open hat's step, which choked it at once); every hat the
  transcriber finds within 30 ms of a true one is scored: an open hat written on 46, a closed (or
  pedal) one on 42;
- toms: `grooves` 4-bar rock and funk parts whose second bar ends in a fill of six sixteenths down
  the kit's toms (high, high, mid, mid, low, low; two toms: three each) and whose fourth bar ends in
  the same fill up them (since session 29: before, both ran down, and a tom still ringing under a
  higher one never came before it); every two
  found toms of the fill that are different drums are scored: are their notes in the order of
  their pitches (the pitch of each tom pad's sample alone, `variants.pad_toms`; equal notes count
  half)? And how many of the fills come out on as many notes as they played toms;
- one tom (session 27): the same parts with the fill on one tom (each of the kit's toms in turn, at
  velocities 70-120, as a drummer plays one tom): how many come out on one note.
Kits without two toms, or without an open hat, are left out of that part.

Besides Hydrogen kits (by folder), `kits` may name the synthesiser's (session 30): `synth-SEED`,
`machine-SEED` (its drum-machine kind), or `synth` for SYNTH_KITS, the 15 that no transcriber heard (the
test seeds of the dataset configs, and drum-machine seeds past the training ones).
"""

from __future__ import annotations

import numpy as np

from redrum_kit import workspace

SR = 22050
HAT_STYLES = ("rock", "funk", "house")
TOM_STYLES = ("rock", "funk")
WITHIN = 0.03
SYNTH_KITS = (tuple(f"synth-{s}" for s in range(200_130, 200_140))
              + tuple(f"machine-{s}" for s in range(400_100, 400_105)))


def evaluate(kits: tuple[str, ...] = workspace.HELD_OUT_KITS, grooves: int = 2, seed: int = 0,
             method: str = "auto") -> dict:
    from redrum_kit.transcription import load_model
    kits = expand(kits)
    loaded = load_kits(kits)
    source = load_model(method)
    rng = np.random.default_rng(seed)
    rows = {}
    for name, kit in zip(kits, loaded):
        rows[name] = {**_hats(kit, source, rng, grooves), **_toms(kit, source, rng, grooves),
                      **_one_tom(kit, source, np.random.default_rng([seed, 1, len(rows)]), grooves)}
    return {"kits": rows, "all": _pooled(list(rows.values())), "grooves": grooves}


def expand(kits: tuple[str, ...]) -> tuple[str, ...]:
    """`synth` -> SYNTH_KITS; other names as they are."""
    return tuple(k for name in kits for k in (SYNTH_KITS if name == "synth" else (name,)))


def load_kits(kits: tuple[str, ...]) -> list:
    """The kits named, Hydrogen ones by folder and the synthesiser's by name; a one-line error first when
    any is neither installed nor the synthesiser's."""
    from redrum_kit.datasets.kits import from_synth, installed_hydrogen
    synth = {}
    for name in kits:
        kind, _, seed = name.partition("-")
        if kind in ("synth", "machine") and seed.isdigit():
            synth[name] = (int(seed), kind == "machine")
    hydrogen = iter(installed_hydrogen(tuple(k for k in kits if k not in synth), SR))
    return [from_synth(synth[k][0], SR, machine=synth[k][1]) if k in synth else next(hydrogen) for k in kits]


def _hats(kit, source, rng, grooves: int) -> dict:
    from redrum_kit.rhythm.generator import generate
    if "hat_open" not in kit.classes():
        return {}
    right = {"hat_open": [], "hat_closed": []}
    for style in HAT_STYLES:
        for _ in range(grooves):
            part = generate(style, bars=4, seed=int(rng.integers(1 << 30)), tom_notes=False)
            hats, report = _heard(kit, source, part, "hat")
            for t, cls, _ in report.played:
                near = [n for u, n in hats if abs(u - t) < WITHIN]
                if cls in right and near:
                    right[cls].append(near[0] == (46 if cls == "hat_open" else 42))
    return {"open_hats": len(right["hat_open"]), "open_right": int(sum(right["hat_open"])),
            "closed_hats": len(right["hat_closed"]), "closed_right": int(sum(right["hat_closed"]))}


def _toms(kit, source, rng, grooves: int) -> dict:
    from redrum_kit import variants
    pitched = variants.pad_toms(kit.kit, kit.samples, SR)
    toms = [pitched.note[v] for v in pitched.of_class("tom") if v in pitched.key]    # notes, low to high
    toms = [toms[0], toms[len(toms) // 2], toms[-1]] if len(toms) > 2 else toms
    if len(set(toms)) < 2:
        return {}
    rank = {note: i for i, note in enumerate(dict.fromkeys(toms))}
    order = [toms[-1]] * 2 + [toms[1]] * 2 + [toms[0]] * 2 if len(toms) == 3 else [toms[1]] * 3 + [toms[0]] * 3
    pairs, distinct, fills = [], 0, 0
    for style in TOM_STYLES:
        for _ in range(grooves):
            down = [(note, 110) for note in order]
            part, played = _fill_part(style, int(rng.integers(1 << 30)), down, down[::-1])
            heard, _ = _heard(kit, source, part, "tom")
            for fill in played:
                got = [(rank[e.note], near[0]) for e in fill
                       for near in [[n for u, n in heard if abs(u - e.time) < WITHIN]] if near]
                pairs += [0.5 if a[1] == b[1] else float((a[1] < b[1]) == (a[0] < b[0]))
                          for i, a in enumerate(got) for b in got[i + 1:] if a[0] != b[0]]
                fills += 1
                distinct += len({n for _, n in got}) == len(rank)
    return {"tom_pairs": len(pairs), "tom_pairs_right": float(sum(pairs)), "fills": fills, "fills_distinct": distinct}


def _fill_part(style: str, seed: int, fill, last=None) -> tuple:
    """A 4-bar part of `style` whose second and fourth bars end in `fill` (the fourth in `last` when
    given; events at sixteenths from the eleventh on, timed from the bar's start), in place of what it
    played there: -> (part, the fills)."""
    from redrum_kit.rhythm.events import Event, Pattern
    from redrum_kit.rhythm.generator import generate
    part = generate(style, bars=4, seed=seed, fill_every=0, one_hat=False)
    bar, step = part.bar_seconds, part.bar_seconds / 16
    fills = {b: [Event(b * bar + (10 + i) * step, "tom", velocity, note) for i, (note, velocity) in enumerate(notes)]
             for b, notes in ((1, fill), (3, fill if last is None else last))}
    kept = [e for e in part.events if not any(b * bar + 10 * step - 0.01 <= e.time < (b + 1) * bar for b in fills)]
    return Pattern(kept + [e for f in fills.values() for e in f], part.tempo, part.length), list(fills.values())


def _heard(kit, source, part, cls: str) -> tuple[list[tuple[float, int]], object]:
    """The part played by the kit and transcribed: its hits of `cls` (time, note), and the render's report."""
    from redrum_kit.render import render
    from redrum_kit.transcription import transcribe_signal
    y, report = render(part, kit.kit, kit.samples, SR)
    found = transcribe_signal(y, SR, kit.name, source=source)
    return [(e.time, found.note(k)) for k, e in enumerate(found.events) if e.cls == cls], report


def _one_tom(kit, source, rng, grooves: int) -> dict:
    toms = [p.note for p in kit.kit.pads if p.cls == "tom"]
    if not toms:
        return {}
    one, fills = 0, 0
    for style in TOM_STYLES:
        for g in range(grooves):
            note = toms[(g + TOM_STYLES.index(style)) % len(toms)]
            fill = [(note, int(rng.integers(70, 121))) for _ in range(6)]
            part, played = _fill_part(style, int(rng.integers(1 << 30)), fill)
            heard, _ = _heard(kit, source, part, "tom")
            for f in played:
                notes = {n for e in f for u, n in heard if abs(u - e.time) < WITHIN}
                if notes:
                    fills += 1
                    one += len(notes) == 1
    return {"one_tom_fills": fills, "one_tom_one_note": one}


def _pooled(rows: list[dict]) -> dict:
    total = {}
    for row in rows:
        for key, value in row.items():
            total[key] = total.get(key, 0) + value
    return total


def _share(right, n) -> str:
    return f"{right / n:.3f} ({n})" if n else "-"


def open_f(row: dict) -> str:
    """F-measure of note 46 as the open hat among the hats found on true hats: open ones on 46 are hits,
    closed ones on 46 false alarms, open ones on 42 misses."""
    hits = row.get("open_right", 0)
    wrong = row.get("open_hats", 0) - hits + row.get("closed_hats", 0) - row.get("closed_right", 0)
    return f"{2 * hits / (2 * hits + wrong):.3f}" if hits + wrong else "-"


def table(result: dict) -> str:
    lines = [f"The kits named (by default the held-out Hydrogen ones), {result['grooves']} grooves a style; the shipped transcriber. Open hats on 46 "
             f"(of those found), closed ones on 42, the F-measure of 46 as the open hat; fill tom pairs in pitch "
             f"order; fills on as many notes as toms; fills on one tom on one note",
             "| kit | open hats on 46 | closed hats on 42 | open-hat F | tom pairs in order | fills with every tom apart "
             "| one-tom fills on one note |",
             "|---|---|---|---|---|---|---|"]
    for name, r in [*result["kits"].items(), ("all", result["all"])]:
        lines.append(f"| {name} | {_share(r.get('open_right', 0), r.get('open_hats', 0))} "
                     f"| {_share(r.get('closed_right', 0), r.get('closed_hats', 0))} | {open_f(r)} "
                     f"| {_share(r.get('tom_pairs_right', 0), r.get('tom_pairs', 0))} "
                     f"| {_share(r.get('fills_distinct', 0), r.get('fills', 0))} "
                     f"| {_share(r.get('one_tom_one_note', 0), r.get('one_tom_fills', 0))} |")
    return "\n".join(lines) + "\n"
