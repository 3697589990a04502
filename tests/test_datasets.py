"""Dataset builds: split by kit, deterministic, resumable, targets on the hits, honest pairs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from redrum_kit import workspace
from redrum_kit.cli import main
from redrum_kit.datasets.build import Builder, Dataset, DatasetConfig, build, kit_splits
from redrum_kit.datasets.kits import SampleKit, toms_by_pitch
from redrum_kit.errors import RedrumError
from redrum_kit.hydrogen import H2Instrument, H2Kit, H2Layer, write_drumkit
from tests.conftest import needs_hydrogen


def tiny(tmp_path, **kw) -> DatasetConfig:
    kw.setdefault("items", {"train": 6, "val": 2, "test": 2})
    kw.setdefault("hydrogen_dir", str(tmp_path / "none"))
    return DatasetConfig(shard_size=4, synth_kits={"train": 3, "val": 1, "test": 1},
                         songs_dir=str(tmp_path / "none"), **kw)


def test_kits_never_cross_splits(tmp_path):
    splits = kit_splits(DatasetConfig())
    seen = [set(v) for v in splits.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert all(splits.values())


@needs_hydrogen
def test_a_repackaged_held_out_kit_is_not_trained_on():
    """81 sounds of GMRockKit (held out) ship again in "The Black Pearl 1.0": that kit is in no split."""
    splits = kit_splits(DatasetConfig())
    assert "hydrogen:GMRockKit" in splits["test"]
    assert not any("Black Pearl" in k for v in splits.values() for k in v)
    assert "hydrogen:BJA_Pacific" in splits["train"]


SOUNDS = ("kick", "snare", "kick 2", "snare 2")


def make_h2_kit(root, name: str, pads: dict[str, tuple[str, str]], sr: int = 44100) -> None:
    """A Hydrogen kit folder `root/name` whose instruments play `SOUNDS` (noise bursts): {instrument: (sound, ext)}."""
    decay = np.exp(-np.arange(4000) / 400)
    folder = root / name
    folder.mkdir(parents=True)
    insts = []
    for i, (inst, (sound, ext)) in enumerate(pads.items()):
        y = (np.random.default_rng(SOUNDS.index(sound)).standard_normal(4000) * decay * 8000).astype(np.int16)
        sf.write(folder / f"{inst}.{ext}", np.stack([y, y // 2], 1) if ext == "wav" and "2" in sound else y, sr)
        insts.append(H2Instrument(id=i, name=inst, layers=[H2Layer(path=folder / f"{inst}.{ext}")]))
    (folder / "drumkit.xml").write_text(write_drumkit(H2Kit(name=name, folder=folder, instruments=insts)))


def test_a_kit_sharing_a_sound_with_a_held_out_kit_stays_out_of_training(tmp_path):
    """A held-out kit's kick copied into another kit as FLAC keeps that kit out of every split, and the
    manifest says why; a kit of sounds of its own still trains."""
    root = tmp_path / "kits"
    make_h2_kit(root, "Held", {"Kick": ("kick", "wav"), "Snare": ("snare", "wav")})
    make_h2_kit(root, "Repack", {"Kick": ("kick", "flac"), "Snare": ("snare 2", "wav")})
    make_h2_kit(root, "Own", {"Kick": ("kick 2", "wav"), "Snare": ("snare 2", "flac")})
    cfg = tiny(tmp_path, hydrogen_dir=str(root), test_kits=["Held"], val_kits=[], train_real_share=0.5)
    splits = kit_splits(cfg)
    assert "hydrogen:Held" in splits["test"] and "hydrogen:Own" in splits["train"]
    assert not any(k == "hydrogen:Repack" for v in splits.values() for k in v)
    manifest = build(cfg, tmp_path / "ds")
    assert manifest["left_out_kits"] == {"Repack": "shares sounds with Held (held out)"}
    ds = Dataset(tmp_path / "ds", "train")
    assert "hydrogen:Repack" not in {ds[i]["kit"] for i in range(len(ds))}


def test_build_is_deterministic_and_resumes(tmp_path):
    cfg = tiny(tmp_path)
    build(cfg, tmp_path / "a")
    build(cfg, tmp_path / "b")
    a, b = Dataset(tmp_path / "a", "train"), Dataset(tmp_path / "b", "train")
    assert len(a) == 6 and all(np.array_equal(a[i]["audio"], b[i]["audio"]) for i in range(6))
    (tmp_path / "a" / "train-00001.npz").unlink()  # an interrupted build
    build(cfg, tmp_path / "a")
    assert np.array_equal(Dataset(tmp_path / "a", "train")[5]["audio"], b[5]["audio"])


def test_workers_build_the_same_dataset(tmp_path):
    cfg = tiny(tmp_path)
    build(cfg, tmp_path / "one")
    build(cfg, tmp_path / "two", workers=3)
    for split in ("train", "val", "test"):
        a, b = Dataset(tmp_path / "one", split), Dataset(tmp_path / "two", split)
        for i in range(len(a)):
            assert np.array_equal(a[i]["audio"], b[i]["audio"])
            assert np.array_equal(a[i]["targets"], b[i]["targets"]) and a[i]["events"] == b[i]["events"]
    assert Dataset(tmp_path / "two", "train").manifest["complete"]


def test_grid_blocks_give_each_block_its_own_rhythms(tmp_path):
    from redrum_kit.datasets.build import grid_block
    cfg = tiny(tmp_path, grid_rhythms=2, grid_blocks=2, items={"train": 8, "val": 2, "test": 2})
    build(cfg, tmp_path / "g")
    ds = Dataset(tmp_path / "g", "train")
    times = [[round(e[0], 4) for e in ds[i]["events"]] for i in range(len(ds))]
    assert [ds[k * 2]["block"] for k in range(4)] == [0, 0, 1, 1]
    assert times[0 * 2 + 1] == times[1 * 2 + 1]          # same block, same rhythm index: one rhythm
    assert times[0 * 2 + 1] != times[2 * 2 + 1]          # another block: another rhythm
    # block 0 plays the rhythms a grid without blocks plays (grids built before blocks stay as they were)
    build(tiny(tmp_path, grid_rhythms=2, items={"train": 8, "val": 2, "test": 2}), tmp_path / "one")
    assert np.array_equal(Dataset(tmp_path / "one", "train")[1]["audio"], ds[1]["audio"])
    assert grid_block(ds.manifest["config"], "val", 3) == 0
    with pytest.raises(RedrumError, match="grid_blocks"):
        build(tiny(tmp_path, grid_rhythms=2, grid_blocks=3, items={"train": 8, "val": 2, "test": 2}),
              tmp_path / "bad")


def test_a_kit_level_grid_plays_every_rhythm_of_a_kit_instance_at_one_gain(tmp_path):
    """level = "kit": a pair's source and its true rendering (one kit instance, two rhythms) keep the level
    relation of the kit played at one fader; per-clip levelling turned only the loud clips down."""
    kw = dict(grid_rhythms=6, items={"train": 12, "val": 6, "test": 6}, augment={"mix_chain": 0.0, "gain_db": 12.0})
    build(tiny(tmp_path, **kw), tmp_path / "clip")
    build(tiny(tmp_path, level="kit", **kw), tmp_path / "kit")
    by_clip, by_kit = Dataset(tmp_path / "clip", "train"), Dataset(tmp_path / "kit", "train")
    turned_down = 0
    for k in range(2):
        cells = range(k * 6, k * 6 + 6)
        peaks = np.array([np.abs(by_clip[i]["audio"]).max() for i in cells])
        ratio = np.array([np.sqrt(np.mean(by_kit[i]["audio"] ** 2) / np.mean(by_clip[i]["audio"] ** 2)) for i in cells])
        assert max(np.abs(by_kit[i]["audio"]).max() for i in cells) == pytest.approx(0.99, abs=1e-3)
        untouched = peaks < 0.98                        # clips that per-clip levelling left as rendered
        assert untouched.any()
        assert np.allclose(ratio[untouched], ratio[untouched][0], rtol=1e-3)    # one gain for the instance
        assert (ratio >= ratio[untouched][0] * (1 - 1e-3)).all()
        turned_down += int((ratio > ratio[untouched][0] * 1.05).sum())
        assert [by_kit[i]["events"] for i in cells] == [by_clip[i]["events"] for i in cells]
    assert turned_down                                  # the per-clip grid had turned some clips down alone
    with pytest.raises(RedrumError, match="level must"):
        build(tiny(tmp_path, level="track", **kw), tmp_path / "bad")


def test_a_level_spread_turns_each_kit_instance_down_as_a_whole(tmp_path):
    """level_spread_db: sources at many levels, each instance's rhythms still at one level together."""
    kw = dict(grid_rhythms=3, level="kit", items={"train": 12, "val": 3, "test": 3}, augment={"mix_chain": 0.5})
    build(tiny(tmp_path, **kw), tmp_path / "kit")
    build(tiny(tmp_path, level_spread_db=18.0, **kw), tmp_path / "spread")
    at_one, spread = Dataset(tmp_path / "kit", "train"), Dataset(tmp_path / "spread", "train")
    downs = []
    for k in range(4):
        gains = [np.abs(spread[i]["audio"]).max() / np.abs(at_one[i]["audio"]).max() for i in range(k * 3, k * 3 + 3)]
        assert np.allclose(gains, gains[0], rtol=1e-2)        # one gain for the whole instance
        downs.append(-20 * np.log10(gains[0]))
    assert all(-0.1 <= d <= 18.1 for d in downs) and max(downs) - min(downs) > 2
    with pytest.raises(RedrumError, match="level_spread_db"):
        build(tiny(tmp_path, level_spread_db=6.0, grid_rhythms=3, items={"train": 12, "val": 3, "test": 3}),
              tmp_path / "bad")


