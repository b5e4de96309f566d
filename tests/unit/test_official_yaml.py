"""hparams/mr_rawnet.yaml is the official protocol by default (rows 1-8 of
issue 10), and the recipe refuses the ways to fool oneself by accident: a
trial list that cannot be found, or a speaker count other than the
classifier's. The recipe's functions run in-process on a tiny model."""

import json
import math

import pytest
from helpers import ROOT, TINY_KWARGS, training_recipe
from hyperpyyaml import load_hyperpyyaml

from speechbrain_ext.data.trial_lists import TrialListNotFoundError
from speechbrain_ext.training.losses import AAMSoftmaxLoss


@pytest.fixture(scope="module")
def recipe():
    return training_recipe()


def _load(tmp_path, **overrides):
    model = json.dumps(TINY_KWARGS).replace('"', "")
    text = "\n".join(
        [f"data_folder: {tmp_path}", f"output_folder: {tmp_path / 'out'}",
         f"model_kwargs: {model}"]
        + [f"{k}: {v}" for k, v in overrides.items()]
    )
    with open(ROOT / "hparams" / "mr_rawnet.yaml") as f:
        return load_hyperpyyaml(f, text)


def test_official_defaults(tmp_path):
    h = _load(tmp_path)
    assert h["trial_lists"] == ["veri_test2.txt"]  # row 1
    assert h["n_neurons_from_data"] is False and h["out_n_neurons"] == 7205
    assert h["p_short_crop"] == 0.5 and h["crop_seconds"] == 3.0  # row 2
    assert len(h["short_crop_seconds"]) == 20
    aug = h["wav_augment"](conditions=["clean"])  # row 3
    assert aug.power_floor == 1e-4
    assert h["valid_ratio"] == 0.0  # row 4
    assert h["eer_trials"] == "trial_lists" and h["eer_interval"] == 1
    assert h["eer_max_seconds"] is None
    assert h["export_checkpoint"] == "last"  # row 5
    assert h["lr_steps_per_epoch"] == "official"  # row 6
    sched = h["lr_scheduler"](steps_per_epoch=100)
    assert (sched.lr_min, sched.lr_max, sched.gamma) == (3e-6, 5e-4, 0.5)
    assert (sched.cycle_steps, sched.warmup_steps) == (6000, 100)
    assert h["sync_batchnorm"] is False  # row 8
    assert math.isinf(h["max_grad_norm"])  # no clipping
    assert isinstance(h["compute_cost"], AAMSoftmaxLoss)
    assert h["compute_cost"].loss_fn.margin == 0.3
    assert h["compute_cost"].loss_fn.scale == 30
    assert h["batch_size"] == 40 and h["max_per_speaker"] == 500
    assert h["number_of_epochs"] == 120


def test_missing_trial_list_stops_unless_opted_out(recipe, tmp_path):
    h = _load(tmp_path)
    with pytest.raises(TrialListNotFoundError, match="veri_test2.txt") as e:
        recipe.resolve_trial_lists(h)
    assert str(tmp_path / "meta" / "veri_test2.txt") in str(e.value)
    assert "--trial_lists=[]" in str(e.value)
    h = _load(tmp_path, trial_lists="[]")
    assert recipe.resolve_trial_lists(h) == []
    assert h["eer_trials"] is None


def test_trial_list_found_in_meta_and_monitored(recipe, tmp_path):
    (tmp_path / "meta").mkdir()
    wav = tmp_path / "wav" / "id10270" / "s"
    wav.mkdir(parents=True)
    (wav / "00001.wav").write_bytes(b"")
    trials = tmp_path / "meta" / "veri_test2.txt"
    trials.write_text("1 id10270/s/00001.wav id10271/t/00002.wav\n")
    h = _load(tmp_path)
    assert recipe.resolve_trial_lists(h) == [str(trials)]
    assert h["eer_trials"] == str(trials)
    assert h["eer_data_folder"] == str(tmp_path / "wav")


def test_speaker_count_must_match(recipe, tmp_path):
    h = _load(tmp_path)
    with pytest.raises(ValueError, match="8 training speakers but "
                       "out_n_neurons is 7205"):
        recipe.check_classifier_size(h, 8)
    h = _load(tmp_path, n_neurons_from_data="True")
    recipe.check_classifier_size(h, 8)
    assert h["classifier"].weight.shape[0] == 8
