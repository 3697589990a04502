"""How well `redrum transcribe` finds a groove's tempo (the MIDI file's), on kits never heard in training.

Each of the generator's styles plays `grooves` 4-bar parts (tempo, swing and
fills drawn as the style draws them) on each held-out Hydrogen kit; the
transcriber hears the rendering and `transcription.estimate_tempo` names the
tempo. Scored as in tempo-estimation research: accuracy 1, the share within
4% of the true tempo; accuracy 2, within 4% of it or of its half, double,
third or triple (the metrical level missed, the pulse found).
"""

from __future__ import annotations

import numpy as np

from redrum_kit import workspace
from redrum_kit.errors import RedrumError

OCTAVES = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
TOLERANCE = 0.04


def evaluate(kits: tuple[str, ...] = workspace.HELD_OUT_KITS, grooves: int = 2, seed: int = 0,
             method: str = "auto") -> dict:
    from redrum_kit.datasets.kits import from_hydrogen
    from redrum_kit.render import render
    from redrum_kit.rhythm.generator import STYLES, generate
    from redrum_kit.transcription import load_model, transcribe_signal
    missing = [k for k in kits if not (workspace.HYDROGEN_DRUMKITS / k).is_dir()]
    if missing:
        raise RedrumError(f"Hydrogen kits not installed: {', '.join(missing)} (`make data` installs them)")
    source = load_model(method)
    rng = np.random.default_rng(seed)
    rows = []
    for name in kits:
        kit = from_hydrogen(workspace.HYDROGEN_DRUMKITS / name, 22050)
        for style in STYLES:
            for _ in range(grooves):
                part = generate(style, bars=4, seed=int(rng.integers(1 << 30)))
                y, _ = render(part, kit.kit, kit.samples, 22050)
                found = transcribe_signal(y, 22050, name, source=source).tempo
                rows.append({"kit": name, "style": style, "tempo": part.tempo, "estimate": found})
    return {"grooves": len(rows), "overall": _scores(rows),
            "styles": {s: _scores([r for r in rows if r["style"] == s]) for s in STYLES}, "rows": rows}


def _scores(rows: list[dict]) -> dict:
    ratio = np.array([r["estimate"] / r["tempo"] for r in rows])
    acc1 = np.abs(ratio - 1) <= TOLERANCE
    acc2 = np.min([np.abs(ratio / m - 1) for m in OCTAVES], 0) <= TOLERANCE
    err = [abs(r["estimate"] - r["tempo"]) for r, ok in zip(rows, acc1) if ok]
    return {"n": len(rows), "accuracy1": round(float(acc1.mean()), 3), "accuracy2": round(float(acc2.mean()), 3),
            "median_bpm_error": round(float(np.median(err)), 3) if err else None,
            "wrong_ratios": sorted(round(float(x), 2) for x, ok in zip(ratio, acc1) if not ok)}


def table(result: dict) -> str:
    lines = [f"{result['grooves']} generated 4-bar grooves on kits never heard in training; tempo of the MIDI file "
             f"against the groove's (accuracy 1: within {TOLERANCE:.0%}; accuracy 2: or its half, double, third, triple)",
             "| style | grooves | accuracy 1 | accuracy 2 | median error (bpm), when right | the wrong ones, estimate / truth |",
             "|---|---|---|---|---|---|"]
    for name, s in [*result["styles"].items(), ("all", result["overall"])]:
        wrong = ", ".join(f"{x:g}" for x in s["wrong_ratios"]) or "-"
        err = f"{s['median_bpm_error']:.2f}" if s["median_bpm_error"] is not None else "-"
        lines.append(f"| {name} | {s['n']} | {s['accuracy1']:.3f} | {s['accuracy2']:.3f} | {err} | {wrong} |")
    return "\n".join(lines) + "\n"
