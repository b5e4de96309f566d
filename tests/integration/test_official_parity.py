"""The full-size network reproduces the official MR-RawNet exactly.

Reads ``shared/fixtures/mr_rawnet_official`` (skips when it is absent): an
official-format checkpoint and reference outputs of the official network.
"""

import numpy as np
import pytest
import torch

from speechbrain_ext.convert_official import (
    convert_state_dict,
    split_official_checkpoint,
)
from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.pretrained import OFFICIAL_MODEL_KWARGS


@pytest.fixture(scope="module")
def cases(official_fixture):
    data = np.load(official_fixture / "parity_cases.npz")
    names = [k[len("wav__"):] for k in data.files if k.startswith("wav__")]
    assert len(names) == 7
    return data, names


@pytest.fixture(scope="module")
def model64(official_fixture):
    state = torch.load(
        official_fixture / "official_format_checkpoint.pt",
        map_location="cpu",
        weights_only=True,
    )
    network, _ = split_official_checkpoint(state)
    model = MRRawNet(**OFFICIAL_MODEL_KWARGS)
    model.load_state_dict(convert_state_dict(network), strict=True)
    return model.double().eval()


def test_float64_embeddings_and_taps_match(model64, cases):
    data, names = cases
    tapped = 0
    with torch.no_grad():
        for name in names:
            wav = torch.from_numpy(data[f"wav__{name}"]).double()[None]
            taps = {}
            emb = model64.embed(wav, None, taps)[0].numpy()
            ref = data[f"emb_fp64__{name}"]
            assert np.abs(emb - ref).max() < 1e-6, name
            for tap in ["mrfe", "stage0", "stage1", "stage2", "pooled"]:
                key = f"tap_fp64__{tap}__{name}"
                if key in data.files:
                    got = taps[tap][0].numpy()
                    assert got.shape == data[key].shape, key
                    assert np.abs(got - data[key]).max() < 1e-6, key
                    tapped += 1
    assert tapped == 10


def test_padded_batch_matches_each_case(model64, cases):
    data, names = cases
    wavs = [torch.from_numpy(data[f"wav__{n}"]).double() for n in names]
    total = max(len(w) for w in wavs)
    batch = torch.zeros(len(wavs), total, dtype=torch.float64)
    for i, wav in enumerate(wavs):
        batch[i, : len(wav)] = wav
    lengths = torch.tensor([len(w) / total for w in wavs], dtype=torch.float64)
    with torch.no_grad():
        embs = model64(batch, lengths)[:, 0].numpy()
    for i, name in enumerate(names):
        ref = data[f"emb_fp64__{name}"]
        assert np.abs(embs[i] - ref).max() < 1e-6, name


def test_converted_folder_is_self_contained(converted):
    names = sorted(p.name for p in converted.iterdir())
    assert names == [
        "README.md",
        "classifier.ckpt",
        "embedding_model.ckpt",
        "hyperparams.yaml",
        "label_encoder.ckpt",
        "label_encoder.txt",
    ]
    text = (converted / "hyperparams.yaml").read_text()
    assert "speechbrain/" not in text and "http" not in text
    assert str(converted) not in text
    labels = (converted / "label_encoder.txt").read_text().splitlines()
    assert labels[0] == "'id00000' => 0"
    assert labels[7204] == "'id07204' => 7204"


def test_float32_encoder_classifier_offline(converted, cases, tmp_path,
                                            monkeypatch):
    from speechbrain.inference.speaker import EncoderClassifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data, names = cases
    clf = EncoderClassifier.from_hparams(
        source=str(converted), savedir=str(tmp_path / "cache")
    )
    for name in names:
        wav = torch.from_numpy(data[f"wav__{name}"])[None]
        emb = clf.encode_batch(wav)[0, 0].double()
        ref = torch.from_numpy(data[f"emb_fp64__{name}"])
        cos = torch.nn.functional.cosine_similarity(emb, ref, dim=0)
        assert cos >= 0.9995, (name, float(cos))
    # The classifier rows are the checkpoint's AAM weights, in order.
    ckpt = torch.load(converted / "classifier.ckpt", weights_only=True)
    assert torch.equal(clf.mods.classifier.weight, ckpt["weight"])
    assert clf.hparams.label_encoder.decode_ndim(3) == "id00003"
