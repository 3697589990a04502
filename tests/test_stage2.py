"""Stage 2: the rhythm transformer, its grid data and trainer, `redrum transform` and `redrum interpolate`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from redrum_kit.cli import main
from redrum_kit.errors import RedrumError
from redrum_kit.models import stage2
from redrum_kit.models.stage1 import Stage1Config
from tests.conftest import install_models, tone, write


def tiny_redrum(**kw) -> stage2.Redrum:
    s1 = Stage1Config(channels=[8, 16, 16], latent=4)
    return stage2.Redrum(stage2.Stage2Config(latent=4, d_model=16, ffn=32, layers=2, stage1=asdict(s1), **kw)).eval()


def test_transformer_output_follows_the_target_length_and_attention_is_a_distribution():
    model = tiny_redrum()
    mu_s, p_s, p_t = torch.randn(2, 4, 30), torch.rand(2, 5, 30), torch.rand(2, 5, 50)
    mu_hat, sigma_hat, attention = model(mu_s, p_s, p_t)
    assert mu_hat.shape == sigma_hat.shape == (2, 4, 50)
    assert bool((sigma_hat > 0).all())
    assert len(attention) == 2 and attention[0].shape == (2, 4, 50, 30)
    assert torch.allclose(attention[0].sum(-1), torch.ones(2, 4, 50), atol=1e-5)


def test_rhythm_bias_sends_a_target_hit_to_the_source_frames_of_the_same_drum():
    model = tiny_redrum()
    attn = model.transformer.layers[0].attn
    with torch.no_grad():
        for lin in (attn.q, attn.k):
            lin.weight.zero_()
            lin.bias.zero_()
        attn.rhythm.weight.copy_(torch.eye(5).repeat(4, 1) * 20)   # every head: class c looks for class c
    p_s = torch.zeros(1, 5, 40)
    p_s[0, 0, 5] = p_s[0, 1, 17] = p_s[0, 2, 30] = 1.0               # source: kick at 5, snare at 17, hat at 30
    p_t = torch.zeros(1, 5, 40)
    p_t[0, 1, 3] = p_t[0, 0, 22] = p_t[0, 2, 35] = 1.0               # target: snare at 3, kick at 22, hat at 35
    with torch.no_grad():
        _, _, attention = model(torch.randn(1, 4, 40), p_s, p_t)
    w = attention[0][0, 0]
    assert int(w[3].argmax()) == 17 and int(w[22].argmax()) == 5 and int(w[35].argmax()) == 30
    assert float(w[22, 5]) > 0.9


def test_attention_entropy_loss_rewards_heads_that_look_at_different_frames():
    same = torch.zeros(1, 4, 3, 4)
    same[..., 0] = 1.0
    diverse = torch.zeros(1, 4, 3, 4)
    for h in range(4):
        diverse[0, h, :, h] = 1.0
    assert stage2.attention_entropy_loss([diverse]) < stage2.attention_entropy_loss([same])
    assert abs(float(stage2.attention_entropy_loss([same]))) < 1e-4


def test_attention_spread_loss_rewards_target_frames_that_look_at_different_source_frames():
    fixed = torch.zeros(1, 4, 3, 4)          # every target frame on source frame 0
    fixed[..., 0] = 1.0
    moving = torch.zeros(1, 4, 3, 4)         # target frame t on source frame t
    for t in range(3):
        moving[0, :, t, t] = 1.0
    assert stage2.attention_spread_loss([moving]) < stage2.attention_spread_loss([fixed])
    assert abs(float(stage2.attention_spread_loss([fixed]))) < 1e-4
    assert abs(float(stage2.attention_entropy_loss([moving]))) < 1e-4    # heads alike: no head diversity


def test_the_copy_head_outputs_whole_source_frames_where_it_keeps_none_of_the_layers_mu():
    model = tiny_redrum(pointer=True, sub_frames=2)
    with torch.no_grad():
        model.transformer.pointer.keep.weight.zero_()
        model.transformer.pointer.keep.bias.fill_(-30.0)              # keep nothing of the layers' mu_hat
        mu_s, p_s, p_t = torch.randn(2, 4, 30), torch.rand(2, 10, 30), torch.rand(2, 10, 50)
        parts = model.transformer(mu_s, p_s, p_t, named=True)
    assert parts["mu"].shape == (2, 4, 50) and parts["pointer"].shape == (2, 50, 30)
    chosen = parts["pointer"].argmax(-1)
    for b in range(2):
        assert torch.allclose(parts["mu"][b], mu_s[b][:, chosen[b]], atol=1e-5)
    assert not torch.allclose(parts["mu"], parts["mu_layers"])
    mu_hat, _, attention = model(mu_s, p_s, p_t)                      # the same through forward
    assert torch.allclose(mu_hat, parts["mu"]) and len(attention) == 2


def test_pointer_loss_is_lowest_when_the_head_points_at_the_nearest_source_frame():
    from training.stage2 import pointer_loss
    torch.manual_seed(0)
    mu_s = torch.randn(1, 4, 12)
    order = torch.tensor([3, 7, 7, 0, 11, 5])
    mu_st = mu_s[:, :, order] + 0.01 * torch.randn(1, 4, 6)          # the truth: source frames, re-timed
    right = torch.full((1, 6, 12), -10.0)
    right[0, torch.arange(6), order] = 10.0
    wrong = torch.roll(right, 1, dims=-1)
    loss_right, match_right = pointer_loss(right, mu_s, mu_st, 0.0625)
    loss_wrong, match_wrong = pointer_loss(wrong, mu_s, mu_st, 0.0625)
    assert float(match_right) == 1.0 and float(match_wrong) == 0.0
    assert float(loss_right) + 5 < float(loss_wrong)


def test_a_copy_head_starts_fresh_on_a_trained_model_and_nothing_else_changes():
    from redrum_kit.errors import RedrumError
    from training.stage2 import start_from
    base = tiny_redrum()
    model = start_from(base, {"pointer": True})
    assert model.transformer.pointer is not None
    same = {k: v for k, v in model.state_dict().items() if not k.startswith("transformer.pointer.")}
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in same.items()) and len(same) == len(base.state_dict())
    with pytest.raises(RedrumError, match="does not fit"):
        start_from(base, {"d_model": 32})


def test_checkpoint_carries_its_own_autoencoder(tmp_path):
    model = tiny_redrum()
    path = tmp_path / "stage2.safetensors"
    stage2.save(model, path)
    back = stage2.load(path)
    y = torch.randn(1, 1, 2048) * 0.1
    assert torch.allclose(back.encode(y), model.encode(y).half().float(), atol=2e-2)


def test_the_redrum_is_conditioned_by_the_transcriber_it_was_trained_with(tmp_path, monkeypatch):
    """Retraining the shared transcriber must not change a redrum model's input: the transcriber
    kept beside its checkpoint wins; without one, the shared transcriber serves."""
    from redrum_kit import transform
    from redrum_kit.models import transcriber as crnn
    from redrum_kit.transcription import load_model as load_transcriber
    monkeypatch.delenv("REDRUM_MODELS", raising=False)
    def weights(t):
        return torch.cat([p.detach().float().flatten() for p in t.parameters()])
    shipped = transform.checkpoint_path()
    assert transform.conditioning_path(shipped).is_file()     # the shipped redrum brings its own
    own = transform.load_conditioning()
    assert torch.equal(weights(own), weights(crnn.load(transform.conditioning_path(shipped))))
    assert not torch.equal(weights(own), weights(load_transcriber("auto")))     # the shared one was retrained since
    torch.manual_seed(0)
    mine = crnn.Transcriber(crnn.TranscriberConfig())
    path = tmp_path / "my-redrum.safetensors"
    crnn.save(mine, tmp_path / "my-redrum-transcriber.safetensors")
    assert torch.allclose(weights(transform.load_conditioning(path)), weights(mine).half().float())
    assert torch.equal(weights(transform.load_conditioning(tmp_path / "other.safetensors")),
                       weights(load_transcriber("auto")))


# -- the grid, training and the CLI ------------------------------------------

def tiny_configs(tmp: Path):
    from redrum_kit.config import load_config
    from redrum_kit.workspace import presets_dir
    from training import stage1, stage2 as recipe
    s1 = load_config(stage1.TrainConfig, presets_dir() / "training" / "stage1-tiny.toml",
                     data_dir=str(tmp / "clips"), run_dir=str(tmp / "run1"), out=str(tmp / "stage1.safetensors"))
    s2 = load_config(recipe.TrainConfig, presets_dir() / "training" / "stage2-tiny.toml",
                     data_dir=str(tmp / "grid"), run_dir=str(tmp / "run2"), stage1=s1.out,
                     out=str(tmp / "models" / "stage2.safetensors"))
    return s1, s2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny stage 1, then tiny stage 2 on it: (stage-2 config, summary)."""
    from training import stage1, stage2 as recipe
    tmp = tmp_path_factory.mktemp("stage2")
    s1, s2 = tiny_configs(tmp)
    stage1.train(s1)
    return s2, recipe.train(s2)


