"""The embedding model of a pretrained folder, for scoring and embedding.

:func:`resolve_pretrained_folder` accepts a pretrained folder or a training
output folder holding one in ``pretrained/``; :func:`load_embedding_model`
builds the model its ``hyperparams.yaml`` defines and loads
``embedding_model.ckpt`` into it strictly.

Authors
 * MR-RawNet recipe contributors
"""

import os

__all__ = [
    "load_embedding_model",
    "resolve_pretrained_folder",
]


def resolve_pretrained_folder(path):
    """Finds the pretrained folder of a model folder or a training output.

    Arguments
    ---------
    path : str
        A pretrained folder (``hyperparams.yaml`` and
        ``embedding_model.ckpt``) or a training output folder holding one
        in ``pretrained/``.

    Returns
    -------
    str
        Absolute path of the pretrained folder.

    Raises
    ------
    FileNotFoundError
        If neither layout is found; the message says what was looked for.

    Example
    -------
    >>> out = str(getfixture("tmp_path"))
    >>> os.makedirs(os.path.join(out, "pretrained"))
    >>> for name in ("hyperparams.yaml", "embedding_model.ckpt"):
    ...     open(os.path.join(out, "pretrained", name), "w").close()
    >>> resolve_pretrained_folder(out) == os.path.join(out, "pretrained")
    True
    """
    needed = ("hyperparams.yaml", "embedding_model.ckpt")
    path = os.path.abspath(os.fspath(path))
    for folder in (path, os.path.join(path, "pretrained")):
        if all(os.path.isfile(os.path.join(folder, n)) for n in needed):
            return folder
    if not os.path.isdir(path):
        raise FileNotFoundError(f"pretrained_path {path} does not exist")
    raise FileNotFoundError(
        f"pretrained_path {path} is neither a pretrained folder "
        f"({' + '.join(needed)}) nor a training output folder with "
        f"pretrained/{needed[0]} and pretrained/{needed[1]}"
    )


def load_embedding_model(folder):
    """Builds the embedding model of a pretrained folder and loads it strictly.

    ``hyperparams.yaml`` is HyperPyYAML, which can run code: load only
    folders you trust.

    Arguments
    ---------
    folder : str
        A pretrained folder (see :func:`resolve_pretrained_folder`).

    Returns
    -------
    model : torch.nn.Module
        The ``embedding_model``, weights loaded, in eval mode.
    checkpoint : str
        Path of ``embedding_model.ckpt``.
    config : str
        The text of ``hyperparams.yaml``.

    Example
    -------
    >>> import torch
    >>> from speechbrain_ext.pretrained import write_pretrained_folder
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> kw = dict(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...           tcn_repeats=1, tcn_blocks=1, channels=8,
    ...           mra_depths=[1, 1, 1], aggregate_channels=8,
    ...           attention_channels=4, lin_neurons=4)
    >>> folder = write_pretrained_folder(str(getfixture("tmp_path")), kw,
    ...     MRRawNet(**kw).state_dict(), torch.randn(3, 4))
    >>> model, ckpt, config = load_embedding_model(folder)
    >>> type(model).__name__, os.path.basename(ckpt)
    ('MRRawNet', 'embedding_model.ckpt')
    """
    from hyperpyyaml import load_hyperpyyaml

    from speechbrain_ext.pretrained import strict_transfer

    config_path = os.path.join(folder, "hyperparams.yaml")
    checkpoint = os.path.join(folder, "embedding_model.ckpt")
    with open(config_path, encoding="utf-8") as f:
        config = f.read()
    hparams = load_hyperpyyaml(config)
    if "embedding_model" not in hparams:
        raise KeyError(f"{config_path} defines no embedding_model")
    model = strict_transfer(hparams["embedding_model"], checkpoint)
    return model.eval(), checkpoint, config
