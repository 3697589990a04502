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


def _rtf_row(fn, seconds: float, repeats: int, warm_up=None) -> dict:
    """Warm up (`warm_up`, else one run of `fn`), then the best time of `fn` and its real-time factor."""
    (warm_up or fn)()
    t = _best_seconds(fn, repeats)
    return {"seconds": round(t, 4), "rtf": round(seconds / t, 1)}


def _weights(checkpoint) -> str:
    return "shipped checkpoint" if checkpoint.is_file() else "untrained (no checkpoint; same architecture)"


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
    rows = {name: _rtf_row(lambda: source.activations(y), seconds, repeats,
                           warm_up=lambda: source.activations(y[: model.cfg.sr]))
            for name, source in (("crnn", model), ("baseline", BandBaseline()))}
    return {"what": "transcribe", "machine": _machine(), "audio_seconds": seconds,
            "crnn_weights": _weights(checkpoint),
            "results": rows, "goal_rtf": TRANSCRIBE_GOAL_RTF,
            "crnn_vs_goal": round(rows["crnn"]["rtf"] / TRANSCRIBE_GOAL_RTF, 2),
            "crnn_vs_baseline": round(rows["crnn"]["rtf"] / rows["baseline"]["rtf"], 2)}


STAGE1_GOAL_RTF = 50.0
# encode + decode of 3 s, measured on these 2-core machines with RAVE itself (issue 4)
RAVE_QUOTED_RTF = {"RAVE v2 (31.5 M parameters, 44.1 kHz)": 6.2, "RAVE v2_small": 26.5}
# this architecture at RAVE v2's size (widths 96..768, ratios 4, 4, 4, 2, 16 bands, 44.1 kHz): the
# reference measured in the same run
RAVE_V2_SIZE = {"sr": 44100, "channels": [96, 192, 384, 768], "ratios": [4, 4, 4, 2], "latent": 128}


