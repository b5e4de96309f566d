"""Channel matrix products ``W @ x`` for CPU inference, in channel-major layout.

Every 1x1 convolution of MR-RawNet, the taps of its small dilated
convolutions and its pair-transposed convolutions are one matrix product
over the channel axis: ``y[b] = W @ x[b]`` for features ``x [B, C, T]``.
This file computes it as **one** matrix product for the whole batch by
storing features *channel-major*: the memory of a ``[B, C, T]`` tensor is
laid out as ``[C, B, T]`` (a permuted view, ``x.permute(1, 0, 2)``
contiguous), so that ``x`` is a ``[C, B * T]`` matrix and ``y = W @ x`` is
again channel-major. At batch 1 the two layouts are the same memory.
Elementwise torch operations keep the layout of their inputs, so once a
batch is channel-major it stays so through the network; torch's own
convolutions accept it too (as any strided tensor).

The product runs on oneDNN's matrix multiplication
(``torch.ops.mkldnn._linear_pointwise``, the kernel ``torch.compile`` uses
for linear layers on the CPU) when torch was built with it and the dtype is
float32 or bfloat16, or on ``torch.mm``. oneDNN's kernels use every vector
extension of the CPU, but have a fixed cost per call that dominates small
products on some CPUs (on an AVX2-only EPYC, 154 us against 81 us for
``[192, 64] @ [64, 200]``); ``torch.mm`` goes through the BLAS, which on
some CPUs runs older vector code (MKL runs AVX2 code on AMD processors).
So each product shape is timed once on both (``kernel_timing``), and
``torch.mm`` replaces oneDNN only where it timed clearly faster
(``matmul_backend``, ``backend_choices``). Whether the products beat
torch's convolutions on the machine at hand is ``fast_conv``'s timed
choice, never assumed.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import contextlib
import functools
import os

import torch

from speechbrain_ext.lobes.kernel_timing import alternative_is_faster

_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
#: Whether oneDNN's matrix product can be used, and the dtypes in which it
#: failed once (those go to ``torch.mm`` from then on: a bfloat16 product
#: that a CPU cannot run must not take float32 off oneDNN).
_onednn = {
    "usable": _LINEAR is not None and torch.backends.mkldnn.is_available(),
    "failed": set(),
}
_ONEDNN_DTYPES = (torch.float32, torch.bfloat16)
#: Product backends: timed per product shape (``auto``), or one forced.
BACKENDS = ("auto", "onednn", "mm")
#: The backend ``mode`` (``MR_RAWNET_MATMUL_BACKEND``, default ``auto``)
#: and the timed decisions (``choices``).
_backends = {
    "mode": os.environ.get("MR_RAWNET_MATMUL_BACKEND", "auto"),
    "choices": {},
}
if _backends["mode"] not in BACKENDS:
    raise ValueError(
        f"MR_RAWNET_MATMUL_BACKEND must be one of {BACKENDS}, got "
        f"{_backends['mode']!r}"
    )


@contextlib.contextmanager
def matmul_backend(mode):
    """Forces the backend of the channel products inside a ``with`` block
    (for the whole process: ``MR_RAWNET_MATMUL_BACKEND``).

    By default (``auto``) each product shape is timed once on oneDNN and on
    ``torch.mm`` (the BLAS), and ``torch.mm`` replaces oneDNN for that
    shape only where it timed ``kernel_timing.CHOICE_MARGIN`` faster:
    oneDNN's product has a fixed cost per call that dominates small
    products on some CPUs, while on others the BLAS runs older vector code.

    Arguments
    ---------
    mode : str
        ``"auto"``, ``"onednn"`` (where torch has it; else ``torch.mm``)
        or ``"mm"``.

    Yields
    ------
    None

    Example
    -------
    >>> w, x = torch.randn(4, 3), torch.randn(1, 3, 5)
    >>> with torch.no_grad(), matmul_backend("mm"):
    ...     y = channel_matmul(w, x)
    >>> torch.allclose(y, torch.einsum("rc,bct->brt", w, x), atol=1e-6)
    True
    """
    if mode not in BACKENDS:
        raise ValueError(f"matmul backend must be one of {BACKENDS}, "
                         f"got {mode!r}")
    before, _backends["mode"] = _backends["mode"], mode
    try:
        yield
    finally:
        _backends["mode"] = before


def backend_choices():
    """The timed backend decisions of this process.

    Returns
    -------
    dict
        ``(R, C, N rounded up to a power of two, dtype) -> "onednn"`` or
        ``"mm"``, one entry per product shape and dtype timed so far (the
        decision last timed for it, over epilogues and thread counts).

    Example
    -------
    >>> clear_backend_choices()
    >>> backend_choices()
    {}
    """
    return {
        (*shape, 1 << bits, str(dtype).replace("torch.", "")): choice
        for (shape, bits, _, dtype, *_), choice
        in _backends["choices"].items()
    }


def clear_backend_choices():
    """Forgets the timed backend decisions (the next products time again).

    Example
    -------
    >>> clear_backend_choices()
    >>> len(_backends["choices"])
    0
    """
    _backends["choices"].clear()


def is_channel_major(x):
    """Whether the ``[B, C, T]`` tensor ``x`` is stored as ``[C, B, T]``.

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C, T]``.

    Returns
    -------
    bool
        True when ``x.permute(1, 0, 2)`` is contiguous (always at batch 1
        for a contiguous ``x``).

    Example
    -------
    >>> x = torch.zeros(3, 4, 5)
    >>> is_channel_major(x), is_channel_major(to_channel_major(x))
    (False, True)
    """
    return x.dim() == 3 and x.permute(1, 0, 2).is_contiguous()


def to_channel_major(x):
    """``x`` stored channel-major (``x`` itself when it already is).

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C, T]``.

    Returns
    -------
    torch.Tensor
        The same values, ``[B, C, T]``, with memory laid out ``[C, B, T]``.

    Example
    -------
    >>> x = torch.randn(2, 3, 4)
    >>> y = to_channel_major(x)
    >>> torch.equal(x, y), y.stride()
    (True, (4, 8, 1))
    """
    if is_channel_major(x):
        return x
    return x.permute(1, 0, 2).contiguous().permute(1, 0, 2)


def cat_channels(tensors):
    """``torch.cat(tensors, dim=1)``, channel-major when the first input is.

    ``torch.cat`` returns a batch-major tensor for any 3-D input; in the
    channel-major layout the concatenation is a plain copy of each input's
    block.

    Arguments
    ---------
    tensors : list of torch.Tensor
        Features ``[B, C_i, T]``.

    Returns
    -------
    torch.Tensor
        ``[B, sum C_i, T]``.

    Example
    -------
    >>> a = to_channel_major(torch.randn(2, 3, 4))
    >>> b = to_channel_major(torch.randn(2, 1, 4))
    >>> y = cat_channels([a, b])
    >>> torch.equal(y, torch.cat([a, b], dim=1)), is_channel_major(y)
    (True, True)
    """
    if tensors[0].shape[0] > 1 and is_channel_major(tensors[0]):
        out = torch.cat([t.permute(1, 0, 2) for t in tensors], dim=0)
        return out.permute(1, 0, 2)
    return torch.cat(tensors, dim=1)


def _compute_dtype(x):
    """The dtype oneDNN should multiply in, or None to use ``torch.mm``."""
    if not _onednn["usable"]:
        return None
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        dtype = dtype if dtype == torch.bfloat16 else None
    else:
        dtype = x.dtype if x.dtype in _ONEDNN_DTYPES else None
    return None if dtype in _onednn["failed"] else dtype


def _onednn_mm(weight, matrix, dtype, slope=None, other=None):
    """``weight [R, C] @ matrix [C, N]`` on oneDNN, then a fused
    leaky ReLU of ``slope`` or a fused ``+ other``; None if it fails."""
    try:
        # _linear_pointwise(a, b) is a @ b.T; b = matrix.T is a free view.
        a, b = weight.to(dtype), matrix.to(dtype).t()
        if other is not None:
            return _LINEAR.binary(a, other, b, None, "add")
        if slope is not None:
            return _LINEAR(a, b, None, "leaky_relu", [slope], "")
        return _LINEAR(a, b, None, "none", [], "")
    except RuntimeError:
        _onednn["failed"].add(dtype)
        return None


def channel_matmul(weight, x, bias=None, slope=None, residual=None):
    """``act(weight [R, C] @ x[b] + bias) + residual[b]`` for every ``b``.

    A channel-major ``x`` (and any ``x`` at batch 1) takes one matrix
    product for the whole batch. A batch-major ``x`` takes one product per
    utterance, stacked: converting it would cost a copy, and the layers
    that follow (GroupNorm above all) are faster batch-major. On oneDNN, a
    leaky ReLU or the residual sum is fused into the product (one pass
    over the output fewer) when there is no bias.

    Arguments
    ---------
    weight : torch.Tensor
        ``[R, C]``.
    x : torch.Tensor
        Features ``[B, C, T]``.
    bias : torch.Tensor or None
        ``[R]``.
    slope : float or None
        If given, ``act`` is a leaky ReLU of this negative slope (a
        one-parameter PReLU); else the identity.
    residual : torch.Tensor or None
        ``[B, R, T]`` added to the result.

    Returns
    -------
    torch.Tensor
        ``[B, R, T]``, channel-major if ``x`` is, else batch-major.

    Example
    -------
    >>> w, x, b = torch.randn(4, 3), torch.randn(2, 3, 5), torch.randn(4)
    >>> ref = torch.einsum("rc,bct->brt", w, x) + b[:, None]
    >>> with torch.no_grad():
    ...     y, z = channel_matmul(w, x, b), channel_matmul(
    ...         w, to_channel_major(x), b)
    >>> torch.allclose(y, ref, atol=1e-5), y.is_contiguous()
    (True, True)
    >>> torch.allclose(z, ref, atol=1e-5), is_channel_major(z)
    (True, True)
    >>> with torch.no_grad():
    ...     y = channel_matmul(w, x[:1], slope=0.1, residual=ref[:1])
    >>> ref1 = torch.nn.functional.leaky_relu(ref[:1] - b[:, None], 0.1)
    >>> torch.allclose(y, ref1 + ref[:1], atol=1e-5)
    True
    """
    batch, channels, frames = x.shape
    if batch > 1 and not is_channel_major(x):
        return torch.stack([
            _matmul(weight, row, bias, slope,
                    None if residual is None else residual[i])
            for i, row in enumerate(x)
        ])
    matrix = x.permute(1, 0, 2).reshape(channels, -1)  # a view
    if residual is not None:
        residual = to_channel_major(residual).permute(1, 0, 2)
        residual = residual.reshape(residual.shape[0], -1)
    y = _matmul(weight, matrix, bias, slope, residual)
    return y.view(-1, batch, frames).permute(1, 0, 2)


def _matmul(weight, matrix, bias, slope=None, residual=None):
    """``act(weight [R, C] @ matrix [C, N] + bias) + residual``, on oneDNN
    or ``torch.mm``, whichever ``_backend`` picks for the product."""
    dtype = _compute_dtype(matrix)
    if dtype is None:
        return _mm_matmul(weight, matrix, bias, slope, residual)
    fuse = bias is None and (slope is None or residual is None) and (
        residual is None
        or (residual.dtype == dtype and residual.is_contiguous())
    )
    args = (weight, matrix, bias, slope, residual, dtype, fuse)
    choice = _backend(args)
    if choice == "mm":
        return _mm_matmul(weight, matrix, bias, slope, residual)
    if choice is None:  # first meeting: timed, the chosen output returned
        return _time_backends(args)
    y = _onednn_matmul(*args)
    return _mm_matmul(weight, matrix, bias, slope, residual) if y is None \
        else y


def _backend(args):
    """The backend of the product ``args``: forced by ``matmul_backend``,
    else the timed choice for its shape (None before it was timed)."""
    if _backends["mode"] != "auto":
        return _backends["mode"]
    return _backends["choices"].get(_backend_key(args))


def _backend_key(args):
    """Product shape (``N`` rounded to a power of two), dtypes, epilogue,
    threads: what the timed backend choice depends on."""
    weight, matrix, bias, slope, residual, dtype, fuse = args
    return (
        weight.shape, matrix.shape[1].bit_length(), matrix.dtype, dtype,
        bias is None, slope is None, residual is None, fuse,
        torch.get_num_threads(),
    )


def _time_backends(args):
    """Times oneDNN against ``torch.mm`` for this product; ``torch.mm`` is
    kept for its shape only when it timed ``CHOICE_MARGIN`` faster."""
    weight, matrix, bias, slope, residual = args[:5]
    onednn = functools.partial(_onednn_matmul, *args)
    if onednn() is None:  # oneDNN failed (its dtype is now marked failed)
        return _mm_matmul(weight, matrix, bias, slope, residual)
    faster, outs = alternative_is_faster(
        onednn, functools.partial(_mm_matmul, *args[:5])
    )
    _backends["choices"][_backend_key(args)] = "mm" if faster else "onednn"
    return outs[1] if faster else outs[0]


def _onednn_matmul(weight, matrix, bias, slope, residual, dtype, fuse):
    """The product on oneDNN (epilogue fused when ``fuse``); None if
    oneDNN failed."""
    y = _onednn_mm(weight, matrix, dtype, *(
        (slope, residual) if fuse else (None, None)
    ))
    if y is None or fuse:
        return y
    return _epilogue(y, bias, slope, residual)


def _mm_matmul(weight, matrix, bias, slope, residual):
    """The product on ``torch.mm``, then bias, leaky ReLU and residual."""
    return _epilogue(torch.mm(weight, matrix), bias, slope, residual)


def _epilogue(y, bias, slope, residual):
    """``act(y + bias) + residual`` in the memory of ``y``."""
    if bias is not None:
        y = y.add_(bias.to(y.dtype).unsqueeze(-1))
    if slope is not None:
        y = torch.nn.functional.leaky_relu_(y, slope)
    if residual is not None:
        y = y.add_(residual) if y.dtype == residual.dtype else y + residual
    return y


def scale_shift(x, scale, shift):
    """``shift + x * scale`` (``torch.addcmul``) in the layout of ``x``.

    ``torch.addcmul`` with a broadcast first argument returns a batch-major
    tensor; writing into an empty tensor shaped like ``x`` keeps a
    channel-major batch channel-major, in the same single pass.

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C, T]``.
    scale : torch.Tensor
        Broadcastable to ``x``.
    shift : torch.Tensor
        Broadcastable to ``x``.

    Returns
    -------
    torch.Tensor
        ``shift + x * scale``, laid out like ``x``.

    Example
    -------
    >>> x = to_channel_major(torch.randn(2, 3, 4))
    >>> y = scale_shift(x, torch.randn(2, 3, 1), torch.randn(2, 3, 1))
    >>> is_channel_major(y)
    True
    """
    if torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, scale, shift)
    ):
        return torch.addcmul(shift, x, scale)  # out= has no autograd
    dtype = torch.promote_types(
        torch.promote_types(x.dtype, scale.dtype), shift.dtype
    )
    return torch.addcmul(
        shift, x, scale, out=torch.empty_like(x, dtype=dtype)
    )
