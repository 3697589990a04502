"""`redrum eval transform`: does the redrum keep the target's rhythm and the source's sounds?

Pairs come from the test split of a grid dataset (kits never in training):
source = kit a playing rhythm 1, target = kit b playing rhythm 2, and the
true answer x_{s->t} = kit a playing rhythm 2 (rendered with the same
oneshots and mix chain; at the source's level only in a grid built with
`level = "kit"`, such as dataset-grid-kit.toml: elsewhere each clip was
levelled alone). For each method (`model`; `model-undamped`, the
model without decay shaping; `replace`, drum replacement as `redrum transform --method replace`
runs it, with the shipped transcriber; the model hears with the one it was trained on):

- rhythm: onset F-measure (mir_eval, 50 ms) of the output's transcribed
  events against the events the target was rendered from (one class's notes
  closer than 30 ms counted as one onset, as the transcriber can only hear them;
  `merge = 0` counts each, as before session 39), mean over the classes
  present; `rhythm_relative` divides it by the same F of the true rendering
  (so the transcriber's own misses do not count against the method);
- timbre: log-mel distance (dB) from the output to the true rendering over
  that from the target itself (0: perfect, 1: no better than returning the
  target).

A third row, `ceiling`, is no method: the stage-1 autoencoder's reconstruction
of the true rendering, the closest any stage-2 model decoding through it can
come (its timbre ratio is the floor of the model's).

Each timbre ratio comes with a 95% bootstrap interval of its mean over the pairs
(`timbre_ci95`): one pair's ratio varies a lot (a standard deviation of about
0.2), so 60 pairs know the mean to about +-0.05 and 500 to about +-0.02.
A second interval resamples whole source kits (`timbre_ci95_kits`): how far
the mean could move on other kits like these. Five real test kits whose
ratios differ by 0.2 make it far wider than the first.

Groups: by the source kit (real Hydrogen kits, synthesiser kits), the
pairs whose target has layered hits (at least `LAYERED_SHARE` of its onsets
within 30 ms of an onset of another class), and the real-kit pairs whose
source plays every class the target plays (the others ask the model for a
drum it has never heard from that kit, which no method can know).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from redrum_kit import features
from redrum_kit.datasets.build import Dataset
from redrum_kit.errors import RedrumError
from redrum_kit.models import transcriber as crnn
from redrum_kit.reconstruct import reconstruct_signal
from redrum_kit.replace import replace_signal
from redrum_kit.rhythm.events import TRANSCRIPTION_CLASSES
from redrum_kit.transcription import load_model as load_transcriber
from training.transcriber import bootstrap_interval, f_measures, kit_group, match_counts, reference_onsets

LAYERED_SHARE = 0.3
METHODS = ("model", "model-undamped", "replace", "ceiling")
DAMPING = {"model": "source", "model-undamped": "model"}      # the model's rows: their `decays`
LABELS = {"ceiling": "stage-1 reconstruction of the true rendering",
          "model-undamped": "model, decays as decoded (no decay shaping)"}


def _distance(y: np.ndarray, x: np.ndarray, sr: int) -> float:
    """Multi-resolution log-mel distance (dB) between two mono signals at `sr`: the timbre measure."""
    return float(features.log_mel_distance(torch.from_numpy(y)[None], torch.from_numpy(x)[None], sr)[0])


def layered_share(ref: dict[str, np.ndarray], window: float = 0.03) -> float:
    """The share of onsets within `window` s of an onset of another class."""
    onsets = [(t, c) for c, times in ref.items() for t in times]
    if not onsets:
        return 0.0
    hits = sum(any(abs(t - u) <= window and c != d for u, d in onsets) for t, c in onsets)
    return hits / len(onsets)


def classes_played(ref: dict[str, np.ndarray]) -> set[str]:
    return {c for c, times in ref.items() if len(times)}


def rhythm_counts(y: np.ndarray, ref: dict[str, np.ndarray], transcriber) -> dict[str, np.ndarray]:
    probs = transcriber.activations(y)
    found = crnn.peak_pick(probs, transcriber.cfg.frame_rate, transcriber.cfg.classes, transcriber.threshold)
    return {c: match_counts(ref[c], np.array([t for t, cls, _ in found if cls == c])) for c in TRANSCRIPTION_CLASSES}


SOURCES = ("real", "synth")


def draw_pairs(ds: Dataset, n: int, seed: int, sources=SOURCES) -> list[tuple[int, int, int]]:
    """(source, target, true) item indices; `n` pairs with a real source kit and `n` with a synthesiser one
    (as many as the grid has kits for); `sources` keeps only those groups, each with the pairs it has in all."""
    rhythms = int(ds.manifest["config"].get("grid_rhythms") or 0)
    if not rhythms:
        raise RedrumError(f"{ds.folder}: not a grid dataset (build one with grid_rhythms, e.g. "
                          "presets/training/dataset-grid.toml)")
    kits = len(ds) // rhythms
    names = [ds[k * rhythms]["kit"] for k in range(kits)]
    rng = np.random.default_rng(seed)
    out = []
    for group in SOURCES:
        kits_of_group = [k for k in range(kits) if kit_group(names[k]) == group]
        for i in range(n if kits_of_group else 0):
            a = kits_of_group[i % len(kits_of_group)]
            b = int(rng.choice([k for k in range(kits) if k != a]))
            r1, r2 = (int(x) for x in rng.choice(rhythms, 2, replace=False))
            if group in sources:
                out.append((a * rhythms + r1, b * rhythms + r2, a * rhythms + r2))
    return out


def evaluate(redrummer, data_dir: Path, pairs: int = 20, seed: int = 0, progress=None,
             methods=METHODS, sources=SOURCES, merge: float = crnn.MIN_GAP) -> dict:
    """Figures per method and group (see the module's docstring); `methods` and `sources` (the source-kit
    groups) keep some of them, to measure many pairs sooner."""
    unknown = sorted(set(methods) - set(METHODS)) + sorted(set(sources) - set(SOURCES))
    if unknown or not methods or not sources:
        raise RedrumError(f"methods are {', '.join(METHODS)}; sources are {', '.join(SOURCES)}"
                          + (f" (not {', '.join(unknown)})" if unknown else ""))
    methods = [m for m in METHODS if m in methods]
    ds = Dataset(Path(data_dir), "test", in_memory=True)
    transcriber = redrummer.condition.transcriber         # the listener that scores every method's rhythm
    replacing = load_transcriber("auto") if "replace" in methods else None    # what `--method replace` hears with
    sr = redrummer.model.sr
    rows = []
    chosen = draw_pairs(ds, pairs, seed, sources)
    for s_i, t_i, true_i in (progress(chosen) if progress else chosen):
        s, t, true = ds[s_i], ds[t_i], ds[true_i]
        ref = reference_onsets(t, list(TRANSCRIPTION_CLASSES), merge)
        shapings = tuple(DAMPING[m] for m in methods if m in DAMPING)     # one run of the model serves both
        rendered = redrummer.transform_signals(s["audio"], t["audio"], sr, decays=shapings) if shapings else {}
        run = {"model": lambda: rendered["source"].y,
               "model-undamped": lambda: rendered["model"].y,
               "replace": lambda: replace_signal(t["audio"], sr, s["audio"], transcriber=replacing).y,
               "ceiling": lambda: reconstruct_signal(true["audio"], sr, redrummer.model.autoencoder)}
        outputs = {m: run[m]() for m in methods}
        d_target = _distance(t["audio"], true["audio"], sr)
        row = {"source_kit": s["kit"], "target_kit": t["kit"], "group": kit_group(s["kit"]),
               "layered": layered_share(ref) >= LAYERED_SHARE,
               "complete": classes_played(ref) <= classes_played(reference_onsets(s, list(TRANSCRIPTION_CLASSES))),
               "true": rhythm_counts(true["audio"], ref, transcriber)}
        for m, y in outputs.items():
            d = _distance(y, true["audio"], sr)
            row[m] = {"counts": rhythm_counts(y, ref, transcriber), "timbre_ratio": d / max(d_target, 1e-3)}
        rows.append(row)
    groups = {"real": [r for r in rows if r["group"] == "real"], "synth": [r for r in rows if r["group"] == "synth"],
              "layered": [r for r in rows if r["layered"]],
              "complete": [r for r in rows if r["complete"] and r["group"] == "real"]}
    out = {"pairs": len(rows), "source": str(data_dir), "methods": methods, "groups": {},
           "levels": ds.manifest["config"].get("level", "clip"),    # "kit": the truth at the source's level
           "merge_s": merge}                                       # one class's notes closer count as one

    def timbre(members, m) -> float:
        return round(float(np.mean([r[m]["timbre_ratio"] for r in members])), 4)

    for name, members in groups.items():
        if not members:
            continue
        def summed(key):
            return {c: sum((r[key]["counts"][c] if key in methods else r[key][c]) for r in members)
                    for c in TRANSCRIPTION_CLASSES}
        true_f = f_measures(summed("true"))["mean_f"]
        g = {"pairs": len(members), "true_rendering_f": true_f}
        for m in methods:
            f = f_measures(summed(m))
            ratios = [r[m]["timbre_ratio"] for r in members]
            g[m] = {"rhythm_f": f["mean_f"], "rhythm_relative": round(f["mean_f"] / true_f, 4) if true_f else 0.0,
                    "timbre_ratio": timbre(members, m),
                    "timbre_ci95": bootstrap_interval(ratios),
                    "timbre_ci95_kits": bootstrap_interval(ratios, kits=[r["source_kit"] for r in members]),
                    "per_class_f": {c: v["f"] for c, v in f["per_class"].items()}}
        out["groups"][name] = g
    out["per_source_kit"] = {}                  # the timbre ratio of each method by real source kit
    for kit in sorted({r["source_kit"] for r in groups["real"]}):
        members = [r for r in groups["real"] if r["source_kit"] == kit]
        out["per_source_kit"][kit] = {"pairs": len(members), **{m: timbre(members, m) for m in methods}}
    return out


def table(ev: dict) -> str:
    """A Markdown table of `evaluate`'s figures."""
    lines = ["| source kits | pairs | method | rhythm F | rhythm F / true rendering's | timbre ratio | its 95% interval "
             "| over source kits |", "|---|---|---|---|---|---|---|---|"]
    labels = {"real": "unseen real (Hydrogen)", "synth": "unseen synthesiser", "layered": "layered-hit targets",
              "complete": "unseen real, source plays every class the target does"}
    for name, g in ev["groups"].items():
        for m in METHODS:
            if m not in g:              # figures from before the ceiling or the undamped row
                continue
            r = g[m]
            ci, ci_kits = ("-".join(f"{x:.3f}" for x in r[key]) if key in r else ""
                           for key in ("timbre_ci95", "timbre_ci95_kits"))
            lines.append(f"| {labels.get(name, name)} | {g['pairs']} | {LABELS.get(m, m)} | {r['rhythm_f']:.3f} | "
                         f"{r['rhythm_relative']:.3f} | {r['timbre_ratio']:.3f} | {ci} | {ci_kits} |")
    if ev.get("per_source_kit"):
        kits = ev["per_source_kit"]
        methods = [m for m in METHODS if all(m in v for v in kits.values())]    # older figures lack some
        lines += ["", "| unseen real source kit | pairs | " + " | ".join(f"timbre ratio, {LABELS.get(m, m)}" for m in methods)
                  + " |", "|---|---|" + "---|" * len(methods)]
        lines += [f"| {k.split(':', 1)[-1]} | {v['pairs']} | " + " | ".join(f"{v[m]:.3f}" for m in methods) + " |"
                  for k, v in kits.items()]
    return "\n".join(lines) + "\n"


