"""Shared test fixtures (the constants and helpers are in ``helpers.py``)."""

import pathlib

import pytest
import torch
from helpers import OFFICIAL_FIXTURE, ROOT, SHARED, TINY_KWARGS  # noqa: F401


@pytest.fixture
def tiny_kwargs():
    """A fresh copy of the tiny model configuration."""
    return dict(TINY_KWARGS)


@pytest.fixture(scope="session")
def official_fixture():
    """Path of the official parity fixture; skips when it is absent."""
    needed = ["official_format_checkpoint.pt", "parity_cases.npz"]
    if not all((OFFICIAL_FIXTURE / n).is_file() for n in needed):
        pytest.skip(
            f"official parity fixture not found in {OFFICIAL_FIXTURE} "
            "(set MR_RAWNET_SHARED to the shared folder)"
        )
    return OFFICIAL_FIXTURE


@pytest.fixture(autouse=True)
def _threads():
    """Keeps tests on two threads, the size of the CI machine."""
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def converted(official_fixture, tmp_path_factory):
    """The fixture checkpoint converted, with a 7205-speaker train list."""
    from speechbrain_ext.convert_official import convert

    out = tmp_path_factory.mktemp("converted")
    train_list = out / "train_list.txt"
    # 7205 speakers, written out of order: the converter must sort them.
    ids = [f"id{n:05d}" for n in range(7205)][::-1]
    train_list.write_text(
        "".join(f"{s} {s}/sess/00001.wav\n" for s in ids)
    )
    folder = out / "pretrained"
    convert(
        str(official_fixture / "official_format_checkpoint.pt"),
        str(folder),
        str(train_list),
    )
    return folder


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    """The one corpus fixture: ``synthetic_corpus(**options)`` generates a
    synthetic corpus once per session for each set of
    :func:`~speechbrain_ext.synthetic.generate_corpus` options and returns
    its info (``paths``, speakers, ...); tests that damage files work on
    a copy."""
    from speechbrain_ext.synthetic import generate_corpus

    made = {}

    def make(**options):
        key = tuple(sorted(options.items()))
        if key not in made:
            out = tmp_path_factory.mktemp("corpus") / "corpus"
            made[key] = generate_corpus(str(out), progress=False, **options)
        return made[key]

    return make


@pytest.fixture(scope="session")
def corpus(synthetic_corpus):
    """Training-test corpus: 8 training and 2 test speakers, 12 utterances
    of 1-2 s each, with small noise and RIR sets (shared by the training
    tests)."""
    return synthetic_corpus(
        n_train_speakers=8, n_test_speakers=2, utts_per_speaker=12, seed=1,
        min_duration=1.0, max_duration=2.0, n_noise=3, n_music=2,
        n_speech=4, n_rooms=1, rirs_per_room=2,
    )["paths"]


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A tiny pretrained folder (seeded random weights, BatchNorm statistics
    set away from the identity) and its ONNX export: (folder, onnx path,
    export report). Skips when the deployment packages are missing."""
    for name in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(name)
    from speechbrain_ext.export_onnx import export_onnx
    from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    from speechbrain_ext.pretrained import write_pretrained_folder

    torch.manual_seed(3)
    model = MRRawNet(**TINY_KWARGS)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    out = tmp_path_factory.mktemp("tiny_onnx")
    folder = write_pretrained_folder(
        str(out / "pretrained"), TINY_KWARGS, model.state_dict(),
        torch.randn(3, TINY_KWARGS["lin_neurons"]), ["a", "b", "c"],
    )
    path = out / "tiny.onnx"
    report = export_onnx(folder, str(path))
    return pathlib.Path(folder), path, report
