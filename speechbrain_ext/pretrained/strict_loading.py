"""Strict, weights-only loading of the checkpoints of a pretrained folder.

SpeechBrain's default parameter transfer is non-strict and only logs a
warning when keys do not match, so a wrong checkpoint silently yields a
random model. Every load here goes through :func:`load_state_dict_strict`,
which raises an error naming the offending keys. The checkpoints are read
with ``torch.load(weights_only=True)`` (:func:`strict_transfer`), so a
crafted pickle is refused without running its code;
:func:`strict_label_transfer` refuses a corrupt label encoder. The two
hooks are the Pretrainer's ``custom_hooks`` of every ``hyperparams.yaml``
written here (as ``speechbrain_ext.pretrained.strict_transfer`` and
``speechbrain_ext.pretrained.strict_label_transfer``).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os

import torch

_MAX_LISTED = 10


def _listing(names):
    """First names of a list, with the total count."""
    names = sorted(names)
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def load_state_dict_strict(module, state_dict, source="state dict"):
    """Loads ``state_dict`` into ``module``, refusing any mismatch.

    Arguments
    ---------
    module : torch.nn.Module
        The module to fill.
    state_dict : dict
        Tensors by key.
    source : str
        Where the state dict comes from, for error messages.

    Returns
    -------
    torch.nn.Module
        ``module``, loaded.

    Raises
    ------
    ValueError
        If keys are missing or unexpected, or shapes differ; the message
        names them.

    Example
    -------
    >>> layer = torch.nn.Linear(2, 3)
    >>> _ = load_state_dict_strict(layer, torch.nn.Linear(2, 3).state_dict())
    >>> load_state_dict_strict(layer, {"weight": torch.zeros(3, 2)})
    Traceback (most recent call last):
    ...
    ValueError: state dict does not match Linear: missing keys: bias
    """
    expected = module.state_dict()
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    shapes = [
        f"{k} {list(state_dict[k].shape)} != {list(expected[k].shape)}"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_listing(shapes)}")
    if problems:
        raise ValueError(
            f"{source} does not match {type(module).__name__}: "
            + "; ".join(problems)
        )
    module.load_state_dict(state_dict, strict=True)
    return module


def strict_transfer(obj, path):
    """Pretrainer hook: strict, weights-only loading of a module checkpoint.

    Arguments
    ---------
    obj : torch.nn.Module
        The module to fill.
    path : str or pathlib.Path
        A ``torch.save``'d state dict.

    Returns
    -------
    torch.nn.Module
        ``obj``, loaded.

    Example
    -------
    >>> path = os.path.join(str(getfixture("tmp_path")), "layer.ckpt")
    >>> torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    >>> _ = strict_transfer(torch.nn.Linear(2, 2), path)
    >>> torch.save([1, 2], path)
    >>> strict_transfer(torch.nn.Linear(2, 2), path)
    Traceback (most recent call last):
    ...
    ValueError: ... is not a state dict of tensors (got list)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle refused, corrupt or truncated file
        raise ValueError(
            f"{path}: cannot be read as a weights-only checkpoint "
            f"({type(err).__name__}: {err})"
        ) from err
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"{path} is not a state dict of tensors (got "
            f"{type(state).__name__})"
        )
    return load_state_dict_strict(obj, state, source=str(path))


def strict_label_transfer(obj, path, n_classes=None):
    """Pretrainer hook: loads a label encoder, refusing a corrupt file.

    SpeechBrain's default hook for a ``CategoricalEncoder`` ignores a file
    it cannot parse and leaves the encoder empty, so ``classify_*`` fails
    much later. The file format is Python literals, read with
    ``ast.literal_eval``, which never runs code.

    Arguments
    ---------
    obj : speechbrain.dataio.encoder.CategoricalEncoder
        The encoder to fill.
    path : str or pathlib.Path
        A ``CategoricalEncoder`` file.
    n_classes : int or None
        Expected number of labels (the classifier's rows).

    Returns
    -------
    speechbrain.dataio.encoder.CategoricalEncoder
        ``obj``, loaded.

    Example
    -------
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> from speechbrain_ext.pretrained.label_encoder import (
    ...     write_label_encoder)
    >>> path = os.path.join(str(getfixture("tmp_path")), "label_encoder.txt")
    >>> _ = write_label_encoder(path, ["a", "b"])
    >>> len(strict_label_transfer(CategoricalEncoder(), path, 2))
    2
    >>> strict_label_transfer(CategoricalEncoder(), path, 3)
    Traceback (most recent call last):
    ...
    ValueError: ... has 2 labels but the classifier has 3 classes
    """
    try:
        obj.load(path)
    except (ValueError, SyntaxError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: not a valid label encoder file "
            f"({type(err).__name__}: {err})"
        ) from err
    if n_classes is not None and len(obj) != n_classes:
        raise ValueError(
            f"{path} has {len(obj)} labels but the classifier has "
            f"{n_classes} classes"
        )
    return obj
