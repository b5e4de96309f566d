"""Tests of ``python -m speechbrain_ext.data.download``, fully offline.

A loopback HTTP server (127.0.0.1 only, started and stopped by each test)
serves small generated archives with the real MUSAN and RIRS_NOISES
layouts and small VoxCeleb-format trial lists. The command runs with
``--base_url`` pointing at it; the table's checksums and trial counts are
replaced by those of the generated files. Nothing leaves the machine.
"""

import dataclasses
import hashlib
import http.server
import io
import os
import pathlib
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf
from helpers import training_recipe

from speechbrain_ext.augment.prepare import prepare_augmentation
from speechbrain_ext.data import download, unpack
from speechbrain_ext.data.download import SOURCES, main

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Member paths as in the published archives (a few files of each part).
MUSAN_FILES = (
    "musan/README",
    "musan/music/fma/ANNOTATIONS",
    "musan/music/fma/music-fma-0000.wav",
    "musan/music/jamendo/music-jamendo-0000.wav",
    "musan/noise/free-sound/noise-free-sound-0000.wav",
    "musan/noise/sound-bible/noise-sound-bible-0000.wav",
    "musan/speech/librivox/speech-librivox-0000.wav",
    "musan/speech/us-gov/speech-us-gov-0000.wav",
)
RIRS_FILES = (
    "RIRS_NOISES/README",
    "RIRS_NOISES/simulated_rirs/README",
    "RIRS_NOISES/simulated_rirs/smallroom/rir_list",
    "RIRS_NOISES/simulated_rirs/smallroom/Room001/Room001-00001.wav",
    "RIRS_NOISES/simulated_rirs/mediumroom/Room001/Room001-00001.wav",
    "RIRS_NOISES/simulated_rirs/largeroom/Room001/Room001-00001.wav",
    "RIRS_NOISES/real_rirs_isotropic_noises/"
    "RVB2014_type1_rir_largeroom1_central_mic1.wav",
    "RIRS_NOISES/pointsource_noises/noise-free-sound-0001.wav",
)