def test_kit_level_pairs_put_the_pseudo_target_at_the_sources_level(tmp_path):
    """level = "kit" with pairs: x_s and x_{s->t} share one gain; per-clip levelling turned the louder alone."""
    def rms(y):
        return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    kw = dict(pairs=True, items={"train": 16, "val": 2, "test": 2}, augment={"mix_chain": 0.0, "gain_db": 12.0})
    build(tiny(tmp_path, **kw), tmp_path / "clip")
    build(tiny(tmp_path, level="kit", **kw), tmp_path / "kit")
    by_clip, by_kit = Dataset(tmp_path / "clip", "train"), Dataset(tmp_path / "kit", "train")
    moved = 0
    for a, b in zip(by_clip, by_kit):
        assert np.array_equal(a["target"], b["target"]) and a["pseudo_events"] == b["pseudo_events"]
        assert max(np.abs(b["source"]).max(), np.abs(b["pseudo"]).max()) <= 0.991
        as_kit = rms(b["pseudo"]) / rms(b["source"])
        if max(np.abs(a["source"]).max(), np.abs(a["pseudo"]).max()) < 0.98:      # neither was turned down
            assert as_kit == pytest.approx(rms(a["pseudo"]) / rms(a["source"]), rel=1e-3)
        else:
            moved += abs(20 * np.log10(as_kit * rms(a["source"]) / rms(a["pseudo"]))) > 0.5
    assert moved                             # per-clip levelling had moved x_{s->t} against x_s in some pairs


