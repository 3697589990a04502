"""The browser app, launched for real: `gradio_client` calls its named endpoints, and headless
Chromium (Debian's, through Playwright) uses the page as a person would."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from redrum_kit import synth
from redrum_kit.engine import Engine

from conftest import heard_error, write
from test_osc import Client, groove

CHROMIUM = "/usr/bin/chromium"


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(tmp_path, home):
    from gradio_app import launch
    engine = Engine(device="cpu", allow_roots=[tmp_path])
    running = launch(engine, port=free_port())
    yield running
    running.close()
    engine.close(cancel_running=True)


@pytest.fixture
def client(app):
    from gradio_client import Client as GradioClient
    return GradioClient(app.url, verbose=False, download_files=False)


def test_named_endpoints_exist(client):
    assert {"/transform", "/layer", "/interpolate", "/transcribe"} <= set(
        client.view_api(return_format="dict")["named_endpoints"])


def test_the_app_never_phones_home(app):
    """No telemetry or version-check threads: nothing leaves the machine, and nothing but the
    main thread can keep the process alive after Ctrl-C."""
    import threading
    assert not [t.name for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    assert app.app.analytics_enabled is False


def _path(output) -> Path:
    """A file output of gradio_client without downloading: its path on the server."""
    return Path(output["path"] if isinstance(output, dict) else output)


def test_layer_endpoint_returns_a_layered_file(client, tmp_path, home):
    from gradio_client import handle_file
    snare = write(tmp_path / "snare.wav", synth.oneshot("snare", 3, 44100))
    out, chart, weights = client.predict(handle_file(str(snare)), None, "snare", 0.04, *([0.0] * 11),
                                         api_name="/layer")
    path = _path(out)
    assert path.is_file() and sf.info(path).duration > 0.2
    assert (home / "renders" / path.name).is_file()       # the result stays in the workspace (Gradio serves a copy)
    # a PCA slider moved: a different mix
    out2, _, weights2 = client.predict(handle_file(str(snare)), None, "snare", 0.04, 2.5, *([0.0] * 10),
                                       api_name="/layer")
    assert _path(out2) != path and weights2["pca"][0] != weights["pca"][0]
    # refined to the oneshot: a mix at least as close in the layering feature as the model's own
    from redrum_kit import layering
    out3, _, refined = client.predict(handle_file(str(snare)), None, "snare", 0.04, api_name="/layer_refine")
    assert _path(out3).is_file() and _path(out3) not in (path, _path(out2))
    layerer = layering.Layerer("snare")
    feat, _ = layerer.prepare(synth.oneshot("snare", 3, 44100), 44100)
    assert heard_error(layerer, refined, feat) <= heard_error(layerer, weights, feat) + 1e-3


def test_transform_and_interpolate_endpoints(client, tmp_path, home):
    from gradio_client import handle_file
    a, b = groove(tmp_path / "a.wav", seed=2), groove(tmp_path / "b.wav", seed=7)
    out, plot, info = client.predict(handle_file(str(a)), handle_file(str(b)), "model", "default",
                                     api_name="/transform")
    assert abs(sf.info(_path(out)).duration - 2.0) < 0.01 and _path(plot).suffix == ".png"
    out, _, info = client.predict(handle_file(str(a)), handle_file(str(b)), "replace", "default", ["kick"], True,
                                  api_name="/transform")            # the source's kicks over the target's own
    assert abs(sf.info(_path(out)).duration - 2.0) < 0.01 and "hits" in info
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(a)), handle_file(str(b)), "model", "default", ["kick"], False,
                       api_name="/transform")
    assert "use method replace" in str(err.value) and "Traceback" not in str(err.value)
    first, *players, about = client.predict(handle_file(str(a)), handle_file(str(b)), 3, "latent",
                                            api_name="/interpolate")
    assert _path(first).is_file() and _path(first).name.endswith("-00.wav") and about.startswith("sounds from A's")
    t = np.arange(88200) / 44100                                    # a held tone: sound, but no drum hit
    tone = write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, t / 0.5)).astype(np.float32))
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(a)), handle_file(str(tone)), "model", "default", api_name="/transform")
    assert "tone.wav: no drum events found" in str(err.value) and "Traceback" not in str(err.value)


def test_transcribe_endpoint_writes_midi_at_the_tempo_asked(client, tmp_path, home):
    import mido
    from gradio_client import handle_file
    loop = groove(tmp_path / "loop.wav", seed=2)
    for tempo, source in ((0, "estimate"), (104, "given")):
        midi, summary, events = client.predict(handle_file(str(loop)), tempo, "auto", api_name="/transcribe")
        path = _path(midi)
        assert path.suffix == ".mid" and (home / "renders" / path.name).is_file()
        assert len(mido.MidiFile(path).tracks[0]) > 4 and events["events"]
        assert ("estimated" if source == "estimate" else "as given") in summary
        if tempo:
            assert events["tempo"] == tempo
    for bad, needle in ((5, "tempo must be from 20 to 999 bpm"),):
        with pytest.raises(Exception) as err:
            client.predict(handle_file(str(loop)), bad, "auto", api_name="/transcribe")
        assert needle in str(err.value) and "Traceback" not in str(err.value)
    with pytest.raises(Exception, match="upload the drum recording"):
        client.predict(None, 0, "auto", api_name="/transcribe")


def test_audition_plays_a_kit_on_a_groove(client, sample_folder, home):
    from redrum_kit.library import Library
    lib = Library()
    lib.import_paths([sample_folder])
    lib.kits.save(lib.kit_from_source("mine", "my samples"))
    out, note = client.predict("mine", "funk", 3, api_name="/audition")
    path = _path(out)
    y, sr = sf.read(path)
    assert sr == 44100 and len(y) / sr > 4 and np.abs(y).max() > 0.1
    assert note.startswith("mine: 4 bars of funk") and "mono" in note and (home / "renders" / path.name).is_file()
    from gradio_client.exceptions import AppError
    for kit, style, needle in (("nope", "rock", "no kit named 'nope'"), ("mine", "polka", "polka is not in the list of choices")):
        with pytest.raises(AppError) as err:
            client.predict(kit, style, 1, api_name="/audition")
        assert needle in str(err.value) and "Traceback" not in str(err.value)


@pytest.mark.parametrize("make,needle", [
    (lambda d: (d / "notes.wav").write_text("not audio") and d / "notes.wav", "not an audio file"),
    (lambda d: write(d / "silent.wav", np.zeros(44100, np.float32)), "silent"),
    (lambda d: write(d / "long.wav", 0.1 * np.random.default_rng(0).standard_normal(22050 * 40).astype(np.float32),
                     sr=22050), "long"),
])
def test_bad_uploads_are_a_readable_error(client, tmp_path, home, make, needle):
    from gradio_client import handle_file
    bad = make(tmp_path)
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(bad)), None, "snare", 0.04, *([0.0] * 11), api_name="/layer")
    text = str(err.value)
    assert needle in text and "Traceback" not in text
    assert not (home / "renders").exists() or not list((home / "renders").glob("*.wav"))


def test_missing_upload_is_a_readable_error(client):
    with pytest.raises(Exception, match="upload the target"):
        client.predict(None, None, "model", "default", api_name="/transform")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)")
def test_browser_layer_and_transform(app, tmp_path, sample_folder):
    from playwright.sync_api import expect, sync_playwright
    snare = write(tmp_path / "snare.wav", synth.oneshot("snare", 3, 44100))
    a, b = groove(tmp_path / "a.wav", seed=2), groove(tmp_path / "b.wav", seed=7)
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio")
    samples = sample_folder
    shots = Path(os.environ.get("REDRUM_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(app.url)
        page.get_by_role("tab", name="Layer").click()
        page.locator("#layer-target input[type=file]").set_input_files(str(snare))
        page.locator("#layer-run").click()
        page.wait_for_selector("#layer-output audio[src]", state="attached", timeout=60000)
        page.screenshot(path=str(shots / "layer.png"), full_page=True)
        page.locator("#layer-kit textarea").fill("browser-pads")             # save the result as a pad
        page.locator("#layer-save").click()
        expect(page.locator("#layer-saved textarea")).to_have_value(re.compile("saved pad .* in kit 'browser-pads'"),
                                                                    timeout=60000)
        page.get_by_role("tab", name="Library").click()                     # import a folder, draw the map
        page.locator("#library-folder textarea").fill(str(samples))
        page.locator("#library-import").click()
        expect(page.locator("#library-report textarea")).to_have_value(re.compile("8 added"), timeout=120000)
        page.locator("#library-name textarea").fill("HAT open")             # search by name
        page.keyboard.press("Enter")
        expect(page.locator("#library-table tbody tr")).to_have_count(1, timeout=30000)
        expect(page.locator("#library-table tbody")).to_contain_text("hat_open-01")
        page.locator("#library-name textarea").fill("")
        page.keyboard.press("Enter")
        page.locator("#library-source-kit input").fill("My Samples")       # a kit from that folder, heard
        page.keyboard.press("Enter")
        page.locator("#library-kit-name textarea").fill("from-folder")
        page.locator("#library-build-from").click()
        expect(page.locator("#library-kit-note textarea")).to_have_value(re.compile("kit 'from-folder': "),
                                                                         timeout=60000)
        page.locator("#audition-kit input").fill("from-folder")
        page.keyboard.press("Enter")
        page.locator("#audition-run").click()
        page.wait_for_selector("#audition-output audio[src]", state="attached", timeout=60000)
        expect(page.locator("#audition-note textarea")).to_have_value(re.compile("from-folder: 4 bars of rock"))
        page.locator("#library-map-run").click()
        page.locator("#library-map img").first.wait_for(timeout=60000)
        page.screenshot(path=str(shots / "library.png"), full_page=True)
        page.get_by_role("tab", name="Transform").click()
        page.locator("#transform-source input[type=file]").set_input_files(str(a))
        page.locator("#transform-target input[type=file]").set_input_files(str(b))
        page.locator("#transform-run").click()
        page.wait_for_selector("#transform-output audio[src]", state="attached", timeout=120000)
        page.screenshot(path=str(shots / "transform.png"), full_page=True)
        page.get_by_role("tab", name="Transcribe").click()                  # drum audio to MIDI
        page.locator("#transcribe-audio input[type=file]").set_input_files(str(a))
        page.locator("#transcribe-tempo input").fill("96")
        page.locator("#transcribe-run").click()
        expect(page.locator("#transcribe-summary textarea")).to_have_value(
            re.compile(r"events .* at 96 bpm \(as given\)"), timeout=60000)
        page.screenshot(path=str(shots / "transcribe.png"), full_page=True)
        # a bad upload: a message on the page, no traceback
        page.get_by_role("tab", name="Layer").click()
        page.locator("#layer-target button[aria-label='Clear']").first.click()     # the X on the loaded oneshot
        page.locator("#layer-target input[type=file]").set_input_files(str(notes))
        page.locator("#layer-run").click()
        expect(page.get_by_text("not an audio file", exact=False).first).to_be_visible(timeout=60000)
        assert "Traceback" not in page.content()
        page.screenshot(path=str(shots / "error.png"), full_page=True)
        browser.close()


def test_redrum_serve_starts_osc_and_the_browser_app(tmp_path):
    osc, web = free_port(socket.SOCK_DGRAM), free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "redrum")
    proc = subprocess.Popen([exe, "serve", "--osc-port", str(osc), "--gradio-port", str(web), "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "OSC server" in proc.stdout.readline()
        assert "browser app on http://127.0.0.1" in proc.stdout.readline()
        assert Client(osc).call("/redrum/ping", 1)[:2] == [1, "ok"]
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=30) as r:
            assert r.status == 200 and b"redrum-kit" in r.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_serve_with_the_browser_port_taken_is_a_one_line_error(tmp_path):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    exe = os.path.join(os.path.dirname(sys.executable), "redrum")
    try:
        proc = subprocess.run([exe, "serve", "--osc-port", str(free_port(socket.SOCK_DGRAM)), "--gradio-port",
                               str(blocker.getsockname()[1])], capture_output=True, text=True, timeout=120)
    finally:
        blocker.close()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("redrum: error: cannot start the browser app")


def test_the_app_runs_alone(tmp_path):
    port = free_port()
    # stderr to a file, not an undrained pipe: a full pipe would block the app's writes and its exit
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "gradio_app", "--port", str(port), "--device", "cpu"],
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                env=dict(os.environ, REDRUM_HOME=str(tmp_path / "home")))
    try:
        assert "browser app on http://127.0.0.1" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("Ctrl-C did not stop the app within 30 s; its stderr ends: "
                        + (tmp_path / "stderr.txt").read_text()[-2000:])
