"""Start a training run from the weights of another run (strictly).

Large-margin fine-tuning (``hparams/mr_rawnet_lm.yaml``) continues a
trained model with other settings in a new output folder. Its
``init_from`` names the weights to start from, which can be:

* a pretrained folder (``hyperparams.yaml``, ``embedding_model.ckpt``,
  ``classifier.ckpt``, and ``label_encoder.txt`` when it has labels), as
  the training export and the official-checkpoint converter write it;
* a training output folder holding one in ``pretrained/``;
* a checkpoint folder (``save/CKPT+...``), or a save folder, whose most
  recent complete checkpoint is used; the speakers and the model
  configuration then come from the save folder.

Only weights are read (weights-only ``torch.load``), never the optimiser,
scheduler or counters: the new run has its own. Every load is strict: a
missing or unexpected key, a shape that differs or another architecture
(the models' structure, compared layer by layer) is an error naming it,
instead of SpeechBrain's silent partial transfer. The classifier rows are
matched to this run's speakers by label, so a speaker order that differs
is handled; speakers that differ are an error unless
``init_classifier: False`` (a new classifier, with a warning).

A run that resumes from its own checkpoint ignores ``init_from``: the
checkpoint holds the fine-tuned weights.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import json
import os
import pathlib

import torch

from speechbrain_ext.pretrained import load_state_dict_strict
from speechbrain_ext.training.export import (
    LABEL_ENCODER_FILE,
    MODEL_KWARGS_FILE,
    find_checkpoint,
    read_labels,
)

__all__ = ["InitialWeights", "find_initial_weights", "load_initial_weights"]


class InitialWeights:
    """Where the weights of ``init_from`` are, once resolved.

    Arguments
    ---------
    source : str
        The path given.
    embedding : str
        ``embedding_model.ckpt`` to load.
    classifier : str or None
        ``classifier.ckpt`` (None: the source has none).
    labels : list of str or None
        Speaker of each classifier row (None: unknown).
    config : str or None
        The source's ``hyperparams.yaml`` (a pretrained folder).
    model_kwargs : dict or None
        The source's model configuration (a checkpoint).

    Example
    -------
    >>> w = InitialWeights("x", "x/embedding_model.ckpt", None, None)
    >>> w.embedding
    'x/embedding_model.ckpt'
    """

    def __init__(self, source, embedding, classifier, labels, config=None,
                 model_kwargs=None):
        self.source = source
        self.embedding = embedding
        self.classifier = classifier
        self.labels = labels
        self.config = config
        self.model_kwargs = model_kwargs


def _optional(path):
    """``path`` if it is a file, else None."""
    return str(path) if path.is_file() else None


def find_initial_weights(source):
    """Resolves ``init_from`` to the files to load.

    Arguments
    ---------
    source : str
        A pretrained folder, a training output folder with
        ``pretrained/``, a ``CKPT+...`` checkpoint folder or a save folder.

    Returns
    -------
    InitialWeights
        The files, the speakers and the configuration found.

    Raises
    ------
    FileNotFoundError
        If ``source`` is none of these; the message says what was looked
        for.

    Example
    -------
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> from speechbrain_ext.pretrained import write_pretrained_folder
    >>> kw = dict(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...           tcn_repeats=1, tcn_blocks=1, channels=8,
    ...           mra_depths=[1, 1, 1], aggregate_channels=8,
    ...           attention_channels=4, lin_neurons=4)
    >>> out = getfixture("tmp_path")
    >>> _ = write_pretrained_folder(str(out / "pretrained"), kw,
    ...     MRRawNet(**kw).state_dict(), torch.randn(2, 4), ["a", "b"])
    >>> find_initial_weights(str(out)).labels
    ['a', 'b']
    """
    path = pathlib.Path(source)
    if not path.is_dir():
        raise FileNotFoundError(f"init_from {source} is not a folder")
    if (path / "pretrained" / "embedding_model.ckpt").is_file():
        path = path / "pretrained"
    if (path / "hyperparams.yaml").is_file() and (
        path / "embedding_model.ckpt"
    ).is_file():
        labels_file = path / LABEL_ENCODER_FILE
        return InitialWeights(
            source,
            str(path / "embedding_model.ckpt"),
            _optional(path / "classifier.ckpt"),
            read_labels(str(labels_file)) if labels_file.is_file() else None,
            config=(path / "hyperparams.yaml").read_text(encoding="utf-8"),
        )
    if path.name.startswith("CKPT+"):
        ckpt_dir, save = path, path.parent
        find_checkpoint(str(save), str(path))  # complete?
    elif any(p.name.startswith("CKPT+") for p in path.iterdir()):
        save = path
        ckpt_dir = pathlib.Path(find_checkpoint(str(save), "last").path)
    else:
        raise FileNotFoundError(
            f"init_from {source} is neither a pretrained folder "
            "(hyperparams.yaml and embedding_model.ckpt), a training output "
            "folder with pretrained/, a CKPT+... checkpoint nor a save folder "
            "holding checkpoints"
        )
    if not (ckpt_dir / "embedding_model.ckpt").is_file():
        raise FileNotFoundError(f"{ckpt_dir} has no embedding_model.ckpt")
    labels_file = save / LABEL_ENCODER_FILE
    kwargs_file = save / MODEL_KWARGS_FILE
    return InitialWeights(
        source,
        str(ckpt_dir / "embedding_model.ckpt"),
        _optional(ckpt_dir / "classifier.ckpt"),
        read_labels(str(labels_file)) if labels_file.is_file() else None,
        model_kwargs=(
            json.loads(kwargs_file.read_text(encoding="utf-8"))
            if kwargs_file.is_file()
            else None
        ),
    )


def _check_architecture(weights, embedding_model, model_kwargs):
    """Refuses a source built with another configuration than this run."""
    if weights.model_kwargs is not None and model_kwargs is not None:
        ours = json.loads(json.dumps(dict(model_kwargs)))
        theirs = weights.model_kwargs
        differ = sorted(
            k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)
        )
        if differ:
            shown = ", ".join(
                f"{k}: {theirs.get(k)} there, {ours.get(k)} here"
                for k in differ
            )
            raise ValueError(
                f"init_from {weights.source} was trained with another model "
                f"configuration ({shown}); set model_kwargs to match it"
            )
    if weights.config is not None:
        from hyperpyyaml import load_hyperpyyaml

        theirs = load_hyperpyyaml(weights.config).get("embedding_model")
        if theirs is None:
            raise ValueError(
                f"init_from {weights.source}: hyperparams.yaml defines no "
                "embedding_model"
            )
        a, b = repr(theirs).splitlines(), repr(embedding_model).splitlines()
        if a != b:
            n = min(len(a), len(b))
            at = next((i for i in range(n) if a[i] != b[i]), n)
            there = a[at].strip() if at < len(a) else "(end)"
            here = b[at].strip() if at < len(b) else "(end)"
            raise ValueError(
                f"init_from {weights.source} holds another architecture than "
                f"this run's model_kwargs: layer {at} is '{there}' there and "
                f"'{here}' here; set model_kwargs to match it"
            )


def _classifier_state(weights, classifier, labels):
    """The source's classifier weight, rows in this run's speaker order."""
    state = torch.load(weights.classifier, map_location="cpu",
                       weights_only=True)
    weight = state.get("weight")
    if weight is None:
        raise ValueError(f"{weights.classifier} has no 'weight'")
    if weights.labels is not None and labels is not None:
        if sorted(weights.labels) != sorted(labels):
            only_there = sorted(set(weights.labels) - set(labels))
            only_here = sorted(set(labels) - set(weights.labels))
            raise ValueError(
                f"init_from {weights.source} was trained on other speakers "
                f"({len(weights.labels)} there, {len(labels)} here; only "
                f"there: {only_there[:3]}, only here: {only_here[:3]}); set "
                "init_classifier: False to start a new classifier"
            )
        row = {label: i for i, label in enumerate(weights.labels)}
        weight = weight[[row[label] for label in labels]]
    load_state_dict_strict(
        classifier, {**state, "weight": weight},
        f"classifier of init_from {weights.source}",
    )
    return weight.shape[0]


def load_initial_weights(source, embedding_model, classifier=None,
                         labels=None, model_kwargs=None):
    """Loads ``init_from`` weights into this run's modules, strictly.

    Arguments
    ---------
    source : str
        See :func:`find_initial_weights`.
    embedding_model : torch.nn.Module
        This run's embedding model (filled in place).
    classifier : torch.nn.Module or None
        This run's classifier; None keeps it as it is (a new one).
    labels : list of str or None
        This run's speaker of each classifier row.
    model_kwargs : dict or None
        This run's model configuration (compared with the source's).

    Returns
    -------
    dict
        ``source``, ``embedding`` and ``classifier`` (the files loaded;
        ``classifier`` None when it was not loaded).

    Raises
    ------
    ValueError
        If the source does not match this run; the message says what
        differs and what to do.

    Example
    -------
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> from speechbrain_ext.pretrained import write_pretrained_folder
    >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    >>> kw = dict(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...           tcn_repeats=1, tcn_blocks=1, channels=8,
    ...           mra_depths=[1, 1, 1], aggregate_channels=8,
    ...           attention_channels=4, lin_neurons=4)
    >>> rows = torch.eye(2, 4)
    >>> folder = write_pretrained_folder(str(getfixture("tmp_path")), kw,
    ...     MRRawNet(**kw).state_dict(), rows, ["a", "b"])
    >>> clf = Classifier(4, lin_blocks=0, out_neurons=2)
    >>> _ = load_initial_weights(folder, MRRawNet(**kw), clf, ["b", "a"])
    >>> torch.equal(clf.weight, rows[[1, 0]])  # rows follow the labels
    True
    """
    weights = find_initial_weights(source)
    _check_architecture(weights, embedding_model, model_kwargs)
    state = torch.load(weights.embedding, map_location="cpu",
                       weights_only=True)
    load_state_dict_strict(
        embedding_model, state, f"embedding model of init_from {source}"
    )
    loaded = None
    if classifier is not None:
        if weights.classifier is None:
            raise ValueError(
                f"init_from {source} has no classifier.ckpt; set "
                "init_classifier: False to start a new classifier"
            )
        _classifier_state(weights, classifier, labels)
        loaded = weights.classifier
    return {
        "source": os.path.abspath(source),
        "embedding": weights.embedding,
        "classifier": loaded,
    }