def test_items_hold_audio_targets_and_kit(tmp_path):
    cfg = tiny(tmp_path)
    build(cfg, tmp_path / "d")
    ds = Dataset(tmp_path / "d", "val")
    item = ds[0]
    assert item["audio"].shape == (int(cfg.clip_seconds * cfg.sr),) and np.abs(item["audio"]).max() <= 1.0
    assert item["targets"].shape == (5, cfg.frames()) and item["targets"].sum() > 0
    assert item["kit"] == "synth:200003"  # the one validation kit
    # every onset target sits on a real hit: energy rises around it
    frames = np.flatnonzero(item["targets"].max(0))
    env = np.array([np.abs(item["audio"][f * 256: f * 256 + 512]).max() for f in frames])
    assert (env > 0.01).mean() > 0.9


def training_item_with_and_without(augment: dict) -> tuple[dict, dict]:
    """A training-only kit augmentation: validation and test clips are those of a build without it
    (asserted here); -> the first training clip without it and with it, whose hits are the same."""
    kw = dict(items={"train": 4, "val": 2, "test": 2}, synth_kits={"train": 2, "val": 1, "test": 1},
              hydrogen_dir="/nonexistent", songs_dir="/nonexistent")
    plain, augmented = Builder(DatasetConfig(**kw)), Builder(DatasetConfig(**kw, augment=augment))
    for split in ("val", "test"):
        assert np.array_equal(plain.item(split, 0)["audio"], augmented.item(split, 0)["audio"])
    a, b = plain.item("train", 0), augmented.item("train", 0)
    assert a["events"] == b["events"] and a["kit"] == b["kit"]
    return a, b


