"""Verification scoring: crops, batching, cache resume, recipe, bad input.

Everything runs on a generated corpus (3 test speakers x 3 utterances,
1-3 s) with a tiny random MR-RawNet written as a pretrained folder.
"""

import importlib.util
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import TINY_KWARGS

from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.pretrained import write_pretrained_folder
from speechbrain_ext.scoring import (
    audio_files,
    embedding_cache,
    model_loading,
    trial_lists,
    trial_scores,
    verify,
)
from speechbrain_ext.scoring.audio_files import AudioFileError
from speechbrain_ext.scoring.batching import BatchedEmbedder
from speechbrain_ext.scoring.embedding_cache import EmbeddingCache
from speechbrain_ext.scoring.extract import extract_embeddings
from speechbrain_ext.scoring.trials import TrialListError
from speechbrain_ext.scoring.views import (
    DURATION_CONDITIONS,
    condition_crop,
    condition_views,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "speaker_verification_cosine.py"
DEMO_YAML = ROOT / "hparams" / "verification_demo.yaml"
VIEWS = condition_views(list(DURATION_CONDITIONS))


def _load_recipe():
    spec = importlib.util.spec_from_file_location("sv_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(synthetic_corpus):
    """A small synthetic corpus: 2 cohort speakers, 3 test speakers."""
    return synthetic_corpus(
        n_train_speakers=2, n_test_speakers=3, utts_per_speaker=3,
        sessions_per_speaker=2, seed=5, min_duration=1.0, max_duration=3.0,
        n_noise=1, n_music=1, n_speech=1, n_rooms=1, rirs_per_room=1,
    )


def _tiny_folder(path, seed):
    torch.manual_seed(seed)
    model = MRRawNet(**TINY_KWARGS)
    return write_pretrained_folder(
        str(path), TINY_KWARGS, model.state_dict(),
        torch.randn(4, TINY_KWARGS["lin_neurons"]),
    )


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return _tiny_folder(tmp_path_factory.mktemp("model"), seed=0)


@pytest.fixture(scope="module")
def lists(corpus):
    paths = corpus["paths"]
    specs = trial_lists.trial_specs([paths["trials"]], paths["root"])
    return trial_lists.load_trial_lists(specs)


def _run(model_folder, lists, cache_root, batch_size=8, model_hook=None,
         flush_every=1, double=False):
    """Extracts every view of the lists; returns embeddings and embedder."""
    model, ckpt, config = model_loading.load_embedding_model(model_folder)
    if double:
        model = model.double()
    if model_hook is not None:
        model = model_hook(model)
    needs = verify.embedding_needs(lists, VIEWS.values())
    stamps, lengths = verify.audio_lengths(needs, workers=2)
    key = embedding_cache.cache_key(ckpt, config, VIEWS)
    cache = EmbeddingCache(cache_root, key)
    embedder = BatchedEmbedder(model, batch_size=batch_size,
                               max_batch_seconds=30)
    emb = extract_embeddings(
        embedder, cache, needs, lengths, stamps,
        flush_every_batches=flush_every, num_workers=1, progress=False,
    )
    return emb, embedder, cache


def _scores(lists, emb):
    out = {}
    for loaded in lists:
        for cond, crop in VIEWS.items():
            enrol, test = trial_scores.trial_keys(loaded, crop)
            out[(loaded.spec.name, cond)] = trial_scores.cosine_trial_scores(
                enrol, test, emb
            )
    return out


class _Recorder(torch.nn.Module):
    """Wraps a model, recording every input batch and its lengths."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = []

    def forward(self, wavs, lengths):
        self.calls.append((wavs.clone(), lengths.clone()))
        return self.model(wavs, lengths)


def test_crops_follow_the_protocol_in_extraction(model_folder, lists,
                                                 tmp_path):
    """Crop views are the centre (or tiled) protocol crops of the file."""
    recorder = {}

    def hook(model):
        recorder["r"] = _Recorder(model)
        return recorder["r"]

    _run(model_folder, lists, tmp_path, batch_size=64, model_hook=hook)
    calls = recorder["r"].calls
    test_paths = lists[0].trials.resolve(lists[0].spec.audio_folder)[1]
    decoded = {p: sf.read(p, dtype="float32")[0] for p in set(test_paths)}
    assert any(len(w) < 16640 * 3 for w in decoded.values())  # some tiled
    for name, n in VIEWS.items():
        if n is None:
            continue
        batches = [(w, lens) for w, lens in calls if w.shape[1] == n]
        rows = torch.cat([w for w, _ in batches]).numpy()
        assert all(bool((lens == 1).all()) for _, lens in batches), name
        assert len(rows) == len(decoded), name
        for wav in decoded.values():
            start = (len(wav) - n) // 2
            if len(wav) >= n:
                expect = wav[start : start + n]
            else:
                reps = -(-n // len(wav))
                expect = np.tile(wav, reps)[:n]
                np.testing.assert_array_equal(expect[: len(wav)], wav)
            np.testing.assert_array_equal(expect, condition_crop(wav, n))
            assert any(np.array_equal(expect, r) for r in rows), (name, n)


def test_batched_equals_batch_size_one(model_folder, lists, tmp_path):
    batched, emb_b, _ = _run(model_folder, lists, tmp_path / "b", 16)
    single, emb_1, _ = _run(model_folder, lists, tmp_path / "s", 1)
    assert emb_b.forward_calls < emb_1.forward_calls
    s_b, s_1 = _scores(lists, batched), _scores(lists, single)
    for key in s_b:
        np.testing.assert_allclose(s_b[key], s_1[key], rtol=0, atol=1e-5)
    # float64 model: padding has no effect up to float32 output rounding.
    b64, _, _ = _run(model_folder, lists, tmp_path / "b64", 16, double=True)
    s64, _, _ = _run(model_folder, lists, tmp_path / "s64", 1, double=True)
    for key, vec in b64.items():
        np.testing.assert_allclose(vec, s64[key], rtol=1e-6, atol=1e-7)


class _Boom(RuntimeError):
    pass


def _fail_after(n_calls):
    def hook(model):
        real = model.forward
        count = {"n": 0}

        def forward(wavs, lengths=None):
            count["n"] += 1
            if count["n"] > n_calls:
                raise _Boom("simulated crash")
            return real(wavs, lengths)

        model.forward = forward
        return model

    return hook


def test_resume_after_exception_matches_uninterrupted(model_folder, lists,
                                                      tmp_path):
    full, embedder, _ = _run(model_folder, lists, tmp_path / "ref")
    total_calls = embedder.forward_calls
    with pytest.raises(_Boom):
        _run(model_folder, lists, tmp_path / "c", model_hook=_fail_after(6))
    shards = list((tmp_path / "c").glob("*/shard-*.npz"))
    assert shards  # completed batches were flushed
    resumed, embedder, _ = _run(model_folder, lists, tmp_path / "c")
    assert 0 < embedder.forward_calls < total_calls
    ref, res = _scores(lists, full), _scores(lists, resumed)
    for key in ref:
        np.testing.assert_allclose(res[key], ref[key], rtol=0, atol=1e-5)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{root!r}, os.path.join({root!r}, "tests")]
    from tests.integration.test_verification import _run, lists_for
    calls = {{"n": 0}}
    def hook(model):
        real = model.forward
        def forward(wavs, lengths=None):
            calls["n"] += 1
            if calls["n"] > {after}:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(wavs, lengths)
        model.forward = forward
        return model
    _run({model!r}, lists_for({trials!r}, {data!r}), {cache!r},
         batch_size=2, model_hook=hook, flush_every=2)
    """
)


def lists_for(trials, data_folder):
    """Loaded lists of one trial file (used by the killed subprocess)."""
    return trial_lists.load_trial_lists(
        trial_lists.trial_specs([trials], data_folder)
    )


def test_resume_after_kill9_matches_uninterrupted(model_folder, lists,
                                                  corpus, tmp_path):
    cache = tmp_path / "k"
    code = KILLER.format(
        root=str(ROOT), after=13, model=model_folder, cache=str(cache),
        trials=corpus["paths"]["trials"], data=corpus["paths"]["root"],
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    folder = next(cache.iterdir())
    shards = sorted(folder.glob("shard-*.npz"))
    # Batches of 2 utterances, 4 forward passes each (full + 3 crops),
    # flushed every 2 batches: killed in batch 4, batches 1-2 were saved.
    assert len(shards) == 1
    with np.load(shards[0]) as shard:
        assert len(set(shard["utts"].tolist())) == 4
    resumed, embedder, c = _run(model_folder, lists, cache)
    full, ref_embedder, _ = _run(model_folder, lists, tmp_path / "ref")
    assert 0 < embedder.forward_calls < ref_embedder.forward_calls
    ref, res = _scores(lists, full), _scores(lists, resumed)
    for key in ref:
        np.testing.assert_allclose(res[key], ref[key], rtol=0, atol=1e-5)


def test_changed_model_invalidates_cache(model_folder, lists, tmp_path):
    _, first, cache_a = _run(model_folder, lists, tmp_path)
    _, again, cache_b = _run(model_folder, lists, tmp_path)
    assert first.forward_calls > 0 and again.forward_calls == 0
    assert cache_a.folder == cache_b.folder
    other = _tiny_folder(tmp_path / "other_model", seed=1)
    emb_other, changed, cache_c = _run(other, lists, tmp_path)
    assert cache_c.folder != cache_a.folder
    assert changed.forward_calls == first.forward_calls  # all recomputed
    # A changed audio file is recomputed even with the same model.
    path = lists[0].enrol[0]
    wav, rate = sf.read(path)
    sf.write(path, wav * 0.5, rate)
    try:
        _, touched, _ = _run(other, lists, tmp_path)
        assert 0 < touched.forward_calls < first.forward_calls
    finally:
        sf.write(path, wav, rate)


def _recipe_cmd(corpus, model, out, *extra):
    return [
        sys.executable, str(RECIPE), str(DEMO_YAML),
        f"--data_folder={corpus['paths']['root']}",
        f"--pretrained_path={model}", f"--output_folder={out}",
        "--noprogressbar", *extra,
    ]


def test_recipe_end_to_end(corpus, model_folder, tmp_path):
    root = pathlib.Path(corpus["paths"]["root"])
    # A training output folder: the model in <out>/pretrained/.
    training_out = tmp_path / "train_out"
    _tiny_folder(training_out / "pretrained", seed=0)
    # A second list (every other trial) and a cohort of training speakers.
    lines = (root / "veri_test.txt").read_text().splitlines()
    second = tmp_path / "second.txt"
    second.write_text("\n".join(lines[::2]) + "\n")
    cohort = tmp_path / "cohort.txt"
    train = [
        p.relative_to(root / "wav").as_posix()
        for spk in corpus["train_speakers"]
        for p in sorted((root / "wav" / spk).rglob("*.wav"))
    ]
    cohort.write_text("\n".join(train) + "\n")
    out = tmp_path / "out"
    lists_arg = f"--trial_lists=[veri_test.txt, {{name: half, path: {second}}}]"
    cmd = _recipe_cmd(
        corpus, training_out, out, lists_arg, "--score_norm=as-norm",
        f"--cohort_file={cohort}", "--cohort_topk=3", "--batch_size=4",
    )
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| veri_test | 1.04s | as-norm |" in proc.stdout
    for name, n_lines in (("veri_test", len(lines)),
                          ("half", len(lines[::2]))):
        for cond in DURATION_CONDITIONS:
            for suffix in ("", ".as-norm"):
                scores = out / "scores" / name / f"{cond}{suffix}.txt"
                rows = scores.read_text().splitlines()
                assert len(rows) == n_lines
                enrol, test, label, score = rows[0].split()
                assert label in "01" and np.isfinite(float(score))
        for plot in (f"{name}_det.png", f"{name}_hist.png"):
            assert (out / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "results.json").read_text())
    assert len(results["rows"]) == 2 * len(DURATION_CONDITIONS) * 2
    full = results["results"]["veri_test"]["full"]["cosine"]
    assert full["n_trials"] == len(lines)
    assert set(full) >= {"eer", "min_dcf@0.01", "min_dcf@0.05"}
    assert "| half | 5.04s | cosine |" in (out / "results.md").read_text()
    assert results["meta"]["device"] == "cpu"

    # A second run finds every embedding in the cache: same scores.
    first = (out / "scores" / "veri_test" / "2.04s.as-norm.txt").read_text()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "0 to compute" in log
    again = (out / "scores" / "veri_test" / "2.04s.as-norm.txt").read_text()
    assert again == first

    # While another live run holds the cache, a third run stops at once.
    from speechbrain_ext.run_lock import LOCK_FILE, _process_start

    (cache,) = (out / "embedding_cache").iterdir()
    assert not (cache / LOCK_FILE).exists()  # released by the runs above
    other = subprocess.Popen([sys.executable, "-c", "input()"],
                             stdin=subprocess.PIPE)
    try:
        (cache / LOCK_FILE).write_text(json.dumps({
            "pid": other.pid, "host": socket.gethostname(),
            "process_start": _process_start(other.pid),
            "started": "2026-01-01 00:00:00", "command": "other scoring",
        }))
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        other.kill()
        other.wait()
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert (
        f"FolderLockedError: The embedding cache {cache} is in use by "
        f"another run (PID {other.pid} on this machine"
    ) in output
    assert "other scoring" in output


def test_recipe_reports_missing_files(corpus, model_folder, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("".join(
        f"{i % 2} id0000{i}/s/{i}.wav id90003/x/{i}.wav\n" for i in range(7)
    ))
    cmd = _recipe_cmd(corpus, model_folder, tmp_path / "out",
                      f"--trial_lists=[{bad}]")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr  # SpeechBrain logs to stdout
    assert "AudioFileError: 14 of 14 audio files are missing" in output
    assert "id00000/s/0.wav" in output and "and 4 more" in output


def _voices_folder(corpus, root):
    """A VOiCES-shaped copy of the test speakers' audio, with its lists.

    ``Development_Data/Speaker_Recognition/sid_dev/sp<N>/Lab41-SRI-VOiCES-
    ...wav``, and in ``sid_dev_lists_and_keys/`` the published formats:
    ``dev-enroll.lst`` (model id, audio path) and ``dev-trial-keys.lst``
    (model id, test path, tgt/imp). Returns the key file and the trials as
    ``(label, enrol path, test path)`` relative to ``Speaker_Recognition``.
    """
    src = pathlib.Path(corpus["paths"]["root"]) / "wav"
    sr = root / "VOiCES" / "Development_Data" / "Speaker_Recognition"
    models, tests = {}, []
    for k, spk in enumerate(corpus["test_speakers"]):
        sp = f"sp{83 + 1000 * k:04d}"
        for i, wav in enumerate(sorted((src / spk).rglob("*.wav"))):
            name = (f"Lab41-SRI-VOiCES-rm1-none-{sp}-ch{3054 + k:06d}-"
                    f"sg{i:04d}-mc{i + 1:02d}-stu-clo-dg090")
            rel = f"sid_dev/{sp}/{name}.wav"
            (sr / rel).parent.mkdir(parents=True, exist_ok=True)
            (sr / rel).write_bytes(wav.read_bytes())
            if i == 0:
                models[name] = (sp, rel)
            else:
                tests.append((sp, rel))
    lists = sr / "sid_dev_lists_and_keys"
    lists.mkdir()
    (lists / "dev-enroll.lst").write_text(
        "".join(f"{m} {rel}\n" for m, (_, rel) in models.items())
    )
    (lists / "dev-test.lst").write_text("".join(f"{t}\n" for _, t in tests))
    keys, expected = [], []
    for model, (sp, enrol) in models.items():
        for test_sp, test in tests:
            same = test_sp == sp
            keys.append(f"{model} {test} {'tgt' if same else 'imp'}\n")
            expected.append((int(same), enrol, test))
    (lists / "dev-trial-keys.lst").write_text("".join(keys))
    return lists / "dev-trial-keys.lst", expected


def test_recipe_scores_voxceleb_and_published_voices_lists(corpus, tmp_path,
                                                           model_folder):
    keys, expected = _voices_folder(corpus, tmp_path)
    speaker_recognition = keys.parents[1]
    # The same trials as a 'label enrol test' list: scores must agree.
    same = tmp_path / "voices_as_voxceleb.txt"
    same.write_text("".join(f"{lab} {e} {t}\n" for lab, e, t in expected))
    out = tmp_path / "out"
    lists_arg = (
        f"--trial_lists=[{{name: vox1_o, path: veri_test.txt}}, "
        f"{{name: voices_dev, path: {keys}}}, "
        f"{{name: converted, path: {same}, "
        f"audio_folder: {speaker_recognition}}}]"
    )
    cmd = _recipe_cmd(corpus, model_folder, out, lists_arg,
                      "--conditions=[full, 2.04s]")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())["results"]
    n_vox = len((pathlib.Path(corpus["paths"]["root"]) / "veri_test.txt")
                .read_text().split("\n")) - 1
    assert results["vox1_o"]["full"]["cosine"]["n_trials"] == n_vox
    assert results["voices_dev"]["full"]["cosine"]["n_trials"] == len(
        expected
    )
    assert "| voices_dev | 2.04s | cosine |" in proc.stdout
    for cond in ("full", "2.04s"):
        voices = (out / "scores" / "voices_dev" / f"{cond}.txt").read_text()
        converted = (out / "scores" / "converted" / f"{cond}.txt").read_text()
        rows = [r.split() for r in voices.splitlines()]
        assert [(int(lab), e, t) for e, t, lab, _ in rows] == expected
        assert voices == converted
        assert results["voices_dev"][cond] == results["converted"][cond]


# Bad input, through the recipe's own input stage.


@pytest.fixture(scope="module")
def recipe():
    return _load_recipe()


def _hparams(corpus, trial_lists, **kw):
    hp = {
        "data_folder": corpus["paths"]["root"], "audio_folder": None,
        "trial_lists": trial_lists, "allow_paths_outside_data_folder": False,
        "conditions": ["full", "1.04s"], "sample_rate": 16000,
        "score_norm": "none", "cohort_file": None, "cohort_size": None,
        "cohort_topk": 3, "cohort_crop_seconds": None, "seed": 0,
        "header_workers": 2,
    }
    hp.update(kw)
    return hp


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_bad_trial_lists(recipe, corpus, tmp_path):
    good = "1 id90003/a/1.wav id90003/b/2.wav\n"
    malformed = _write(tmp_path / "m.txt", good + "\n1 only_two.wav\n")
    with pytest.raises(TrialListError, match=r"m\.txt:3: expected 3"):
        recipe.read_inputs(_hparams(corpus, [malformed]))
    label = _write(tmp_path / "l.txt", good + "2 a.wav b.wav\n")
    with pytest.raises(TrialListError, match=r"l\.txt:2: label"):
        recipe.read_inputs(_hparams(corpus, [label]))
    empty = _write(tmp_path / "e.txt", "\n\n")
    with pytest.raises(TrialListError, match="no trials"):
        recipe.read_inputs(_hparams(corpus, [empty]))
    one_class = _write(tmp_path / "o.txt", good * 3)
    with pytest.raises(TrialListError, match="all 3 trials are target"):
        recipe.read_inputs(_hparams(corpus, [one_class]))
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        recipe.read_inputs(_hparams(corpus, ["nope.txt"]))


def test_escaping_paths_refused_unless_allowed(recipe, corpus, tmp_path):
    data = tmp_path / "data"
    for rel in ("wav/spk/s/a.wav", "wav/spk/s/b.wav", "elsewhere/c.wav"):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(data / rel, np.random.default_rng(1).normal(size=4000),
                 16000)
    escape = "1 spk/s/a.wav spk/s/b.wav\n0 spk/s/a.wav ../elsewhere/c.wav\n"
    path = _write(tmp_path / "esc.txt", escape)
    hp = _hparams(corpus, [path], data_folder=str(data))
    with pytest.raises(ValueError, match=r"esc\.txt:2: .*outside"):
        recipe.read_inputs(hp)
    hp["allow_paths_outside_data_folder"] = True
    inputs = recipe.read_inputs(hp)
    assert str(data / "elsewhere" / "c.wav") in inputs["needs"]


def test_missing_and_corrupt_audio(recipe, corpus, tmp_path):
    root = pathlib.Path(corpus["paths"]["root"])
    rel = os.path.relpath(
        sorted((root / "wav").rglob("*.wav"))[0], root / "wav"
    )
    lines = [f"1 {rel} spk/s/{i:02d}.wav\n" for i in range(12)]
    lines.append(f"0 {rel} {rel}\n")
    path = _write(tmp_path / "miss.txt", "".join(lines))
    with pytest.raises(AudioFileError) as err:
        recipe.read_inputs(_hparams(corpus, [path]))
    message = str(err.value)
    assert "12 of 13 audio files are missing" in message
    assert "spk/s/00.wav" in message and "and 2 more" in message

    data = tmp_path / "data"
    (data / "spk" / "s").mkdir(parents=True)
    for name in ("good", "other"):
        sf.write(data / "spk" / "s" / f"{name}.wav",
                 np.random.default_rng(0).normal(size=8000), 16000)
    (data / "spk" / "s" / "broken.wav").write_bytes(b"RIFF\x00junk" * 10)
    trials = _write(
        tmp_path / "c.txt",
        "1 spk/s/good.wav spk/s/broken.wav\n0 spk/s/good.wav "
        "spk/s/other.wav\n",
    )
    hp = _hparams(corpus, [trials], data_folder=str(data))
    with pytest.raises(AudioFileError, match=r"unreadable: .*broken\.wav"):
        recipe.read_inputs(hp)
    with pytest.raises(AudioFileError, match=r"broken\.wav"):
        audio_files.read_waveform(str(data / "spk" / "s" / "broken.wav"))
    # Too short for a full-length embedding: named up front.
    sf.write(data / "spk" / "s" / "broken.wav", np.zeros(100), 16000)
    with pytest.raises(AudioFileError, match=r"too short.*broken\.wav"):
        recipe.read_inputs(hp)


def test_bad_pretrained_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model_loading.resolve_pretrained_folder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="training output folder"):
        model_loading.resolve_pretrained_folder(tmp_path)


