"""Layering: the library, the baselines, the VAE, its trainer, and `redrum layer`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from redrum_kit import layering, synth
from redrum_kit.cli import main
from redrum_kit.models import layering as model_lib
from tests.conftest import heard_error, install_models, write

SOURCES = [f"synth:snare:{300_000 + i}" for i in range(12)]


@pytest.fixture(scope="module")
def library():
    return layering.LayerLibrary(SOURCES)


def test_a_mix_of_the_library_is_found_again_by_nnls(library):
    weights = np.zeros(len(library))
    weights[[2, 7]] = [0.7, 0.3]
    mix = library.mix(torch.from_numpy(weights).float()[None])[0].numpy()
    w = layering.nnls_weights(library, layering.feature(mix))
    assert abs(w.sum() - 1) < 1e-6 and (w >= 0).all()
    assert set(np.argsort(-w)[:2]) == {2, 7}


def test_matching_pursuit_stays_sparse_and_nearest_picks_the_sample_itself(library):
    target = layering.feature(library.audio[5].numpy())
    w = layering.matching_pursuit_weights(library, target, layers=3)
    assert (w > 0).sum() <= 3 and abs(w.sum() - 1) < 1e-6
    assert int(np.argmax(layering.nearest_weights(library, target))) == 5


def test_refine_finds_a_mix_of_the_library_closer_than_any_single_oneshot(library):
    """`--refine` grows a mix from the nearest oneshot and from the model's mix: given a 60/40 mix
    of two library snares and a poor model mix, it finds a mix much closer than the best single
    oneshot, with both parts among its layers, and never more than REFINE_LAYERS layers."""
    weights = np.zeros(len(library))
    weights[[3, 8]] = [0.6, 0.4]
    target = layering.feature(library.mix(torch.from_numpy(weights).float()[None])[0].numpy())
    poor = np.full(len(library), 1 / len(library))
    refined = layering.refine_weights(library, target, poor)

    def error(w):
        return float(library.mix_error(torch.from_numpy(layering.heard_weights(w)).float()[None], target[None])[0])

    single = error(layering.nearest_weights(library, target))
    assert error(refined) < 0.5 * single and error(refined) < error(poor)
    layers = dict(layering.threshold_layers(refined))
    assert {3, 8} <= set(layers) and len(layers) <= layering.REFINE_LAYERS


def test_threshold_drops_small_weights_and_renormalises():
    layers = layering.threshold_layers(np.array([0.5, 0.03, 0.3, 0.17]), 0.04)
    assert [i for i, _ in layers] == [0, 2, 3]
    assert abs(sum(w for _, w in layers) - 1) < 1e-9
    assert layering.threshold_layers(np.array([0.02, 0.03]), 0.5) == [(1, 1.0)]   # the largest always stays


def test_render_is_peak_safe_and_stems_sum_to_the_mix(library):
    layers = [(0, 0.6), (3, 0.4)]
    y = library.render(layers, 44100)
    assert abs(np.abs(y).max() - 0.9) < 1e-4
    stems = library.stems(layers, 44100)
    total = np.zeros(max(len(s) for s in stems))
    for s in stems:
        total[:len(s)] += s
    assert np.allclose(total[:len(y)], y, atol=1e-5)


def test_first_hit_of_a_loop_is_cut_before_the_second_onset():
    sr = 22050
    hit = synth.oneshot("snare", 3, sr)[: sr // 4]
    loop = np.zeros(sr, np.float32)
    loop[:len(hit)] += hit
    loop[sr // 2: sr // 2 + len(hit)] += hit
    cut, was_cut = layering.first_hit(loop, sr)
    assert was_cut and sr // 4 <= len(cut) <= sr // 2 + sr // 50
    single, was_cut = layering.first_hit(synth.oneshot("snare", 3, sr), sr)
    assert not was_cut


def test_decoder_weights_are_a_distribution_and_sliders_move_only_their_direction():
    model = model_lib.LayeringVAE(model_lib.LayeringConfig(library=SOURCES, hidden=32, latent=6, pca=3)).eval()
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    model.pca_components.copy_(q[:3])
    w = model.decode(torch.randn(4, 6))
    assert bool((w >= 0).all()) and torch.allclose(w.sum(-1), torch.ones(4))
    z = torch.randn(1, 6)
    moved = model.move(z, {1: 2.0})
    before, after = model.to_pca(z)[0], model.to_pca(moved)[0]
    assert abs(float(after[1]) - 2.0) < 1e-4
    assert torch.allclose(before[[0, 2]], after[[0, 2]], atol=1e-4)


def test_free_bits_keep_a_floor_on_each_dimension():
    zero = torch.zeros(8, 4)
    assert abs(float(model_lib.kl_free_bits(zero, zero, 0.25)) - 1.0) < 1e-6


# -- training and the CLI -----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from redrum_kit import workspace
    from redrum_kit.config import load_config
    from redrum_kit.workspace import presets_dir
    from training import layering as recipe
    tmp = tmp_path_factory.mktemp("layering")
    saved = workspace.HYDROGEN_DRUMKITS
    workspace.HYDROGEN_DRUMKITS = tmp / "no-hydrogen"          # synthesiser kits only: fast and the same anywhere
    try:
        cfg = load_config(recipe.TrainConfig, presets_dir() / "training" / "layering-tiny.toml",
                          run_dir=str(tmp / "run"), out=str(tmp / "layering-snare.safetensors"))
        return cfg, recipe.train(cfg)
    finally:
        workspace.HYDROGEN_DRUMKITS = saved


@pytest.fixture
def installed(trained, tmp_path, monkeypatch):
    from redrum_kit.workspace import models_dir
    cfg, _ = trained
    return install_models(tmp_path, monkeypatch, **{"layering-snare": cfg.out,
                                                     "classifier": models_dir() / "classifier.safetensors"})


def test_tiny_training_lowers_the_feature_error_and_writes_a_card(trained):
    cfg, summary = trained
    assert summary["complete"]
    rows = [json.loads(line) for line in (Path(cfg.run_dir) / "log.jsonl").read_text().splitlines()]
    bce = [r["pretrain_bce"] for r in rows if "pretrain_bce" in r]
    errors = [r["feature_error"] for r in rows if "feature_error" in r]
    assert bce[-1] < bce[0] and errors
    assert any("val_vs_nnls" in r for r in rows)
    card = Path(cfg.out).with_suffix(".md").read_text()
    assert "greedy Frank-Wolfe" in card and Path(cfg.out).stat().st_size < 20e6
    model = model_lib.load(Path(cfg.out))
    assert float(model.pca_scale.min()) > 0 and len(model.cfg.library) == cfg.library_size


def test_cli_layer_writes_mix_weights_and_stems(installed, tmp_path, capsys):
    target = write(tmp_path / "my snare.wav", synth.oneshot("snare", 4242, 48000), sr=48000)
    out, js, stems = tmp_path / "out.wav", tmp_path / "w.json", tmp_path / "stems"
    assert main(["layer", str(target), "-o", str(out), "--json", str(js), "--stems", str(stems),
                 "--class", "snare", "--pca", "1=1.5"]) == 0
    y, sr = sf.read(out)
    assert sr == 44100 and 0 < np.abs(y).max() <= 0.9 + 1e-4
    data = json.loads(js.read_text())
    weights = [layer["weight"] for layer in data["layers"]]
    assert abs(sum(weights) - 1) < 1e-3 and min(weights) >= 0.04 - 1e-9
    assert len(data["library"]) == 12 and all(layer["path"] in data["library"] for layer in data["layers"])
    assert abs(data["pca"][0] - 1.5) < 1e-2
    assert len(list(stems.glob("*.wav"))) == len(data["layers"])
    before = out.read_bytes()
    assert main(["layer", str(target), "-o", str(out), "--class", "snare"]) != 0
    assert out.read_bytes() == before and "exists" in capsys.readouterr().err


def test_cli_layer_takes_the_first_hit_of_a_loop_and_says_so(installed, tmp_path, capsys):
    sr = 44100
    hit = synth.oneshot("snare", 5, sr)[: sr // 4]
    loop = np.zeros(sr, np.float32)
    loop[:len(hit)] += hit
    loop[sr // 2: sr // 2 + len(hit)] += hit
    src = write(tmp_path / "loop.wav", loop, sr=sr)
    assert main(["layer", str(src), "-o", str(tmp_path / "o.wav"), "--class", "snare"]) == 0
    assert "first" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--class", "kick"], "no layering model for kick"),
    (["--class", "banana"], "unknown class 'banana'; choose one of kick, snare"),
    (["--class", "snare", "--pca", "9=1"], "sliders"),
    (["--class", "snare", "--pca", "one"], "SLIDER=VALUE"),
    (["--class", "snare", "--threshold", "2"], "threshold must be"),
])
def test_cli_layer_bad_options_are_one_line(installed, tmp_path, capsys, args, message):
    target = write(tmp_path / "s.wav", synth.oneshot("snare", 1, 44100))
    assert main(["layer", str(target), "-o", str(tmp_path / "o.wav"), *args]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("redrum: error:") and len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "o.wav").exists()


def test_cli_layer_bad_audio_is_one_line(installed, tmp_path, capsys):
    silent = write(tmp_path / "silent.wav", np.zeros(4410, np.float32))
    long = write(tmp_path / "long.wav", np.random.default_rng(0).standard_normal(22050 * 40).astype(np.float32) * 0.1,
                 sr=22050)
    for path, message in ((silent, "silent"), (long, "long"), (tmp_path / "none.wav", "no such file")):
        assert main(["layer", str(path), "-o", str(tmp_path / "o.wav"), "--class", "snare"]) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err


def test_cli_layer_interpolate_writes_the_steps(installed, tmp_path):
    a = write(tmp_path / "a.wav", synth.oneshot("snare", 1, 44100))
    b = write(tmp_path / "b.wav", synth.oneshot("snare", 2, 44100))
    assert main(["layer", "--interpolate", str(a), str(b), "--steps", "3", "--class", "snare",
                 "-o", str(tmp_path / "morph")]) == 0
    files = sorted((tmp_path / "morph").glob("*.wav"))
    assert len(files) == 3
    first, last = sf.read(files[0])[0], sf.read(files[-1])[0]
    assert not (len(first) == len(last) and np.allclose(first, last))


def test_conditioned_model_serves_each_class_from_its_own_library(tmp_path_factory):
    """One model for snare and kick (`classes`): each class's view layers only its own library, has
    its own sliders, and `Layerer` uses it like a one-class model."""
    from redrum_kit import workspace
    from redrum_kit.config import load_config
    from redrum_kit.errors import ModelError
    from redrum_kit.workspace import presets_dir
    from training import layering as recipe
    tmp = tmp_path_factory.mktemp("conditioned")
    saved = workspace.HYDROGEN_DRUMKITS
    workspace.HYDROGEN_DRUMKITS = tmp / "no-hydrogen"
    try:
        cfg = load_config(recipe.TrainConfig, presets_dir() / "training" / "layering-tiny.toml",
                          run_dir=str(tmp / "run"), out=str(tmp / "layering-conditioned.safetensors"),
                          classes=["snare", "kick"])
        summary = recipe.train(cfg)
    finally:
        workspace.HYDROGEN_DRUMKITS = saved
    assert summary["complete"]
    card = Path(cfg.out).with_suffix(".md").read_text()
    assert "conditioned on snare, kick" in card
    snare, kick = (model_lib.load(Path(cfg.out), c) for c in ("snare", "kick"))
    assert snare.cfg.library and not set(snare.cfg.library) & set(kick.cfg.library)
    assert all(":snare:" in s for s in snare.cfg.library) and all(":kick:" in s for s in kick.cfg.library)
    assert not torch.allclose(snare._pca()[1], kick._pca()[1])      # each class its own sliders
    layerer = layering.Layerer("kick", Path(cfg.out))
    result = layerer.layer_signal(synth.oneshot("kick", 3, 44100), 44100)
    assert result.cls == "kick" and all(":kick:" in result.sources[i] for i, _ in result.layers)
    with pytest.raises(ModelError, match="serves snare, kick"):
        model_lib.load(Path(cfg.out), "hat_closed")


def test_cli_train_layering_refuses_a_library_too_small(tmp_path, capsys):
    assert main(["train", "layering", "--class", "snare", "--library",
                 "--config", "presets/training/layering-tiny.toml"]) != 0
    err = capsys.readouterr().err
    assert "at least 10" in err and len(err.strip().splitlines()) == 1


def test_cli_eval_and_bench_layering_print_their_figures(installed, trained, capsys):
    cfg, _ = trained
    assert main(["bench", "layer", "--repeats", "1"]) == 0
    assert "ms per oneshot" in capsys.readouterr().out
    assert main(["eval", "layering", "--class", "snare", "--split", "val", "--limit", "3", "--json",
                 "--checkpoint", cfg.out]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["hits"] == 3
    for method in ("model", "nnls", "matching_pursuit", "nearest"):
        assert result["methods"][method]["active_layers"] >= 1
    assert result["methods"]["nearest"]["active_layers"] == 1


def test_cli_layer_refine_fits_the_target_at_least_as_well(installed, tmp_path, capsys):
    from redrum_kit import layering
    target = write(tmp_path / "s.wav", synth.oneshot("snare", 5, 44100))
    outs = {}
    for name, extra in (("plain", []), ("refined", ["--refine"])):
        assert main(["layer", str(target), "-o", str(tmp_path / f"{name}.wav"), "--class", "snare",
                     "--json", str(tmp_path / f"{name}.json"), *extra]) == 0
        outs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    layerer = layering.Layerer("snare")
    feat, _ = layerer.prepare(synth.oneshot("snare", 5, 44100), 44100)
    assert heard_error(layerer, outs["refined"], feat) <= heard_error(layerer, outs["plain"], feat) + 1e-3
    capsys.readouterr()
    assert main(["layer", str(target), "-o", str(tmp_path / "x.wav"), "--class", "snare", "--refine",
                 "--pca", "1=1"]) == 1
    assert "refine" in capsys.readouterr().err and not (tmp_path / "x.wav").exists()


def test_cli_eval_layering_smoothness_draws_the_curves(installed, tmp_path, capsys):
    plot = tmp_path / "smooth.png"
    assert main(["eval", "layering", "--class", "snare", "--split", "val", "--limit", "3", "--smoothness",
                 "--json", "--plot", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["sliders"]) >= 3 and plot.stat().st_size > 10_000     # one per PCA direction
    for r in result["sliders"]:
        assert r["from_start"][0] == 0 and 0 <= r["monotone"] <= 1 and r["jump"] >= 1
    assert main(["eval", "layering", "--class", "snare", "--plot", str(tmp_path / "x.png")]) == 1


def test_train_layering_on_the_users_own_library(tmp_path, monkeypatch):
    """`--library`: the library is chosen from the user's imported snares (their original files)."""
    from redrum_kit import workspace
    monkeypatch.setattr(workspace, "HYDROGEN_DRUMKITS", tmp_path / "no-hydrogen")
    assert main(["library", "import", "--synth", "12", "--seed", "9000"]) == 0
    import tomllib

    import tomli_w
    data = tomllib.loads(Path("presets/training/layering-tiny.toml").read_text())
    data["run_dir"] = str(tmp_path / "run-{cls}")
    config = tmp_path / "mine.toml"
    config.write_text(tomli_w.dumps(data))
    out = tmp_path / "mine.safetensors"
    assert main(["train", "layering", "--class", "snare", "--library", "--steps", "25",
                 "--config", str(config), "--out", str(out)]) == 0
    model = model_lib.load(out)
    assert len(model.cfg.library) == 12
    assert all(Path(source).is_file() for source in model.cfg.library)


def test_installed_classes_are_the_shipped_models_and_the_users_own(tmp_path, monkeypatch):
    """What the browser app offers and the 'no layering model' error lists: shipped models, plus
    `$REDRUM_MODELS` (a retrained or new class), never the conditioned model's file name."""
    from redrum_kit import workspace
    shipped = layering.installed_classes()
    assert {"snare", "kick"} <= set(shipped)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "layering-clap.safetensors").write_bytes((workspace.models_dir() / "layering-snare.safetensors").read_bytes())
    (mine / "layering-conditioned.safetensors").write_bytes(b"x")
    monkeypatch.setenv("REDRUM_MODELS", str(mine))
    assert layering.installed_classes() == sorted({*shipped, "clap"})
