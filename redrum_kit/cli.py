"""The `redrum` command line.

Each subcommand parses its arguments, calls the engine (the operations on
audio files every front end shares) or the library, and prints the answer. Bad input ends with one line on stderr,
`redrum: error: ...`, and a non-zero exit status; never a traceback (set
REDRUM_DEBUG=1 to see one for an internal error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from redrum_kit import __version__
from redrum_kit.drums import ONESHOT_CLASSES
from redrum_kit.engine import refuse_existing, save_audio
from redrum_kit.errors import RedrumError

EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"redrum: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def _progress(desc: str):
    from tqdm import tqdm
    return lambda items: tqdm(items, desc=desc, unit="file", disable=None, file=sys.stderr)


def _library():
    from redrum_kit.library import Library
    return Library()


def _print_json(data) -> None:
    print(json.dumps(data, indent=1))


def _engine():
    """The engine for one command: any path a local user names, the models loaded as needed."""
    from redrum_kit.engine import Engine
    return Engine(device="auto")


# -- library -----------------------------------------------------------------

def cmd_library_import(args) -> int:
    lib = _library()
    if not args.paths and not args.synth:
        raise RedrumError("nothing to import: give files or folders, or --synth N")
    report = None
    if args.paths:
        report = lib.import_paths([Path(p) for p in args.paths], _progress("importing"))
    if args.synth:
        seeds = list(range(args.seed, args.seed + args.synth))
        synth_report = lib.import_synth(seeds, _progress("synthesising"))
        if report is None:
            report = synth_report
        else:
            report.added += synth_report.added
            report.duplicates += synth_report.duplicates
    for rej in report.rejected:
        print(f"rejected: {rej.path}: {rej.reason}", file=sys.stderr)
    if args.json:
        _print_json({"added": report.added, "duplicates": [[str(p), i] for p, i in report.duplicates],
                     "rejected": [{"path": str(r.path), "reason": r.reason} for r in report.rejected],
                     "skipped": report.skipped})
    else:
        by_class: dict[str, int] = {}
        for oid in report.added:
            o = lib.get(oid)
            by_class[o.cls] = by_class.get(o.cls, 0) + 1
        detail = ", ".join(f"{n} {c}" for c, n in sorted(by_class.items()))
        print(report.summary() + (f" ({detail})" if detail else ""))
    return EXIT_BAD_INPUT if report.rejected else 0


def _row(o) -> str:
    vel = f" vel {o.velocity_low}-{o.velocity_high}" if (o.velocity_low, o.velocity_high) != (0, 127) else ""
    return f"{o.id:6d}  {o.cls:10s} {o.confidence:4.2f}  {o.duration:5.2f}s  {o.kit} / {o.name}{vel}"


def cmd_library_list(args) -> int:
    items = _library().search(args.name or "", args.cls, args.kit)
    if args.json:
        _print_json({"items": [o.to_json() for o in items]})
    else:
        for o in items:
            print(_row(o))
        print(f"{len(items)} oneshots", file=sys.stderr)
    return 0


def cmd_library_show(args) -> int:
    lib = _library()
    o = lib.get(args.id)
    if args.json:
        _print_json(o.to_json())
    else:
        for key, value in o.to_json().items():
            print(f"{key:14s} {value}")
    return 0


def cmd_library_similar(args) -> int:
    lib = _library()
    if args.query.isdigit():
        found = lib.similar(int(args.query), n=args.n, same_class=args.same_class)
    elif Path(args.query).is_file():
        cls, found = lib.similar_to_file(Path(args.query), n=args.n, same_class=args.same_class)
        print(f"{Path(args.query).name}: heard as {cls}", file=sys.stderr)
    else:
        raise RedrumError(f"{args.query}: neither a oneshot id nor an audio file")
    if args.json:
        _print_json({"items": [dict(o.to_json(), distance=round(d, 4)) for o, d in found]})
    else:
        for o, d in found:
            print(f"{d:7.3f}  {_row(o)}")
    return 0


def cmd_library_remove(args) -> int:
    removed = _library().remove(args.ids)
    for o in removed:
        print(f"removed {_row(o).strip()}")
    print(f"{len(removed)} oneshots removed from the library (the original files are untouched)", file=sys.stderr)
    return 0


def cmd_library_exemplars(args) -> int:
    chosen, residuals = _library().exemplars(args.cls, args.n)
    if args.json:
        _print_json({"items": [dict(o.to_json(), residual=round(r, 4)) for o, r in zip(chosen, residuals)]})
    else:
        for o, r in zip(chosen, residuals):
            print(f"{r:6.3f}  {_row(o)}")
        if len(chosen) < args.n:
            print(f"the class has only {len(chosen)} oneshots", file=sys.stderr)
    return 0


def cmd_library_set_class(args) -> int:
    print(_row(_library().set_class(args.id, args.cls)))
    return 0


# -- kits --------------------------------------------------------------------

def _parse_pad(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise RedrumError(f"bad --pad {text!r}: expected oneshot ids like 12 or 12,13,14") from None
    if not ids:
        raise RedrumError(f"bad --pad {text!r}: no ids")
    return ids


def cmd_kit_build(args) -> int:
    lib = _library()
    from redrum_kit.library.kits import check_name
    check_name(args.name)
    if lib.kits.is_user_kit(args.name) and not args.replace:
        raise RedrumError(f"kit {args.name!r} already exists; choose another name or pass --replace")
    if args.from_kit and args.pad:
        raise RedrumError("use either --from-kit or --pad, not both")
    if args.from_kit:
        kit = lib.kit_from_source(args.name, args.from_kit, args.description)
    elif args.pad:
        kit = lib.kit_from_ids(args.name, [_parse_pad(p) for p in args.pad], args.description)
    else:
        kit = lib.kit_from_exemplars(args.name, description=args.description)
    path = lib.kits.save(kit, replace=args.replace)
    print(f"kit {kit.name!r}: {len(kit.pads)} pads -> {path}")
    return 0


def cmd_kit_list(args) -> int:
    lib = _library()
    lib.ensure_default_kit(_progress("making the default kit"))
    names = lib.kits.names()
    if args.json:
        _print_json({"kits": names})
    else:
        print("\n".join(names))
    return 0


def cmd_kit_show(args) -> int:
    lib = _library()
    kit = lib.ensure_default_kit() if args.name == "default" else lib.kits.load(args.name)
    if args.json:
        import tomllib
        _print_json(tomllib.loads(kit.to_toml()))
    else:
        print(f"{kit.name}: {kit.description}")
        for p in kit.pads:
            choke = f" choke {p.choke}" if p.choke else ""
            print(f"  note {p.note:3d}  {p.cls:10s} {p.name}  ({len(p.layers)} layer(s)){choke}")
    return 0


def cmd_kit_export(args) -> int:
    out = _library().export_kit(args.name, args.format, Path(args.output))
    print(out)
    return 0


def cmd_kit_layer(args) -> int:
    result = _engine().layer_kit(args.name, args.output, args.velocity_pc, args.depth)
    print(f"kit {result['kit']!r}: layered pads {', '.join(result['layered'])} "
          f"(velocity moves PCA slider {args.velocity_pc} by +-{args.depth:g})")
    return 0


def cmd_kit_rekey(args) -> int:
    result = _engine().rekey_kit(args.name, args.output)
    if not result["saved"]:
        print(f"kit {args.name!r}: its toms already climb with their pitch; nothing saved")
        return 0
    moves = ", ".join(f"{m['pad']} {m['from']} -> {m['to']}" for m in result["moved"])
    print(f"kit {result['kit']!r}: toms keyed low to high by pitch ({moves})")
    return 0


def cmd_midi(args) -> int:
    import signal
    import threading
    from redrum_kit import live
    from redrum_kit.pads import Player
    if not 1 <= args.polyphony <= 256:
        raise RedrumError("--polyphony must be between 1 and 256")
    if not 8000 <= args.sr <= 192000:
        raise RedrumError(f"--sr must be between 8000 and 192000 Hz, got {args.sr}")
    engine = _engine()
    player = Player(engine.pad_sounds(engine.kit(args.kit), args.sr, mono=False), polyphony=args.polyphony)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    kit = player.sounds.kit
    pads = ", ".join(f"{p.note} {p.name}{' (layered)' if player.sounds.is_layered(i) else ''}"
                     for i, p in enumerate(kit.pads))
    port = args.port or f"the virtual input '{live.VIRTUAL_PORT}'"
    live.play(player, args.port, args.audio_device, stop,
              on_ready=lambda: print(f"playing kit {kit.name!r} from {port}; pads: {pads}; Ctrl-C stops", flush=True))
    return 0


# -- training and evaluation -------------------------------------------------

def _report_training(summary: dict) -> None:
    if "out" in summary:   # rank 0 of a torchrun job, or a single process
        state = "done" if summary["complete"] else "stopped; run the same command again to continue"
        print(f"step {summary['step']} of {summary['steps']} ({state}); saved {summary['out']}")


def cmd_train(args) -> int:
    from redrum_kit.config import load_config
    if args.model == "classifier":
        from training import classifier
        if args.steps:
            raise RedrumError("the classifier trains for epochs (set epochs in its config), not --steps")
        cfg = load_config(classifier.TrainConfig, Path(args.config) if args.config else None, out=args.out,
                          max_minutes=args.minutes, device=args.device)
        real = classifier.train(cfg)["held_out_real"]
        print(f"held-out real kits: accuracy {real['accuracy']:.3f}, balanced {real['balanced_accuracy']:.3f} "
              f"(n={real['n']}); saved {cfg.out}")
    elif args.model == "transcriber":
        from training import transcriber
        overrides = {"out": args.out, "max_minutes": args.minutes, "device": args.device, "steps": args.steps,
                     "config_file": args.config}
        cfg = load_config(transcriber.TrainConfig, Path(args.config) if args.config else None, **overrides)
        metrics = transcriber.train(cfg)
        if metrics:
            test = metrics["test"]
            run = (f"the weights of {len(cfg.soup)} runs averaged" if cfg.soup
                   else f"step {metrics['steps']} of {cfg.steps}")
            print(f"held-out kits: mean onset F {test['mean_f']:.3f} over {test['clips']} clips ({run}); saved {cfg.out}")
    elif args.model == "stage1":
        from training import stage1
        overrides = {"out": args.out, "max_minutes": args.minutes, "device": args.device, "steps": args.steps,
                     "data": list(args.data) if args.data else None, "config_file": args.config}
        for folder in args.data or []:
            if not Path(folder).is_dir():
                raise RedrumError(f"--data {folder}: not a folder")
        cfg = load_config(stage1.TrainConfig, Path(args.config) if args.config else None, **overrides)
        summary = stage1.train(cfg)
        _report_training(summary)
    elif args.model == "layering":
        from training import layering
        if args.data:
            raise RedrumError("--data is for stage1; layering trains on kit hits (see --library)")
        overrides = {"out": args.out, "max_minutes": args.minutes, "device": args.device, "steps": args.steps,
                     "drum_class": args.cls, "library": True if (args.library or args.library_kit) else None,
                     "library_kits": list(args.library_kit) if args.library_kit else None}
        from redrum_kit.workspace import presets_dir
        config = Path(args.config) if args.config else presets_dir() / "training" / "layering.toml"
        cfg = load_config(layering.TrainConfig, config, **{**overrides, "config_file": args.config})
        summary = layering.train(cfg)
        _report_training(summary)
    elif args.model == "stage2":
        from training import stage2
        if args.data:
            raise RedrumError("--data is for stage1; stage 2 trains on the grid of its config's dataset_config")
        overrides = {"out": args.out, "max_minutes": args.minutes, "device": args.device, "steps": args.steps,
                     "config_file": args.config}
        cfg = load_config(stage2.TrainConfig, Path(args.config) if args.config else None, **overrides)
        summary = stage2.train(cfg)
        _report_training(summary)
    else:
        raise RedrumError(f"`redrum train {args.model}` is not available in this version yet")
    return 0


def _eval_kits(names: str, split_kits: list[str], split: str) -> set[str]:
    """`--kits A,B` -> the split's kit ids they name (`GMRockKit` or `hydrogen:GMRockKit`); else a one-line error."""
    from redrum_kit.datasets.build import is_recorded
    chosen = set()
    for name in _names(names):
        match = [k for k in split_kits if name in (k, k.partition(":")[2])]
        if not match:
            real = sorted(k.partition(":")[2] for k in split_kits if is_recorded(k))
            raise RedrumError(f"--kits: no kit {name!r} in the {split} split (its recorded kits: {', '.join(real) or 'none'})")
        chosen.update(match)
    if not chosen:
        raise RedrumError("--kits: name one kit or more, separated by commas")
    return chosen