def test_shorter_decays_reach_training_clips_only():
    """Decay augmentation: a shorter tail, the same attack; held-out kits keep their own sounds."""
    from redrum_kit import synth
    from redrum_kit.datasets.augment import shorten_decay

    def length_30db(y):
        level = np.abs(y)
        return (np.flatnonzero(level > level.max() * 10 ** -1.5)[-1] - np.argmax(level)) / 22050

    tom = synth.oneshot("tom", 3, 22050)
    short = shorten_decay(tom, 22050, 0.3)
    assert length_30db(short) < 0.4 * length_30db(tom)
    peak = int(np.argmax(np.abs(tom)))
    assert np.array_equal(short[:peak + 1], tom[:peak + 1])
    assert np.array_equal(shorten_decay(tom, 22050, 1.0), tom)

    a, b = training_item_with_and_without({"decay": 1.0})
    assert np.abs(b["audio"]).sum() < 0.9 * np.abs(a["audio"]).sum()  # the same hits with shorter tails


def test_pad_eq_moves_the_timbre_of_training_pads_only():
    """Pad EQ: a pad's spectrum tilted by up to the set dB, its level kept; held-out kits keep their
    own sounds, training clips keep their hits."""
    from redrum_kit import features, synth
    from redrum_kit.datasets.augment import equalise

    snare = synth.oneshot("snare", 3, 22050)
    bumps = [np.array([0.5, 0.0, 1.0])] * 3            # three bumps of +1 at the middle of the axis: +12 dB there
    loud = equalise(snare, 22050, 12.0, bumps)
    assert np.sqrt(np.mean(loud ** 2)) == pytest.approx(np.sqrt(np.mean(snare ** 2)), rel=1e-3)
    mel = features.log_mel(torch.from_numpy(np.stack([snare, loud])), 22050, 64)[..., :8].mean(-1)
    tilt = 10 * (mel[1] - mel[0])                      # dB per band
    assert float(tilt.max() - tilt.min()) > 10.0       # a bump of about 12 dB against the rest
    assert np.allclose(equalise(snare, 22050, 0.0, bumps), snare, atol=1e-5)

    a, b = training_item_with_and_without({"pad_eq_db": 12.0})
    assert not np.allclose(a["audio"], b["audio"], atol=1e-3)


def test_pad_tilt_makes_training_hats_darker_or_brighter_only():
    """Pad tilt: a hat made darker has its spectral centroid lower, its level kept; held-out kits keep their
    own sounds; the draws of the other augmentations stay those of a build without it."""
    from redrum_kit import synth
    from redrum_kit.datasets.augment import tilt

    def centroid(y):
        spec = np.abs(np.fft.rfft(y)) ** 2
        return float((spec * np.fft.rfftfreq(len(y), 1 / 22050)).sum() / spec.sum())

    hat = synth.oneshot("hat_closed", 3, 22050)
    dark, bright = tilt(hat, 22050, -3.0), tilt(hat, 22050, 3.0)
    assert centroid(dark) < 0.9 * centroid(hat) < 0.9 * centroid(bright)
    assert np.sqrt(np.mean(dark ** 2)) == pytest.approx(np.sqrt(np.mean(hat ** 2)), rel=1e-3)
    assert np.allclose(tilt(hat, 22050, 0.0), hat, atol=1e-5)

    a, b = training_item_with_and_without({"pad_tilt_db": 3.0})
    assert not np.allclose(a["audio"], b["audio"], atol=1e-3)
    c, d = training_item_with_and_without({"pad_eq_db": 6.0, "decay": 0.5})
    _, e = training_item_with_and_without({"pad_eq_db": 6.0, "decay": 0.5, "pad_tilt_db": 0.0})
    assert np.array_equal(d["audio"], e["audio"])


def test_wide_retunes_reach_training_pads_only(tmp_path):
    """pad_pitch_semitones: training pads retuned over the wider range (a hat played slower rings darker and
    longer), held-out kits as before; the other draws stay those of a build without it; out of 0-12 semitones
    a one-line error, nothing built."""
    from redrum_kit.datasets.augment import AugmentConfig, augment_kit
    a, b = training_item_with_and_without({"pad_pitch_semitones": 12.0})
    assert not np.allclose(a["audio"], b["audio"], atol=1e-3)
    kit = Builder(tiny(tmp_path)).kit("synth:0")
    narrow, wide = (augment_kit(kit, np.random.default_rng(3), AugmentConfig(pad_pitch_semitones=w)) for w in (0.0, 12.0))
    ratios = [len(wide.samples[k]) / len(narrow.samples[k]) for k in kit.samples]
    assert max(ratios) > 1.3 or min(ratios) < 0.77      # a retune of more than the usual +-2 semitones somewhere
    assert all(0.45 < r < 2.2 for r in ratios)          # and never beyond an octave and the old range
    for bad in (-1.0, 13.0, True):
        with pytest.raises(RedrumError, match="pad_pitch_semitones"):
            build(tiny(tmp_path, augment={"pad_pitch_semitones": bad}), tmp_path / "bad")
        assert not (tmp_path / "bad").exists()