def bench_stage1(seconds: float, repeats: int) -> dict:
    """Encode + decode of `seconds` of drums (one batch item), default model vs. a RAVE-v2-sized one."""
    from redrum_kit.models import stage1
    from redrum_kit.reconstruct import checkpoint_path
    checkpoint = checkpoint_path()
    model = stage1.load(checkpoint) if checkpoint.is_file() else stage1.Stage1(stage1.Stage1Config()).eval()
    rows = {}
    for name, m in (("default", model), ("rave-v2-size", stage1.Stage1(stage1.Stage1Config(**RAVE_V2_SIZE)).eval())):
        sr, comp = m.cfg.sr, m.cfg.compression
        x = torch.from_numpy(drum_audio(seconds, sr)[: int(seconds * sr) // comp * comp].copy())[None, None]

        @torch.inference_mode()
        def once():
            m.decode(m.encode(x)[0])
        rows[name] = {**_rtf_row(once, seconds, repeats),
                      "parameters_m": round(sum(p.numel() for p in m.parameters()) / 1e6, 2)}
    return {"what": "stage1", "machine": _machine(), "audio_seconds": seconds,
            "weights": _weights(checkpoint),
            "results": rows, "goal_rtf": STAGE1_GOAL_RTF,
            "default_vs_goal": round(rows["default"]["rtf"] / STAGE1_GOAL_RTF, 2),
            "default_vs_rave_v2_size": round(rows["default"]["rtf"] / rows["rave-v2-size"]["rtf"], 2),
            "default_vs_quoted": {k: round(rows["default"]["rtf"] / v, 2) for k, v in RAVE_QUOTED_RTF.items()}}


TRANSFORM_GOAL_RTF = 30.0


def bench_transform(seconds: float, repeats: int) -> dict:
    """End to end `transform_signal` (resampling from 44.1 kHz, transcription of both, stage 2, decoding),
    against drum replacement in the same run."""
    from redrum_kit import transform
    from redrum_kit.models import stage2
    from redrum_kit.models.stage1 import Stage1Config
    from redrum_kit.replace import replace_signal
    from redrum_kit.transcription import load_model as load_transcriber
    checkpoint = transform.checkpoint_path()
    if checkpoint.is_file():
        model = transform.load_model()
    else:
        from dataclasses import asdict
        model = stage2.Redrum(stage2.Stage2Config(stage1=asdict(Stage1Config()))).eval()
    transcriber = load_transcriber("auto")
    redrummer = transform.Redrummer(model, transform.load_conditioning())
    sr = 44100
    target = drum_audio(seconds, sr)
    source = drum_audio(seconds, sr)[::-1].copy()   # another part, the same kit
    runs = {"model": lambda: redrummer.transform_signal(source, target, sr),
            "replace": lambda: replace_signal(target, sr, source, transcriber=transcriber)}
    rows = {name: _rtf_row(fn, seconds, repeats) for name, fn in runs.items()}
    return {"what": "transform", "machine": _machine(), "audio_seconds": seconds,
            "weights": _weights(checkpoint),
            "results": rows, "goal_rtf": TRANSFORM_GOAL_RTF,
            "model_vs_goal": round(rows["model"]["rtf"] / TRANSFORM_GOAL_RTF, 2),
            "model_vs_replace": round(rows["model"]["rtf"] / rows["replace"]["rtf"], 2)}


LAYER_GOAL_MS = 5.0


def bench_layer(seconds: float, repeats: int) -> dict:
    """Per oneshot: feature, encode, decode and the mix of the library (what a MIDI note triggers), with
    the shipped snare model (or an untrained one of the same size and a 200-oneshot library)."""
    from redrum_kit import layering
    from redrum_kit.models import layering as model_lib
    path = layering.checkpoint_path("snare")
    if path.is_file():
        model = model_lib.load(path)
    else:
        model = model_lib.LayeringVAE(model_lib.LayeringConfig(
            library=[f"synth:snare:{300_000 + i}" for i in range(200)])).eval()
    bank = torch.randn(len(model.cfg.library), int(seconds * layering.OUTPUT_SR)) * 0.1  # the library at 44.1 kHz
    hit = torch.from_numpy(layering.fit_length(drum_audio(1.0, layering.SR)))
    rows = {}

    @torch.inference_mode()
    def once():
        feat = layering.features.layering_feature(hit)
        w = model.decode(model.encode(feat[None])[0])
        w = torch.where(w >= layering.THRESHOLD, w, torch.zeros_like(w))
        return (w / w.sum()) @ bank
    once()
    n = 50
    t = _best_seconds(lambda: [once() for _ in range(n)], repeats) / n
    rows["layer"] = {"seconds": round(t, 5), "ms": round(1000 * t, 3)}
    return {"what": "layer", "machine": _machine(), "audio_seconds": seconds, "library": len(model.cfg.library),
            "weights": "shipped snare model" if path.is_file() else "untrained (no checkpoint; same size)",
            "results": rows, "goal_ms": LAYER_GOAL_MS, "goal_over_measured": round(LAYER_GOAL_MS / (1000 * t), 2)}


OSC_PING_GOAL_MS = 5.0


def _percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3)}


