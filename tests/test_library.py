"""The oneshot library: imports that are idempotent, atomic and honest about rejects."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import numpy as np
import pytest

from redrum_kit import synth
from redrum_kit.errors import LibraryError
from redrum_kit.library import Library, db, importer
from redrum_kit.library.exemplars import greedy_frank_wolfe

from conftest import needs_hydrogen, tone, write


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_import_folder_classifies_and_keeps_originals(sample_folder, home):
    before = {p: digest(p) for p in sample_folder.iterdir()}
    lib = Library()
    report = lib.import_paths([sample_folder])
    assert len(report.added) == 8 and not report.rejected
    items = lib.list()
    assert {o.kit for o in items} == {"My Samples"}
    assert all(o.cls in ("kick", "snare", "clap", "hat_closed", "hat_open", "tom", "cymbal", "perc") for o in items)
    assert {p: digest(p) for p in sample_folder.iterdir()} == before  # originals untouched
    for o in items:  # normalised copies: in the workspace, mono, peak-normalised
        y = lib.audio(o)
        assert (home / o.copy).is_file() and abs(np.abs(y).max() - 0.99) < 1e-3


def test_reimport_adds_nothing_even_louder_or_in_another_format(sample_folder, tmp_path):
    lib = Library()
    lib.import_paths([sample_folder])
    y = synth.oneshot("snare", 4242)
    other = tmp_path / "other"
    write(other / "snare-quiet.flac", 0.3 * y)  # same sound, other gain and format
    write(other / "snare-late.wav", np.concatenate([np.zeros(2000, np.float32), y]), subtype="FLOAT")
    again = lib.import_paths([sample_folder, other])
    assert again.added == [] and len(again.duplicates) == 10
    assert lib.count() == 8


def test_bad_files_are_reported_and_the_library_stays_intact(sample_folder, tmp_path):
    lib = Library()
    lib.import_paths([sample_folder])
    state = [(o.id, o.hash) for o in lib.list()]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "garbage.wav").write_bytes(b"\x00\x01garbage" * 100)
    write(bad / "empty.wav", np.zeros((0,), np.float32))
    write(bad / "nan.wav", np.array([0.1, np.nan] * 500, np.float32), subtype="FLOAT")
    write(bad / "silent.wav", np.zeros(4410, np.float32))
    write(bad / "loop.wav", np.tile(tone(0.5), 80))  # 40 s: not a oneshot
    (bad / "notes.txt").write_text("my samples")
    write(bad / "good.wav", tone(0.3, freq=180))
    report = lib.import_paths([bad])
    reasons = {r.path.name: r.reason for r in report.rejected}
    assert set(reasons) == {"garbage.wav", "empty.wav", "nan.wav", "silent.wav", "loop.wav"}
    assert "NaN" in reasons["nan.wav"] and "silent" in reasons["silent.wav"] and "too long" in reasons["loop.wav"]
    assert report.skipped == 1 and len(report.added) == 1
    assert [(o.id, o.hash) for o in lib.list()][:8] == state


def test_import_failing_half_way_leaves_nothing_behind(sample_folder, home, monkeypatch):
    lib = Library()
    real_write = importer.write_copy
    calls = []

    def failing(root, item):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("disk full")
        return real_write(root, item)

    monkeypatch.setattr(importer, "write_copy", failing)
    with pytest.raises(OSError):
        lib.import_paths([sample_folder])
    assert lib.count() == 0
    assert not list((home / "oneshots").rglob("*.wav"))
    monkeypatch.setattr(importer, "write_copy", real_write)
    assert len(lib.import_paths([sample_folder]).added) == 8  # and it works afterwards


def test_missing_path_is_rejected(tmp_path):
    report = Library().import_paths([tmp_path / "nope"])
    assert report.rejected[0].reason == "no such file or folder"


def test_similar_finds_the_same_sound_first(sample_folder, tmp_path):
    lib = Library()
    lib.import_paths([sample_folder])
    twin = synth.oneshot("snare", 4242)
    twin = twin + 0.02 * np.random.default_rng(0).standard_normal(len(twin)).astype(np.float32)
    write(tmp_path / "x" / "snare-twin.wav", twin)
    added = lib.import_paths([tmp_path / "x"]).added[0]
    nearest, _ = lib.similar(added, n=3)[0]
    assert nearest.name == "snare-01" and len(lib.similar(added, n=3)) == 3
    for n in (0, -5):                                     # -5 used to list all but the five farthest
        with pytest.raises(LibraryError, match="at least 1"):
            lib.similar(added, n=n)


def test_a_file_outside_the_library_finds_its_like_and_nothing_is_imported(sample_folder, tmp_path, capsys):
    from redrum_kit.cli import main
    lib = Library()
    lib.import_paths([sample_folder])
    twin = synth.oneshot("snare", 4242)
    twin = 0.5 * twin + 0.01 * np.random.default_rng(1).standard_normal(len(twin)).astype(np.float32)
    query = write(tmp_path / "query snare.wav", twin)
    cls, found = lib.similar_to_file(query, n=3)
    assert cls == "snare" and found[0][0].name == "snare-01" and len(found) == 3
    assert lib.count() == 8                                            # a query, not an import
    _, only = lib.similar_to_file(query, n=5, same_class=True)
    assert {o.cls for o, _ in only} == {"snare"}
    assert main(["library", "similar", str(query), "-n", "2", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["items"][0]["name"] == "snare-01" and "heard as snare" in out.err
    for bad, needle in (("nope.wav", "neither a oneshot id nor an audio file"), (str(sample_folder), "neither")):
        assert main(["library", "similar", bad]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0]
    (tmp_path / "text.wav").write_text("not audio")
    assert main(["library", "similar", str(tmp_path / "text.wav")]) == 1
    assert "not an audio file" in capsys.readouterr().err


def test_search_by_words_of_name_kit_or_file(sample_folder):
    lib = Library()
    lib.import_paths([sample_folder])
    assert [o.name for o in lib.search("HAT open")] == ["hat_open-01"]
    assert len(lib.search("my samples")) == 8 and not lib.search("snare kick")
    assert [o.name for o in lib.search("01", cls="kick")] == ["kick-01"]


def test_remove_takes_entries_and_copies_but_never_a_sound_a_kit_plays(sample_folder, home, capsys):
    from redrum_kit.cli import main
    lib = Library()
    lib.import_paths([sample_folder])
    before = {p: digest(p) for p in sample_folder.iterdir()}
    kick, snare = (next(o for o in lib.list() if o.name == n) for n in ("kick-01", "snare-01"))
    lib.kits.save(lib.kit_from_ids("mine", [[kick.id]]))
    with pytest.raises(LibraryError, match=r"kits play oneshot .*kick-01.*: mine; .*nothing was removed"):
        lib.remove([snare.id, kick.id])
    assert lib.count() == 8 and (home / snare.copy).is_file()          # all or nothing
    assert main(["library", "remove", str(snare.id)]) == 0
    assert "1 oneshots removed" in capsys.readouterr().err
    assert lib.count() == 7 and not (home / snare.copy).exists()
    assert {p: digest(p) for p in sample_folder.iterdir()} == before    # the originals stay
    assert main(["library", "remove", str(snare.id)]) == 1               # gone: a one-line error
    assert f"no oneshot with id {snare.id}" in capsys.readouterr().err
    assert len(lib.import_paths([sample_folder]).added) == 1             # and it can come back


def test_set_class_by_hand_sticks(sample_folder):
    lib = Library()
    lib.import_paths([sample_folder])
    o = lib.list()[0]
    assert lib.set_class(o.id, "perc").cls == "perc"
    assert Library().get(o.id).class_source == "user"
    with pytest.raises(LibraryError, match="unknown class"):
        lib.set_class(o.id, "cowbell")


def test_unknown_ids_and_classes_are_clear_errors():
    lib = Library()
    with pytest.raises(LibraryError, match="no oneshot with id 99"):
        lib.get(99)
    with pytest.raises(LibraryError, match="unknown class"):
        lib.list(cls="banjo")
    with pytest.raises(LibraryError, match="no snare"):
        lib.exemplars("snare", 3)


def test_database_is_wal_versioned_and_refuses_a_newer_schema(home):
    Library()
    conn = sqlite3.connect(home / "library.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    conn.execute(f"PRAGMA user_version={db.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(LibraryError, match="newer redrum-kit"):
        Library()


def test_greedy_frank_wolfe_finds_the_atoms_a_set_is_mixed_from():
    rng = np.random.default_rng(0)
    atoms = rng.uniform(0, 1, (64, 4))
    mixes = atoms @ rng.dirichlet(np.ones(4) * 0.7, size=60).T
    X = np.concatenate([mixes, atoms], axis=1)
    chosen, residuals = greedy_frank_wolfe(X, 6)
    assert set(chosen[:4]) == {60, 61, 62, 63}
    assert residuals[3] < 0.01 and all(a >= b - 1e-9 for a, b in zip(residuals, residuals[1:]))


def test_exemplars_of_a_class(sample_folder):
    lib = Library()
    lib.import_synth([1, 2, 3, 4])
    cls = lib.list()[0].cls
    chosen, residuals = lib.exemplars(cls, 3)
    assert 1 <= len(chosen) <= 3 and all(o.cls == cls for o in chosen)
    assert len({o.id for o in chosen}) == len(chosen)


@needs_hydrogen
def test_import_hydrogen_kit_keeps_velocity_layers():
    from redrum_kit.workspace import HYDROGEN_DRUMKITS
    lib = Library()
    report = lib.import_paths([HYDROGEN_DRUMKITS / "GMRockKit"])
    assert len(report.added) >= 80 and not report.rejected
    kicks = [o for o in lib.list(kit="GMRockKit") if o.name == "Kick"]
    # five velocity layers, two of which are one recording at two gains
    assert len(kicks) == 4 and len(report.duplicates) >= 1
    assert sorted(o.velocity_low for o in kicks)[0] == 0