def test_drum_machine_kits_join_the_training_split_only(tmp_path):
    """machine_kits adds training kits (synthesiser ones, never drawn as recorded); validation and test
    clips stay those of a build without them."""
    from training.transcriber import kit_group
    plain, machine = tiny(tmp_path), tiny(tmp_path, machine_kits=2)
    a, b = kit_splits(plain), kit_splits(machine)
    assert b["val"] == a["val"] and b["test"] == a["test"]
    assert set(b["train"]) - set(a["train"]) == {"machine:400000", "machine:400001"}
    assert all(kit_group(k) == "synth" for k in b["train"]) and kit_group("hydrogen:GMRockKit") == "real"
    builder = Builder(machine)
    assert builder.recorded("train") == []
    assert builder.kit("machine:400001").kit.name == "machine-400001"
    for split in ("val", "test"):
        assert np.array_equal(Builder(plain).item(split, 1)["audio"], builder.item(split, 1)["audio"])
    with pytest.raises(RedrumError, match="machine_kits"):
        build(tiny(tmp_path, machine_kits=-1), tmp_path / "bad")


@pytest.mark.parametrize("option, pads", [("dark_metals", {"Hat Closed", "Hat Open", "Crash", "Ride"}),
                                          ("wide_claps", {"Clap"}),
                                          ("recorded_rings", {"Hat Closed", "Hat Open", "Crash", "Ride"})])