def _names(text: str) -> list[str]:
    """`A,B` -> ["A", "B"] (spaces and empty entries dropped)."""
    return [n.strip() for n in text.split(",") if n.strip()]


def cmd_eval_tempo(args) -> int:
    from training.evaluate_tempo import evaluate, table
    return _eval_held_out_kits(args, evaluate, table)


def cmd_eval_voices(args) -> int:
    from training.evaluate_voices import evaluate, table
    return _eval_held_out_kits(args, evaluate, table)


def cmd_eval_velocity(args) -> int:
    from training.evaluate_velocity import evaluate, table
    return _eval_held_out_kits(args, evaluate, table)


def _eval_held_out_kits(args, evaluate, table) -> int:
    """An evaluation of grooves rendered on Hydrogen kits (`--kits`, default the held-out ones)."""
    from redrum_kit.workspace import HELD_OUT_KITS
    if not 1 <= args.grooves <= 100:
        raise RedrumError("--grooves must be between 1 and 100")
    kits = tuple(_names(args.kits)) if args.kits else HELD_OUT_KITS
    if not kits:
        raise RedrumError("--kits names no kit")
    result = evaluate(kits, args.grooves)
    if args.json:
        _print_json(result)
    else:
        print(table(result), end="")
    return 0


def _merge(args) -> float:
    """How close (s) two reference notes of one class may be and still count as two onsets in an evaluation."""
    from redrum_kit.models.transcriber import MIN_GAP
    return 0.0 if args.unmerged else MIN_GAP


