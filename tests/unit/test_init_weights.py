"""Starting a run from other weights (init_from): strict, by label."""

import pytest
import torch
from helpers import TINY_KWARGS
from speechbrain.lobes.models.ECAPA_TDNN import Classifier

from speechbrain_ext.lobes.mr_rawnet import MRRawNet
from speechbrain_ext.pretrained import (
    write_label_encoder,
    write_pretrained_folder,
)
from speechbrain_ext.training.export import write_model_kwargs
from speechbrain_ext.training.init_weights import (
    find_initial_weights,
    load_initial_weights,
)
from speechbrain_ext.training.safe_checkpointer import SafeCheckpointer

LABELS = ["id1", "id2", "id3"]


def _model(seed, **change):
    torch.manual_seed(seed)
    return MRRawNet(**{**TINY_KWARGS, **change})


def _same(a, b):
    """Whether two models hold the same tensors."""
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(),
                        strict=True)
    )


def _classifier(rows=3):
    return Classifier(TINY_KWARGS["lin_neurons"], lin_blocks=0,
                      out_neurons=rows)


@pytest.fixture
def source(tmp_path):
    """A pretrained folder with known weights and three labelled rows."""
    model = _model(1)
    rows = torch.randn(3, TINY_KWARGS["lin_neurons"])
    folder = write_pretrained_folder(
        str(tmp_path / "src"), TINY_KWARGS, model.state_dict(), rows, LABELS
    )
    return folder, model, rows


def test_pretrained_folder_loads_exactly(source):
    folder, model, rows = source
    ours, clf = _model(2), _classifier()
    out = load_initial_weights(folder, ours, clf, LABELS, TINY_KWARGS)
    assert _same(ours, model)
    assert torch.equal(clf.weight, rows)
    assert out["classifier"].endswith("classifier.ckpt")


def test_classifier_rows_follow_the_labels(source):
    folder, _, rows = source
    clf = _classifier()
    load_initial_weights(folder, _model(2), clf, ["id3", "id1", "id2"])
    assert torch.equal(clf.weight, rows[[2, 0, 1]])


def test_other_speakers_are_refused_unless_the_classifier_is_new(source):
    folder, model, _ = source
    with pytest.raises(ValueError, match="init_classifier: False"):
        load_initial_weights(folder, _model(2), _classifier(),
                             ["id1", "id2", "id9"])
    ours = _model(2)
    out = load_initial_weights(folder, ours, None, ["id1", "id2", "id9"])
    assert out["classifier"] is None
    assert _same(ours, model)


def test_another_architecture_is_refused(source):
    folder, _, _ = source
    # same shapes, another dilation: only the structure tells them apart
    other = _model(2, mra_dilation=3)
    with pytest.raises(ValueError, match="another architecture"):
        load_initial_weights(folder, other)
    with pytest.raises(ValueError, match="shape mismatches|another"):
        load_initial_weights(folder, _model(2, channels=12))


def test_checkpoint_and_save_folder(tmp_path):
    save = tmp_path / "save"
    model, clf = _model(3), _classifier()
    ckpter = SafeCheckpointer(str(save), {"embedding_model": model,
                                          "classifier": clf})
    ckpt = ckpter.save_checkpoint()
    write_label_encoder(str(save / "label_encoder.txt"), LABELS)
    write_model_kwargs(str(save), TINY_KWARGS)
    for where in (save, ckpt.path):
        ours, new_clf = _model(4), _classifier()
        load_initial_weights(str(where), ours, new_clf, LABELS, TINY_KWARGS)
        assert _same(ours, model)
        assert torch.equal(new_clf.weight, clf.weight)
    assert find_initial_weights(str(save)).labels == LABELS
    wider = {**TINY_KWARGS, "mra_scale": 2}
    with pytest.raises(ValueError, match="mra_scale: 4 there, 2 here"):
        load_initial_weights(str(save), _model(4), None, None, wider)


def test_a_missing_key_is_named(source):
    folder, model, _ = source
    state = model.state_dict()
    key = sorted(state)[0]
    del state[key]
    torch.save(state, f"{folder}/embedding_model.ckpt")
    with pytest.raises(ValueError, match=f"missing keys: {key}"):
        load_initial_weights(folder, _model(2))


def test_nothing_to_load_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_initial_weights(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a pretrained"):
        find_initial_weights(str(tmp_path / "empty"))
    (tmp_path / "src").mkdir()
    torch.save({}, tmp_path / "src" / "embedding_model.ckpt")
    (tmp_path / "src" / "hyperparams.yaml").write_text("x: 1\n")
    with pytest.raises(ValueError, match="defines no embedding_model"):
        load_initial_weights(str(tmp_path / "src"), _model(1))