def test_a_synthesiser_option_changes_its_own_pads_and_nothing_else(tmp_path, option, pads):
    """`dark_metals`, `wide_claps`, `recorded_rings`: the same kits playing the same parts, their hats and
    cymbals (or claps) of another kind, every other pad untouched; a share outside 0-1 is a one-line error, nothing built."""
    plain, other = Builder(tiny(tmp_path)), Builder(tiny(tmp_path, **{option: 1.0}))
    a, b = plain.kit("synth:0").samples, other.kit("synth:0").samples
    for i, pad in enumerate(plain.kit("synth:0").kit.pads):
        assert np.array_equal(a[(i, 0)], b[(i, 0)]) == (pad.name not in pads), pad.name
    x, y = plain.item("train", 1), other.item("train", 1)
    assert np.array_equal(x["targets"], y["targets"])         # the same parts, labels unchanged
    with pytest.raises(RedrumError, match=option):
        build(tiny(tmp_path, **{option: 1.5}), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_bleed_rings_a_kits_hats_in_the_low_mids_for_training_clips_only(tmp_path):
    """`[augment] bleed`: a kit as a room microphone hears it: its hats carry the snare's and toms' ring
    (250-1000 Hz up against 4-8 kHz, as ForzeeStereo's do), its drums a little of it; held-out clips are
    untouched, the parts and labels too; a share outside 0-1 is a one-line error, nothing built."""
    from redrum_kit.datasets import augment as aug

    def low_over_high(y, sr=22050):
        spectrum, f = np.abs(np.fft.rfft(y[:2205])) ** 2, np.fft.rfftfreq(2205, 1 / sr)
        return 10 * np.log10(spectrum[(f >= 250) & (f < 1000)].sum() / spectrum[(f >= 4000) & (f < 8000)].sum())

    kit = Builder(tiny(tmp_path)).kit("synth:0")
    pads = {p.name: i for i, p in enumerate(kit.kit.pads)}
    moved = {name: [] for name in ("Hat Closed", "Kick")}
    for seed in range(6):
        rings = aug.room_rings(kit, np.random.default_rng(seed))
        for name in moved:
            y = kit.samples[(pads[name], 0)]
            moved[name].append(low_over_high(aug.with_ring(y, kit.sr, rings[pads[name]])) - low_over_high(y))
    assert np.mean(moved["Hat Closed"]) > 3 and min(moved["Hat Closed"]) > 0
    assert abs(np.mean(moved["Kick"])) < 1.5
    augment = {**DatasetConfig().augment, "bleed": 1.0}
    plain, rung = Builder(tiny(tmp_path)), Builder(tiny(tmp_path, augment=augment))
    x, y = plain.item("train", 1), rung.item("train", 1)
    assert np.array_equal(x["targets"], y["targets"]) and not np.array_equal(x["audio"], y["audio"])
    assert np.array_equal(plain.item("test", 0)["audio"], rung.item("test", 0)["audio"])
    with pytest.raises(RedrumError, match="bleed"):
        build(tiny(tmp_path, augment={**augment, "bleed": 2}), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_pairs_put_the_source_kit_on_the_target_timing(tmp_path):
    cfg = tiny(tmp_path, pairs=True)
    build(cfg, tmp_path / "p")
    item = Dataset(tmp_path / "p", "train")[2]
    assert item["kit"] != item["target_kit"]
    assert [round(t, 6) for t, _, _ in item["pseudo_events"]] == [round(t, 6) for t, _, _ in item["events"]]
    assert not np.allclose(item["pseudo"], item["target"])


@needs_hydrogen
def test_hybrid_kits_mix_recorded_training_kits_only():
    """Training items can be played by hybrids of the recorded training kits: each class from one of
    them, never from a validation or test kit; validation and test items are not touched."""
    builder = Builder(DatasetConfig(train_real_share=1.0, hybrid_share=1.0))
    plain = Builder(DatasetConfig())
    kits = [builder.item("train", i)["kit"] for i in range(3)]
    assert all(k.startswith("hybrid:train-") for k in kits)
    held_out = builder.splits["val"] + builder.splits["test"]
    donors = set()
    for k in kits:
        kit = builder.kit(k)
        assert {"kick", "snare", "hat_closed"} <= kit.classes()
        hats = {Path(p.layers[0].path).parent for p in kit.kit.pads if p.cls.startswith("hat")}
        assert len(hats) == 1  # open and closed hats from one kit: they choke each other
        for pad in kit.kit.pads:
            folder = Path(pad.layers[0].path).parent.name
            assert f"hydrogen:{folder}" not in held_out
            donors.add(folder)
        assert len({p.note for p in kit.kit.pads}) == len(kit.kit.pads)  # each pad keyed apart
    assert len(donors) > 2
    assert np.array_equal(builder.item("test", 1)["audio"], plain.item("test", 1)["audio"])


def test_refuses_to_build_over_something_else(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "song.wav").write_bytes(b"x")
    with pytest.raises(RedrumError, match="not a dataset"):
        build(tiny(tmp_path), tmp_path / "mine")
    build(tiny(tmp_path), tmp_path / "d")
    with pytest.raises(RedrumError, match="another config"):
        build(tiny(tmp_path, seed=5), tmp_path / "d")


def test_one_hat_by_default_and_builds_from_before_it_still_resume(tmp_path):
    """New builds strike no closed hat on an open hat's step; a build from before `one_hat` existed (its
    manifest without the option) had both, so its config (`one_hat = false`, as the shipped dataset
    configs say) still finishes it, and the new default is refused there."""
    import json
    cfg = tiny(tmp_path, items={"train": 40, "val": 2, "test": 2}, styles=["funk"])
    assert cfg.one_hat
    new, old = Builder(cfg), Builder(tiny(tmp_path, items=cfg.items, styles=["funk"], one_hat=False))

    def coincident(builder):
        count = 0
        for i in range(40):
            events = builder.item("train", i)["events"]
            opened = [t for t, cls, _ in events if cls == "hat_open"]
            count += sum(any(abs(u - t) < 0.05 for t in opened) for u, cls, _ in events if cls == "hat_closed")
        return count
    assert coincident(new) == 0 < coincident(old)
    build(tiny(tmp_path, one_hat=False), tmp_path / "d")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    del manifest["config"]["one_hat"]
    manifest["complete"] = False
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(manifest))
    assert build(tiny(tmp_path, one_hat=False), tmp_path / "d")["complete"]
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    del manifest["config"]["one_hat"]
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RedrumError, match="another config"):
        build(tiny(tmp_path), tmp_path / "d")


