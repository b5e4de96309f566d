"""Converts the official ``MR_RawNet.pt`` into a SpeechBrain pretrained folder.

Usage::

    python -m speechbrain_ext.convert_official MR_RawNet.pt out_dir \\
        [--train_list train_list_v12.txt]

The official trainer saves the state dict of its wrapper: network keys carry
the prefix ``__S__.`` and the AAM-softmax class weights are ``__L__.weight``.
A plain network state dict, or one under a ``"model"`` key, is accepted too.
The two resampling kernels of the official in-model speed perturbation
(``AUGMENTATION_BUFFERS``), which the official trainer saves with the
weights, are accepted with their exact shapes and dropped.
The file is read with ``torch.load(weights_only=True)``: a checkpoint is
untrusted input and must not run code. Every key is renamed to this
package's module names by the table below, and loading is strict: a missing
or unexpected key, or a shape mismatch, is an error that names the keys.

With ``--train_list`` (lines ``id00012 id00012/21Uxsk56VDQ/00001.wav``) the
speaker IDs are written to ``label_encoder.txt`` in the order the official
trainer numbers them (sorted IDs).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import argparse
import os
import re
import sys

import torch

from speechbrain_ext.pretrained import (
    OFFICIAL_MODEL_KWARGS,
    load_state_dict_strict,
    sha256_of,
    write_pretrained_folder,
)

# (official pattern, our replacement); applied in order, first match wins.
_RULES = [
    (r"^preprocess\.0\.", "preemphasis."),
    (r"^preprocess\.1\.", "input_norm."),
    (r"^conv1(\d)\.filterbank\.", r"frontend.branches.\1.sinc."),
    (r"^conv_1x1(\d)\.", r"frontend.branches.\1.proj."),
    (r"^conv2_relu_bn(\d)\.0\.", r"frontend.branches.\1.rate.conv."),
    (r"^conv2_relu_bn(\d)\.2\.", r"frontend.branches.\1.rate.bn."),
    (r"^conv3\.", "frontend.fuse.conv."),
    (r"^bn3\.", "frontend.fuse.bn."),
    (r"^stage(\d)\.(\d+)\.block\.", r"stages.\1.\2.same."),
    (r"^stage(\d)\.(\d+)\.block_up\.0\.", r"stages.\1.\2.up_conv."),
    (r"^stage(\d)\.(\d+)\.block_up\.1\.", r"stages.\1.\2.up."),
    (r"^stage(\d)\.(\d+)\.block_down\.1\.", r"stages.\1.\2.down."),
    (r"^stage(\d)\.(\d+)\.block_down\.2\.", r"stages.\1.\2.down_conv."),
    (r"^stage(\d)\.(\d+)\.gate_moduel\.attention\.0\.",
     r"stages.\1.\2.gate.reduce."),
    (r"^stage(\d)\.(\d+)\.gate_moduel\.attention\.2\.",
     r"stages.\1.\2.gate.bn."),
    (r"^stage(\d)\.(\d+)\.gate_moduel\.attention\.3\.",
     r"stages.\1.\2.gate.expand."),
    (r"^layer4\.", "aggregate."),
    (r"^attention\.0\.", "pooling.reduce."),
    (r"^attention\.2\.", "pooling.bn."),
    (r"^attention\.4\.", "pooling.expand."),
    (r"^bn5\.", "pool_norm."),
    (r"^fc6\.", "fc."),
    (r"^bn6\.", "emb_norm."),
]
#: Buffers the official trainer saves that are not weights: the resampling
#: kernels of the in-model speed perturbation (torchaudio's
#: ``SpeedPerturbation`` at 0.9 and 1.1), with their exact shapes. They are
#: constants of the training-time augmentation, so conversion drops them.
AUGMENTATION_BUFFERS = {
    "speed_perturbation.speed_perturbation.speeders.0.resampler.kernel": (
        10, 1, 23,
    ),
    "speed_perturbation.speed_perturbation.speeders.1.resampler.kernel": (
        10, 1, 25,
    ),
}
_TCN = re.compile(r"^tcn_block(\d)\.(\d+)\.(\d+)\.net\.(.+)$")
_TCN_PARTS = {
    "0.": "expand.",
    "1.": "act1.",
    "2.": "norm1.",
    "3.net.0.": "depthwise.",
    "3.net.1.": "act2.",
    "3.net.2.": "norm2.",
    "3.net.3.": "project.",
}


def rename_official_key(key):
    """Maps one official MR-RawNet key to this package's name for it.

    Arguments
    ---------
    key : str
        An official key without the ``__S__.`` prefix.

    Returns
    -------
    str or None
        The new key, or None if the key is not part of the official network.

    Example
    -------
    >>> rename_official_key("tcn_block2.1.3.net.3.net.2.gamma")
    'frontend.branches.2.tcn.repeats.1.3.norm2.gamma'
    >>> rename_official_key("stage1.2.gate_moduel.attention.3.bias")
    'stages.1.2.gate.expand.bias'
    """
    match = _TCN.match(key)
    if match:
        branch, repeat, block, rest = match.groups()
        for prefix, name in _TCN_PARTS.items():
            if rest.startswith(prefix):
                return (
                    f"frontend.branches.{branch}.tcn.repeats.{repeat}."
                    f"{block}.{name}{rest[len(prefix):]}"
                )
        return None
    for pattern, replacement in _RULES:
        new, n = re.subn(pattern, replacement, key)
        if n:
            return new
    return None


def split_official_checkpoint(state, source="checkpoint"):
    """Splits an official checkpoint into network weights and AAM weights.

    Arguments
    ---------
    state : dict
        What ``torch.load`` returned.
    source : str
        Where it came from, for error messages.

    Returns
    -------
    tuple
        ``(network_state, aam_weight)``; ``aam_weight`` is None when the
        checkpoint has no ``__L__.weight``.

    Example
    -------
    >>> net, aam = split_official_checkpoint(
    ...     {"__S__.fc6.bias": torch.zeros(2),
    ...      "__L__.weight": torch.ones(3, 2)})
    >>> list(net), list(aam.shape)
    (['fc6.bias'], [3, 2])
    """
    if not isinstance(state, dict):
        raise ValueError(
            f"{source}: expected a dict of tensors, got {type(state).__name__}"
        )
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    network, aam, other = {}, None, []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            other.append(key)
        elif key.startswith("__S__."):
            network[key[len("__S__."):]] = value
        elif key == "__L__.weight":
            aam = value
        elif key.startswith("__L__."):
            other.append(key)
        else:
            network[key] = value
    if other:
        raise ValueError(
            f"{source}: unexpected entries {sorted(other)[:10]} (not network "
            "or AAM-softmax weights)"
        )
    return network, aam


def convert_state_dict(network, source="checkpoint"):
    """Renames an official network state dict to this package's keys.

    Arguments
    ---------
    network : dict
        Official keys (no prefix) to tensors.
    source : str
        Where it came from, for error messages.

    Returns
    -------
    dict
        The renamed state dict, float32. The speed-perturbation kernels of
        ``AUGMENTATION_BUFFERS`` are dropped when their shapes are exactly
        the official ones; with any other shape they are refused.

    Example
    -------
    >>> convert_state_dict({"bn6.bias": torch.zeros(2)})
    {'emb_norm.bias': tensor([0., 0.])}
    >>> kernel = next(iter(AUGMENTATION_BUFFERS))
    >>> convert_state_dict({kernel: torch.zeros(10, 1, 23)})
    {}
    """
    renamed, unknown = {}, []
    for key, value in network.items():
        if key in AUGMENTATION_BUFFERS:
            expected = AUGMENTATION_BUFFERS[key]
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"{source}: {key} has shape {list(value.shape)}, the "
                    f"official speed-perturbation kernel is {list(expected)}"
                )
            continue
        new = rename_official_key(key)
        if new is None:
            unknown.append(key)
            continue
        if value.is_floating_point():
            value = value.float()
        renamed[new] = value
    if unknown:
        raise ValueError(
            f"{source}: {len(unknown)} keys are not part of the official "
            f"MR-RawNet network: {sorted(unknown)[:10]}"
        )
    return renamed


def read_train_list_speakers(path):
    """Speaker IDs of an official train list, sorted (the trainer's order).

    Arguments
    ---------
    path : str
        A list with lines ``<speaker> <relative wav path>``.

    Returns
    -------
    list of str
        Sorted unique speaker IDs.

    Example
    -------
    >>> p = os.path.join(str(getfixture("tmp_path")), "train.txt")
    >>> _ = open(p, "w").write("id2 id2/s/1.wav\\nid1 id1/s/1.wav\\n")
    >>> read_train_list_speakers(p)
    ['id1', 'id2']
    """
    speakers = set()
    with open(path) as fh:
        for number, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(
                    f"{path}:{number}: expected '<speaker> <path>', got "
                    f"{line.strip()!r}"
                )
            speakers.add(fields[0])
    if not speakers:
        raise ValueError(f"{path}: the train list is empty")
    return sorted(speakers)


def convert(checkpoint, out_dir, train_list=None):
    """Converts an official checkpoint file into a pretrained folder.

    Arguments
    ---------
    checkpoint : str
        Path of ``MR_RawNet.pt`` (official format).
    out_dir : str
        Pretrained folder to write.
    train_list : str or None
        Official train list, to name the classifier's speakers.

    Returns
    -------
    str
        ``out_dir``.
    """
    from speechbrain_ext.lobes.mr_rawnet import MRRawNet

    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"no checkpoint file at {checkpoint}")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle refused or corrupt file
        raise ValueError(
            f"{checkpoint}: cannot be read as a weights-only checkpoint "
            f"({type(err).__name__}: {err})"
        ) from err
    network, aam = split_official_checkpoint(state, checkpoint)
    weights = convert_state_dict(network, checkpoint)
    load_state_dict_strict(
        MRRawNet(**OFFICIAL_MODEL_KWARGS), weights, checkpoint
    )
    if aam is None:
        raise ValueError(
            f"{checkpoint}: no '__L__.weight' (AAM-softmax classes); "
            "classifier.ckpt needs it"
        )
    labels = None
    if train_list is not None:
        labels = read_train_list_speakers(train_list)
        if len(labels) != aam.shape[0]:
            raise ValueError(
                f"{train_list} has {len(labels)} speakers but the checkpoint "
                f"has {aam.shape[0]} classes"
            )
    card = (
        "## Origin\n\nConverted from the official MR-RawNet checkpoint "
        f"`{os.path.basename(checkpoint)}` (sha256 "
        f"`{sha256_of(checkpoint)}`) by `speechbrain_ext.convert_official`. "
        "The official release reports EER 0.83 % on VoxCeleb1-O "
        "(full-length utterances, cosine scoring)."
    )
    dropped = [key for key in AUGMENTATION_BUFFERS if key in network]
    if dropped:
        card += (
            "\n\nDropped on conversion: "
            + ", ".join(f"`{key}`" for key in dropped)
            + ". These are the resampling kernels of the official network's "
            "in-model speed perturbation (training-time augmentation). They "
            "are constants, not learned weights, and inference never uses "
            "them."
        )
    return write_pretrained_folder(
        out_dir, OFFICIAL_MODEL_KWARGS, weights, aam, labels, card
    )


def main(argv=None):
    """Command-line entry point.

    Arguments
    ---------
    argv : list of str or None
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.convert_official",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("checkpoint", help="official MR_RawNet.pt")
    parser.add_argument("out_dir", help="pretrained folder to write")
    parser.add_argument(
        "--train_list",
        help="official train list, to write label_encoder.txt",
    )
    args = parser.parse_args(argv)
    try:
        out = convert(args.checkpoint, args.out_dir, args.train_list)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote pretrained folder {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
