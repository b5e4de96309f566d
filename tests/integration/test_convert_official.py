"""Converting the official checkpoint: strictness, safety, inference API."""

import pickle
import re

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from speechbrain_ext.convert_official import convert, main


@pytest.fixture(scope="module")
def official_state(official_fixture):
    return torch.load(
        official_fixture / "official_format_checkpoint.pt",
        map_location="cpu",
        weights_only=True,
    )


def _save(state, tmp_path, name="ckpt.pt"):
    path = tmp_path / name
    torch.save(state, path)
    return str(path)


def test_missing_key_is_named(official_state, tmp_path):
    state = dict(official_state)
    del state["__S__.stage1.2.gate_moduel.attention.2.running_var"]
    with pytest.raises(ValueError, match=r"missing keys: stages\.1\.2\.gate"):
        convert(_save(state, tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_unexpected_key_is_named(official_state, tmp_path):
    state = dict(official_state)
    state["__S__.speed_perturbation.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match="speed_perturbation.extra"):
        convert(_save(state, tmp_path), str(tmp_path / "out"))


def test_shape_mismatch_is_named(official_state, tmp_path):
    state = dict(official_state)
    state["__S__.fc6.weight"] = torch.zeros(192, 3072)
    with pytest.raises(ValueError, match=r"fc\.weight \[192, 3072\]"):
        convert(_save(state, tmp_path), str(tmp_path / "out"))


def test_train_list_speaker_count_must_match(official_state, tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("id1 id1/a/1.wav\nid2 id2/a/1.wav\n")
    path = _save(official_state, tmp_path)
    with pytest.raises(ValueError, match="2 speakers but .* 7205 classes"):
        convert(path, str(tmp_path / "out"), str(lst))


class _RunsCode:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_crafted_pickle_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"__S__.fc6.bias": _RunsCode()}, fh)
    assert main([str(path), str(tmp_path / "out")]) == 1
    assert "weights-only" in capsys.readouterr().err
    assert not (tmp_path / "PWNED").exists()


def test_missing_checkpoint_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.pt"), str(tmp_path / "out")]) == 1
    assert "nope.pt" in capsys.readouterr().err


def _speech(official_fixture, name):
    data = np.load(official_fixture / "parity_cases.npz")
    return torch.from_numpy(data[f"wav__{name}"])


def test_verify_files_resamples_and_mixes(converted, official_fixture,
                                          tmp_path, monkeypatch):
    from speechbrain.inference.speaker import SpeakerRecognition

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rec = SpeakerRecognition.from_hparams(
        source=str(converted), savedir=str(tmp_path / "cache")
    )
    wav = _speech(official_fixture, "speech_3.00s")
    ref = str(tmp_path / "ref.wav")
    sf.write(ref, wav.numpy(), 16000)
    ref_emb = rec.encode_batch(wav[None])[0, 0]
    for rate in [8000, 22050, 44100, 48000]:
        other = torchaudio.functional.resample(wav, 16000, rate)
        path = str(tmp_path / f"r{rate}.wav")
        stereo = torch.stack([other, other], dim=1).numpy()
        sf.write(path, stereo, rate)
        # Same as resampling and mixing by hand, then encoding.
        loaded = rec.load_audio(path)
        assert loaded.dim() == 1
        back = torchaudio.functional.resample(other, rate, 16000)
        n = min(len(back), len(loaded))
        assert torch.allclose(loaded[:n], back[:n], atol=1e-4)
        # The fixture's weights are random, so only the score's consistency
        # with hand-made input is meaningful here, not its value.
        score, decision = rec.verify_files(ref, path)
        assert bool(decision) == (float(score) > 0.25)
        emb = rec.encode_batch(loaded[None])[0, 0]
        assert torch.nn.functional.cosine_similarity(
            emb, ref_emb, dim=0
        ) == pytest.approx(float(score), abs=1e-4)


def test_official_trainer_layout_converts(tmp_path):
    """A checkpoint saved as the official trainer saves it converts, and the
    converted model computes the official network's embeddings."""
    from tests.official_code import official_speakernet

    torch.manual_seed(0)
    official = official_speakernet(n_classes=11).eval()
    state = official.state_dict()  # what SpeakerNet.saveParameters saves
    kernels = [k for k in state if k.endswith("resampler.kernel")]
    assert len(kernels) == 2 and all(k.startswith("__S__.") for k in kernels)
    folder = convert(_save(state, tmp_path), str(tmp_path / "out"))
    card = (tmp_path / "out" / "README.md").read_text()
    assert all(k[len("__S__."):] in card for k in kernels)
    clf = torch.load(
        tmp_path / "out" / "classifier.ckpt", weights_only=True
    )
    assert torch.equal(clf["weight"], state["__L__.weight"])

    from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    from speechbrain_ext.pretrained import OFFICIAL_MODEL_KWARGS

    ours = MRRawNet(**OFFICIAL_MODEL_KWARGS)
    ours.load_state_dict(
        torch.load(f"{folder}/embedding_model.ckpt", weights_only=True)
    )
    wav = torch.randn(1, 16000, dtype=torch.float64) * 0.1
    with torch.no_grad():
        ref = official.__S__.double()(wav)
        got = ours.double().eval()(wav, None)[:, 0]
    assert (got - ref).abs().max() < 1e-6


@pytest.mark.parametrize(
    "key, shape",
    [
        ("__S__.speed_perturbation.speed_perturbation.speeders.2.resampler"
         ".kernel", (10, 1, 23)),
        ("__S__.speed_perturbation.speed_perturbation.speeders.0.resampler"
         ".kernel", (10, 1, 25)),
        ("__S__.speed_perturbation.speed_perturbation.speeders.0.resampler"
         ".width", (1,)),
    ],
)
def test_other_speed_perturbation_keys_are_refused(official_state, tmp_path,
                                                   key, shape):
    state = dict(official_state)
    state[key] = torch.zeros(shape)
    with pytest.raises(ValueError, match=re.escape(key[len("__S__."):])):
        convert(_save(state, tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_fixture_carries_the_augmentation_kernels(official_state):
    from speechbrain_ext.convert_official import AUGMENTATION_BUFFERS

    for key, shape in AUGMENTATION_BUFFERS.items():
        assert tuple(official_state[f"__S__.{key}"].shape) == shape