def _timed_calls(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(1000 * (time.perf_counter() - start))
    return out


def _free_udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(65536)
    s.sendto(data, addr)
"""


def bench_osc(seconds: float, repeats: int) -> dict:
    """A real `redrum serve --no-gradio` in its own process, driven over loopback UDP: ping latency
    beside a bare Python UDP echo server (the floor of any Python OSC server here), layer and
    transform round trips, and ping throughput from 8 clients at once."""
    import socket
    import subprocess
    import sys
    import tempfile
    import threading
    from pathlib import Path
    from osc_server.client import OscClient, encode
    from redrum_kit import audio, synth
    n = 100 * max(1, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, REDRUM_HOME=str(tmp / "home"))
        port, echo_port = _free_udp_port(), _free_udp_port()
        server = subprocess.Popen([sys.executable, "-m", "redrum_kit", "serve", "--no-gradio", "--osc-port", str(port),
                                   "--allow-root", str(tmp)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(echo_port)], stdout=subprocess.PIPE, text=True)
        try:
            server.stdout.readline()
            echo.stdout.readline()
            with OscClient(port=port, timeout=600) as c:
                for _ in range(20):
                    c.call("/redrum/ping")                  # warm up
                ping = _percentiles(_timed_calls(lambda: c.call("/redrum/ping"), n))
                raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                raw.settimeout(5)
                datagram = encode("/redrum/ping", "x")

                def echo_once():
                    raw.sendto(datagram, ("127.0.0.1", echo_port))
                    raw.recvfrom(65536)
                for _ in range(20):
                    echo_once()
                reference = _percentiles(_timed_calls(echo_once, n))
                raw.close()
                snare = tmp / "snare.wav"
                audio.save(snare, synth.oneshot("snare", 3, 44100), 44100)
                loop = tmp / "loop.wav"
                audio.save(loop, drum_audio(seconds, 44100), 44100)
                c.call("/redrum/layer", str(snare), 0.04, "", "snare")    # loads the model
                layer = _percentiles(_timed_calls(lambda: c.call("/redrum/layer", str(snare), 0.04, "", "snare"),
                                                  10 * max(1, repeats)))
                c.call("/redrum/transform", str(loop), str(loop))
                transform = _percentiles(_timed_calls(lambda: c.call("/redrum/transform", str(loop), str(loop)),
                                                      max(2, repeats)))
            counts = []

            def client():
                with OscClient(port=port, timeout=30) as cc:
                    for _ in range(100):
                        cc.call("/redrum/ping")
                    counts.append(100)
            threads = [threading.Thread(target=client) for _ in range(8)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            throughput = sum(counts) / (time.perf_counter() - start)
        finally:
            for p in (server, echo):
                p.terminate()
                p.wait(30)
    return {"what": "osc", "machine": _machine(), "audio_seconds": seconds, "goal_ping_p99_ms": OSC_PING_GOAL_MS,
            "results": {"ping": ping, "udp_echo_reference": reference, "layer": layer,
                        f"transform_{seconds:g}s": transform},
            "ping_p99_vs_goal": round(ping["p99_ms"] / OSC_PING_GOAL_MS, 2),
            "ping_p50_vs_echo": round(ping["p50_ms"] / max(reference["p50_ms"], 1e-6), 2),
            "pings_per_second_8_clients": round(throughput, 1)}


MIDI_GOAL_MS = 5.0


def bench_midi(seconds: float, repeats: int) -> dict:
    """Note-on to the voice's buffer in the mixer, through `Player.handle` (the path `redrum midi`
    takes), on the default kit with every pad that has a layering model layered; and the time to
    mix one 128-frame block with the voices that leaves sounding."""
    from redrum_kit import live
    from redrum_kit.engine import Engine
    from redrum_kit.pads import Player, make_layered
    engine = Engine(device="cpu")
    kit = engine.kit("default")
    layered = make_layered(kit)
    start = time.perf_counter()
    sounds = engine.pad_sounds(kit, 44100)
    prepare = time.perf_counter() - start
    player = Player(sounds)
    notes = [p.note for p in kit.pads]
    ms = live.note_latencies(player, notes, n=1000 * max(1, repeats))
    blocks = _timed_calls(lambda: player.render(live.BLOCK), 500)
    return {"what": "midi", "machine": _machine(), "goal_ms": MIDI_GOAL_MS, "n": len(ms),
            "p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "max_ms": round(float(ms.max()), 4), "render_block_p99_ms": round(float(np.percentile(blocks, 99)), 4),
            "block_ms": round(1000 * live.BLOCK / 44100, 2), "layered_pads": layered,
            "pads": len(kit.pads), "prepare_seconds": round(prepare, 2),
            "p99_vs_goal": round(float(np.percentile(ms, 99)) / MIDI_GOAL_MS, 4)}


def run(what: str, seconds: float = 30.0, repeats: int = 3) -> dict:
    if what == "midi":
        return bench_midi(seconds, repeats)
    if what == "osc":
        return bench_osc(seconds, repeats)
    if what == "layer":
        return bench_layer(seconds, repeats)
    if what == "transform":
        return bench_transform(seconds, repeats)
    if what == "transcribe":
        return bench_transcribe(seconds, repeats)
    if what == "stage1":
        return bench_stage1(seconds, repeats)
    raise ValueError(what)


def report(results: dict) -> list[str]:
    if results["what"] == "midi":
        return [f"redrum bench midi: default kit, {results['pads']} pads ({len(results['layered_pads'])} layered: "
                f"{', '.join(results['layered_pads'])}), on {results['machine']}",
                f"  note-on to voice buffer: p50 {results['p50_ms']:.4f} ms, p99 {results['p99_ms']:.4f} ms, "
                f"max {results['max_ms']:.3f} ms (n={results['n']})",
                f"  mixing a {results['block_ms']} ms block: p99 {results['render_block_p99_ms']:.4f} ms",
                f"  p99 / goal ({results['goal_ms']:g} ms): {results['p99_vs_goal']:.4f};"
                f" layered renders cached in {results['prepare_seconds']} s at start"]
    if results["what"] == "osc":
        lines = [f"redrum bench osc: a real `redrum serve` over loopback UDP, on {results['machine']}"]
        for name, r in results["results"].items():
            lines.append(f"  {name:20s} p50 {r['p50_ms']:9.3f} ms   p99 {r['p99_ms']:9.3f} ms   (n={r['n']})")
        lines.append(f"  ping p99 / goal ({results['goal_ping_p99_ms']:g} ms): {results['ping_p99_vs_goal']:.2f};"
                     f" ping p50 / bare UDP echo p50: {results['ping_p50_vs_echo']:.2f}")
        lines.append(f"  throughput: {results['pings_per_second_8_clients']:.0f} pings/s from 8 clients at once")
        return lines
    if results["what"] == "layer":
        r = results["results"]["layer"]
        return [f"redrum bench layer: {results['library']}-oneshot library, {results['audio_seconds']:g} s output, "
                f"on {results['machine']}",
                f"  feature + encode + decode + mix: {r['ms']:.3f} ms per oneshot ({results['weights']})",
                f"  goal {results['goal_ms']:g} ms / measured: {results['goal_over_measured']:.2f}"]
    lines = [f"redrum bench {results['what']}: {results['audio_seconds']:g} s of drums on {results['machine']}"]
    for name, row in results["results"].items():
        size = f"   {row['parameters_m']:6.2f} M parameters" if "parameters_m" in row else ""
        lines.append(f"  {name:12s} {row['seconds']:8.3f} s   {row['rtf']:8.1f}x real time{size}")
    if results["what"] == "stage1":
        lines.append(f"  weights: {results['weights']}")
        lines.append(f"  default / goal ({results['goal_rtf']:g}x): {results['default_vs_goal']:.2f};"
                     f" default / RAVE-v2-sized (same run): {results['default_vs_rave_v2_size']:.2f}")
        for k, v in results["default_vs_quoted"].items():
            lines.append(f"  default / {k}, {RAVE_QUOTED_RTF[k]:g}x as quoted for these machines: {v:.2f}")
        return lines
    if results["what"] == "transform":
        lines.append(f"  weights: {results['weights']}")
        lines.append(f"  model / goal ({results['goal_rtf']:g}x): {results['model_vs_goal']:.2f};"
                     f" model / replace: {results['model_vs_replace']:.2f}")
        return lines
    if "crnn_weights" in results:
        lines.append(f"  CRNN weights: {results['crnn_weights']}")
    lines.append(f"  CRNN / goal ({results['goal_rtf']:g}x): {results['crnn_vs_goal']:.2f};"
                 f" CRNN / baseline: {results['crnn_vs_baseline']:.2f}")
    return lines
