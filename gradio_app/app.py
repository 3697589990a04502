"""The browser app: tabs Transform, Layer, Interpolate, Transcribe and Library on the shared engine.

Every button calls the engine through its job queue (`engine.run`), so the browser and
OSC clients share one worker per device. A `RedrumError` becomes a readable message in
the page (`gr.Error`), never a traceback. Uploads land in the workspace (`uploads/`), which
the engine may always read; results are written to `renders/`, which the app serves.

Named API endpoints for `gradio_client`: /transform, /layer, /interpolate, /transcribe (first
input the main audio file, first output the result file's path: audio, or MIDI for /transcribe),
and /audition (a kit's name, a groove style and seed -> the kit playing that groove, a summary).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

# No telemetry or version checks: they would phone home from a user's machine, and offline their
# (non-daemon) request threads can hold the process open after Ctrl-C until the lookups time out.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np

from redrum_kit.drums import ONESHOT_CLASSES
from redrum_kit.engine import Engine
from redrum_kit.errors import RedrumError
from redrum_kit.layering import installed_classes
from redrum_kit.rhythm.events import TRANSCRIPTION_CLASSES
from redrum_kit.rhythm.generator import STYLES as GROOVE_STYLES
from redrum_kit.transcription import describe

log = logging.getLogger("redrum.gradio")

PCA_SLIDERS = 11
MAX_STEPS = 16
AUTO_CLASS = "auto (classifier)"
MAX_UPLOAD = "100mb"


def friendly(fn):
    """Engine errors as a message in the page; anything else logged, and a one-line message."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except RedrumError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(f"internal error: {type(exc).__name__}: {exc}", print_exception=False) from None
    return wrapper


def _velocities(oneshot) -> str:
    """A velocity layer's range ("0-42"), or "all"."""
    low, high = oneshot.velocity_low, oneshot.velocity_high
    return "all" if (low, high) == (0, 127) else f"{low}-{high}"


def _need(path, what: str) -> str:
    if not path:
        raise gr.Error(f"upload the {what} first", print_exception=False)
    return str(path)


