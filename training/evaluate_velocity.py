"""How well transcribed velocities follow how hard each drum was played, on kits never heard in training.

Each of the generator's styles plays `grooves` 4-bar parts (funk's ghost notes, house's accented
hats, ...) on each kit; the shipped transcriber hears the rendering (velocity layers and the SFZ gain
curve, as `redrum render` plays a part). Every found hit within 30 ms of a played hit of its class is
paired with it. Per clip and class (4 pairs or more, played at more than one velocity) the Spearman
rank correlation of played and found velocities: do the accents come out loud and the ghost notes
soft? Averaged over clips, weighted by pairs. Also the mean absolute difference of the velocities
themselves (the found ones put each class's loudest hit at 127, so a groove whose loudest snare was
played at 110 starts 17 off).
"""

from __future__ import annotations

import numpy as np

from redrum_kit import workspace

SR = 22050
WITHIN = 0.03
CLASSES = ("kick", "snare", "hat", "tom", "cymbal")


def evaluate(kits: tuple[str, ...] = workspace.HELD_OUT_KITS, grooves: int = 2, seed: int = 0,
             method: str = "auto") -> dict:
    from scipy.stats import spearmanr

    from redrum_kit.render import render
    from redrum_kit.rhythm.events import TRANSCRIPTION_CLASS
    from redrum_kit.rhythm.generator import STYLES, generate
    from redrum_kit.transcription import load_model, transcribe_signal
    from training.evaluate_voices import expand, load_kits
    kits = expand(kits)
    source = load_model(method)
    rng = np.random.default_rng(seed)
    rows = {}
    for name, kit in zip(kits, load_kits(kits)):
        row = {c: {"rho": 0.0, "pairs": 0, "error": 0.0, "hits": 0} for c in CLASSES}
        for style in STYLES:
            for _ in range(grooves):
                part = generate(style, bars=4, seed=int(rng.integers(1 << 30)), tom_notes=False, one_hat=False)
                y, report = render(part, kit.kit, kit.samples, SR)
                found = transcribe_signal(y, SR, name, source=source).events
                for cls in CLASSES:
                    pairs = [(v, near[0].velocity) for t, pad_cls, v in report.played
                             if TRANSCRIPTION_CLASS.get(pad_cls) == cls
                             for near in [[e for e in found if e.cls == cls and abs(e.time - t) < WITHIN]] if near]
                    r = row[cls]
                    r["error"] += sum(abs(a - b) for a, b in pairs)
                    r["hits"] += len(pairs)
                    if len(pairs) >= 4 and len({a for a, _ in pairs}) > 1 and len({b for _, b in pairs}) > 1:
                        r["rho"] += len(pairs) * float(spearmanr(*zip(*pairs)).statistic)
                        r["pairs"] += len(pairs)
        rows[name] = row
    pooled = {c: {k: sum(rows[n][c][k] for n in rows) for k in ("rho", "pairs", "error", "hits")} for c in CLASSES}
    return {"kits": {n: _means(r) for n, r in rows.items()}, "all": _means(pooled), "grooves": grooves}


def _means(row: dict) -> dict:
    """Sums over clips -> per class: the Spearman correlation (weighted by pairs), the mean velocity
    difference, and their counts (None where nothing was paired)."""
    return {c: {"spearman": r["rho"] / r["pairs"] if r["pairs"] else None, "pairs": r["pairs"],
                "velocity_error": r["error"] / r["hits"] if r["hits"] else None, "hits": r["hits"]}
            for c, r in row.items()}


def table(result: dict) -> str:
    lines = [f"The kits named (by default the held-out Hydrogen ones), {result['grooves']} grooves of each style; "
             "the shipped transcriber. Spearman correlation of played and found velocities per clip and class "
             "(weighted by hits); the mean absolute velocity difference",
             "| kit | " + " | ".join(CLASSES) + " | mean | velocity error |",
             "|---|" + "---|" * (len(CLASSES) + 2)]
    for name, row in [*result["kits"].items(), ("all", result["all"])]:
        rhos = [row[c]["spearman"] for c in CLASSES]
        known = [r for r in rhos if r is not None]
        hits = sum(row[c]["hits"] for c in CLASSES)
        cells = [f"{r:.3f}" if r is not None else "-" for r in rhos]
        mean = f"{np.mean(known):.3f}" if known else "-"
        error = sum(row[c]["velocity_error"] * row[c]["hits"] for c in CLASSES if row[c]["hits"])
        error = f"{error / hits:.1f}" if hits else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} | {error} |")
    return "\n".join(lines) + "\n"
