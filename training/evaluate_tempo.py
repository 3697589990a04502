"""How well `redrum transcribe` finds a groove's tempo (the MIDI file's), on kits never heard in training.

Each of the generator's styles plays `grooves` 4-bar parts (tempo, swing and
fills drawn as the style draws them) on each held-out Hydrogen kit, and so
does each of Hydrogen's demo songs (patterns people wrote; their first
minute); the transcriber hears the rendering and
`transcription.estimate_tempo` names the tempo. Scored as in tempo-estimation research: accuracy 1, the share within
4% of the true tempo; accuracy 2, within 4% of it or of its half, double,
third or triple (the metrical level missed, the pulse found).
"""

from __future__ import annotations

import numpy as np

from redrum_kit import workspace

OCTAVES = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
TOLERANCE = 0.04
DEMO_SONGS = "demo songs"
SONG_SECONDS = 60.0


def evaluate(kits: tuple[str, ...] = workspace.HELD_OUT_KITS, grooves: int = 2, seed: int = 0,
             method: str = "auto") -> dict:
    from redrum_kit.datasets.kits import installed_hydrogen
    from redrum_kit.render import render
    from redrum_kit.rhythm.generator import STYLES, generate
    from redrum_kit.rhythm.h2song import read_song
    from redrum_kit.transcription import load_model, transcribe_signal
    loaded = installed_hydrogen(kits, 22050)
    source = load_model(method)
    rng = np.random.default_rng(seed)
    songs = sorted(workspace.HYDROGEN_SONGS.glob("*.h2song"))
    rows = []
    for name, kit in zip(kits, loaded):
        parts = [(style, generate(style, bars=4, seed=int(rng.integers(1 << 30)), tom_notes=False, one_hat=False))
                 for style in STYLES for _ in range(grooves)]
        for style, part in parts + [(DEMO_SONGS, read_song(song)) for song in songs]:
            y, _ = render(part, kit.kit, kit.samples, 22050)
            found = transcribe_signal(y[:int(SONG_SECONDS * 22050)], 22050, name, source=source).tempo
            rows.append({"kit": name, "style": style, "tempo": part.tempo, "estimate": found})
    generated = [r for r in rows if r["style"] != DEMO_SONGS]
    groups = [*STYLES, DEMO_SONGS] if songs else list(STYLES)
    return {"grooves": len(generated), "songs": len(rows) - len(generated), "overall": _scores(generated),
            "styles": {s: _scores([r for r in rows if r["style"] == s]) for s in groups}, "rows": rows}


def _scores(rows: list[dict]) -> dict:
    ratio = np.array([r["estimate"] / r["tempo"] for r in rows])
    acc1 = np.abs(ratio - 1) <= TOLERANCE
    acc2 = np.min([np.abs(ratio / m - 1) for m in OCTAVES], 0) <= TOLERANCE
    err = [abs(r["estimate"] - r["tempo"]) for r, ok in zip(rows, acc1) if ok]
    return {"n": len(rows), "accuracy1": round(float(acc1.mean()), 3), "accuracy2": round(float(acc2.mean()), 3),
            "median_bpm_error": round(float(np.median(err)), 3) if err else None,
            "wrong_ratios": sorted(round(float(x), 2) for x, ok in zip(ratio, acc1) if not ok)}


def table(result: dict) -> str:
    lines = [f"{result['grooves']} generated 4-bar grooves and {result['songs']} renderings of Hydrogen's demo songs "
             f"(their first minute) on kits never heard in training; tempo of the MIDI file against the part's "
             f"(accuracy 1: within {TOLERANCE:.0%}; accuracy 2: or its half, double, third, triple; 'all': the "
             f"generated grooves)",
             "| style | grooves | accuracy 1 | accuracy 2 | median error (bpm), when right | the wrong ones, estimate / truth |",
             "|---|---|---|---|---|---|"]
    for name, s in [*result["styles"].items(), ("all", result["overall"])]:
        wrong = ", ".join(f"{x:g}" for x in s["wrong_ratios"]) or "-"
        err = f"{s['median_bpm_error']:.2f}" if s["median_bpm_error"] is not None else "-"
        lines.append(f"| {name} | {s['n']} | {s['accuracy1']:.3f} | {s['accuracy2']:.3f} | {err} | {wrong} |")
    return "\n".join(lines) + "\n"