def cmd_eval_transcriber(args) -> int:
    from redrum_kit.datasets.build import Dataset
    from redrum_kit.transcription import checkpoint_path, load_model
    from training.transcriber import evaluate
    if not args.data:
        raise RedrumError("give --data DIR: a folder made by `redrum dataset build` (its test split holds unseen kits)")
    if args.bass is not None and not -60 <= args.bass <= 20:
        raise RedrumError("--bass must be between -60 and 20 dB (to the drums' RMS)")
    if args.gain is not None and not -60 <= args.gain <= 20:
        raise RedrumError("--gain must be between -60 and 20 dB")
    if args.noise is not None and not -120 <= args.noise <= 0:
        raise RedrumError("--noise must be between -120 and 0 dB (under each clip's peak)")
    ds = Dataset(Path(args.data), args.split)
    checkpoint = Path(args.checkpoint) if args.checkpoint else checkpoint_path()
    if args.checkpoint and not checkpoint.is_file():
        raise RedrumError(f"--checkpoint {checkpoint}: no such file")
    sources = {"baseline": load_model("baseline")}
    if checkpoint.is_file():
        from redrum_kit.models import transcriber as crnn
        sources["model"] = crnn.load(checkpoint)
    methods = list(sources)
    kits = _eval_kits(args.kits, ds.manifest["kits"][args.split], args.split) if args.kits else None
    results = {m: evaluate(source, ds, limit=args.limit, bass_db=args.bass, kits=kits, gain_db=args.gain,
                             noise_db=args.noise, merge=_merge(args))
               for m, source in sources.items()}
    if args.json:
        _print_json(results)
        return 0
    under = f", a bass line under each at {args.bass:+g} dB" if args.bass is not None else ""
    under += f", a noise floor {-args.noise:g} dB under each one's peak" if args.noise is not None else ""
    under += f", each turned {args.gain:+g} dB" if args.gain is not None else ""
    only = f" of {', '.join(sorted(k.partition(':')[2] for k in kits))}" if kits else ""
    print(f"{args.split} split of {args.data}: {results['baseline']['clips']} clips{only}{under}, onset F (50 ms"
          + (", every reference note counted)" if args.unmerged else ")"))
    def row(label: str, cells) -> None:
        print(f"{label:34s}" + "".join(f"{c:>13s}" for c in cells))

    row("class", methods)
    for cls in results["baseline"]["per_class"]:
        row(cls, (f"{results[m]['per_class'][cls]['f']:.3f}" for m in methods))
    row("mean", (f"{results[m]['mean_f']:.3f}" for m in methods))
    for group in ("real", "synth"):
        if group in results["baseline"]["groups"]:
            figures = [results[m]["groups"][group] for m in methods]
            row(f"{group} kits, mean F", (f"{g['mean_f']:.3f}" for g in figures))
            row("  its 95% interval (clips)", ("{:.3f}-{:.3f}".format(*g["mean_f_ci95"]) for g in figures))
            row("  its 95% interval (kits)", ("{:.3f}-{:.3f}".format(*g["mean_f_ci95_kits"]) for g in figures))
    for kit in results["baseline"]["per_kit"]:
        row(f"  {kit}", (f"{results[m]['per_kit'][kit]:.3f}" for m in methods))
    return 0


def cmd_eval_stage1(args) -> int:
    from redrum_kit.models import stage1
    from redrum_kit.reconstruct import checkpoint_path
    from training.stage1 import heldout_comparison
    if not 1 <= args.patterns <= 200:
        raise RedrumError("--patterns must be between 1 and 200")
    model = stage1.load(Path(args.checkpoint) if args.checkpoint else checkpoint_path())
    result = heldout_comparison(model, args.patterns)
    if args.json:
        _print_json(result)
        return 0
    print(f"{result['source']} ({', '.join(result['kits'])}), {result['renderings']} renderings of generated parts;")
    print("multi-resolution log-mel distance to the original (dB, lower is closer):")
    print(f"  reconstruction               {result['reconstruction_db']:7.2f}")
    print(f"  nearest other kit, same part {result['nearest_other_kit_db']:7.2f}")
    print(f"  mean other kit, same part    {result['mean_other_kit_db']:7.2f}")
    print(f"  reconstruction closer than the nearest other kit in "
          f"{100 * result['share_closer_than_nearest_kit']:.0f}% of renderings")
    return 0