def interpolation_curves(redrummer, data_dir: Path, pairs: int = 10, steps: int = 5, seed: int = 0,
                         decays: str = "source", merge: float = crnn.MIN_GAP) -> dict:
    """How each interpolation space moves the rhythm: per step, the onset F of the output against
    A's events and against B's (A and B: one kit instance playing two rhythms of the test grid, so that
    only the rhythm changes). Gradual: F against B rises step by step while F against A falls. Also
    each step's mean log-mel distance (dB) to A's recording and to B's: the last step is A's sounds on
    B's rhythm, which is B itself here."""
    from redrum_kit.transform import INTERPOLATION_SPACES
    ds = Dataset(Path(data_dir), "test", in_memory=True)
    transcriber = redrummer.condition.transcriber
    sr = redrummer.model.sr
    chosen = draw_pairs(ds, max(1, pairs // 2), seed)
    out = {}

    for space in INTERPOLATION_SPACES:
        to_a = np.zeros((steps, len(TRANSCRIPTION_CLASSES), 3))
        to_b = np.zeros_like(to_a)
        dist = np.zeros((steps, 2))
        for s_i, _, true_i in chosen:                       # A = source, B = the same kit on the target's rhythm
            a, b = ds[s_i], ds[true_i]
            ref_a, ref_b = (reference_onsets(x, list(TRANSCRIPTION_CLASSES), merge) for x in (a, b))
            ys = redrummer.interpolate_signals(a["audio"], b["audio"], sr, steps, space, decays=decays).steps
            for k, y in enumerate(ys):
                for ref, acc in ((ref_a, to_a), (ref_b, to_b)):
                    acc[k] += np.stack(list(rhythm_counts(y, ref, transcriber).values()))
                dist[k] += [_distance(y, a["audio"], sr), _distance(y, b["audio"], sr)]
        def curve(acc):
            return [f_measures(dict(zip(TRANSCRIPTION_CLASSES, acc[k])))["mean_f"] for k in range(steps)]
        fa, fb = curve(to_a), curve(to_b)
        out[space] = {"f_to_a": fa, "f_to_b": fb,
                      "monotone": bool(all(x <= y + 0.02 for x, y in zip(fb, fb[1:]))
                                       and all(x >= y - 0.02 for x, y in zip(fa, fa[1:]))),
                      "db_to_a": list(dist[:, 0] / len(chosen)), "db_to_b": list(dist[:, 1] / len(chosen))}
    return {"pairs": len(chosen), "steps": steps, "decays": decays, "spaces": out}