def test_cohort_normaliser_matches_as_norm():
    from speechbrain_ext.scoring.norm import as_norm

    rng = np.random.default_rng(3)
    emb = {(f"u{i}", v): rng.normal(size=6) for i in range(8)
           for v in ("full", "crop16640")}
    cohort = rng.normal(size=(30, 6))
    enrol = [(f"u{i % 4}", "full") for i in range(20)]
    test = [(f"u{4 + i % 4}", "crop16640") for i in range(20)]
    norm = trial_scores.CohortNormaliser(cohort, topk=10)
    raw = trial_scores.cosine_trial_scores(enrol, test, emb)
    ours = norm(raw, enrol, test, emb)
    ref = as_norm(
        [str(k) for k in enrol], [str(k) for k in test],
        {str(k): v for k, v in emb.items()}, None, cohort, topk=10,
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    assert len(norm.stats) == 8  # statistics once per utterance and view
    with pytest.raises(ValueError, match="top-k"):
        trial_scores.CohortNormaliser(cohort, topk=31)


def test_read_cohort_csv_and_subset(tmp_path):
    csv_file = tmp_path / "train.csv"
    rows = ["ID,duration,wav,spk_id"]
    rows += [f"u{i},3.0,$data_root/spk{i}/s/1.wav,spk{i}" for i in range(6)]
    rows.append(f"abs,3.0,{tmp_path}/x/1.wav,spkx")
    csv_file.write_text("\n".join(rows) + "\n")
    paths = verify.read_cohort(str(csv_file), str(tmp_path / "wav"),
                               data_root="/data")
    assert paths[0] == "/data/spk0/s/1.wav" and len(paths) == 7
    assert paths[-1] == f"{tmp_path}/x/1.wav"
    subset = verify.read_cohort(str(csv_file), "/w", size=3, seed=1)
    assert len(subset) == 3 and set(subset) < set(
        verify.read_cohort(str(csv_file), "/w")
    )
    assert subset == verify.read_cohort(str(csv_file), "/w", size=3, seed=1)
    (tmp_path / "bad.csv").write_text("ID,path\nu,a.wav\n")
    with pytest.raises(ValueError, match="no 'wav' column"):
        verify.read_cohort(str(tmp_path / "bad.csv"), "/w")