def cmd_eval_transform(args) -> int:
    from redrum_kit.transform import Redrummer, load_conditioning, load_model
    from training.evaluate_transform import evaluate, table
    if not args.data:
        raise RedrumError("give --data DIR: a grid dataset made by `redrum dataset build --config "
                          "presets/training/dataset-grid.toml -o DIR` (its test split holds unseen kits)")
    if not 1 <= args.pairs <= 500:
        raise RedrumError("--pairs must be between 1 and 500")
    from tqdm import tqdm
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    from training.evaluate_transform import METHODS, SOURCES
    methods = _names(args.methods) if args.methods else METHODS
    sources = _names(args.sources) if args.sources else SOURCES
    result = evaluate(Redrummer(load_model(checkpoint), load_conditioning(checkpoint)), Path(args.data), args.pairs,
                      progress=lambda xs: tqdm(xs, desc="pairs", unit="pair", disable=None),
                      methods=methods, sources=sources, merge=_merge(args))
    if args.json:
        _print_json(result)
        return 0
    only = f", {' and '.join(sources)} source kits only" if set(sources) != set(SOURCES) else ""
    level = "at the source's level" if result["levels"] == "kit" else "each clip levelled alone"
    print(f"test split of {args.data}: {result['pairs']} pairs (source kit a on rhythm 1, target kit b on rhythm 2; "
          f"truth: kit a on rhythm 2, {level}{only})" + ("; every reference note counted" if args.unmerged else ""))
    if "replace" in result["methods"]:
        print("replace runs as `redrum transform --method replace` does (the shipped transcriber); every method's "
              "rhythm is heard by the model's transcriber")
    print(table(result), end="")
    return 0


def cmd_eval_interpolate(args) -> int:
    from redrum_kit.transform import Redrummer, load_conditioning, load_model
    from training.evaluate_transform import interpolation_curves
    if not args.data:
        raise RedrumError("give --data DIR: a grid dataset (see `redrum eval transform`)")
    if not 1 <= args.pairs <= 500:
        raise RedrumError("--pairs must be between 1 and 500")
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    result = interpolation_curves(Redrummer(load_model(checkpoint), load_conditioning(checkpoint)), Path(args.data),
                                  args.pairs, decays=args.decays, merge=_merge(args))
    if args.json:
        _print_json(result)
        return 0
    print(f"{result['pairs']} morphs from rhythm A to rhythm B (one unseen kit each; decays {result['decays']}); "
          "per step, the output's onset F and log-mel distance (dB) to each")
    for space, r in result["spaces"].items():
        print(f"  {space:13s} F vs A: " + " ".join(f"{f:.2f}" for f in r["f_to_a"])
              + "   vs B: " + " ".join(f"{f:.2f}" for f in r["f_to_b"])
              + ("   (monotone)" if r["monotone"] else "   (not monotone)"))
        print(f"  {'':13s} dB to A: " + " ".join(f"{d:.1f}" for d in r["db_to_a"])
              + "   to B: " + " ".join(f"{d:.1f}" for d in r["db_to_b"]))
    return 0


def cmd_eval_layering(args) -> int:
    from redrum_kit.layering import Layerer, checkpoint_path
    from training.evaluate_layering import evaluate, table
    from training.layering import class_hits
    cls = args.cls or "snare"
    layerer = Layerer(cls, Path(args.checkpoint) if args.checkpoint else checkpoint_path(cls))
    hits = class_hits(cls, args.split, synth_kits=0 if args.split == "test" else 10)[: args.limit or None]
    if not hits:
        raise RedrumError(f"no {cls} hits in the {args.split} kits (the held-out real kits need `make data`)")
    if args.plot and not args.smoothness:
        raise RedrumError("--plot draws the smoothness curves: use it with --smoothness")
    if args.smoothness:
        from training.evaluate_layering import plot_smoothness, smoothness, smoothness_table
        refuse_existing(args.plot)
        result = smoothness(layerer, hits)
        if args.plot:
            plot_smoothness(result, args.plot)
        header = (f"{result['hits']} {cls} hits; each slider from -{result['span']:g} to +{result['span']:g} "
                  f"in {result['steps']} steps, and interpolations between hits")
        text = smoothness_table(result)
    else:
        result = evaluate(layerer.model, layerer.library, hits)
        header = (f"{result['hits']} {cls} hits of {', '.join(result['kits'])}; library of {len(layerer.library)}; "
                  f"threshold {result['threshold']}")
        text = table(result)
    if args.json:
        _print_json(result)
    else:
        print(header)
        print(text, end="")
    return 0


def cmd_eval(args) -> int:
    if args.what == "layering":
        return cmd_eval_layering(args)
    if args.what == "transform":
        return cmd_eval_transform(args)
    if args.what == "interpolate":
        return cmd_eval_interpolate(args)
    if args.what == "tempo":
        return cmd_eval_tempo(args)
    if args.what == "voices":
        return cmd_eval_voices(args)
    if args.what == "velocity":
        return cmd_eval_velocity(args)
    if args.what == "transcriber":
        return cmd_eval_transcriber(args)
    if args.what == "stage1":
        return cmd_eval_stage1(args)
    from redrum_kit.config import load_config
    from redrum_kit.workspace import models_dir
    from training import classifier
    cfg = load_config(classifier.TrainConfig, Path(args.config) if args.config else None)
    checkpoint = Path(args.checkpoint) if args.checkpoint else models_dir() / "classifier.safetensors"
    metrics = classifier.evaluate_shipped(cfg, checkpoint)
    if args.json:
        _print_json(metrics)
        return 0
    for split, m in metrics.items():
        if not m.get("n"):
            print(f"{split}: no data (held-out Hydrogen kits need `make data`)")
            continue
        print(f"{split}: accuracy {m['accuracy']:.3f}, balanced accuracy {m['balanced_accuracy']:.3f}, n={m['n']}")
        for cls, v in m["per_class"].items():
            print(f"  {cls:10s} recall {v['recall']:.3f}  n={v['n']}")
        for kit, v in m.get("per_kit", {}).items():
            print(f"  kit {kit}: accuracy {v['accuracy']:.3f}  n={v['n']}")
    return 0


# -- rhythms and rendering ---------------------------------------------------

def _write_pattern(pattern, out: Path) -> None:
    from redrum_kit.rhythm.events import save_json
    from redrum_kit.rhythm.midi import write_midi
    refuse_existing(out)
    if out.suffix.lower() in (".mid", ".midi"):
        write_midi(pattern, out)
    elif out.suffix.lower() == ".json":
        save_json(pattern, out)
    else:
        raise RedrumError(f"{out.name}: write .mid or .json")


