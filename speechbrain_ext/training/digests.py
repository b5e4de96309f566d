"""Digests of module weights, to tell bit-identical models apart.

Used by the DDP tests (every rank ends with the same weights) and by the
resume tests (a resumed run ends where an uninterrupted one does).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""


import torch  # noqa: F401 (doctests)

from speechbrain_ext.pretrained import state_dict_digest


def unwrap(module):
    """Returns the module inside a DDP/DataParallel wrapper (or itself).

    Arguments
    ---------
    module : torch.nn.Module
        A module, possibly wrapped.

    Returns
    -------
    torch.nn.Module
        The wrapped module.

    Example
    -------
    >>> layer = torch.nn.Linear(2, 2)
    >>> unwrap(torch.nn.DataParallel(layer)) is layer
    True
    """
    return getattr(module, "module", module)


def module_digest(module):
    """SHA-256 of a module's state dict (names, dtypes, shapes, values).

    Arguments
    ---------
    module : torch.nn.Module
        The module (wrappers are looked through).

    Returns
    -------
    str
        Hex digest; equal digests mean bit-identical parameters and
        buffers.

    Example
    -------
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> a = torch.nn.Linear(2, 2)
    >>> b = torch.nn.Linear(2, 2)
    >>> b.load_state_dict(a.state_dict())
    <All keys matched successfully>
    >>> module_digest(a) == module_digest(b)
    True
    """
    return state_dict_digest(unwrap(module).state_dict())
