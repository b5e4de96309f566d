"""Digests of checkpoints, state dicts and files.

:func:`state_digest` and :func:`state_dict_digest` hash tensors (names,
dtypes, shapes, values), so the same weights saved twice have one digest;
:func:`sha256_of` hashes a file's bytes (model cards, cache identities).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import hashlib

import torch


def state_digest(path):
    """SHA-256 of a checkpoint's tensors (names, dtypes, shapes, values).

    Unlike a hash of the file's bytes, it does not change when the same
    weights are saved again.

    Arguments
    ---------
    path : str
        A ``torch.save``'d state dict.

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> import os
    >>> a = os.path.join(str(getfixture("tmp_path")), "a.ckpt")
    >>> b = str(getfixture("tmp_path") / "b.ckpt")
    >>> state = torch.nn.Linear(2, 2).state_dict()
    >>> torch.save(state, a); torch.save(state, b)
    >>> state_digest(a) == state_digest(b)
    True
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state_dict_digest(state)


def state_dict_digest(state):
    """SHA-256 of a state dict: names, dtypes, shapes and values.

    Equal digests mean bit-identical tensors. Used for checkpoint files
    (:func:`state_digest`) and for live modules (training's weight checks).

    Arguments
    ---------
    state : dict
        Names to tensors (other values are hashed by ``repr``).

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> a = {"w": torch.ones(2)}
    >>> state_dict_digest(a) == state_dict_digest({"w": torch.ones(2)})
    True
    >>> state_dict_digest(a) == state_dict_digest({"w": torch.ones(2, 1)})
    False
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        digest.update(f"{key}|".encode())
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().contiguous()
            digest.update(f"{value.dtype}|{list(value.shape)}|".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(value).encode("utf-8"))
    return digest.hexdigest()


def sha256_of(path, chunk=1 << 20):
    """SHA-256 of a file, for model cards.

    Arguments
    ---------
    path : str
        File to hash.
    chunk : int
        Read size.

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> import os
    >>> path = os.path.join(str(getfixture("tmp_path")), "x")
    >>> _ = open(path, "wb").write(b"abc")
    >>> sha256_of(path)[:8]
    'ba7816bf'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