@pytest.fixture
def installed(trained, tmp_path, monkeypatch):
    cfg, _ = trained
    return install_models(tmp_path, monkeypatch, stage2=cfg.out)


def test_grid_pairs_share_rhythm_with_the_target_and_sounds_with_the_source(trained):
    from redrum_kit.datasets.build import Dataset
    cfg, _ = trained
    ds = Dataset(Path(cfg.data_dir), "train")
    rhythms = ds.manifest["config"]["grid_rhythms"]
    a, b, r2 = 0, 1, 2
    target, pseudo, source = ds[b * rhythms + r2], ds[a * rhythms + r2], ds[a * rhythms]
    assert pseudo["kit"] == source["kit"] != target["kit"]
    assert [round(e[0], 4) for e in pseudo["events"]] == [round(e[0], 4) for e in target["events"]]
    assert not np.allclose(pseudo["audio"], target["audio"])


def test_training_pairs_stay_within_a_rhythm_block():
    """With grid_blocks, cells (a, r) and (b, r) play one rhythm only when a and b share a block."""
    from redrum_kit.datasets.build import grid_block
    from training.stage2 import Grid
    config = {"grid_blocks": 3, "grid_rhythms": 4, "items": {"train": 4 * 9}}
    grid = Grid.__new__(Grid)
    grid.kits, grid.rhythms = 9, 4
    blocks = [grid_block(config, "train", k) for k in range(9)]
    assert blocks == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    grid.blocks = [np.flatnonzero(np.array(blocks) == b) for b in range(3)]
    pairs = grid.draw(np.random.default_rng(0), 200)
    assert all(blocks[a] == blocks[b] and a != b and r1 != r2 for a, r1, b, r2 in pairs)
    assert len({blocks[a] for a, _, _, _ in pairs}) == 3