def weights_figure(layers: list[dict], title: str):
    """Horizontal bars: each layer's weight, named by its source file."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 0.45 * max(3, len(layers)) + 0.8))
    names = [Path(l["path"]).stem.replace("synth:", "") for l in layers][::-1]
    weights = [l["weight"] for l in layers][::-1]
    ax.barh(names, weights, color="#d9534f")
    ax.set_xlim(0, 1)
    ax.set_xlabel("mix weight")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def map_figure(items: list[dict]):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for cls in ONESHOT_CLASSES:
        pts = [(i["x"], i["y"]) for i in items if i["class"] == cls]
        if pts:
            ax.scatter(*zip(*pts), s=14, label=f"{cls} ({len(pts)})", alpha=0.8)
    ax.set_xlabel("PC 1 (MFCC features)")
    ax.set_ylabel("PC 2")
    ax.set_title(f"the library: {len(items)} oneshots", fontsize=10)
    if items:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    plt.close(fig)
    return fig


def build(engine: Engine) -> gr.Blocks:
    """The Blocks app on `engine` (not launched)."""

    # -- Transform -----------------------------------------------------------------
    @friendly
    def transform(source, target, method, kit, only=(), double=False):
        target = _need(target, "target recording")
        kit_name = kit if method == "kit" else None
        if method != "kit":
            source = _need(source, "source recording")
        plot = engine.fresh_path("transform-plot", ".png") if method == "model" else None
        result = engine.run("transform", source=None if kit_name else source, target=target,
                            method="replace" if method != "model" else "model", kit=kit_name,
                            plot=str(plot) if plot else None, only=tuple(only or ()), double=bool(double))
        return result["path"], (str(plot) if plot else None), result.get("message", "")

    # -- Layer -----------------------------------------------------------------------
    def _layer(target, picked, cls, threshold, sliders, refine=False):
        if picked:
            target = str(engine.library.source_file(engine.library.get(int(picked.split(":")[0]))))
        target = _need(target, "oneshot (or pick one from the library)")
        result = engine.run("layer", target=target, threshold=float(threshold),
                            cls=None if cls == AUTO_CLASS else cls,
                            sliders={k: float(v) for k, v in enumerate(sliders) if v}, refine=refine)
        title = f"{result['class']}: {len(result['layers'])} layers above {threshold:g}"
        return result, weights_figure(result["layers"], title + (", refined" if refine else ""))

    @friendly
    def layer(target, picked, cls, threshold, *sliders):
        result, fig = _layer(target, picked, cls, threshold, sliders)
        return result["path"], fig, {k: v for k, v in result.items() if k != "library"}

    @friendly
    def layer_refine(target, picked, cls, threshold):
        """The mix fitted closely to the oneshot (a few seconds; the sliders do not apply)."""
        result, fig = _layer(target, picked, cls, threshold, (), refine=True)
        return result["path"], fig, {k: v for k, v in result.items() if k != "library"}

    @friendly
    def stems(target, picked, cls, threshold, *sliders):
        if picked:
            target = str(engine.library.source_file(engine.library.get(int(picked.split(":")[0]))))
        target = _need(target, "oneshot")
        folder = engine.fresh_path("stems")
        result = engine.run("layer", target=target, threshold=float(threshold),
                            cls=None if cls == AUTO_CLASS else cls,
                            sliders={k: float(v) for k, v in enumerate(sliders) if v}, stems=str(folder))
        return [result["path"], *result["stems"]]

    @friendly
    def save_pad(layered, kit, pad):
        layered = _need(layered, "layered result (press Layer first)")
        if not kit:
            raise gr.Error("name the kit to save the pad into", print_exception=False)
        r = engine.run("save_pad", path=layered, kit=kit.strip(), pad_name=(pad or "").strip() or None)
        return f"saved pad {r['pad']!r} ({r['class']}, MIDI note {r['note']}) in kit {r['kit']!r} ({r['pads']} pads)"

    # -- Interpolate -------------------------------------------------------------------
    @friendly
    def interpolate(a, b, steps, space):
        a, b = _need(a, "rhythm A"), _need(b, "rhythm B")
        result = engine.run("interpolate", a=a, b=b, steps=int(steps), space=space)
        paths = result["paths"]
        players = [gr.update(value=paths[k], visible=True, label=f"step {k}") if k < len(paths)
                   else gr.update(value=None, visible=False) for k in range(MAX_STEPS)]
        return (paths[0], *players, result["message"])

    # -- Transcribe -----------------------------------------------------------------------
    @friendly
    def transcribe(audio_file, tempo, method):
        audio_file = _need(audio_file, "drum recording")
        result = engine.run("transcribe", audio_path=audio_file, method=method,
                            tempo=float(tempo) if tempo else None)      # 0 or empty: estimated
        return result["path"], describe(result), {"tempo": result["tempo"], "events": result["events"]}

    # -- Library -------------------------------------------------------------------------
    def _rows(cls, kit, name=""):
        items = engine.library.search(name or "", None if cls == "all" else cls, None if kit == "all" else kit)
        return [[o.id, o.name, o.cls, o.kit, _velocities(o), round(o.duration, 2)] for o in items]

    def _choices():
        return [f"{o.id}: {o.name} ({o.cls}, {o.kit})" for o in engine.library.list()]

    def _kits():
        """The kits to play with (`default` always exists: made on first use)."""
        return gr.update(choices=sorted({"default", *engine.library.kits.names()}))

    @friendly
    def browse(cls, kit, name=""):
        kits = ["all", *engine.library.kit_names()]
        return _rows(cls, kit, name), gr.update(choices=kits), gr.update(choices=_choices()), _kits(), _kits()

    @friendly
    def import_folder(folder, cls, kit, name):
        if not folder or not folder.strip():
            raise gr.Error("type the path of a folder of oneshots", print_exception=False)
        path = engine.input_path(folder.strip(), "folder", folder=True)
        report = engine.library.import_paths([path])
        note = report.summary()
        if report.rejected:
            note += "; rejected: " + "; ".join(f"{r.path.name} ({r.reason})" for r in report.rejected[:5])
        return (note, *browse(cls, kit, name))

    @friendly
    def play(evt: gr.SelectData, table):
        row = table.iloc[evt.index[0]] if hasattr(table, "iloc") else table[evt.index[0]]
        oneshot = engine.library.get(int(row[0]))
        similar = engine.library.similar(oneshot.id, n=8)
        return (str(engine.library.source_file(oneshot)),
                [[o.id, o.name, o.cls, o.kit, round(d, 3)] for o, d in similar])

    @friendly
    def build_kit(name, source_kit=None):
        """A new kit: the most typical sound of each class, or (`source_kit`) one pad per instrument
        of a source kit. Never over a kit of that name."""
        if not name or not name.strip():
            raise gr.Error("name the new kit", print_exception=False)
        if source_kit is not None and source_kit in ("", "all"):
            raise gr.Error("choose a source kit in the kit list above first", print_exception=False)
        if engine.library.kits.exists(name.strip()):
            raise gr.Error(f"a kit named {name.strip()!r} exists; choose another name (nothing was changed)",
                           print_exception=False)
        kit = (engine.library.kit_from_exemplars(name.strip()) if source_kit is None
               else engine.library.kit_from_source(name.strip(), source_kit))
        engine.library.kits.save(kit)
        note = f"kit {kit.name!r}: " + ", ".join(f"{p.name} ({p.cls}, note {p.note})" for p in kit.pads)
        return note, _kits(), _kits()

    @friendly
    def audition(kit, style, seed):
        """A groove of `style` played by `kit`: hear a kit before you use it. -> the audio, a summary."""
        from redrum_kit.rhythm.generator import generate
        from redrum_kit.rhythm.midi import write_midi
        if not kit:
            raise gr.Error("choose a kit", print_exception=False)
        if style not in GROOVE_STYLES:
            raise gr.Error(f"choose a style: {', '.join(GROOVE_STYLES)}", print_exception=False)
        pattern = generate(style, bars=4, seed=int(seed or 0))
        midi = engine.fresh_path(f"groove-{style}", ".mid")
        write_midi(pattern, midi)
        result = engine.run("render", pattern=str(midi), kit=kit)
        summary = (f"{kit}: 4 bars of {style} at {pattern.tempo:.0f} bpm, "
                   f"{'stereo' if result['channels'] == 2 else 'mono'}; the MIDI is {midi.name}")
        return result["path"], "; ".join([summary, *result["notes"]])

    @friendly
    def export_kit(name, fmt):
        if not name:
            raise gr.Error("name the kit to export", print_exception=False)
        out = engine.fresh_path(f"kit-{name}")
        out.mkdir()
        path = engine.library.export_kit(name.strip(), fmt, out)
        return f"exported to {path}"

    @friendly
    def library_map():
        return map_figure(engine.library_map()["items"])

    with gr.Blocks(title="redrum-kit", analytics_enabled=False) as app:
        gr.Markdown("# redrum-kit\nDrum sounds on new rhythms, layered oneshots, and your sample library.")
        with gr.Tab("Transform"):
            gr.Markdown("The **source**'s drum sounds playing the **target**'s rhythm.")
            with gr.Row():
                t_source = gr.Audio(type="filepath", sources=["upload"], label="source (its sounds)",
                                    elem_id="transform-source")
                t_target = gr.Audio(type="filepath", sources=["upload"], label="target (its rhythm)",
                                    elem_id="transform-target")
            with gr.Row():
                t_method = gr.Radio(["model", "replace", "kit"], value="model", label="method",
                                    info="model: the learned redrum; replace: drum replacement with the source's "
                                         "hits; kit: replacement with a library kit")
                t_kit = gr.Dropdown(["default"], value="default", label="kit (method kit)", allow_custom_value=True,
                                    elem_id="transform-kit")
            with gr.Row():
                t_only = gr.CheckboxGroup(list(TRANSCRIPTION_CLASSES), value=[], label="replace only these drums",
                                          info="replace or kit: the target's other drums stay in its mix",
                                          elem_id="transform-only")
                t_double = gr.Checkbox(False, label="double: keep the target's own drums under the new hits",
                                       elem_id="transform-double")
            t_go = gr.Button("Redrum", variant="primary", elem_id="transform-run")
            t_out = gr.Audio(type="filepath", label="result", interactive=False, elem_id="transform-output")
            t_info = gr.Textbox(label="about the result", interactive=False)
            t_plot = gr.Image(type="filepath", label="source, output and target; the target's transcription; "
                                                     "the attention heads", interactive=False)
            t_go.click(transform, [t_source, t_target, t_method, t_kit, t_only, t_double], [t_out, t_plot, t_info],
                       api_name="transform")

        with gr.Tab("Layer"):
            gr.Markdown("A new oneshot as a sparse mix of a curated library. Move the sliders to explore.")
            with gr.Row():
                l_target = gr.Audio(type="filepath", sources=["upload"], label="oneshot", elem_id="layer-target")
                with gr.Column():
                    l_pick = gr.Dropdown([], label="or pick from the library", allow_custom_value=False,
                                         value=None)
                    l_class = gr.Dropdown([AUTO_CLASS, *installed_classes()], value=AUTO_CLASS, label="class")
                    l_threshold = gr.Slider(0.0, 0.3, value=0.04, step=0.01, label="threshold (drop weights below)")
            with gr.Accordion("PCA sliders (standard deviations along each direction)", open=False):
                with gr.Row():
                    l_sliders = [gr.Slider(-3, 3, value=0, step=0.1, label=f"PC {k + 1}", min_width=120)
                                 for k in range(PCA_SLIDERS)]
            with gr.Row():
                l_go = gr.Button("Layer", variant="primary", elem_id="layer-run")
                l_refine = gr.Button("Refine to the oneshot (a few seconds; sliders off)", elem_id="layer-refine")
            with gr.Row():
                l_out = gr.Audio(type="filepath", label="layered", interactive=False, elem_id="layer-output")
                l_chart = gr.Plot(label="layer weights")
            l_json = gr.JSON(label="weights and latent")
            with gr.Row():
                l_stems_go = gr.Button("Render stems")
                l_stems = gr.File(label="result and stems", file_count="multiple")
            with gr.Row():
                l_kit = gr.Textbox(label="kit", placeholder="my-kit", elem_id="layer-kit")
                l_pad = gr.Textbox(label="pad name (optional)")
                l_save = gr.Button("Save as pad", elem_id="layer-save")
            l_saved = gr.Textbox(label="saved", interactive=False, elem_id="layer-saved")
            inputs = [l_target, l_pick, l_class, l_threshold, *l_sliders]
            l_go.click(layer, inputs, [l_out, l_chart, l_json], api_name="layer")
            l_refine.click(layer_refine, inputs[:4], [l_out, l_chart, l_json], api_name="layer_refine")
            for control in (l_threshold, *l_sliders):
                control.release(layer, inputs, [l_out, l_chart, l_json], api_name=False)
            l_stems_go.click(stems, inputs, l_stems, api_name=False)
            l_save.click(save_pad, [l_out, l_kit, l_pad], l_saved, api_name=False)

        with gr.Tab("Interpolate"):
            gr.Markdown("From rhythm A to rhythm B in A's sounds, in steps.")
            with gr.Row():
                i_a = gr.Audio(type="filepath", sources=["upload"], label="A", elem_id="interp-a")
                i_b = gr.Audio(type="filepath", sources=["upload"], label="B", elem_id="interp-b")
            with gr.Row():
                i_steps = gr.Slider(2, MAX_STEPS, value=6, step=1, label="steps")
                i_space = gr.Radio(["latent", "conditioning"], value="latent", label="space",
                                   info="latent: the stage-1 codes of A and of A's sounds on B's rhythm, mixed; "
                                        "conditioning: the transcriptions mixed")
            i_go = gr.Button("Interpolate", variant="primary")
            i_first = gr.Audio(type="filepath", visible=False)
            with gr.Row():
                i_players = [gr.Audio(type="filepath", visible=False, interactive=False, min_width=160)
                             for _ in range(MAX_STEPS)]
            i_info = gr.Textbox(label="about the steps", interactive=False, elem_id="interp-info")
            i_go.click(interpolate, [i_a, i_b, i_steps, i_space], [i_first, *i_players, i_info],
                       api_name="interpolate")

        with gr.Tab("Transcribe"):
            gr.Markdown("Drum audio to MIDI: kick, snare, hat, tom and cymbal hits on General MIDI drum notes, "
                        "each tom on its own note (low to high), open hats on 46, and each hit's velocity "
                        "from how hard its drum was played.")
            with gr.Row():
                r_audio = gr.Audio(type="filepath", sources=["upload"], label="drum recording",
                                   elem_id="transcribe-audio")
                with gr.Column():
                    r_tempo = gr.Number(value=0, label="tempo of the MIDI file (bpm; 0: estimated)",
                                        info="the notes keep their times either way; give your project's tempo "
                                             "so that a DAW placing notes by beats keeps them on its grid",
                                        elem_id="transcribe-tempo")
                    r_method = gr.Radio(["auto", "model", "baseline"], value="auto", label="method",
                                        info="model: the CRNN; baseline: the DSP method")
            r_go = gr.Button("Transcribe", variant="primary", elem_id="transcribe-run")
            r_midi = gr.File(label="MIDI", interactive=False, elem_id="transcribe-midi")
            r_summary = gr.Textbox(label="found", interactive=False, elem_id="transcribe-summary")
            r_events = gr.JSON(label="events (time s, class, velocity, confidence)")
            r_go.click(transcribe, [r_audio, r_tempo, r_method], [r_midi, r_summary, r_events], api_name="transcribe")

        with gr.Tab("Library"):
            with gr.Row():
                b_folder = gr.Textbox(label="import a folder (path on this machine)", scale=3, elem_id="library-folder")
                b_import = gr.Button("Import", scale=1, elem_id="library-import")
            b_note = gr.Textbox(label="import report", interactive=False, elem_id="library-report")
            with gr.Row():
                b_class = gr.Dropdown(["all", *ONESHOT_CLASSES], value="all", label="class")
                b_kit = gr.Dropdown(["all"], value="all", label="kit", allow_custom_value=True, elem_id="library-source-kit")
                b_name = gr.Textbox(label="name holds (words)", elem_id="library-name")
                b_refresh = gr.Button("Browse")
            b_table = gr.Dataframe(headers=["id", "name", "class", "kit", "velocity", "seconds"], interactive=False,
                                   label="oneshots (select a row to play it and see similar sounds)",
                                   elem_id="library-table")
            b_play = gr.Audio(type="filepath", label="selected", interactive=False)
            b_similar = gr.Dataframe(headers=["id", "name", "class", "kit", "distance"], interactive=False,
                                     label="similar sounds")
            with gr.Row():
                b_kitname = gr.Textbox(label="kit name", elem_id="library-kit-name")
                b_build = gr.Button("Build kit (the most typical sound of each class)")
                b_from = gr.Button("Build kit from the source kit chosen above (one pad per instrument)",
                                   elem_id="library-build-from")
                b_format = gr.Dropdown(["sfz", "hydrogen", "folder"], value="sfz", label="export format")
                b_export = gr.Button("Export kit")
            b_kitnote = gr.Textbox(label="kit", interactive=False, elem_id="library-kit-note")
            with gr.Row():
                g_kit = gr.Dropdown(["default"], value="default", label="hear a kit", allow_custom_value=True,
                                    elem_id="audition-kit")
                g_style = gr.Dropdown(list(GROOVE_STYLES), value="rock", label="on a groove")
                g_seed = gr.Number(value=1, precision=0, label="groove seed")
                g_go = gr.Button("Play", elem_id="audition-run")
            g_out = gr.Audio(type="filepath", label="the kit on the groove", interactive=False, elem_id="audition-output")
            g_note = gr.Textbox(label="played", interactive=False, elem_id="audition-note")
            b_mapgo = gr.Button("Draw the library map", elem_id="library-map-run")
            b_map = gr.Plot(label="library map", elem_id="library-map")
            listed = [b_table, b_kit, l_pick, t_kit, g_kit]
            b_import.click(import_folder, [b_folder, b_class, b_kit, b_name], [b_note, *listed], api_name=False)
            b_refresh.click(browse, [b_class, b_kit, b_name], listed, api_name=False)
            b_name.submit(browse, [b_class, b_kit, b_name], listed, api_name=False)
            b_table.select(play, b_table, [b_play, b_similar], api_name=False)
            b_build.click(build_kit, b_kitname, [b_kitnote, t_kit, g_kit], api_name=False)
            b_from.click(build_kit, [b_kitname, b_kit], [b_kitnote, t_kit, g_kit], api_name=False)
            b_export.click(export_kit, [b_kitname, b_format], b_kitnote, api_name=False)
            g_go.click(audition, [g_kit, g_style, g_seed], [g_out, g_note], api_name="audition")
            b_mapgo.click(library_map, None, b_map, api_name=False)
        app.load(browse, [b_class, b_kit, b_name], listed, api_name=False)
    return app


def prepare(engine: Engine) -> None:
    """Uploads go to the workspace, which the engine always may read."""
    uploads = engine.workspace / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)


class Running:
    """A launched app: `url`, and `close()`."""

    def __init__(self, app: gr.Blocks, url: str):
        self.app, self.url = app, url

    def close(self) -> None:
        self.app.close()


def launch(engine: Engine, port: int = 7860, host: str = "127.0.0.1", concurrency: int = 2) -> Running:
    """Start the app in background threads on `host:port`. Raises RedrumError when the port is taken."""
    prepare(engine)
    app = build(engine)
    app.queue(default_concurrency_limit=concurrency, max_size=engine.max_queue * 4)
    try:
        app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                   allowed_paths=[str(engine.renders)], max_file_size=MAX_UPLOAD, show_error=True)
    except OSError as exc:
        raise RedrumError(f"cannot start the browser app on {host}:{port} ({exc}); "
                          "choose another --gradio-port or use --no-gradio") from None
    return Running(app, f"http://{host}:{port}")


def main() -> int:
    """`python -m gradio_app [--port N]`: the app alone, on its own engine."""
    import argparse
    import signal
    import threading
    parser = argparse.ArgumentParser(prog="python -m gradio_app", description="the redrum-kit browser app")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args()
    try:
        running = launch(Engine(device=args.device, allow_roots=[Path.home()]), args.port)
    except RedrumError as exc:
        print(f"gradio_app: error: {exc}", file=sys.stderr)
        return 1
    print(f"redrum-kit browser app on {running.url}; Ctrl-C stops it", flush=True)
    # started in the background by a script, a process inherits SIGINT ignored: stop on it all the same, as
    # `redrum serve` does
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        # a bounded stop: Ctrl-C always ends the app, even if a busy server is slow to close or a library
        # thread that is not a daemon would hold the interpreter's exit
        closer = threading.Thread(target=running.close, daemon=True)
        closer.start()
        closer.join(10)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