def test_cli_build_with_a_users_kit(tmp_path, no_hydrogen, capsys):
    assert main(["dataset", "build", "-o", str(tmp_path / "cli"), "--items", "4", "--kit", "default"]) == 0
    assert "library:default" in Dataset(tmp_path / "cli", "train").manifest["kits"]["train"]
    assert main(["dataset", "build", "-o", str(tmp_path / "cli2"), "--items", "0"]) == 1
    assert main(["dataset", "build", "-o", str(tmp_path / "cli3"), "--items", "4", "--workers", "0"]) == 1
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "cli3").exists()


@needs_hydrogen
def test_cli_refuses_a_users_kit_made_of_held_out_sounds(tmp_path, capsys):
    """The `default` kit is GMRockKit's sounds: trained on, the test kit would be scored as unseen."""
    assert main(["dataset", "build", "-o", str(tmp_path / "leak"), "--items", "4", "--kit", "default"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GMRockKit" in err and "default" in err
    assert not (tmp_path / "leak").exists()


def test_a_bass_line_goes_under_the_drums_at_the_level_asked():
    from redrum_kit.datasets.augment import under_bass
    sr = 22050
    rng = np.random.default_rng(0)
    drums = (rng.standard_normal(3 * sr) * 0.05).astype(np.float32)
    events = [(0.5, "kick", 100), (1.0, "snare", 90), (1.5, "kick", 100)]
    for db in (-12.0, 0.0):
        mix = under_bass(drums, sr, events, np.random.default_rng(1), db)
        bass = mix - drums                       # nothing clipped: the drums are untouched
        ratio = 20 * np.log10(np.sqrt(np.mean(bass ** 2)) / np.sqrt(np.mean(drums ** 2)))
        assert db - 6 < ratio <= db + 0.5        # RMS 1 where the line plays, less over the clip
    loud = under_bass(drums * 18, sr, events, np.random.default_rng(1), 6.0)
    assert np.abs(loud).max() <= 0.99 + 1e-6     # turned down as a whole, never clipped


def test_every_shipped_training_config_loads_and_names_files_that_exist():
    """A setting misspelt in a recipe (or a dataset config it names that is gone) fails here, not on a GPU."""
    from redrum_kit.config import load_config
    from training import classifier, layering, stage1, stage2, transcriber
    kinds = {"dataset": DatasetConfig, "transcriber": transcriber.TrainConfig, "stage1": stage1.TrainConfig,
             "stage2": stage2.TrainConfig, "layering": layering.TrainConfig, "classifier": classifier.TrainConfig}
    configs = sorted((workspace.presets_dir() / "training").glob("*.toml"))
    assert len(configs) > 40
    for path in configs:
        cfg = load_config(kinds[path.stem.split("-")[0]], path)
        named = getattr(cfg, "dataset_config", None)
        assert named is None or (workspace.presets_dir().parent / named).is_file(), (path.name, named)


def test_tom_notes_run_fills_down_each_kits_toms_by_pitch(tmp_path):
    """`tom_notes = true`: the same rhythms (times, classes) with the fills on 50, 47, 43, and each kit's
    toms keyed low to high by the pitch of their samples, so those notes run down the kit; the kit as
    loaded (and a build without the flag) keeps its keys."""
    from redrum_kit.variants import oneshot_pitch
    plain, toms = Builder(tiny(tmp_path)), Builder(tiny(tmp_path, tom_notes=True))
    fills = 0
    for seed in range(40):
        a, b = plain.rhythm(np.random.default_rng(seed)), toms.rhythm(np.random.default_rng(seed))
        assert [(e.time, e.cls) for e in a.events] == [(e.time, e.cls) for e in b.events]
        fills += any(e.cls == "tom" for e in b.events)
        assert {e.midi_note() for e in a.events if e.cls == "tom"} <= {45}
        assert {e.midi_note() for e in b.events if e.cls == "tom"} <= {43, 47, 50}
    assert fills >= 3
    kit_id = toms.splits["test"][0]
    keyed = toms.augmented(kit_id, "test", np.random.default_rng(0))
    as_loaded = plain.augmented(kit_id, "test", np.random.default_rng(0))

    def tom_notes(kit):
        pads = [(i, p) for i, p in enumerate(kit.kit.pads) if p.cls == "tom"]
        pitch = {i: oneshot_pitch(kit.samples[(i, 0)], kit.sr, centroid=True) for i, _ in pads}   # as datasets key
        return [p.note for _, p in sorted(pads, key=lambda ip: pitch[ip[0]])]
    assert len(tom_notes(keyed)) == 3 and tom_notes(keyed) == sorted(tom_notes(keyed))   # climbing with pitch
    assert [p.note for p in toms.kit(kit_id).kit.pads] == [p.note for p in as_loaded.kit.pads]
    swap = {45: 48, 48: 45}                       # a kit whose pads come high tom first, as many recorded ones do
    scrambled = SampleKit(dataclasses.replace(as_loaded.kit, pads=[
        dataclasses.replace(p, note=swap.get(p.note, p.note)) if p.cls == "tom" else p for p in as_loaded.kit.pads]),
        as_loaded.samples, as_loaded.sr)
    assert tom_notes(scrambled) == [48, 47, 45]
    assert tom_notes(toms_by_pitch(scrambled)) == [45, 47, 48] and tom_notes(scrambled) == [48, 47, 45]
    assert [p.note for p in toms_by_pitch(scrambled).kit.pads if p.cls != "tom"] == \
        [p.note for p in as_loaded.kit.pads if p.cls != "tom"]


def test_blend_layers_two_drums_at_the_first_ones_level():
    """`augment.blend`: both drums heard in the result, their starts aligned, at the first one's level."""
    from redrum_kit.datasets import augment as aug
    sr = 22050
    t = np.arange(int(0.3 * sr)) / sr
    low = (np.sin(2 * np.pi * 100 * t) * np.exp(-t / 0.05)).astype(np.float32)
    high = (0.1 * np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.05)).astype(np.float32)
    late = np.concatenate([np.zeros(441, np.float32), high])          # starts 20 ms in: aligned on its start
    mixed = aug.blend(low, late, 0.5, sr)
    spectrum, f = np.abs(np.fft.rfft(mixed[:2205])), np.fft.rfftfreq(2205, 1 / sr)
    at = {hz: spectrum[np.argmin(np.abs(f - hz))] for hz in (100, 1000)}
    assert 0.5 < at[1000] / at[100] < 2                               # one RMS each before the mix, half and half
    assert np.argmax(np.abs(mixed) >= 0.1 * np.abs(mixed).max()) < 20  # the start stays the first drum's
    rms = lambda x: np.sqrt(np.mean(x[:2205].astype(np.float64) ** 2))
    assert rms(mixed) == pytest.approx(rms(low), rel=1e-3)
    assert np.array_equal(aug.blend(low, np.zeros(100, np.float32), 0.5, sr), low)   # a silent donor: unchanged


@needs_hydrogen
def test_blend_share_layers_training_recorded_kits_only(tmp_path):
    """`blend_share`: a recorded training kit's pads layered with other recorded training kits' drums of the
    same class; the labels, synthesiser kits and held-out clips untouched; out of 0-1, a one-line error."""
    plain = Builder(DatasetConfig(train_real_share=0.5))
    blended = Builder(DatasetConfig(train_real_share=0.5, blend_share=1.0))
    kit_id = plain.recorded("train")[0]
    kit = plain.kit(kit_id)
    layered = blended.blended(kit, kit_id, "train", np.random.default_rng(0))
    assert layered.kit is kit.kit and set(layered.samples) == set(kit.samples)
    assert all(not np.array_equal(layered.samples[(i, 0)], kit.samples[(i, 0)]) for i in range(len(kit.kit.pads)))
    kits = {i: plain.item("train", i)["kit"] for i in range(12)}
    recorded = next(i for i, k in kits.items() if k.startswith("hydrogen:"))
    x, y = plain.item("train", recorded), blended.item("train", recorded)
    assert np.array_equal(x["targets"], y["targets"]) and not np.array_equal(x["audio"], y["audio"])
    synth = next(i for i, k in kits.items() if k.startswith(("synth:", "machine:")))
    assert np.array_equal(plain.item("train", synth)["audio"], blended.item("train", synth)["audio"])
    assert np.array_equal(plain.item("test", 0)["audio"], blended.item("test", 0)["audio"])
    with pytest.raises(RedrumError, match="blend_share"):
        build(tiny(tmp_path, blend_share=1.5), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_switch_in_a_config_must_be_true_or_false(tmp_path, capsys):
    """`one_hat = "yes"` was taken as true: a switch given anything but a TOML boolean is a one-line
    error, and nothing is built."""
    bad = tmp_path / "bad.toml"
    bad.write_text('one_hat = "yes"\n')
    assert main(["dataset", "build", "--config", str(bad), "-o", str(tmp_path / "d"), "--items", "2"]) == 1
    assert "one_hat must be true or false (not 'yes')" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
