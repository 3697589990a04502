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

METHODS = ("model", "nnls", "matching_pursuit", "nearest")


def method_weights(name: str, model, library: layering.LayerLibrary, feat: torch.Tensor) -> np.ndarray:
    if name == "model":
        with torch.no_grad():
            return model.decode(model.encode(feat[None])[0])[0].numpy().astype(np.float64)
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
            dense = np.zeros(len(library), np.float32)
            for k, v in layers:
                dense[k] = v
            mix = library.mix(torch.from_numpy(dense)[None])
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
