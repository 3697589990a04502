"""Kits: a default always exists, builds never clobber, exports load in samplers."""

from __future__ import annotations

import re

import pytest

from redrum_kit.errors import LibraryError
from redrum_kit.hydrogen import read_drumkit
from redrum_kit.library import Library
from redrum_kit.library.kits import Kit

from conftest import needs_hydrogen


def test_default_kit_exists_with_nothing_installed(no_hydrogen, home):
    lib = Library()
    kit = lib.ensure_default_kit()
    assert kit.name == "default" and "synthesiser" in kit.description
    classes = [p.cls for p in kit.pads]
    assert {"kick", "snare", "hat_closed", "hat_open"} <= set(classes)
    assert "default" in lib.kits.names()
    assert (home / "kits" / "default.toml").is_file()


@needs_hydrogen
def test_default_kit_is_a_real_kit_when_hydrogen_is_installed():
    kit = Library().ensure_default_kit()
    assert "GMRockKit" in kit.description
    kick = next(p for p in kit.pads if p.name == "Kick")
    assert kick.note == 36 and kick.layers[0].velocity[0] == 0 and kick.layers[-1].velocity[1] == 127
    lows = [l.velocity[0] for l in kick.layers]
    highs = [l.velocity[1] for l in kick.layers]
    assert all(h + 1 == l for h, l in zip(highs, lows[1:]))  # no velocity gap


def built(lib, name="mine"):
    lib.import_synth([5])
    ids = {o.name: o.id for o in lib.list(kit="synth-0005")}
    return lib.kit_from_ids(name, [[ids["Kick"]], [ids["Snare"]], [ids["Hat Closed"]], [ids["Hat Open"]],
                                   [ids["Tom Low"], ids["Tom High"]]])


def test_build_keys_pads_to_general_midi_and_chokes_hats():
    lib = Library()
    kit = built(lib)
    notes = {p.name: p.note for p in kit.pads}
    by_class = {p.cls: p for p in kit.pads}
    if "kick" in by_class:
        assert by_class["kick"].note == 36
    assert len(set(notes.values())) == len(notes)  # one note per pad
    hats = [p for p in kit.pads if p.cls in ("hat_closed", "hat_open")]
    assert all(p.choke == 1 for p in hats)
    two_layers = next(p for p in kit.pads if len(p.layers) == 2)
    assert two_layers.layers[0].velocity == (0, 63) and two_layers.layers[1].velocity == (64, 127)


def test_kit_toml_round_trips():
    kit = built(Library())
    again = Kit.from_toml(kit.to_toml(), "test")
    assert again == kit


def test_saving_never_clobbers_a_kit(home):
    lib = Library()
    kit = built(lib)
    lib.kits.save(kit)
    first = (home / "kits" / "mine.toml").read_text()
    with pytest.raises(LibraryError, match="already exists"):
        lib.kits.save(kit)
    kit.description = "changed"
    lib.kits.save(kit, replace=True)
    assert (home / "kits" / "mine.toml.bak").read_text() == first
    assert lib.kits.load("mine").description == "changed"


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "x" * 80, ".hidden"])
def test_bad_kit_names_are_refused(name):
    with pytest.raises(LibraryError, match="invalid kit name"):
        built(Library(), name)


def test_broken_kit_file_is_a_clear_error(home):
    (home / "kits").mkdir(parents=True)
    (home / "kits" / "broken.toml").write_text("name = 'broken'\n[[pads]]\nclass = 'banjo'\n")
    with pytest.raises(LibraryError, match="not a valid kit file"):
        Library().kits.load("broken")


def test_sfz_export_loads_in_a_sampler(tmp_path):
    lib = Library()
    lib.kits.save(built(lib))
    out = lib.export_kit("mine", "sfz", tmp_path)
    sfz = (out / "mine.sfz").read_text()
    samples = re.findall(r"sample=(\S+)", sfz)
    assert len(samples) == 6 and "default_path=samples/" in sfz
    for s in samples:  # relative paths that exist
        assert not s.startswith("/") and (out / "samples" / s).is_file()
    keys = [int(k) for k in re.findall(r"key=(\d+)", sfz)]
    assert 36 in keys or 38 in keys
    assert "off_by=1" in sfz and "loop_mode=one_shot" in sfz