def test_tiny_training_lowers_the_latent_error_and_writes_card_and_logs(trained):
    cfg, summary = trained
    assert summary["complete"] and summary["step"] == cfg.steps
    rows = [json.loads(line) for line in (Path(cfg.run_dir) / "log.jsonl").read_text().splitlines()]
    latent = [r["latent"] for r in rows if "latent" in r]
    assert np.mean(latent[-2:]) < np.mean(latent[:2])
    assert any("critic" in r for r in rows) and any("val_timbre_ratio" in r for r in rows)
    card = Path(cfg.out).with_suffix(".md").read_text()
    assert f"{cfg.steps} steps" in card and "| model |" in card and "| replace |" in card
    assert any("spread" in r for r in rows) and "spread 0.05" in card
    assert Path(cfg.out).stat().st_size < 20e6
    metrics = json.loads(Path(cfg.out).with_suffix(".metrics.json").read_text())
    assert metrics["evaluation"]["groups"]


def test_a_copy_head_trained_on_a_frozen_model_changes_nothing_else(trained, tmp_path):
    from dataclasses import replace
    from training import stage2 as recipe
    cfg, _ = trained
    ptr = replace(cfg, init=cfg.out, train_only="pointer", pointer=1.0, cycle=0.0, steps=10, adversarial_after=100,
                  val_every=10, save_every=10, eval_pairs=0, run_dir=str(tmp_path / "run"),
                  out=str(tmp_path / "pointer.safetensors"), model=dict(cfg.model, pointer=True))
    recipe.train(ptr)
    before, after = stage2.load(Path(cfg.out)).state_dict(), stage2.load(Path(ptr.out)).state_dict()
    changed = {k for k, v in after.items() if k not in before or not torch.equal(v, before[k])}
    assert changed and all(k.startswith("transformer.pointer.") for k in changed)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("pointer_match" in r for r in rows)
    card = (tmp_path / "pointer.md").read_text()     # says where it started, and that it had no adversarial phase
    assert f"from the weights of `{cfg.out}`" in card and "no adversarial phase" in card


def test_decoder_adaptation_changes_the_decoder_only_and_brings_the_output_closer(trained, tmp_path):
    from dataclasses import replace
    from training import stage2 as recipe
    cfg, _ = trained
    dec = replace(cfg, init=cfg.out, train_only="decoder", reconstruction=1.0, transients=0.5, onsets=1.0, mel=0.1,
                  cycle=0.0, steps=12, adversarial_after=100, lr=3e-3, val_every=4, save_every=12, eval_pairs=0,
                  run_dir=str(tmp_path / "run"), out=str(tmp_path / "decoder.safetensors"))
    recipe.train(dec)
    before, after = stage2.load(Path(cfg.out)).state_dict(), stage2.load(Path(dec.out)).state_dict()
    changed = {k for k, v in after.items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("autoencoder.decoder.") for k in changed)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    recon = [r["val_reconstruction"] for r in rows if "val_reconstruction" in r]   # fixed validation pairs
    assert len(recon) == 3 and recon[-1] < recon[0]
    assert all("transients" in r and "onsets" in r and "mel" in r for r in rows if "reconstruction" in r)
    card = (tmp_path / "decoder.md").read_text()     # says what learned, and from what
    assert "the decoder alone" in card and "transients 0.5" in card and "onsets 1.0" in card and "mel 0.1" in card
    with pytest.raises(RedrumError, match="reconstruction"):
        recipe.train(replace(dec, reconstruction=0.0, transients=0.0, onsets=0.0, mel=0.0,
                             run_dir=str(tmp_path / "run2")))
    with pytest.raises(RedrumError, match="decode"):
        recipe.train(replace(dec, decode="median", run_dir=str(tmp_path / "run3")))


