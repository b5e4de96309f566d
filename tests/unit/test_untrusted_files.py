"""Untrusted pretrained folders: crafted, corrupt and mismatched files.

A checkpoint is data, but a pickle can run code when it is read. Every
checkpoint of a pretrained folder is read weights-only, by
``EncoderClassifier.from_hparams`` (through the folder's strict hooks) and
by the verification extraction loader, so a crafted pickle is refused
before its code runs; a checkpoint that does not match the model, and a
label encoder file that cannot be parsed, fail loudly with an error that
names the problem. ``hyperparams.yaml`` itself is HyperPyYAML, which can
run code by design: it is not protected, only documented.
"""

import ast
import pathlib
import pickle

import pytest
import torch
from helpers import ROOT, TINY_KWARGS

from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.pretrained import (
    write_label_encoder,
    write_pretrained_folder,
)
from speechbrain_ext.scoring.model_loading import load_embedding_model

CHECKPOINTS = ["embedding_model.ckpt", "classifier.ckpt"]
FORMATS = ["pickle", "torch"]


class _RunsCode:
    """Unpickling this runs ``exec``, which writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _write_crafted(path, marker, fmt):
    """Writes a state dict whose tensor is a code-running object."""
    state = {"weight": _RunsCode(marker), "bias": torch.zeros(1)}
    if fmt == "pickle":  # a bare pickle, as the legacy format reads it
        with open(path, "wb") as fh:
            pickle.dump(state, fh)
    else:  # torch.save's zip format, with the object in data.pkl
        torch.save(state, path)


@pytest.fixture
def folder(tmp_path):
    """A tiny pretrained folder with speaker labels."""
    return pathlib.Path(write_pretrained_folder(
        str(tmp_path / "pretrained"), TINY_KWARGS,
        MRRawNet(**TINY_KWARGS).state_dict(),
        torch.randn(3, TINY_KWARGS["lin_neurons"]), ["a", "b", "c"],
    ))


def _from_hparams(folder, tmp_path, monkeypatch):
    from speechbrain.inference.speaker import EncoderClassifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return EncoderClassifier.from_hparams(
        source=str(folder), savedir=str(tmp_path / "cache")
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_crafted_payload_runs_when_read_unsafely(tmp_path, fmt):
    # The payload is live: an unsafe load runs it (so the tests below,
    # where it does not run, mean something).
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.ckpt"
    _write_crafted(path, marker, fmt)
    assert not marker.exists()
    if fmt == "pickle":
        with open(path, "rb") as fh:
            pickle.load(fh)
    else:
        torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_from_hparams_refuses_crafted_checkpoint(folder, tmp_path,
                                                 monkeypatch, name, fmt):
    marker = tmp_path / "PWNED"
    _write_crafted(folder / name, marker, fmt)
    with pytest.raises(ValueError, match=rf"{name}: .*weights-only"):
        _from_hparams(folder, tmp_path, monkeypatch)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_extraction_loader_refuses_crafted_checkpoint(folder, tmp_path, fmt):
    marker = tmp_path / "PWNED"
    _write_crafted(folder / "embedding_model.ckpt", marker, fmt)
    with pytest.raises(ValueError, match="embedding_model.ckpt: .*weights"):
        load_embedding_model(str(folder))
    assert not marker.exists()


def test_missing_key_fails_loudly(folder, tmp_path, monkeypatch):
    state = MRRawNet(**TINY_KWARGS).state_dict()
    key = "stages.1.0.same.conv1.weight"
    del state[key]
    torch.save(state, folder / "embedding_model.ckpt")
    pattern = rf"missing keys: {key.replace('.', '[.]')}"
    with pytest.raises(ValueError, match=pattern):
        _from_hparams(folder, tmp_path, monkeypatch)
    with pytest.raises(ValueError, match=pattern):
        load_embedding_model(str(folder))


def test_unexpected_key_and_wrong_shape_fail_loudly(folder, tmp_path,
                                                    monkeypatch):
    state = MRRawNet(**TINY_KWARGS).state_dict()
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, folder / "embedding_model.ckpt")
    with pytest.raises(ValueError, match="unexpected keys: extra.weight"):
        load_embedding_model(str(folder))
    torch.save(
        MRRawNet(**TINY_KWARGS).state_dict(), folder / "embedding_model.ckpt"
    )
    torch.save({"weight": torch.zeros(4, 5)}, folder / "classifier.ckpt")
    with pytest.raises(ValueError, match=r"weight \[4, 5\] != \[3, 5\]"):
        _from_hparams(folder, tmp_path, monkeypatch)


@pytest.mark.parametrize(
    "content", ["tensor", "list", "non-tensor value", "truncated", "empty"]
)
def test_malformed_checkpoint_fails_loudly(folder, content):
    path = folder / "embedding_model.ckpt"
    if content == "tensor":
        torch.save(torch.zeros(3), path)
    elif content == "list":
        torch.save([1, 2], path)
    elif content == "non-tensor value":
        state = MRRawNet(**TINY_KWARGS).state_dict()
        state[next(iter(state))] = "text"
        torch.save(state, path)
    elif content == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="embedding_model.ckpt"):
        load_embedding_model(str(folder))


def test_missing_checkpoint_is_file_not_found(folder, tmp_path, monkeypatch):
    (folder / "classifier.ckpt").unlink()
    with pytest.raises(FileNotFoundError):
        _from_hparams(folder, tmp_path, monkeypatch)


@pytest.mark.parametrize(
    "content", ["code", "two labels", "no extras", "not a label file"]
)
def test_bad_label_encoder_fails_loudly(folder, tmp_path, monkeypatch,
                                        content):
    # SpeechBrain alone would leave the encoder empty and carry on.
    marker = tmp_path / "PWNED"
    for name in ("label_encoder.ckpt", "label_encoder.txt"):
        path = folder / name
        if content == "code":
            path.write_text(f"__import__('os').system('touch {marker}') => 0\n")
        elif content == "two labels":  # for a classifier of three classes
            write_label_encoder(str(path), ["a", "b"])
        elif content == "no extras":
            path.write_text("'a' => 0\n'b' => 1\n'c' => 2\n")
        else:
            path.write_text("not a label file\n")
    match = "has 2 labels" if content == "two labels" else "not a valid"
    with pytest.raises(ValueError, match=rf"label_encoder.ckpt.*{match}"):
        _from_hparams(folder, tmp_path, monkeypatch)
    assert not marker.exists()


def test_good_folder_loads(folder, tmp_path, monkeypatch):
    model = _from_hparams(folder, tmp_path, monkeypatch)
    assert len(model.hparams.label_encoder) == 3
    out, _, _, labels = model.classify_batch(torch.randn(1, 3200))
    assert out.shape == (1, 3) and labels[0] in {"a", "b", "c"}


def test_trust_in_hyperparams_is_documented(folder):
    # HyperPyYAML tags such as !apply can run code: not fixable here.
    for name in ("hyperparams.yaml", "README.md"):
        assert "can run code" in (folder / name).read_text()


def _calls(tree, owner, name):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == name
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == owner
        ):
            yield node


def _keyword(call, name):
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def test_every_checkpoint_load_is_weights_only():
    files = sorted(
        p
        for folder in ("speechbrain_ext", "recipes")
        for p in (ROOT / folder).rglob("*.py")
    )
    assert files
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(ROOT)
        for call in _calls(tree, "torch", "load"):
            if _keyword(call, "weights_only") is not True:
                problems.append(f"{where}:{call.lineno} torch.load")
        for name in ("load", "loads", "Unpickler"):
            for call in _calls(tree, "pickle", name):
                problems.append(f"{where}:{call.lineno} pickle.{name}")
        for call in _calls(tree, "np", "load"):
            if _keyword(call, "allow_pickle") is True:
                problems.append(f"{where}:{call.lineno} np.load pickle")
        for call in _calls(tree, "yaml", "load"):
            problems.append(f"{where}:{call.lineno} yaml.load")
    assert not problems, problems