def cmd_rhythm_generate(args) -> int:
    from redrum_kit.rhythm.generator import generate
    pattern = generate(args.style, bars=args.bars, seed=args.seed, tempo=args.tempo, swing=args.swing)
    _write_pattern(pattern, Path(args.output))
    print(f"{args.output}: {args.style}, {args.bars} bars at {pattern.tempo:.1f} bpm, {len(pattern.events)} hits")
    return 0


def cmd_rhythm_convert(args) -> int:
    from redrum_kit.rhythm.events import load
    pattern = load(Path(args.input), channel=args.channel)
    _write_pattern(pattern, Path(args.output))
    print(f"{args.output}: {len(pattern.events)} hits, {pattern.length:.1f} s at {pattern.tempo:.1f} bpm")
    return 0


def cmd_render(args) -> int:
    out = Path(args.output)
    refuse_existing(out)
    result = _engine().render(args.pattern, args.kit, out, args.sr, args.channel, mono=args.mono)
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"{out}: {result['seconds']:.2f} s at {args.sr} Hz, {'stereo' if result['channels'] == 2 else 'mono'}")
    return 0


def cmd_dataset_build(args) -> int:
    from tqdm import tqdm
    from redrum_kit.config import load_config
    from redrum_kit.datasets.build import DatasetConfig, build
    overrides = {"pairs": True if args.pairs else None, "seed": args.seed,
                 "library_kits": args.kit or None}
    cfg = load_config(DatasetConfig, Path(args.config) if args.config else None, **overrides)
    if args.items is not None:
        if args.items < 1:
            raise RedrumError("--items must be at least 1")
        cfg.items = {"train": args.items, "val": max(1, args.items // 10), "test": max(1, args.items // 10)}
    if args.workers < 1:
        raise RedrumError("--workers must be at least 1")
    manifest = build(cfg, Path(args.output),
                     progress=lambda total: tqdm(total=total, desc="rendering", unit="clip", disable=None,
                                                 file=sys.stderr), workers=args.workers)
    counts = ", ".join(f"{s}: {cfg.items.get(s, 0)} clips from {len(k)} kits" for s, k in manifest["kits"].items())
    print(f"{args.output}: {counts}")
    return 0


def cmd_transcribe(args) -> int:
    out = Path(args.output)
    refuse_existing(out, args.json)
    if out.suffix.lower() not in (".mid", ".midi"):
        raise RedrumError(f"{out.name}: the output is a MIDI file (.mid)")
    from redrum_kit.transcription import describe
    result = _engine().transcribe(args.audio, out, args.json, args.method, args.threshold, tempo=args.tempo)
    method = "DSP baseline" if result["method"] == "baseline" else "CRNN"
    print(f"{out}: {describe(result)}, by the {method}")
    return 0


def cmd_transform(args) -> int:
    out = Path(args.output)
    refuse_existing(out, args.json, args.plot)
    method = args.method or ("replace" if args.kit or args.only or args.double else "model")
    if method == "model" and args.kit:
        raise RedrumError("--kit plays a library kit by drum replacement: use --method replace")
    if args.plot and method != "model":
        raise RedrumError("--plot draws the model's attention: use it with --method model")
    if args.kit:
        if len(args.inputs) != 1:
            raise RedrumError("with --kit, give only the TARGET recording")
        source, target = None, args.inputs[0]
    else:
        if len(args.inputs) != 2:
            raise RedrumError("give SOURCE and TARGET recordings (or --method replace --kit NAME TARGET)")
        source, target = args.inputs
    result = _engine().transform(source, target, out, method, args.kit, args.json, args.plot,
                                 decays=args.decays, only=args.only or (), double=args.double)
    for cls, other in result.get("substitutions", {}).items():
        print(f"note: the source has no {cls}; played its {other} instead", file=sys.stderr)
    print(f"{out}: {result['seconds']:.2f} s at {result['sample_rate']} Hz ({result['message']})")
    return 0


def cmd_interpolate(args) -> int:
    result = _engine().interpolate(args.a, args.b, args.steps, args.output, args.space, decays=args.decays)
    for path in result["paths"]:
        print(path)
    print(result["message"], file=sys.stderr)
    return 0


def _pca_sliders(specs: list[str] | None) -> dict[int, float]:
    sliders = {}
    for spec in specs or []:
        key, _, value = spec.partition("=")
        try:
            sliders[int(key) - 1] = float(value)
        except ValueError:
            raise RedrumError(f"--pca {spec!r}: write SLIDER=VALUE, e.g. 1=2.5 (slider 1, +2.5 standard deviations)")
    return sliders


def cmd_layer(args) -> int:
    engine = _engine()
    if args.interpolate:
        result = engine.layer_interpolate(*args.interpolate, args.steps, args.output, args.threshold, args.cls)
        for path, n in zip(result["paths"], result["layers"]):
            print(f"{path}: {n} layers")
        return 0
    if not args.target:
        raise RedrumError("give TARGET.wav (or --interpolate A B)")
    out = Path(args.output)
    refuse_existing(out, args.json)
    result = engine.layer(args.target, args.threshold, out, args.cls, _pca_sliders(args.pca), args.stems, args.json,
                          args.refine)
    if result["cut_from_loop"]:
        print(f"note: {Path(args.target).name} holds several hits; layered its first", file=sys.stderr)
    print(f"{out}: {result['class']}, {len(result['layers'])} layers "
          f"(largest weight {result['layers'][0]['weight']:.2f})")
    return 0


def cmd_reconstruct(args) -> int:
    from redrum_kit.reconstruct import reconstruct_file
    out = Path(args.output)
    refuse_existing(out)
    y, sr = reconstruct_file(Path(args.input))
    save_audio(out, y, sr)
    print(f"{out}: {len(y) / sr:.2f} s at {sr} Hz")
    return 0


def cmd_bench(args) -> int:
    from redrum_kit import bench
    if args.seconds is not None and not 0.5 <= args.seconds <= 600:
        raise RedrumError("--seconds must be between 0.5 and 600")
    seconds = args.seconds or {"transcribe": 30.0, "stage1": 3.0, "transform": 30.0, "layer": 1.0, "osc": 4.0,
               "midi": 1.0}[args.what]
    results = bench.run(args.what, seconds=seconds, repeats=args.repeats)
    if args.json:
        from redrum_kit import files
        files.write_text(Path(args.json), json.dumps(results, indent=1))
    for line in bench.report(results):
        print(line)
    return 0


# -- misc --------------------------------------------------------------------

def cmd_synth(args) -> int:
    from redrum_kit import audio, synth
    y = synth.oneshot(args.voice, args.seed)
    audio.save(Path(args.output), y, synth.SR, subtype="PCM_24")
    print(args.output)
    return 0


def cmd_serve(args) -> int:
    from redrum_kit.serve import serve
    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="redrum", description="redrum-kit: drum tools for producers and sound designers")
    p.add_argument("--version", action="version", version=f"redrum-kit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("serve", help="start the OSC server and the browser app on one engine")
    s.add_argument("--osc-host", default="127.0.0.1", help="address to listen on (default loopback only)")
    s.add_argument("--osc-port", type=int, default=9000)
    s.add_argument("--gradio-port", type=int, default=7860)
    s.add_argument("--no-gradio", action="store_true", help="OSC only")
    s.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    s.add_argument("--allow-root", action="append", metavar="DIR",
                   help="a folder clients may read audio from and write results to (repeatable; "
                        "default: your home folder; the workspace always)")
    s.add_argument("--allow-client", action="append", metavar="CIDR",
                   help="other machines allowed to send OSC, e.g. 192.168.1.0/24 (repeatable; default: loopback only)")
    s.add_argument("--models", metavar="DIR", help="load model checkpoints from DIR (same file names as "
                                                   "presets/models/; default: the shipped ones)")
    s.add_argument("--max-queue", type=int, default=16, help="jobs queued or running before 'busy' replies")
    s.add_argument("--max-seconds", type=float, default=600.0, help="longest audio a request may send")
    s.set_defaults(func=cmd_serve)

    lib = sub.add_parser("library", help="import, list and search oneshots").add_subparsers(
        dest="action", required=True, parser_class=_Parser)
    s = lib.add_parser("import", help="import files, folders and Hydrogen drumkits")
    s.add_argument("paths", nargs="*", metavar="PATH")
    s.add_argument("--synth", type=int, default=0, metavar="N", help="also synthesise and import N kits")
    s.add_argument("--seed", type=int, default=1, help="first synth kit seed (default 1)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_library_import)
    s = lib.add_parser("list", help="list oneshots")
    s.add_argument("--class", dest="cls", choices=ONESHOT_CLASSES)
    s.add_argument("--kit")
    s.add_argument("--name", metavar="TEXT", help="only oneshots whose name, kit or file name holds every word")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_library_list)
    s = lib.add_parser("show", help="everything about one oneshot")
    s.add_argument("id", type=int)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_library_show)
    s = lib.add_parser("similar", help="the oneshots that sound most alike a library oneshot or any audio file")
    s.add_argument("query", metavar="ID|FILE", help="a oneshot id, or an audio file (nothing is imported)")
    s.add_argument("-n", type=int, default=10)
    s.add_argument("--same-class", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_library_similar)
    s = lib.add_parser("remove", help="take oneshots out of the library (your original files stay)")
    s.add_argument("ids", type=int, nargs="+", metavar="ID")
    s.set_defaults(func=cmd_library_remove)
    s = lib.add_parser("exemplars", help="the N oneshots that best represent a class (greedy Frank-Wolfe)")
    s.add_argument("--class", dest="cls", choices=ONESHOT_CLASSES, required=True)
    s.add_argument("-n", type=int, default=200)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_library_exemplars)
    s = lib.add_parser("set-class", help="correct the class of a oneshot by hand")
    s.add_argument("id", type=int)
    s.add_argument("cls", choices=ONESHOT_CLASSES, metavar="CLASS")
    s.set_defaults(func=cmd_library_set_class)

    kit = sub.add_parser("kit", help="build, list and export kits").add_subparsers(
        dest="action", required=True, parser_class=_Parser)
    s = kit.add_parser("build", help="build a kit: from a library kit, from oneshot ids, or the best of each class")
    s.add_argument("name")
    s.add_argument("--from-kit", metavar="KIT", help="one pad per instrument of this library kit")
    s.add_argument("--pad", action="append", metavar="ID[,ID...]",
                   help="a pad from oneshot ids (several ids: velocity layers, soft to loud); repeatable")
    s.add_argument("--description", default="")
    s.add_argument("--replace", action="store_true", help="replace an existing kit (the old one is kept as .bak)")
    s.set_defaults(func=cmd_kit_build)
    s = kit.add_parser("list", help="list kits")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_kit_list)
    s = kit.add_parser("show", help="the pads of a kit")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_kit_show)
    s = kit.add_parser("layer", help="play a kit's pads as layered oneshots (velocity moves the blend)")
    s.add_argument("name")
    s.add_argument("-o", "--output", metavar="NEW_NAME", help="save as a new kit (default: change NAME)")
    s.add_argument("--velocity-pc", type=int, default=1, help="PCA slider that velocity moves (1-11; 0: none)")
    s.add_argument("--depth", type=float, default=1.5, help="standard deviations from soft to hard hits")
    s.set_defaults(func=cmd_kit_layer)

    s = kit.add_parser("rekey", help="key a kit's toms low to high by the pitch of their samples (moves notes)")
    s.add_argument("name")
    s.add_argument("-o", "--output", metavar="NEW_NAME", help="save as a new kit (default: change NAME, kept as .bak)")
    s.set_defaults(func=cmd_kit_rekey)

    s = kit.add_parser("export", help="export a kit as SFZ, Hydrogen drumkit or plain folder")
    s.add_argument("name")
    s.add_argument("--format", choices=("sfz", "hydrogen", "folder"), required=True)
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="existing folder; the kit goes in DIR/NAME")
    s.set_defaults(func=cmd_kit_export)

    s = sub.add_parser("train", help="train a model")
    s.add_argument("model", choices=("classifier", "stage1", "stage2", "layering", "transcriber"))
    s.add_argument("--config", metavar="FILE")
    s.add_argument("--out", metavar="FILE", help="checkpoint path (default from the config)")
    s.add_argument("--data", action="append", metavar="DIR",
                   help="stage1: a folder of your own drum recordings to train on as well (repeatable)")
    s.add_argument("--minutes", type=float, help="stop after this long (run again to resume)")
    s.add_argument("--steps", type=int, help="total steps (default from the config); not classifier")
    s.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto (CUDA when present); not classifier")
    s.add_argument("--class", dest="cls", metavar="C", help="layering: the drum class (snare, kick, ...)")
    s.add_argument("--library", action="store_true",
                   help="layering: layer from your own library's oneshots of the class")
    s.add_argument("--library-kit", action="append", metavar="NAME",
                   help="layering: only the oneshots of this kit of yours (repeatable; implies --library)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="measure a model on held-out kits")
    s.add_argument("what", choices=("classifier", "transcriber", "tempo", "voices", "velocity", "stage1", "transform",
                                    "interpolate", "layering"))
    s.add_argument("--class", dest="cls", metavar="C", help="layering: the class (default snare)")
    s.add_argument("--config", metavar="FILE")
    s.add_argument("--patterns", type=int, default=8, help="stage1: generated parts per held-out kit")
    s.add_argument("--pairs", type=int, default=20, help="transform: pairs per source-kit group (real, synth); interpolate: morphs")
    s.add_argument("--data", metavar="DIR", help="transcriber, transform, interpolate: a built dataset folder")
    s.add_argument("--split", choices=("train", "val", "test"), default="test")
    s.add_argument("--limit", type=int, help="transcriber: at most this many clips; layering: hits")
    s.add_argument("--kits", metavar="A,B",
                   help="transcriber: only the clips of these kits of the split (e.g. the ones a model never heard); "
                        "tempo, voices, velocity: these Hydrogen kits (default the held-out ones); voices, "
                        "velocity: also the synthesiser's, synth-SEED, machine-SEED, or synth for its 15 unseen kits")
    s.add_argument("--grooves", type=int, default=2, help="tempo, voices, velocity: grooves per style and kit (default 2)")
    s.add_argument("--bass", type=float, metavar="DB",
                   help="transcriber: a synth bass line under each clip, DB to the drums' RMS (0: as loud)")
    s.add_argument("--gain", type=float, metavar="DB",
                   help="transcriber: each clip turned by DB (-30: a recording left with 30 dB of headroom)")
    s.add_argument("--noise", type=float, metavar="DB",
                   help="transcriber: a noise floor (hiss to rumble) under each clip, its RMS DB under the clip's "
                        "peak (-60: a live recording's)")
    s.add_argument("--checkpoint", metavar="FILE")
    s.add_argument("--methods", metavar="A,B",
                   help="transform: only these rows (model, model-undamped, replace, ceiling; default all)")
    s.add_argument("--sources", metavar="A,B",
                   help="transform: only these source-kit groups (real, synth; default both; the same pairs)")
    s.add_argument("--decays", choices=("source", "model"), default="source",
                   help="interpolate: each step decay-shaped (source, default) or as decoded (model)")
    s.add_argument("--smoothness", action="store_true",
                   help="layering: how the sound moves along the PCA sliders and interpolations")
    s.add_argument("--plot", metavar="OUT.png", help="layering --smoothness: the distance curves")
    s.add_argument("--unmerged", action="store_true",
                   help="transcriber, transform, interpolate: count every reference note, even two of one class "
                        "within 30 ms (a closed and an open hat on one step), which no transcriber can tell apart; "
                        "the measure before session 39 (default: those count as one onset)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    rhythm = sub.add_parser("rhythm", help="generate and convert drum patterns").add_subparsers(
        dest="action", required=True, parser_class=_Parser)
    from redrum_kit.rhythm.generator import STYLES
    s = rhythm.add_parser("generate", help="a procedural drum part in a style")
    s.add_argument("style", choices=STYLES)
    s.add_argument("--bars", type=int, default=4)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tempo", type=float, help="bpm (default: drawn from the style's range)")
    s.add_argument("--swing", type=float, help="delay of off-beat steps, fraction of a step")
    s.add_argument("-o", "--output", required=True, metavar="OUT.mid|OUT.json")
    s.set_defaults(func=cmd_rhythm_generate)
    s = rhythm.add_parser("convert", help="MIDI, JSON or Hydrogen song to MIDI or JSON")
    s.add_argument("input", metavar="IN.mid|IN.json|IN.h2song")
    s.add_argument("--channel", type=int, help="read only this MIDI channel (1-16)")
    s.add_argument("-o", "--output", required=True, metavar="OUT.mid|OUT.json")
    s.set_defaults(func=cmd_rhythm_convert)

    ds = sub.add_parser("dataset", help="build training data from kits and rhythms").add_subparsers(
        dest="action", required=True, parser_class=_Parser)
    s = ds.add_parser("build", help="render clips (or stage-2 pairs) split by kit; resumes if interrupted")
    s.add_argument("--config", metavar="FILE", help="TOML (see presets/training/dataset*.toml)")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="a new folder (or the same one, to resume)")
    s.add_argument("--items", type=int, help="training clips (validation and test get a tenth each)")
    s.add_argument("--pairs", action="store_true", help="stage-2 triples: source, target, pseudo-target")
    s.add_argument("--kit", action="append", metavar="NAME", help="add one of your kits to training; repeatable")
    s.add_argument("--seed", type=int)
    s.add_argument("--workers", type=int, default=1, metavar="N",
                   help="render shards in N processes (the same dataset as one process makes)")
    s.set_defaults(func=cmd_dataset_build)

    s = sub.add_parser("transcribe", help="drum audio to MIDI (kick, snare, hat, tom, cymbal)",
                       description="Drum audio to MIDI on General MIDI drum notes: each tom on its own note "
                                   "(low to high), closed hats on 42 and open ones on 46, each hit's velocity from "
                                   "how hard its drum was played (its loudest hit 127).")
    s.add_argument("audio", metavar="AUDIO")
    s.add_argument("-o", "--output", required=True, metavar="OUT.mid")
    s.add_argument("--json", metavar="OUT.json", help='also write {"events": [{"time", "class", "velocity", "confidence"}], "tempo", ...}')
    s.add_argument("--method", choices=("auto", "model", "baseline"), default="auto",
                   help="model: the CRNN; baseline: band-wise spectral flux; auto: the model when installed")
    s.add_argument("--threshold", type=float, help="onset threshold (default: the method's own)")
    s.add_argument("--tempo", type=float, metavar="BPM",
                   help="the MIDI file's tempo (default: estimated from the hits). The notes keep their times "
                        "either way; give your project's tempo so that they sit on its grid in a DAW that "
                        "places a file's notes by beats (Ableton Live, Bitwig)")
    s.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("midi", help="play a kit live from a MIDI input (layered pads per velocity)")
    s.add_argument("--kit", default="default")
    s.add_argument("--port", help="MIDI input name (default: a virtual input named 'redrum')")
    s.add_argument("--audio-device", help="sound device name or number (default: the system's)")
    s.add_argument("--sr", type=int, default=44100)
    s.add_argument("--polyphony", type=int, default=32)
    s.set_defaults(func=cmd_midi)

    s = sub.add_parser("render", help="play a drum part (MIDI, JSON, .h2song) with a kit")
    s.add_argument("pattern", metavar="PATTERN.mid")
    s.add_argument("--kit", default="default")
    s.add_argument("--sr", type=int, default=44100, help="output sample rate in Hz")
    s.add_argument("--channel", type=int, help="read only this MIDI channel (1-16)")
    s.add_argument("--mono", action="store_true",
                   help="a mono file (default: stereo when any of the kit's samples is stereo)")
    s.add_argument("-o", "--output", required=True, metavar="OUT.wav")
    s.set_defaults(func=cmd_render)

    s = sub.add_parser("transform", help="redrum: the source's drum sounds on the target's rhythm")
    s.add_argument("inputs", nargs="+", metavar="SOURCE TARGET")
    s.add_argument("-o", "--output", required=True, metavar="OUT.wav")
    s.add_argument("--method", choices=("model", "replace"),
                   help="model (default): the learned redrum (layered hits too); replace: drum replacement, one "
                        "cut hit per class (the default with --kit)")
    s.add_argument("--kit", metavar="NAME", help="play the target's rhythm with a library kit (drum replacement)")
    s.add_argument("--json", metavar="OUT.json")
    s.add_argument("--plot", metavar="OUT.png", help="model: waveforms, target transcription, attention heads")
    s.add_argument("--decays", choices=("source", "model"), default="source",
                   help="model: source (default): no drum rings on longer than the source's own do (each band "
                        "lowered, never raised, after the target's hits); model: the output as decoded")
    s.add_argument("--only", metavar="CLASSES",
                   help="replace: only these drums (e.g. kick,snare); the target's others stay in its mix")
    s.add_argument("--double", action="store_true",
                   help="replace: keep the target's own drums and lay the new hits over them")
    s.set_defaults(func=cmd_transform)

    s = sub.add_parser("interpolate", help="morph from A's rhythm to B's in N steps (A's sounds)")
    s.add_argument("a", metavar="A")
    s.add_argument("b", metavar="B")
    s.add_argument("--steps", type=int, default=5, help="files to write, A's rhythm first, B's last (2-64)")
    s.add_argument("--space", choices=("latent", "conditioning"), default="latent",
                   help="latent (default): interpolate the stage-1 latents of A and of A's sounds on B's rhythm, "
                        "as in the research; conditioning: interpolate the two transcriptions and let the "
                        "model play each mixture. Both move the rhythm step by step (`redrum eval interpolate --data DIR`: "
                        "onset F against B rises 0.16 to 0.69 in 5 steps in the latent, 0.17 to 0.70 in the "
                        "conditioning)")
    s.add_argument("--decays", choices=("source", "model"), default="source",
                   help="source (default): each step shaped as transform shapes its output (no drum rings on "
                        "longer than A's own do), after the hits of both rhythms; model: the steps as decoded")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the files (made if needed)")
    s.set_defaults(func=cmd_interpolate)

    s = sub.add_parser("layer", help="a new oneshot as a sparse mix of a sample library (the weights are yours)")
    s.add_argument("target", nargs="?", metavar="TARGET.wav", help="a drum oneshot (of a loop, its first hit)")
    s.add_argument("-o", "--output", required=True, metavar="OUT.wav|DIR", help="with --interpolate: a folder")
    s.add_argument("--json", metavar="W.json", help="library paths, layers with weights, z and PCA coordinates")
    s.add_argument("--threshold", type=float, default=0.04, help="drop layers below this weight (default 0.04)")
    s.add_argument("--class", dest="cls", metavar="C", help="which class's model (default: classified)")
    s.add_argument("--pca", nargs="+", metavar="K=V", help="set PCA slider K (1-11) to V standard deviations")
    s.add_argument("--stems", metavar="DIR", help="also write each weighted layer to DIR")
    s.add_argument("--refine", action="store_true",
                   help="fit the target more closely (grows the model's mix and the nearest oneshot a layer "
                        "at a time while that brings it closer; about 1.5 s; not with --pca)")
    s.add_argument("--interpolate", nargs=2, metavar=("A", "B"), help="morph from oneshot A to B")
    s.add_argument("--steps", type=int, default=5, help="with --interpolate: files to write (2-64)")
    s.set_defaults(func=cmd_layer)

    s = sub.add_parser("reconstruct", help="encode and decode with the stage-1 autoencoder (hear what it keeps)")
    s.add_argument("input", metavar="AUDIO")
    s.add_argument("-o", "--output", required=True, metavar="OUT.wav")
    s.set_defaults(func=cmd_reconstruct)

    s = sub.add_parser("bench", help="speed on this machine: real-time factors and ratios")
    s.add_argument("what", choices=("transcribe", "stage1", "transform", "layer", "osc", "midi"))
    s.add_argument("--seconds", type=float,
                   help="length of the test audio (default: transcribe 30, stage1 3, transform 30; "
                        "layer: the output, 1; osc: the transform request, 4)")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--json", metavar="OUT.json")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("synth", help="synthesise one drum hit")
    from redrum_kit.synth import VOICES
    s.add_argument("voice", choices=VOICES)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-o", "--output", required=True, metavar="OUT.wav")
    s.set_defaults(func=cmd_synth)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RedrumError as exc:
        sys.stderr.write(f"redrum: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("redrum: interrupted (nothing half-written was kept)\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("REDRUM_DEBUG"):
            raise
        text = str(exc).strip().splitlines()
        sys.stderr.write(f"redrum: internal error: {type(exc).__name__}: {text[0] if text else ''} "
                         "(set REDRUM_DEBUG=1 for details)\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