def _wav_bytes(seconds, seed):
    buf = io.BytesIO()
    x = np.random.default_rng(seed).normal(scale=0.1, size=int(16000 * seconds))
    sf.write(buf, x.astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _content(name, i):
    if name.endswith(".wav"):
        return _wav_bytes(0.4 if "Room" in name or "RVB" in name else 5.5, i)
    return f"{name}\n".encode()


def _tar_gz(names):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i, name in enumerate(names):
            data = _content(name, i)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(names):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, name in enumerate(names):
            zf.writestr(name, _content(name, i))
    return buf.getvalue()


def _trial_list(n, seed):
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        a, b = rng.integers(10270, 10310, size=2)
        lines.append(f"{i % 2} id{a}/x6uYqmx31kE/{i:05d}.wav "
                     f"id{b}/8jEAjG6SegY/{i:05d}.wav\n")
    return "".join(lines).encode()


@pytest.fixture(scope="module")
def archives():
    files = {
        "musan.tar.gz": _tar_gz(MUSAN_FILES),
        "rirs_noises.zip": _zip(RIRS_FILES),
    }
    for f, n in zip(SOURCES["voxceleb1_trials"].files, (40, 30, 20),
                    strict=True):
        files[f.filename] = _trial_list(n, n)
    return files


class _Server:
    """A loopback HTTP server with range support and optional cut-offs."""

    def __init__(self, files):
        self.files = dict(files)
        self.cut = {}  # name -> bytes sent before the connection drops
        self.requests = []  # (name, Range header)
        self.sent = {}  # name -> body bytes sent in total
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10

            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                state.requests.append((name, self.headers.get("Range")))
                if name not in state.files:
                    self.send_error(404)
                    return
                data = state.files[name]
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range",
                                         f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header(
                        "Content-Range",
                        f"bytes {start}-{len(data) - 1}/{len(data)}",
                    )
                self.end_headers()
                body = data[start:]
                if name in state.cut:
                    body = body[:state.cut.pop(name) - start]
                self.wfile.write(body)
                self.wfile.flush()
                state.sent[name] = state.sent.get(name, 0) + len(body)
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(archives, monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    srv = _Server(archives)
    yield srv
    srv.stop()


@pytest.fixture
def table(archives, monkeypatch):
    """Points the table's checks at the generated files."""
    for name, dataset in SOURCES.items():
        files = []
        for f in dataset.files:
            data = archives[f.filename]
            if f.md5:
                f = dataclasses.replace(f, md5=hashlib.md5(data).hexdigest())
            else:
                f = dataclasses.replace(f, trials=data.count(b"\n"))
            files.append(f)
        monkeypatch.setitem(
            SOURCES, name, dataclasses.replace(dataset, files=tuple(files))
        )
    return SOURCES


def _run(capsys, *args):
    rc = main([*map(str, args), "--no_progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def _tree(folder):
    folder = pathlib.Path(folder)
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*") if p.is_file()
    }


def test_complete_download_gives_the_recipe_layouts(server, table, archives,
                                                    tmp_path, capsys):
    rc, out, err = _run(capsys, "musan", "rirs_noises", tmp_path,
                        "--base_url", server.url)
    assert rc == 0, err
    musan, rirs = tmp_path / "musan", tmp_path / "RIRS_NOISES"
    expected = {n: _content(n, i) for i, n in enumerate(MUSAN_FILES)}
    got = {f"musan/{k}": v for k, v in _tree(musan).items()}
    assert got.pop("musan/.download.json")
    assert got == expected
    assert len(_tree(rirs)) == len(RIRS_FILES) + 1
    assert f"--musan_folder={musan}" in out
    assert f"--rir_folder={rirs}" in out
    # The archives are gone, nothing half-done is left.
    assert sorted(os.listdir(tmp_path)) == ["RIRS_NOISES", "musan"]
    # What the training recipe does with these folders works.
    csvs = prepare_augmentation(
        str(tmp_path / "aug"), musan_folder=str(musan), rirs_folder=str(rirs),
        rooms=["smallroom", "mediumroom"], workers=1,
    )
    assert sorted(csvs) == ["music", "noise", "rirs", "speech"]
    rir_rows = pathlib.Path(csvs["rirs"]).read_text().splitlines()
    assert len(rir_rows) == 1 + 2  # header + small and medium room only
    # A second run finds them and asks the server for nothing.
    before = len(server.requests)
    rc, out, err = _run(capsys, "musan", "rirs_noises", tmp_path,
                        "--base_url", server.url)
    assert rc == 0 and "already in" in err
    assert len(server.requests) == before


def test_trial_lists_download_and_options(server, table, archives, tmp_path,
                                          capsys):
    import speechbrain as sb
    from hyperpyyaml import load_hyperpyyaml

    from speechbrain_ext.scoring.trial_lists import (
        load_trial_lists,
        trial_specs,
    )

    meta = tmp_path / "voxceleb1" / "meta"
    rc, out, err = _run(capsys, "voxceleb1_trials", meta, "--base_url",
                        server.url)
    assert rc == 0, err
    for f in SOURCES["voxceleb1_trials"].files:
        assert (meta / f.filename).read_bytes() == archives[f.filename]
    assert sorted(os.listdir(meta)) == sorted(
        f.filename for f in SOURCES["voxceleb1_trials"].files
    )
    assert f"--trial_lists={meta / 'veri_test2.txt'}" in out
    # The printed scoring option is one the scoring recipe reads as is.
    option = next(w for w in out.split("'") if w.startswith("--trial_lists=["))
    _, _, overrides = sb.parse_arguments(["x.yaml", option])
    hp = load_hyperpyyaml("trial_lists: null\n", overrides)
    specs = trial_specs(hp["trial_lists"], str(tmp_path))
    assert [s.name for s in specs] == [
        "vox1_o_cleaned", "vox1_e_cleaned", "vox1_h_cleaned"
    ]
    assert [len(x.trials) for x in load_trial_lists(specs)] == [40, 30, 20]


def test_cut_off_download_resumes_with_a_range_request(server, table,
                                                       archives, tmp_path,
                                                       capsys):
    data = archives["musan.tar.gz"]
    half = len(data) // 2
    server.cut["musan.tar.gz"] = half
    rc, out, err = _run(capsys, "musan", tmp_path, "--base_url", server.url,
                        "--retries", "0")
    assert rc == 1
    part = tmp_path / ".downloads" / "musan.tar.gz.part"
    assert f"after {half} of {len(data)} bytes" in err
    assert str(part) in err and "resumes" in err
    assert part.read_bytes() == data[:half]
    assert not (tmp_path / "musan").exists()

    rc, out, err = _run(capsys, "musan", tmp_path, "--base_url", server.url)
    assert rc == 0, err
    assert server.requests[-1] == ("musan.tar.gz", f"bytes={half}-")
    assert server.sent["musan.tar.gz"] == len(data)  # no byte sent twice
    assert (tmp_path / "musan" / "speech" / "us-gov").is_dir()


def test_cut_off_is_resumed_within_one_run(server, table, archives, tmp_path,
                                           capsys):
    data = archives["rirs_noises.zip"]
    server.cut["rirs_noises.zip"] = len(data) // 3
    rc, out, err = _run(capsys, "rirs_noises", tmp_path, "--base_url",
                        server.url, "--retries", "1")
    assert rc == 0, err
    assert [r for _, r in server.requests] == [
        None, f"bytes={len(data) // 3}-"
    ]
    assert (tmp_path / "RIRS_NOISES" / "simulated_rirs" / "mediumroom").is_dir()


def test_checksum_mismatch_keeps_the_file_aside(server, table, archives,
                                                tmp_path, capsys,
                                                monkeypatch):
    wrong = "0" * 32
    musan = SOURCES["musan"]
    monkeypatch.setitem(SOURCES, "musan", dataclasses.replace(
        musan, files=(dataclasses.replace(musan.files[0], md5=wrong),)
    ))
    rc, out, err = _run(capsys, "musan", tmp_path, "--base_url", server.url)
    assert rc == 1
    aside = tmp_path / ".downloads" / "musan.tar.gz.mismatch"
    found = hashlib.md5(archives["musan.tar.gz"]).hexdigest()
    assert f"MD5 {found} differs from the published {wrong}" in err
    assert str(aside) in err
    assert aside.read_bytes() == archives["musan.tar.gz"]
    assert not (tmp_path / "musan").exists()
    assert not (tmp_path / ".downloads" / "musan.tar.gz").exists()

    # A trial list with another count than published is refused too.
    trials = SOURCES["voxceleb1_trials"]
    first = dataclasses.replace(trials.files[0], trials=41)
    monkeypatch.setitem(SOURCES, "voxceleb1_trials", dataclasses.replace(
        trials, files=(first, *trials.files[1:])
    ))
    rc, out, err = _run(capsys, "voxceleb1_trials", tmp_path / "meta",
                        "--base_url", server.url)
    assert rc == 1
    assert "veri_test2.txt: 40 trials, but the published list has 41" in err
    assert (tmp_path / "meta" / ".downloads" / "veri_test2.txt.mismatch"
            ).is_file()
    assert not (tmp_path / "meta" / "veri_test2.txt").exists()


_KILLED_RUN = textwrap.dedent("""
    import dataclasses, os, signal, sys, tarfile
    from speechbrain_ext.data import download
    real, done = tarfile.TarFile.extract, []
    def extract_then_die(self, *args, **kwargs):  # SIGKILL after 3 members
        real(self, *args, **kwargs)
        done.append(1)
        if len(done) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    tarfile.TarFile.extract = extract_then_die
    md5 = sys.argv[1]
    d = download.SOURCES["musan"]
    download.SOURCES["musan"] = dataclasses.replace(
        d, files=(dataclasses.replace(d.files[0], md5=md5),))
    sys.exit(download.main(sys.argv[2:]))
""")


def test_interrupted_extraction_never_looks_finished(server, table, archives,
                                                     tmp_path, capsys):
    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN)
    dest = tmp_path / "data"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    md5 = SOURCES["musan"].files[0].md5
    proc = subprocess.run(
        [sys.executable, str(script), md5, "musan", str(dest), "--base_url",
         server.url, "--no_progress"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -9, proc.stderr
    # Killed mid-extraction: some files are out, but not as <dest>/musan.
    assert not (dest / "musan").exists()
    work = [p for p in dest.iterdir() if p.name.startswith(".musan.unpack")]
    assert len(work) == 1 and list(work[0].rglob("*.wav"))
    assert (dest / ".downloads" / "musan.tar.gz").is_file()

    n_requests = len(server.requests)
    rc, out, err = _run(capsys, "musan", dest, "--base_url", server.url)
    assert rc == 0, err
    assert len(server.requests) == n_requests  # the archive was reused
    assert not work[0].exists()
    assert len(_tree(dest / "musan")) == len(MUSAN_FILES) + 1  # + marker
    assert sorted(os.listdir(dest)) == ["musan"]


def test_failed_extraction_leaves_nothing(archives, tmp_path, monkeypatch):
    archive = tmp_path / "musan.tar.gz"
    archive.write_bytes(archives["musan.tar.gz"])
    calls = []
    real = tarfile.TarFile.extract

    def failing(self, member, *args, **kwargs):
        calls.append(member.name)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        return real(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", failing)
    with pytest.raises(OSError, match="No space left"):
        unpack.unpack(str(archive), str(tmp_path / "out"), "musan",
                      ("music",), progress=False)
    assert os.listdir(tmp_path / "out") == []


def test_unsafe_or_wrong_archives_are_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("musan/../../evil.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "evil.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(unpack.UnpackError, match="outside the destination"):
        unpack.unpack(str(tmp_path / "evil.tar.gz"), str(tmp_path / "out"),
                      "musan", progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert os.listdir(tmp_path / "out") == []

    (tmp_path / "other.zip").write_bytes(_zip(["other/x.wav"]))
    with pytest.raises(unpack.UnpackError, match="RIRS_NOISES/simulated"):
        unpack.unpack(str(tmp_path / "other.zip"), str(tmp_path / "out"),
                      "RIRS_NOISES", ("simulated_rirs",), progress=False)
    assert os.listdir(tmp_path / "out") == []


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host_fails_in_seconds_with_a_way_out(table, archives,
                                                          tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    rc, out, err = _run(capsys, "musan", tmp_path, "--base_url", url,
                        "--timeout", "3")
    assert time.monotonic() - start < 5
    assert rc == 1
    assert f"{url}/musan.tar.gz" in err
    assert f"{tmp_path}/musan/{{music,noise,speech}}/" in err
    offline = tmp_path / ".downloads" / "musan.tar.gz"
    assert str(offline) in err

    # Fetched by other means and put there: checked and unpacked offline.
    offline.parent.mkdir(exist_ok=True)
    offline.write_bytes(archives["musan.tar.gz"])
    rc, out, err = _run(capsys, "musan", tmp_path, "--base_url", url)
    assert rc == 0, err
    assert (tmp_path / "musan" / "noise" / "free-sound").is_dir()


def test_every_public_url_is_https_and_checked():
    for dataset in SOURCES.values():
        assert dataset.source.startswith("https://")
        for f in dataset.files:
            assert f.urls and all(u.startswith("https://") for u in f.urls)
            assert all(u.endswith("/" + f.filename) for u in f.urls)
            assert (f.md5 is not None) != (f.trials is not None)
            if f.md5:
                assert len(f.md5) == 32 and int(f.md5, 16) >= 0


def test_command_line_errors(capsys):
    with pytest.raises(SystemExit):
        main(["musan"])
    with pytest.raises(SystemExit):
        main(["voxceleb2", "/tmp/x"])
    assert "choose from musan, rirs_noises, voxceleb1_trials" in (
        capsys.readouterr().err
    )
    assert download.main(["--list"]) == 0
    assert "0c472d4fc0c5141eca47ad1ffeb2a7df" in capsys.readouterr().out


def test_recipes_never_download_and_name_this_command(tmp_path, monkeypatch):

    from speechbrain_ext.augment.musan_prep import resolve_musan_folder
    from speechbrain_ext.augment.rir_prep import resolve_rirs_folder
    from speechbrain_ext.data.prep_common import PreparationError
    from speechbrain_ext.data.trial_csv import read_trial_list
    from speechbrain_ext.scoring.trial_lists import find_trial_file

    def no_network(*args, **kwargs):
        raise AssertionError("a recipe opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    recipe = training_recipe()
    with pytest.raises(ValueError, match=r"speechbrain_ext\.data\.download "
                       r"musan rirs_noises <folder>"):
        recipe.prepare_noise({"augment": True, "musan_folder": None,
                              "rir_folder": None})
    with pytest.raises(PreparationError, match=r"download musan "
                       + str(tmp_path)):
        resolve_musan_folder(str(tmp_path / "musan"))
    (tmp_path / "RIRS_NOISES").mkdir()
    with pytest.raises(PreparationError, match=r"download rirs_noises "
                       + str(tmp_path)):
        resolve_rirs_folder(str(tmp_path / "RIRS_NOISES"))
    with pytest.raises(PreparationError, match="download voxceleb1_trials"):
        read_trial_list(str(tmp_path / "veri_test2.txt"))
    with pytest.raises(FileNotFoundError, match="download voxceleb1_trials"):
        find_trial_file("veri_test2.txt", str(tmp_path))
    # Only the download modules talk to the network.
    talkers = sorted(
        p.relative_to(ROOT).as_posix()
        for folder in ("recipes", "speechbrain_ext")
        for p in (ROOT / folder).rglob("*.py")
        if "urllib" in p.read_text() or "http.client" in p.read_text()
    )
    assert talkers == ["speechbrain_ext/data/fetch.py"]


FAKE_FFMPEG = """\
#!{python}
import sys, soundfile
args = sys.argv[1:]
src, dst = args[args.index("-i") + 1], args[-1]
data, sr = soundfile.read(src, always_2d=True)
soundfile.write(dst, data.mean(axis=1), sr, format="WAV")
"""


def _readme_data_commands():
    """The ``python -m speechbrain_ext.data...`` commands of "From an empty
    disk" in the README, as argument lists."""
    import shlex

    text = (ROOT / "README.md").read_text()
    section = text.split("### From an empty disk\n", 1)[1].split("\n### ")[0]
    commands = []
    for line in section.replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("python -m speechbrain_ext.data."):
            commands.append(shlex.split(line)[2:])
    return commands


def test_readme_data_steps_from_an_empty_disk(server, table, archives,
                                              tmp_path, monkeypatch, capsys):
    """Runs the README's download, convert and prepare commands as written
    (``/data`` -> a temporary folder; downloads from the loopback server,
    ffmpeg replaced by a stand-in), then checks that the training recipe
    reuses the prepared CSVs."""
    import stat

    from speechbrain_ext.data import prepare

    commands = _readme_data_commands()
    assert [c[0] for c in commands] == [
        "speechbrain_ext.data.download", "speechbrain_ext.data.download",
        "speechbrain_ext.data.prepare", "speechbrain_ext.data.prepare",
    ]
    data = tmp_path / "data"
    monkeypatch.chdir(tmp_path)
    # Step 1 by hand: VoxCeleb as unzipped (a trial speaker and another).
    for rel in ("voxceleb1/wav/id10270/x6uYqmx31kE/00001.wav",
                "voxceleb1/wav/id10001/1zcIwhmdeo4/00001.wav",
                "voxceleb1/wav/id10001/1zcIwhmdeo4/00002.wav",
                "voxceleb2/dev/aac/id00012/21Uxsk56VDQ/00001.m4a",
                "voxceleb2/dev/aac/id00012/21Uxsk56VDQ/00002.m4a"):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(_wav_bytes(1.0, len(rel)))
    ffmpeg = tmp_path / "bin" / "ffmpeg"
    ffmpeg.parent.mkdir()
    ffmpeg.write_text(FAKE_FFMPEG.format(python=sys.executable))
    ffmpeg.chmod(ffmpeg.stat().st_mode | stat.S_IEXEC)
    for module, *args in commands:
        args = [a.replace("/data", str(data)) for a in args]
        if module.endswith("download"):
            rc = download.main([*args, "--base_url", server.url,
                                "--no_progress"])
        elif args[0] == "convert-m4a":
            rc = prepare.main([*args, "--ffmpeg", str(ffmpeg)])
        else:
            rc = prepare.main(args)
        assert rc == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for option in (f"--musan_folder={data}/musan",
                   f"--rir_folder={data}/RIRS_NOISES",
                   f"--trial_lists={data}/voxceleb1/meta/veri_test2.txt"):
        assert option in out
    assert (data / "voxceleb2/wav/id00012/21Uxsk56VDQ/00002.wav").is_file()
    save = tmp_path / "results" / "mr_rawnet" / "1986" / "save"
    assert not (save / "valid.csv").exists()  # the recipe's valid_ratio 0
    rows = (save / "train.csv").read_text().splitlines()[1:]
    assert len(rows) == 4  # the trial speaker id10270 is left out
    assert not any("id10270" in r for r in rows)

    # The training run (README "One GPU" options) reuses these CSVs.
    recipe = training_recipe()
    yaml_text = (ROOT / "hparams" / "mr_rawnet.yaml").read_text()

    def value(key):
        line = next(x for x in yaml_text.splitlines()
                    if x.startswith(key + ":"))
        return line.split(":", 1)[1].split("#")[0].strip()

    stamp = (save / "train.csv").stat().st_mtime_ns
    trials = f"{data}/voxceleb1/meta/veri_test2.txt"
    recipe.prepare_data({
        "save_folder": "results/mr_rawnet/1986/save",
        "data_folder": f"{data}/voxceleb2,{data}/voxceleb1",
        "trial_lists": trials,
        "train_list": None, "valid_ratio": float(value("valid_ratio")),
        "prep_seed": int(value("prep_seed")),
        "sample_rate": int(value("sample_rate")), "prep_workers": 2,
        "max_bad_file_fraction": float(value("max_bad_file_fraction")),
        "bad_file_min_files": int(value("bad_file_min_files")),
    }, [trials])
    assert (save / "train.csv").stat().st_mtime_ns == stamp