def test_hydrogen_export_reads_back(tmp_path):
    lib = Library()
    kit = built(lib)
    lib.kits.save(kit)
    out = lib.export_kit("mine", "hydrogen", tmp_path)
    h2 = read_drumkit(out)
    assert [i.name for i in h2.instruments] == [p.name for p in kit.pads]
    assert all(l.path.is_file() for i in h2.instruments for l in i.layers)
    hats = [i for i in h2.instruments if "Hat" in i.name]
    assert all(i.mute_group == 1 for i in hats)


def test_folder_export_and_no_overwrite(tmp_path):
    lib = Library()
    lib.kits.save(built(lib))
    out = lib.export_kit("mine", "folder", tmp_path)
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 6 and files[0].startswith("01_")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(LibraryError, match="already exists"):
        lib.export_kit("mine", "sfz", tmp_path)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_export_to_missing_folder_or_unknown_kit(tmp_path):
    lib = Library()
    with pytest.raises(LibraryError, match="does not exist"):
        lib.kits.save(built(lib))
        lib.export_kit("mine", "sfz", tmp_path / "nope")
    with pytest.raises(LibraryError, match="no kit named"):
        lib.export_kit("ghost", "sfz", tmp_path)


def test_kit_survives_a_fresh_library_through_original_paths(tmp_path, monkeypatch):
    lib = Library()
    kit = built(lib)
    lib.kits.save(kit)
    toml = (lib.home / "kits" / "mine.toml").read_text()
    monkeypatch.setenv("REDRUM_HOME", str(tmp_path / "other-home"))
    fresh = Library()
    (fresh.home / "kits").mkdir(parents=True)
    (fresh.home / "kits" / "mine.toml").write_text(toml)
    out = fresh.export_kit("mine", "folder", tmp_path)
    assert len(list(out.iterdir())) == 6 and fresh.count() >= 6


def test_shipped_synth_kit_presets_resolve(tmp_path):
    lib = Library()
    for name in lib.kits.names():
        if name != "default":
            out = lib.export_kit(name, "sfz", tmp_path)
            assert list((out / "samples").iterdir())


def test_a_source_kit_is_found_by_its_folder_or_its_name_in_any_case(tmp_path):
    """Hydrogen's ForzeeStereo folder holds a kit named "Forzee Stereo Drumkit": either finds it."""
    from conftest import write
    from redrum_kit import synth
    folder = tmp_path / "ForzeeLike"
    for voice in ("kick", "snare"):
        write(folder / f"{voice}.wav", synth.oneshot(voice, 7))
    (folder / "drumkit.xml").write_text(
        "<drumkit_info><name>Forzee Like Drumkit</name><instrumentList>"
        "<instrument><id>0</id><name>Kick</name><layer><filename>kick.wav</filename></layer></instrument>"
        "<instrument><id>1</id><name>Snare</name><layer><filename>snare.wav</filename></layer></instrument>"
        "</instrumentList></drumkit_info>")
    lib = Library()
    lib.import_paths([folder])
    for given in ("ForzeeLike", "forzeelike", "Forzee Like Drumkit", "forzee-like drumkit"):
        kit = lib.kit_from_source(f"k{len(given)}", given)
        assert sorted(p.name for p in kit.pads) == ["Kick", "Snare"], given
    assert len(lib.list(kit="FORZEELIKE")) == 2
    with pytest.raises(LibraryError, match="no oneshots from kit 'Forzee'"):
        lib.kit_from_source("k", "Forzee")  # a part of a name is not a name


def test_a_kit_name_two_kits_answer_to_is_refused_not_guessed(tmp_path):
    from conftest import write
    from redrum_kit import synth
    for name in ("My Kit", "my-kit"):
        write(tmp_path / name / "kick.wav", synth.oneshot("kick", 11 if name == "my-kit" else 12))
    lib = Library()
    lib.import_paths([tmp_path / "My Kit", tmp_path / "my-kit"])
    assert len(lib.list(kit="My Kit")) == 1  # an exact name is never ambiguous
    with pytest.raises(LibraryError, match="could be any of my-kit, My Kit|could be any of My Kit, my-kit"):
        lib.kit_from_source("k", "MYKIT")