def test_critics_warming_up_leave_the_decoder_as_without_them_and_then_it_answers_to_them(trained, tmp_path):
    """The adversarial phase on the decoder: fresh critics learn alone for `critic_warmup` steps (the decoder
    exactly as in a run without critics), then the decoder learns from them too."""
    from dataclasses import replace
    from training import stage2 as recipe
    cfg, _ = trained
    base = replace(cfg, init=cfg.out, train_only="decoder", reconstruction=1.0, cycle=0.0, steps=6, lr=3e-3,
                   log_every=1, val_every=6, save_every=6, eval_pairs=0)
    runs = {"plain": replace(base, adversarial_after=100),
            "warming": replace(base, adversarial_after=0, critic_warmup=6),
            "adversarial": replace(base, adversarial_after=0, critic_warmup=3)}
    decoders = {}
    for name, run in runs.items():
        run = replace(run, run_dir=str(tmp_path / name), out=str(tmp_path / f"{name}.safetensors"))
        recipe.train(run)
        decoders[name] = {k: v for k, v in stage2.load(Path(run.out)).state_dict().items()
                          if k.startswith("autoencoder.decoder.")}
        rows = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        assert any("critic" in r for r in rows) == (name != "plain")
    assert all(torch.equal(v, decoders["plain"][k]) for k, v in decoders["warming"].items())
    assert not all(torch.equal(v, decoders["plain"][k]) for k, v in decoders["adversarial"].items())
    card = (tmp_path / "adversarial.md").read_text()
    assert "adversarially from step 3" in card and "the critics alone for 3 steps" in card


def test_cli_transform_keeps_the_target_rate_and_length_and_never_overwrites(installed, tmp_path, capsys):
    from redrum_kit.bench import drum_audio
    src = write(tmp_path / "source.wav", drum_audio(4.0, 44100), sr=44100)
    tgt = write(tmp_path / "target.flac", drum_audio(7.3, 48000)[::-1].copy(), sr=48000)
    out, js, png = tmp_path / "out.wav", tmp_path / "out.json", tmp_path / "out.png"
    assert main(["transform", str(src), str(tgt), "-o", str(out), "--json", str(js), "--plot", str(png)]) == 0
    y, sr = sf.read(out)
    assert sr == 48000 and len(y) == int(7.3 * 48000)
    assert np.isfinite(y).all() and np.abs(y).max() > 0
    info = json.loads(js.read_text())
    assert info["method"] == "model" and info["path"] == str(out) and info["decays"] == "source"
    assert png.read_bytes()[:4] == b"\x89PNG"
    raw = tmp_path / "raw.wav"                                       # decay shaping only ever lowers
    assert main(["transform", str(src), str(tgt), "-o", str(raw), "--decays", "model"]) == 0
    y_raw, _ = sf.read(raw)
    assert len(y_raw) == len(y) and np.sum(y ** 2) <= np.sum(y_raw ** 2) * 1.01
    with pytest.raises(SystemExit):
        main(["transform", str(src), str(tgt), "-o", str(tmp_path / "bad.wav"), "--decays", "long"])
    assert "invalid choice" in capsys.readouterr().err and not (tmp_path / "bad.wav").exists()
    out2 = tmp_path / "again.wav"
    assert main(["transform", str(src), str(tgt), "-o", str(out2)]) == 0
    assert np.array_equal(sf.read(out2)[0], y)                      # the same inputs give the same output
    before = out.read_bytes()
    assert main(["transform", str(src), str(tgt), "-o", str(out)]) != 0
    assert out.read_bytes() == before and "exists" in capsys.readouterr().err


