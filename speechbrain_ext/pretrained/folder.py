"""Writes a self-contained pretrained folder for ``EncoderClassifier``.

A pretrained folder holds everything ``EncoderClassifier.from_hparams``
needs, with no hub ID or absolute path anywhere, so it loads offline and can
be moved or archived: ``hyperparams.yaml``
(:mod:`speechbrain_ext.pretrained.hyperparams`), ``embedding_model.ckpt``
and ``classifier.ckpt`` (state dicts, checked strictly before writing),
``label_encoder.txt`` and ``label_encoder.ckpt`` when speaker labels are
known (:mod:`speechbrain_ext.pretrained.label_encoder`), and a short model
card, ``README.md``.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os

import torch

from speechbrain_ext.atomic_files import atomic_write, atomic_write_text
from speechbrain_ext.pretrained.hyperparams import hyperparams_yaml
from speechbrain_ext.pretrained.label_encoder import write_label_encoder
from speechbrain_ext.pretrained.strict_loading import load_state_dict_strict


def write_pretrained_folder(out_dir, model_kwargs, embedding_state,
                            classifier_weight, labels=None, card=""):
    """Writes a self-contained pretrained folder for ``EncoderClassifier``.

    Arguments
    ---------
    out_dir : str
        Folder to create or update.
    model_kwargs : dict
        ``MRRawNet`` constructor arguments.
    embedding_state : dict
        ``MRRawNet`` state dict (checked strictly before writing).
    classifier_weight : torch.Tensor
        Cosine classifier weights ``[n_classes, emb_dim]``.
    labels : list of str or None
        Speaker label of each classifier row, in order.
    card : str
        Extra model-card text (origin, results).

    Returns
    -------
    str
        ``out_dir``.

    Example
    -------
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> kw = dict(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...           tcn_repeats=1, tcn_blocks=1, channels=8,
    ...           mra_depths=[1, 1, 1], aggregate_channels=8,
    ...           attention_channels=4, lin_neurons=4)
    >>> out = write_pretrained_folder(str(getfixture("tmp_path")), kw,
    ...     MRRawNet(**kw).state_dict(), torch.randn(3, 4), ["a", "b", "c"])
    >>> sorted(os.listdir(out))  # doctest: +NORMALIZE_WHITESPACE
    ['README.md', 'classifier.ckpt', 'embedding_model.ckpt',
     'hyperparams.yaml', 'label_encoder.ckpt', 'label_encoder.txt']
    """
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier

    from speechbrain_ext.lobes.mr_rawnet import MRRawNet

    model_kwargs = dict(model_kwargs)
    load_state_dict_strict(
        MRRawNet(**model_kwargs), embedding_state, "embedding model"
    )
    n_classes, emb_dim = classifier_weight.shape
    if emb_dim != model_kwargs.get("lin_neurons", 256):
        raise ValueError(
            f"classifier weight is {list(classifier_weight.shape)} but the "
            f"embedding size is {model_kwargs.get('lin_neurons', 256)}"
        )
    if labels is not None and len(labels) != n_classes:
        raise ValueError(
            f"{len(labels)} speaker labels for a classifier of {n_classes} "
            "classes"
        )
    classifier = Classifier(emb_dim, lin_blocks=0, out_neurons=n_classes)
    load_state_dict_strict(
        classifier, {"weight": classifier_weight.detach().float()},
        "classifier weight",
    )
    os.makedirs(out_dir, exist_ok=True)

    def save_state(name, state):
        # Saved through a file object, torch names the archive "archive",
        # so re-exports of the same weights are byte-identical.
        path = os.path.join(out_dir, name)
        atomic_write(path, lambda f: torch.save(state, f), binary=True)

    save_state(
        "embedding_model.ckpt",
        {k: v.detach().cpu() for k, v in embedding_state.items()},
    )
    save_state("classifier.ckpt", classifier.state_dict())
    for name in ("label_encoder.txt", "label_encoder.ckpt"):
        path = os.path.join(out_dir, name)
        if labels is not None:
            write_label_encoder(path, list(labels))
        elif os.path.exists(path):
            os.remove(path)
    text = hyperparams_yaml(model_kwargs, n_classes, labels is not None)
    atomic_write_text(os.path.join(out_dir, "hyperparams.yaml"), text)
    atomic_write_text(
        os.path.join(out_dir, "README.md"),
        _model_card(model_kwargs, n_classes, labels is not None, card),
    )
    return out_dir


def _model_card(model_kwargs, n_classes, with_labels, card):
    """Short model card of a pretrained folder."""
    config = "\n".join(f"- `{k}`: {v}" for k, v in model_kwargs.items())
    labels = (
        "`label_encoder.txt` maps classifier rows to speaker IDs."
        if with_labels
        else "No speaker labels were given, so `classify_*` returns indices."
    )
    return f"""# MR-RawNet speaker embedding model

Raw 16 kHz waveform in, {model_kwargs.get('lin_neurons', 256)}-d speaker
embedding out (Kim et al., Interspeech 2024). Loads offline with
SpeechBrain:

```python
from speechbrain.inference.speaker import SpeakerRecognition
model = SpeakerRecognition.from_hparams(source="<this folder>",
                                        savedir="<a cache folder>")
score, same = model.verify_files("a.wav", "b.wav")
```

Files at other rates are resampled to 16 kHz and stereo is mixed to mono;
empty or NaN/Inf files raise a `ValueError`. SpeechBrain takes a path whose
folder does not exist for a Hugging Face Hub ID: wrap local paths with
`speechbrain_ext.pretrained.local_audio(path)` for a `FileNotFoundError`
instead. `hyperparams.yaml` can run code (HyperPyYAML): load only folders
you trust; the checkpoints are read weights-only.
Embeddings are length-aware: batching with zero padding does not change
them. Classifier rows: {n_classes}. {labels}

{card}

## Configuration

{config}
"""
