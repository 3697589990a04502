"""Audio I/O: every format a producer has, and a clear AudioError for every bad file."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redrum_kit import audio
from redrum_kit.errors import AudioError

from conftest import tone, write


@pytest.mark.parametrize("ext,kw", [(".wav", {"subtype": "PCM_16"}), (".flac", {}), (".aiff", {}),
                                    (".ogg", {}), (".mp3", {})])
def test_loads_every_format_to_mono_float32_at_requested_rate(tmp_path, ext, kw):
    y = tone(0.5, 48000, freq=1000)
    stereo = np.stack([y, y], axis=1)
    path = write(tmp_path / f"hit{ext}", stereo, 48000, **kw)
    out, sr = audio.load(path, sr=22050)
    assert sr == 22050 and out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 0.5 * 22050) < 0.02 * 22050  # mp3 pads a little
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 22050 / len(out) - 1000) < 20  # the pitch survives resampling


def test_stereo_is_mixed_to_mono(tmp_path):
    left = tone(0.2)
    path = write(tmp_path / "lr.wav", np.stack([left, np.zeros_like(left)], 1), subtype="FLOAT")
    out, _ = audio.load(path)
    np.testing.assert_allclose(out, left / 2, atol=1e-6)


def test_keeps_native_rate_when_not_asked(tmp_path):
    path = write(tmp_path / "a.wav", tone(0.1, 96000), 96000)
    assert audio.load(path)[1] == 96000


@pytest.mark.parametrize("make,needle", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "folder"),
    (lambda p: p.write_bytes(b"this is not audio at all" * 20), "not an audio file"),
    (lambda p: p.write_bytes(b""), "not an audio file"),
    (lambda p: sf.write(str(p), np.zeros((0, 1), np.float32), 44100), "empty"),
    (lambda p: sf.write(str(p), np.array([0.1, np.nan, 0.2] * 100, np.float32), 44100, subtype="FLOAT"),
     "NaN"),
    (lambda p: sf.write(str(p), np.array([0.1, np.inf] * 100, np.float32), 44100, subtype="FLOAT"), "NaN"),
])
def test_bad_files_raise_one_clear_audio_error(tmp_path, make, needle):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as err:
        audio.load(path, require_sound=True)
    message = str(err.value)
    assert needle in message and "\n" not in message and "bad.wav" in message


def test_silence_is_refused_only_when_sound_is_required(tmp_path):
    path = write(tmp_path / "quiet.wav", np.zeros(4410, np.float32))
    assert audio.load(path)[0].max() == 0
    with pytest.raises(AudioError, match="silent"):
        audio.load(path, require_sound=True)


def test_length_limit_is_checked_before_decoding(tmp_path):
    path = write(tmp_path / "long.wav", np.zeros(44100 * 3, np.float32) + 0.1)
    with pytest.raises(AudioError, match=r"too long \(3.0 s; the limit is 2.0 s\)"):
        audio.load(path, max_seconds=2.0)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path / "locked.wav", tone(0.1))
    path.chmod(0)
    with pytest.raises(AudioError, match="permission"):
        audio.load(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=2048), header=st.sampled_from([b"", b"RIFF", b"fLaC", b"OggS", b"ID3"]))
def test_garbage_bytes_never_escape_as_other_errors(tmp_path, data, header):
    path = tmp_path / "garbage.wav"
    path.write_bytes(header + data)
    try:
        y, sr = audio.load(path, sr=22050)
    except AudioError as exc:
        assert "\n" not in str(exc)
    else:  # libsndfile may make sense of some bytes: then it must be usable audio
        assert y.ndim == 1 and np.isfinite(y).all() and sr == 22050


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(channels=st.integers(1, 8), frames=st.integers(1, 3000), sr=st.sampled_from([8000, 22050, 44100, 96000]))
def test_odd_shapes_load_as_mono(tmp_path, channels, frames, sr):
    data = np.random.default_rng(frames).uniform(-0.5, 0.5, (frames, channels)).astype(np.float32)
    path = write(tmp_path / "odd.wav", data, sr, subtype="FLOAT")
    y, out_sr = audio.load(path)
    assert out_sr == sr and y.shape == (frames,)
    np.testing.assert_allclose(y, data.mean(1), atol=1e-6)


def test_save_never_overwrites_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "out.wav"
    audio.save(path, tone(0.1), 44100)
    before = path.read_bytes()
    with pytest.raises(AudioError, match="already exists"):
        audio.save(path, tone(0.2, freq=200), 44100)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


@pytest.mark.parametrize("sr", [8000, 44100, 192000])
def test_save_flac_any_rate(tmp_path, sr):
    path = audio.save(tmp_path / "x.flac", tone(0.1, sr), sr)
    y, got = audio.load(path)
    assert got == sr and np.abs(y - tone(0.1, sr)).max() < 1e-4


def test_save_refuses_unknown_format(tmp_path):
    with pytest.raises(AudioError, match=".wav or .flac"):
        audio.save(tmp_path / "x.mp3", tone(0.1), 44100)


def test_retune_changes_pitch_and_length_together():
    y = tone(0.5, 22050, freq=500, decay=10)
    up = audio.retune(y, 12)
    assert abs(len(up) - len(y) / 2) < 5
    spectrum = np.abs(np.fft.rfft(up))
    assert abs(np.argmax(spectrum) * 22050 / len(up) - 1000) < 10