def test_cli_transform_says_which_drums_the_source_does_not_play(tmp_path, capsys):
    """Drums the target plays and the source's sound window does not are the model's guess: the result says so
    (the shipped model and its transcriber)."""
    from redrum_kit import synth
    from redrum_kit.bench import drum_audio
    sr = 22050
    kicks = np.zeros(4 * sr, np.float32)
    kick = synth.oneshot("kick", 7)
    for start in range(0, 4 * sr - len(kick[:sr // 2]), sr // 2):       # a kick every half second, nothing else
        kicks[start:start + sr // 2] += kick[:sr // 2]
    src, tgt = write(tmp_path / "kicks.wav", kicks, sr=sr), write(tmp_path / "groove.wav", drum_audio(4.0, sr), sr=sr)
    js = tmp_path / "out.json"
    assert main(["transform", str(src), str(tgt), "-o", str(tmp_path / "out.wav"), "--json", str(js)]) == 0
    guessed = json.loads(js.read_text())["guessed"]
    assert "kick" not in guessed and {"snare", "hat"} & set(guessed)
    assert "model's guess" in capsys.readouterr().out
    js2 = tmp_path / "same.json"                     # a source that plays what the target plays: nothing guessed
    assert main(["transform", str(tgt), str(tgt), "-o", str(tmp_path / "same.wav"), "--json", str(js2)]) == 0
    assert json.loads(js2.read_text())["guessed"] == [] and "guess" not in capsys.readouterr().out
    assert main(["interpolate", str(src), str(tgt), "--steps", "2", "-o", str(tmp_path / "morph")]) == 0
    err = capsys.readouterr().err                   # a morph to the groove in the kicks' sounds: the same guess
    assert "sounds from A's" in err and "model's guess" in err and "kick hits" not in err
    assert main(["interpolate", str(tgt), str(tgt), "--steps", "2", "-o", str(tmp_path / "same-morph")]) == 0
    assert "guess" not in capsys.readouterr().err


def silent(d):
    return write(d / "silent.wav", np.zeros(22050, np.float32))


def not_audio(d):
    (d / "notes.wav").write_text("not audio")
    return d / "notes.wav"


@pytest.mark.parametrize("make, message", [(silent, "silent"), (not_audio, "not an audio file"),
                                           (lambda d: d / "missing.wav", "no such file")])
def test_cli_transform_bad_input_is_one_line(installed, tmp_path, capsys, make, message):
    from redrum_kit.bench import drum_audio
    good = write(tmp_path / "good.wav", drum_audio(2.0, 22050), sr=22050)
    for args in ([str(make(tmp_path)), str(good)], [str(good), str(make(tmp_path))]):
        assert main(["transform", *args, "-o", str(tmp_path / "o.wav")]) != 0
        err = capsys.readouterr().err.strip()
        assert err.startswith("redrum: error:") and len(err.splitlines()) == 1 and message in err
        assert not (tmp_path / "o.wav").exists()


def test_shipped_redrum_refuses_a_recording_without_drums(tmp_path, capsys):
    """A held tone has sound but no hit: neither sounds to take nor a rhythm to play, whichever side it is
    on; one line naming the file, nothing written (the shipped model and its transcriber)."""
    from redrum_kit.bench import drum_audio
    t = np.arange(44100) / 22050
    tone = write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, t / 0.5)).astype(np.float32),
                 sr=22050)
    good = write(tmp_path / "good.wav", drum_audio(2.0, 22050), sr=22050)
    for args in ([str(tone), str(good)], [str(good), str(tone)]):
        for command in (["transform", *args, "-o", str(tmp_path / "o.wav")],
                        ["interpolate", *args, "--steps", "3", "-o", str(tmp_path / "m")]):
            assert main(command) != 0
            err = capsys.readouterr().err.strip()
            assert err == "redrum: error: tone.wav: no drum events found"
            assert not (tmp_path / "o.wav").exists() and not (tmp_path / "m").exists()
    assert main(["transform", str(good), str(good), "-o", str(tmp_path / "o.wav")]) == 0


def test_cli_transform_without_a_checkpoint_says_how_to_train(tmp_path, monkeypatch, capsys):
    from redrum_kit.bench import drum_audio
    monkeypatch.setenv("REDRUM_PRESETS", str(tmp_path / "empty"))
    a = write(tmp_path / "a.wav", drum_audio(2.0, 22050), sr=22050)
    assert main(["transform", str(a), str(a), "-o", str(tmp_path / "o.wav")]) != 0
    assert "redrum train stage2" in capsys.readouterr().err
    assert main(["transform", str(a), str(a), "-o", str(tmp_path / "o.wav"), "--method", "replace",
                 "--plot", str(tmp_path / "p.png")]) != 0
    assert "--method model" in capsys.readouterr().err


@pytest.mark.parametrize("space", ["latent", "conditioning"])
def test_cli_interpolate_writes_the_steps_at_a_rate_and_length(installed, tmp_path, capsys, space):
    from redrum_kit.bench import drum_audio
    a = write(tmp_path / "a.wav", drum_audio(3.0, 44100), sr=44100)
    b = write(tmp_path / "b.wav", drum_audio(2.0, 22050)[::-1].copy(), sr=22050)
    out = tmp_path / "morph"
    assert main(["interpolate", str(a), str(b), "--steps", "4", "--space", space, "-o", str(out)]) == 0
    files = sorted(out.glob("*.wav"))
    assert len(files) == 4
    ys = [sf.read(f) for f in files]
    assert all(sr == 44100 and len(y) == 3 * 44100 for y, sr in ys)
    assert not np.allclose(ys[0][0], ys[-1][0])
    assert main(["interpolate", str(a), str(b), "--steps", "4", "--space", space, "-o", str(out)]) != 0
    assert "exists" in capsys.readouterr().err


def test_cli_interpolate_shapes_each_step_as_transform_does(installed, tmp_path, capsys):
    """Decay shaping only ever lowers a step, as in transform; --decays model gives the steps as decoded."""
    from redrum_kit.bench import drum_audio
    a = write(tmp_path / "a.wav", drum_audio(3.0, 22050), sr=22050)
    b = write(tmp_path / "b.wav", drum_audio(3.0, 22050)[::-1].copy(), sr=22050)
    assert main(["interpolate", str(a), str(b), "--steps", "3", "-o", str(tmp_path / "shaped")]) == 0
    assert main(["interpolate", str(a), str(b), "--steps", "3", "--decays", "model", "-o", str(tmp_path / "raw")]) == 0
    shaped, raw = ([sf.read(f)[0] for f in sorted((tmp_path / d).glob("*.wav"))] for d in ("shaped", "raw"))
    assert len(shaped) == len(raw) == 3
    assert all(np.sum(y ** 2) <= np.sum(r ** 2) * 1.01 for y, r in zip(shaped, raw))
    assert not all(np.allclose(y, r, atol=1e-4) for y, r in zip(shaped, raw))
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["interpolate", str(a), str(b), "--decays", "long", "-o", str(tmp_path / "bad")])
    assert "invalid choice" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_cli_interpolate_rejects_bad_steps(installed, tmp_path, capsys):
    from redrum_kit.bench import drum_audio
    a = write(tmp_path / "a.wav", drum_audio(1.0, 22050), sr=22050)
    assert main(["interpolate", str(a), str(a), "--steps", "1", "-o", str(tmp_path / "m")]) != 0
    assert "steps must be between" in capsys.readouterr().err and not (tmp_path / "m").exists()


