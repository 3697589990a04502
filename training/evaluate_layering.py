"""`redrum eval layering`: the model's mixes against the best fits in feature space.

For each held-out hit: the mix a user hears (weights below 0.04 dropped and
the rest renormalised) of the model, of non-negative least squares, of
matching pursuit (15 atoms) and of the nearest single library oneshot, each
featurised like the target. Figures: feature error (and its ratio to
NNLS's), log-mel distance to the target (dB), active layers, the largest
weight, time per hit, and the share of hits where the method beats the best
single oneshot.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from redrum_kit import features, layering

METHODS = ("model", "model+refine", "nnls", "matching_pursuit", "nearest")


def method_weights(name: str, model, library: layering.LayerLibrary, feat: torch.Tensor) -> np.ndarray:
    if name in ("model", "model+refine"):
        with torch.no_grad():
            w = model.decode(model.encode(feat[None])[0])[0].numpy().astype(np.float64)
        return layering.refine_weights(library, feat, w) if name == "model+refine" else w
    if name == "nnls":
        return layering.nnls_weights(library, feat)
    if name == "matching_pursuit":
        return layering.matching_pursuit_weights(library, feat)
    return layering.nearest_weights(library, feat)


def evaluate(model, library: layering.LayerLibrary, hits: list[tuple[str, np.ndarray]],
             threshold: float = layering.THRESHOLD) -> dict:
    rows = {m: {"error": [], "mel": [], "layers": [], "max": [], "seconds": []} for m in METHODS}
    targets = torch.from_numpy(np.stack([layering.fit_length(y) for _, y in hits]))
    feats = features.layering_feature(targets)
    for i in range(len(hits)):
        for m in METHODS:
            start = time.perf_counter()
            w = method_weights(m, model, library, feats[i])
            seconds = time.perf_counter() - start
            layers = layering.threshold_layers(w, threshold)
            mix = library.mix(torch.from_numpy(layering.heard_weights(w, threshold))[None])
            r = rows[m]
            r["error"].append(float(layering.feature_error(features.layering_feature(mix), feats[i:i + 1])[0]))
            r["mel"].append(float(features.log_mel_distance(targets[i:i + 1], mix)[0]))
            r["layers"].append(len(layers))
            r["max"].append(max(v for _, v in layers))
            r["seconds"].append(seconds)
    nnls = np.array(rows["nnls"]["error"])
    single = np.array(rows["nearest"]["error"])
    out = {"hits": len(hits), "kits": sorted({k for k, _ in hits}), "threshold": threshold, "methods": {}}
    for m in METHODS:
        r = rows[m]
        err = np.array(r["error"])
        out["methods"][m] = {"feature_error": round(float(err.mean()), 4),
                             "vs_nnls": round(float(np.mean(err / np.maximum(nnls, 1e-9))), 3),
                             "log_mel_db": round(float(np.mean(r["mel"])), 2),
                             "active_layers": round(float(np.mean(r["layers"])), 2),
                             "max_active_layers": int(np.max(r["layers"])),
                             "max_weight": round(float(np.mean(r["max"])), 3),
                             "ms_per_hit": round(1000 * float(np.median(r["seconds"])), 2),
                             "beats_best_single": round(float(np.mean(err < single)), 3)}
    return out


def table(ev: dict) -> str:
    lines = ["| method | feature error | / NNLS | log-mel dB | active layers (max) | largest weight | "
             "beats best single | ms per hit |", "|---|---|---|---|---|---|---|---|"]
    for m, r in ev["methods"].items():
        lines.append(f"| {m} | {r['feature_error']:.3f} | {r['vs_nnls']:.2f} | {r['log_mel_db']:.2f} | "
                     f"{r['active_layers']:.1f} ({r['max_active_layers']}) | {r['max_weight']:.2f} | "
                     f"{100 * r['beats_best_single']:.0f}% | {r['ms_per_hit']:.2f} |")
    return "\n".join(lines) + "\n"


def _heard_features(layerer, w: np.ndarray, threshold: float) -> torch.Tensor:
    """The layering feature of the mix a user hears from weights `w` (below `threshold` dropped)."""
    dense = layering.heard_weights(w, threshold)
    return features.layering_feature(layerer.library.mix(torch.from_numpy(dense)[None]))


def _path_figures(feats: list[torch.Tensor]) -> dict:
    """Along a path of mixes: the feature distance of each step from the first (the research's
    distance plot; a smooth control rises steadily) and of each step from the one before."""
    start = torch.cat([feats[0]] * len(feats))
    from_start = layering.feature_error(torch.cat(feats), start).numpy()
    steps = layering.feature_error(torch.cat(feats[1:]), torch.cat(feats[:-1])).numpy()
    rises = np.diff(from_start) >= -1e-6
    return {"from_start": from_start, "steps": steps,
            "monotone": float(rises.mean()) if len(rises) else 1.0,
            "jump": float(steps.max() / max(steps.mean(), 1e-9)) if steps.sum() > 0 else 1.0,
            "changed": float((steps > 1e-6).mean())}


@torch.no_grad()
def smoothness(layerer, hits: list[tuple[str, np.ndarray]], steps: int = 13, span: float = 3.0,
               pairs: int = 10, threshold: float = layering.THRESHOLD, seed: int = 0) -> dict:
    """How the sound moves along each PCA slider (from -span to +span standard deviations, the rest
    of the hit's coordinates kept) and along latent interpolations between held-out hits.

    Per slider and for interpolations: `monotone` (share of steps that move further from the start;
    1 = always), `jump` (largest step over the mean step; 1 = even steps), `changed` (share of steps
    that change the mix at all), and the mean distance-from-start curve."""
    model = layerer.model
    feats = features.layering_feature(torch.from_numpy(np.stack([layering.fit_length(y) for _, y in hits])))
    z_hits = model.encode(feats)[0]
    values = np.linspace(-span, span, steps)
    sliders = []
    for k in range(model.cfg.pca):
        figures = []
        for i in range(len(hits)):
            path = []
            for v in values:
                z = model.move(z_hits[i:i + 1], {k: float(v)})
                path.append(_heard_features(layerer, model.decode(z)[0].numpy().astype(np.float64), threshold))
            figures.append(_path_figures(path))
        sliders.append(_summary(figures))
    rng = np.random.default_rng(seed)
    interp = []
    for _ in range(min(pairs, len(hits) * (len(hits) - 1) // 2)):
        a, b = rng.choice(len(hits), 2, replace=False)
        path = [_heard_features(layerer, model.decode((1 - t) * z_hits[a:a + 1] + t * z_hits[b:b + 1])[0]
                                .numpy().astype(np.float64), threshold) for t in np.linspace(0, 1, steps)]
        interp.append(_path_figures(path))
    return {"hits": len(hits), "steps": steps, "span": span, "values": values.round(3).tolist(),
            "sliders": sliders, "interpolation": _summary(interp) if interp else {}}


def _summary(figures: list[dict]) -> dict:
    return {"monotone": round(float(np.mean([f["monotone"] for f in figures])), 3),
            "jump": round(float(np.mean([f["jump"] for f in figures])), 2),
            "changed": round(float(np.mean([f["changed"] for f in figures])), 3),
            "from_start": np.mean([f["from_start"] for f in figures], 0).round(4).tolist()}


def smoothness_table(sm: dict) -> str:
    lines = ["| control | moves away at each step | largest step / mean step | steps that change the mix |",
             "|---|---|---|---|"]
    rows = [(f"PCA slider {k + 1}", r) for k, r in enumerate(sm["sliders"])]
    if sm["interpolation"]:
        rows.append(("interpolation between hits", sm["interpolation"]))
    for name, r in rows:
        lines.append(f"| {name} | {100 * r['monotone']:.0f}% | {r['jump']:.2f} | {100 * r['changed']:.0f}% |")
    return "\n".join(lines) + "\n"


def plot_smoothness(sm: dict, path) -> None:
    """Distance from the start along each slider (left; x = slider position) and along
    interpolations (right; x = interpolation step), as in the research's plots."""
    import io
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pathlib import Path
    from redrum_kit import files
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.cm.tab20(np.linspace(0, 1, 20))
    for k, r in enumerate(sm["sliders"]):
        a.plot(sm["values"], r["from_start"], lw=1.2, label=f"PC {k + 1}", color=colours[(2 * k) % 20 + k // 10])
    a.set_xlabel("slider position (standard deviations), from the far left")
    a.set_ylabel("feature distance from the start")
    a.legend(fontsize=7, ncol=2)
    a.set_title(f"PCA sliders ({sm['hits']} held-out hits)", fontsize=10)
    if sm["interpolation"]:
        b.plot(np.linspace(0, 1, sm["steps"]), sm["interpolation"]["from_start"], lw=1.5)
    b.set_xlabel("interpolation from hit A to hit B")
    b.set_title("latent interpolation", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    files.write_bytes(Path(path), buffer.getvalue())
