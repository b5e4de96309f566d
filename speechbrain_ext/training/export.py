"""Export a training checkpoint as a pretrained folder for EncoderClassifier.

The training recipe saves, in its ``save_folder``:

* checkpoints ``CKPT+.../`` holding ``embedding_model.ckpt`` and
  ``classifier.ckpt`` (and the optimiser, counters, ...);
* ``label_encoder.txt``: the speaker of every classifier row;
* ``model_kwargs.json``: the ``MRRawNet`` constructor arguments.

:func:`export_pretrained` picks the best checkpoint (lowest validation
``error_rate``), the last one, or a given folder, and writes a
self-contained pretrained folder with
:func:`speechbrain_ext.pretrained.write_pretrained_folder`. The checkpoint
files are read directly; nothing else of the run is needed. Command line::

    python -m speechbrain_ext.training.export SAVE_FOLDER OUT_DIR \\
        [--which best|last|<CKPT folder>]

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import argparse
import json
import os
import pathlib
import sys

import torch

from speechbrain_ext.atomic_files import atomic_write_text
from speechbrain_ext.pretrained import write_pretrained_folder
from speechbrain_ext.training.safe_checkpointer import SafeCheckpointer

MODEL_KWARGS_FILE = "model_kwargs.json"
LABEL_ENCODER_FILE = "label_encoder.txt"


def write_model_kwargs(save_folder, model_kwargs):
    """Saves the model constructor arguments beside the checkpoints.

    Arguments
    ---------
    save_folder : str
        The recipe's save folder.
    model_kwargs : dict
        ``MRRawNet`` constructor arguments (JSON-serialisable).

    Returns
    -------
    str
        Path of ``model_kwargs.json``.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> path = write_model_kwargs(folder, {"lin_neurons": 4})
    >>> json.load(open(path))
    {'lin_neurons': 4}
    """
    return atomic_write_text(
        os.path.join(save_folder, MODEL_KWARGS_FILE),
        json.dumps(dict(model_kwargs), indent=1, sort_keys=True),
    )


def read_labels(label_encoder_file):
    """Speaker labels of a ``CategoricalEncoder`` file, in index order.

    Arguments
    ---------
    label_encoder_file : str
        A file written by ``CategoricalEncoder.save``.

    Returns
    -------
    list of str
        The label of index 0, 1, 2, ...

    Example
    -------
    >>> from speechbrain_ext.pretrained import write_label_encoder
    >>> path = str(getfixture("tmp_path") / "labels.txt")
    >>> _ = write_label_encoder(path, ["b", "a"])
    >>> read_labels(path)
    ['b', 'a']
    """
    from speechbrain.dataio.encoder import CategoricalEncoder

    encoder = CategoricalEncoder()
    encoder.load(label_encoder_file)
    indices = sorted(encoder.ind2lab)
    if indices != list(range(len(indices))):
        raise ValueError(
            f"{label_encoder_file}: indices are not 0..{len(indices) - 1}"
        )
    return [encoder.ind2lab[i] for i in indices]


def find_checkpoint(save_folder, which="best", min_key="error_rate"):
    """Finds a complete checkpoint of a run.

    Arguments
    ---------
    save_folder : str
        The folder holding the ``CKPT+...`` folders.
    which : str
        ``best`` (lowest ``min_key``; falls back to the last checkpoint
        when none has the key), ``last`` (the most recent), or the path
        of a checkpoint folder.
    min_key : str
        Meta key for ``best``.

    Returns
    -------
    speechbrain.utils.checkpoints.Checkpoint
        The checkpoint (``path``, ``meta``, ``paramfiles``).

    Raises
    ------
    FileNotFoundError
        If there is no complete checkpoint.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> ckpter = SafeCheckpointer(folder, {"m": torch.nn.Linear(1, 1)})
    >>> _ = ckpter.save_checkpoint(meta={"error_rate": 0.5})
    >>> find_checkpoint(str(folder)).meta["error_rate"]
    0.5
    """
    if which not in ("best", "last"):
        path = pathlib.Path(which)
        if not SafeCheckpointer.is_complete(path):
            raise FileNotFoundError(f"{path} is not a complete checkpoint")
        ckpts = SafeCheckpointer._construct_checkpoint_objects([path])
        return ckpts[0]
    if not os.path.isdir(save_folder):
        raise FileNotFoundError(f"save folder {save_folder} does not exist")
    ckpter = SafeCheckpointer(save_folder)
    ckpt = None
    if which == "best":
        ckpt = ckpter.find_checkpoint(min_key=min_key)
    if ckpt is None:
        ckpt = ckpter.find_checkpoint()
    if ckpt is None:
        raise FileNotFoundError(f"no complete checkpoint in {save_folder}")
    return ckpt


def export_pretrained(
    save_folder,
    out_dir,
    which="best",
    model_kwargs=None,
    labels=None,
    card="",
):
    """Writes a pretrained folder from a checkpoint of a training run.

    Arguments
    ---------
    save_folder : str
        The run's save folder (checkpoints, ``label_encoder.txt``,
        ``model_kwargs.json``).
    out_dir : str
        The pretrained folder to write.
    which : str
        ``best``, ``last`` or a checkpoint folder (see
        :func:`find_checkpoint`).
    model_kwargs : dict or None
        Model arguments; default read from ``model_kwargs.json``.
    labels : list of str or None
        Speaker of every classifier row; default read from
        ``label_encoder.txt`` when it exists.
    card : str
        Extra model-card text.

    Returns
    -------
    dict
        ``out_dir``, ``checkpoint`` (the folder used) and its ``meta``.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> kw = dict(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...           tcn_repeats=1, tcn_blocks=1, channels=8,
    ...           mra_depths=[1, 1, 1], aggregate_channels=8,
    ...           attention_channels=4, lin_neurons=4)
    >>> save = getfixture("tmp_path") / "save"
    >>> ckpter = SafeCheckpointer(save, {
    ...     "embedding_model": MRRawNet(**kw),
    ...     "classifier": Classifier(4, out_neurons=3)})
    >>> _ = ckpter.save_checkpoint(meta={"error_rate": 0.1})
    >>> _ = write_model_kwargs(str(save), kw)
    >>> out = export_pretrained(str(save), str(save.parent / "pretrained"))
    >>> sorted(os.listdir(out["out_dir"]))[:3]
    ['README.md', 'classifier.ckpt', 'embedding_model.ckpt']
    """
    ckpt = find_checkpoint(save_folder, which)
    for name in ("embedding_model", "classifier"):
        if name not in ckpt.paramfiles:
            raise FileNotFoundError(f"{ckpt.path} has no {name}.ckpt")
    if model_kwargs is None:
        kwargs_file = os.path.join(save_folder, MODEL_KWARGS_FILE)
        if not os.path.isfile(kwargs_file):
            raise FileNotFoundError(
                f"{kwargs_file} not found; pass model_kwargs"
            )
        with open(kwargs_file, encoding="utf-8") as f:
            model_kwargs = json.load(f)
    if labels is None:
        label_file = os.path.join(save_folder, LABEL_ENCODER_FILE)
        if os.path.isfile(label_file):
            labels = read_labels(label_file)

    def load(name):
        return torch.load(
            ckpt.paramfiles[name], map_location="cpu", weights_only=True
        )

    embedding_state = load("embedding_model")
    classifier_state = load("classifier")
    if set(classifier_state) != {"weight"}:
        raise ValueError(
            f"{ckpt.paramfiles['classifier']}: expected a cosine classifier "
            f"with only 'weight', got {sorted(classifier_state)}"
        )
    meta = {
        k: v
        for k, v in ckpt.meta.items()
        if k in ("epoch", "error_rate", "train_loss", "end-of-epoch")
    }
    origin = ", ".join(f"{k}: {v}" for k, v in sorted(meta.items()))
    card = (
        f"Exported from training checkpoint `{ckpt.path.name}` "
        f"({origin}).\n\n{card}"
    )
    write_pretrained_folder(
        out_dir,
        model_kwargs,
        embedding_state,
        classifier_state["weight"],
        labels=labels,
        card=card,
    )
    return {"out_dir": out_dir, "checkpoint": str(ckpt.path), "meta": meta}


def main(argv=None):
    """Command line entry point (see the module docstring).

    Arguments
    ---------
    argv : list of str or None
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.

    Example
    -------
    >>> main(["/nonexistent/save", "/tmp/out"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: save folder /nonexistent/save does not exist
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.training.export",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("save_folder", help="the run's save folder")
    parser.add_argument("out_dir", help="pretrained folder to write")
    parser.add_argument(
        "--which", default="best", help="best, last or a CKPT folder"
    )
    args = parser.parse_args(argv)
    result = export_pretrained(args.save_folder, args.out_dir, args.which)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
