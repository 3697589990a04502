"""`redrum bench ...`: speed figures measured here, printed with the machine and as ratios.

Real-time factor (RTF) = seconds of audio processed per second of compute;
higher is faster. Each figure is the best of `repeats` runs (the least
disturbed by other work on the machine), with torch on the threads it has.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch

TRANSCRIBE_GOAL_RTF = 100.0


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} on {torch.get_num_threads()} threads"


def _best_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def drum_audio(seconds: float, sr: int) -> np.ndarray:
    """A rendered drum part (the built-in synth kit playing a funk groove), `seconds` long."""
    from redrum_kit.datasets.kits import from_synth
    from redrum_kit.render import render
    from redrum_kit.rhythm.generator import generate
    kit = from_synth(1, sr)
    pattern = generate("funk", bars=4, seed=0).looped(seconds)
    y, _ = render(pattern, kit.kit, kit.samples, sr, tail=0.0)
    return y[: int(seconds * sr)]


def bench_transcribe(seconds: float, repeats: int) -> dict:
    from redrum_kit.models import transcriber as crnn
    from redrum_kit.transcription import BandBaseline, checkpoint_path
    checkpoint = checkpoint_path()
    model = crnn.load(checkpoint) if checkpoint.is_file() else crnn.Transcriber(crnn.TranscriberConfig()).eval()
    y = drum_audio(seconds, model.cfg.sr)
    rows = {}
    for name, source in (("crnn", model), ("baseline", BandBaseline())):
        source.activations(y[: model.cfg.sr])  # warm-up
        t = _best_seconds(lambda: source.activations(y), repeats)
        rows[name] = {"seconds": round(t, 4), "rtf": round(seconds / t, 1)}
    return {"what": "transcribe", "machine": _machine(), "audio_seconds": seconds,
            "crnn_weights": "shipped checkpoint" if checkpoint.is_file() else "untrained (no checkpoint; same architecture)",
            "results": rows, "goal_rtf": TRANSCRIBE_GOAL_RTF,
            "crnn_vs_goal": round(rows["crnn"]["rtf"] / TRANSCRIBE_GOAL_RTF, 2),
            "crnn_vs_baseline": round(rows["crnn"]["rtf"] / rows["baseline"]["rtf"], 2)}


def run(what: str, seconds: float = 30.0, repeats: int = 3) -> dict:
    if what == "transcribe":
        return bench_transcribe(seconds, repeats)
    raise ValueError(what)


def report(results: dict) -> list[str]:
    lines = [f"redrum bench {results['what']}: {results['audio_seconds']:g} s of drums on {results['machine']}"]
    for name, row in results["results"].items():
        lines.append(f"  {name:9s} {row['seconds']:8.3f} s   {row['rtf']:8.1f}x real time")
    if "crnn_weights" in results:
        lines.append(f"  CRNN weights: {results['crnn_weights']}")
    lines.append(f"  CRNN / goal ({results['goal_rtf']:g}x): {results['crnn_vs_goal']:.2f};"
                 f" CRNN / baseline: {results['crnn_vs_baseline']:.2f}")
    return lines