def test_cli_train_stage2_rejects_a_clip_dataset(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('dataset_config = "presets/training/dataset-tiny.toml"\nstage1 = "nowhere.safetensors"\n')
    assert main(["train", "stage2", "--config", str(bad)]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and ("stage1" in err or "grid" in err)


def test_cli_eval_transform_and_interpolate_print_both_methods_and_spaces(trained, tmp_path, monkeypatch, capsys):
    cfg, _ = trained
    models = Path(__file__).parents[1] / "presets" / "models"    # the model hears with one CRNN, replacement
    install_models(tmp_path, monkeypatch, stage2=cfg.out, transcriber=models / "transcriber.safetensors",
                   **{"stage2-transcriber": models / "stage2-transcriber.safetensors"})    # with the shipped one
    assert main(["eval", "transform", "--data", cfg.data_dir, "--pairs", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    group = result["groups"]["synth"]
    for method in ("model", "model-undamped", "replace", "ceiling"):   # ceiling: stage 1 rebuilding the truth
        assert 0.0 <= group[method]["rhythm_f"] <= 1.0 and group[method]["timbre_ratio"] >= 0.0
    assert result["per_source_kit"] == {}                  # no recorded kits in the tiny grid
    assert result["levels"] == "clip"                      # the tiny grid levels each clip alone: said so
    assert result["merge_s"] == 0.03                       # a class's notes within 30 ms: one onset
    # the replace row is drum replacement as `--method replace` runs it (the shipped transcriber), not as
    # the model's own transcriber would hear
    from redrum_kit.datasets.build import Dataset
    from redrum_kit.replace import replace_signal
    from training.evaluate_transform import _distance, draw_pairs
    ds = Dataset(Path(cfg.data_dir), "test", in_memory=True)
    (s_i, t_i, true_i), = draw_pairs(ds, 1, 0)
    s, t, true, sr = ds[s_i]["audio"], ds[t_i]["audio"], ds[true_i]["audio"], ds.manifest["config"]["sr"]
    ratio = _distance(replace_signal(t, sr, s).y, true, sr) / max(_distance(t, true, sr), 1e-3)
    assert group["replace"]["timbre_ratio"] == round(ratio, 4)
    assert main(["eval", "transform", "--data", cfg.data_dir, "--pairs", "1", "--methods", "model"]) == 0
    out = capsys.readouterr().out
    assert "each clip levelled alone" in out and "the shipped transcriber" not in out    # no replace row, no word of it
    assert "every reference note counted" not in out
    assert main(["eval", "transform", "--data", cfg.data_dir, "--pairs", "1", "--methods", "model", "--unmerged"]) == 0
    assert "every reference note counted" in capsys.readouterr().out         # the measure before session 39
    assert main(["eval", "transform", "--data", cfg.data_dir, "--pairs", "1", "--methods", "replace"]) == 0
    assert "replace runs as `redrum transform --method replace` does" in capsys.readouterr().out
    assert main(["eval", "interpolate", "--data", cfg.data_dir, "--pairs", "2"]) == 0
    out = capsys.readouterr().out
    assert "latent" in out and "conditioning" in out and "dB to A" in out and "decays source" in out
    assert main(["eval", "transform", "--data", cfg.data_dir, "--pairs", "0"]) != 0
    assert main(["eval", "transform"]) != 0
    assert "--data" in capsys.readouterr().err
    # some rows of some groups only: the same pairs, the same figures, each with its interval
    assert main(["eval", "transform", "--data", cfg.data_dir, "--pairs", "1", "--json",
                 "--methods", "model-undamped, ceiling", "--sources", "synth"]) == 0
    part = json.loads(capsys.readouterr().out)
    assert part["pairs"] == 1 and part["methods"] == ["model-undamped", "ceiling"]
    for method in ("model-undamped", "ceiling"):
        row, whole = part["groups"]["synth"][method], group[method]
        assert row["timbre_ratio"] == whole["timbre_ratio"] and row["timbre_ci95"] == whole["timbre_ci95"]
        assert row["timbre_ci95"][0] <= row["timbre_ratio"] <= row["timbre_ci95"][1]
        assert row["timbre_ci95_kits"] == whole["timbre_ci95_kits"]
    assert "model" not in part["groups"]["synth"] and "replace" not in part["groups"]["synth"]
    for bad in (["--methods", "model,magic"], ["--sources", "tape"], ["--methods", ","]):
        assert main(["eval", "transform", "--data", cfg.data_dir, "--pairs", "1", *bad]) != 0
        err = capsys.readouterr().err.strip()
        assert err.startswith("redrum: error: methods are model, model-undamped") and len(err.splitlines()) == 1


def test_sub_frames_tell_where_in_a_latent_frame_a_hit_falls():
    from redrum_kit.transform import latent_probs
    probs = np.zeros((5, 8), np.float32)
    probs[0, 0] = 1.0        # kick in the first half of latent frame 0
    probs[1, 3] = 1.0        # snare in the second half of latent frame 1
    coarse = latent_probs(probs, ratio=2, frames=4)
    assert coarse.shape == (5, 4) and coarse[0, 0] == 1 and coarse[1, 1] == 1
    fine = latent_probs(probs, ratio=2, frames=4, sub_frames=2)
    assert fine.shape == (10, 4)
    assert fine[0, 0] == 1 and fine[1, 0] == 0          # kick: first sub-frame of frame 0
    assert fine[2, 1] == 0 and fine[3, 1] == 1          # snare: second sub-frame of frame 1
    model = tiny_redrum(sub_frames=2)
    mu_hat, _, attention = model(torch.randn(1, 4, 4), torch.from_numpy(fine)[None], torch.from_numpy(fine)[None])
    assert mu_hat.shape == (1, 4, 4) and attention[0].shape == (1, 4, 4, 4)
    assert torch.equal(model.transformer.pooled(torch.from_numpy(fine)[None])[0], torch.from_numpy(coarse))


def hits(gains_db: list[float], sr: int = 22050, every: float = 0.25) -> np.ndarray:
    """Short decaying tones (10 ms decay) every `every` s at the given gains."""
    y = np.zeros(int(sr * every * (len(gains_db) + 1)), np.float32)
    burst = tone(0.1, sr, 1000.0, decay=0.01)
    for i, g in enumerate(gains_db):
        a = int((i + 0.5) * every * sr)
        y[a:a + len(burst)] += 0.5 * 10 ** (g / 20) * burst
    return y


def test_loudness_conditioning_tells_soft_hits_from_loud_ones_whatever_the_recording_gain():
    from redrum_kit.transform import LEVEL_RANGE_DB, onset_levels
    sr, hop = 22050, 256
    y = hits([0, -20, 0, -20, -6])
    onsets = [int((i + 0.5) * 0.25 * sr) // hop for i in range(5)]
    levels = onset_levels(y, hop, sr)
    at = levels[onsets]
    assert at[0] == pytest.approx(1.0, abs=0.02) and at[2] == pytest.approx(1.0, abs=0.02)
    assert at[1] == pytest.approx(1 - 20 / LEVEL_RANGE_DB, abs=0.05)       # a ghost note 20 dB down
    assert at[3] == pytest.approx(at[1], abs=0.02) and at[1] < at[4] < at[0]
    assert np.allclose(onset_levels(0.05 * y, hop, sr), levels, atol=2e-3)     # the same played 26 dB quieter


def test_band_loudness_tells_an_open_hat_from_a_closed_one_and_a_kick_from_both_whatever_the_gain():
    from scipy.signal import butter, sosfilt
    from redrum_kit.transform import band_levels
    sr, hop = 22050, 256
    t = np.arange(sr // 2) / sr
    hiss = sosfilt(butter(4, 8500, "high", fs=sr, output="sos"), np.random.default_rng(0).standard_normal(len(t)))
    y = np.zeros(2 * sr, np.float32)
    starts = {"closed": 1024, "open": 12288, "kick": 30720}
    y[starts["closed"]:][:len(t)] += hiss * np.exp(-t / 0.01)
    y[starts["open"]:][:len(t)] += hiss * np.exp(-t / 0.2)
    y[starts["kick"]:][:len(t)] += np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.1)
    bands = band_levels(y, hop, sr)
    assert bands.shape == (len(stage2.BAND_EDGES_HZ) + 1, -(-len(y) // hop))
    at = {k: v // hop for k, v in starts.items()}
    later = int(0.08 * sr) // hop                                            # 80 ms after each onset
    assert bands[-1, at["open"] + later] > bands[-1, at["closed"] + later] + 0.5   # the open hat still rings
    assert bands[-1, at["closed"] + 1] > 0.5 and bands[0, at["closed"] + 1] == 0   # a hat: air, no body
    assert bands[0, at["kick"] + 1] > 0.9 and bands[-1, at["kick"] + 1] == 0       # a kick: body, no air
    assert np.allclose(band_levels(0.05 * y, hop, sr), bands, atol=2e-3)          # 26 dB quieter: the same


def test_a_band_model_starts_from_a_loudness_one_playing_exactly_as_it_does():
    from training.stage2 import start_from
    base = tiny_redrum(sub_frames=2, level=True)
    model = start_from(base, {"bands": True})
    extra = 2 * (len(stage2.BAND_EDGES_HZ) + 1)
    assert model.cfg.channels == base.cfg.channels + extra
    mu_s, p_s, p_t = torch.randn(1, 4, 20), torch.rand(1, 12, 20), torch.rand(1, 12, 24)
    with torch.no_grad():
        want, _, _ = base(mu_s, p_s, p_t)
        got, _, _ = model(mu_s, torch.cat([p_s, torch.rand(1, extra, 20)], 1),
                          torch.cat([p_t, torch.rand(1, extra, 24)], 1))
    assert torch.allclose(got, want, atol=1e-6)
    from redrum_kit.transcription import load_model
    from redrum_kit.transform import Conditioner               # the conditioning has the channels the model reads
    y = 0.1 * np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    assert Conditioner(model, load_model("baseline"))(y).shape == (model.cfg.channels, -(-len(y) // model.compression))


def test_a_loudness_model_starts_from_a_plain_one_playing_exactly_as_it_does():
    """`level` adds conditioning channels after the probabilities; started from a model without them
    (`init`), their weights are zero and everything else is the init's."""
    from training.stage2 import start_from
    base = tiny_redrum(sub_frames=2)
    model = start_from(base, {"level": True})
    assert model.cfg.channels == base.cfg.channels + 2
    mu_s, p_s, p_t = torch.randn(1, 4, 20), torch.rand(1, 10, 20), torch.rand(1, 10, 24)
    loud = torch.rand(1, 2, 24)
    with torch.no_grad():
        want, _, _ = base(mu_s, p_s, p_t)
        got, _, attention = model(mu_s, torch.cat([p_s, torch.rand(1, 2, 20)], 1), torch.cat([p_t, loud], 1))
        trained = model.transformer.rhythm_stack.net[0].weight
        trained[:, -2:] = 0.5                                      # once it has learned: loudness counts
        moved, _, _ = model(mu_s, torch.cat([p_s, torch.rand(1, 2, 20)], 1), torch.cat([p_t, loud], 1))
    assert torch.allclose(got, want, atol=1e-6) and attention[0].shape == (1, 4, 24, 20)
    assert not torch.allclose(moved, want, atol=1e-3)
    assert torch.equal(model.transformer.pooled(torch.cat([p_t, loud], 1)), base.transformer.pooled(p_t))


def test_eval_transform_table_names_each_real_source_kit():
    """A kit whose sounds a model may have heard in training (see the README) can be read apart."""
    from training.evaluate_transform import table
    figures = {"rhythm_f": 0.5, "rhythm_relative": 0.9, "timbre_ratio": 0.7}
    ev = {"groups": {"real": {"pairs": 3, **{m: figures for m in ("model", "replace", "ceiling")}}},
          "per_source_kit": {"hydrogen:GMRockKit": {"pairs": 2, "model": 0.512, "replace": 1.1, "ceiling": 0.3},
                             "hydrogen:VariBreaks": {"pairs": 1, "model": 0.834, "replace": 0.9, "ceiling": 0.4}}}
    text = table(ev)
    assert "| GMRockKit | 2 | 0.512 | 1.100 | 0.300 |" in text and "| VariBreaks | 1 | 0.834 |" in text
    ev["groups"]["real"]["model"] = dict(figures, timbre_ci95=[0.61, 0.79], timbre_ci95_kits=[0.52, 0.88])
    assert "| model | 0.500 | 0.900 | 0.700 | 0.610-0.790 | 0.520-0.880 |" in table(ev)


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_pairs():
    from training.evaluate_transform import bootstrap_interval
    values = np.random.default_rng(1).normal(0.6, 0.2, 500)
    lo, hi = bootstrap_interval(values)
    lo60, hi60 = bootstrap_interval(values[:60])
    assert lo < values.mean() < hi and hi - lo < 0.05 < hi60 - lo60
    # five kits, 100 pairs each, whose own means differ: over kits the interval is far wider than over pairs
    kits = np.repeat(np.arange(5), 100)
    spread = values + np.array([-0.1, -0.05, 0.0, 0.05, 0.1])[kits]
    lo_p, hi_p = bootstrap_interval(spread)
    lo_k, hi_k = bootstrap_interval(spread, kits=kits)
    assert lo_k < spread.mean() < hi_k and hi_k - lo_k > 2 * (hi_p - lo_p)
