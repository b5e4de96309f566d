"""The large-margin fine-tuning hparams change only what LM changes.

``hparams/mr_rawnet_lm.yaml`` must be ``mr_rawnet.yaml`` with the LM
settings (margin, crops, learning rate, epochs, the weights to start from,
the output folder) and nothing else, and likewise the demo pair; drift in
any other key (a new base setting not carried over, say) fails here.
"""

import re

import pytest
from helpers import ROOT
from hyperpyyaml import load_hyperpyyaml

HPARAMS = ROOT / "hparams"

#: The keys fine-tuning may change, per pair.
LM_KEYS = {
    "output_folder",
    "init_from",
    "crop_seconds",
    "aam_margin",
    "number_of_epochs",
    "lr_max",
    "lr_min",
    "lr_cycle_epochs",
}
PAIRS = [
    ("mr_rawnet.yaml", "mr_rawnet_lm.yaml", LM_KEYS),
    ("mr_rawnet_demo.yaml", "mr_rawnet_demo_lm.yaml", LM_KEYS | {
        "warmup_epochs"}),
]


def top_level_blocks(path):
    """Top-level key -> its text (nested lines included), comments out."""
    blocks, key = {}, None
    for line in path.read_text().splitlines():
        text = re.sub(r"\s+#.*$", "", line).rstrip()
        if not text or text.lstrip().startswith("#"):
            continue
        match = re.match(r"^([A-Za-z_]\w*):(.*)$", text)
        if match:
            key = match[1]
            blocks[key] = [match[2].strip()]
        else:
            assert key is not None, f"{path}: {line!r} before any key"
            blocks[key].append(text.strip())
    return blocks


@pytest.mark.parametrize("base, lm, allowed", PAIRS)
def test_only_the_lm_keys_differ(base, lm, allowed):
    """Same keys; every value outside ``allowed`` identical."""
    a = top_level_blocks(HPARAMS / base)
    b = top_level_blocks(HPARAMS / lm)
    assert set(a) == set(b)
    differ = {k for k in a if a[k] != b[k]}
    assert differ <= allowed, differ - allowed
    # margin, crops and learning rate are what LM is about
    assert {"aam_margin", "crop_seconds", "lr_max", "init_from"} <= differ


@pytest.mark.parametrize("base, lm, allowed", PAIRS)
def test_lm_values(base, lm, allowed):
    """Larger margin, longer crops, a much lower rate, weights required."""

    def load(name, **overrides):
        with open(HPARAMS / name) as f:
            return load_hyperpyyaml(f, {"data_folder": "/nowhere", **overrides})

    a, b = load(base), load(lm, init_from="/weights")
    assert b["aam_margin"] == 0.5 > a["aam_margin"]
    assert b["crop_seconds"] == 2 * a["crop_seconds"]
    assert b["lr_max"] <= a["lr_max"] / 50
    assert b["lr_min"] == b["lr_max"] / 4
    assert b["lr_cycle_epochs"] == b["number_of_epochs"] <= 5
    assert b["compute_cost"].loss_fn.margin == 0.5
    # the noise clips follow the crop length
    assert b["wav_augment"].keywords["clip_seconds"] == b["crop_seconds"]
    assert a["init_from"] is None and b["init_from"] == "/weights"
    # short crops stay in the mix (MR-RawNet's point)
    assert b["p_short_crop"] == a["p_short_crop"] > 0


def test_lm_needs_weights():
    """Fine-tuning without init_from is refused when the yaml loads."""
    with open(HPARAMS / "mr_rawnet_lm.yaml") as f:
        with pytest.raises(ValueError, match="init_from"):
            load_hyperpyyaml(f, {"data_folder": "/nowhere"})
