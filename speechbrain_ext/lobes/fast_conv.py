"""Convolutions with alternative CPU kernels, used where measured faster.

On some CPUs torch's convolution kernels are slow for four kinds of
convolution that MR-RawNet uses hundreds of times per utterance, and on
others they are the fastest there is. So each layer has two kernels:

* the stock one, ``torch.nn.Conv1d.forward`` / ``ConvTranspose1d.forward``;
* an alternative: 1x1 convolutions as matrix products
  (``PointwiseConv1d``), kernel-3 depthwise dilated convolutions as three
  shifted multiply-adds (``DepthwiseConv1d``), kernel-2 stride-2
  transposed convolutions as one matrix product and an interleave
  (``PairTransposedConv1d``), small dilated convolutions as one matrix
  product and shifted adds (``DilatedConv1d``). The matrix products are
  ``channel_gemm.channel_matmul``: oneDNN's matrix multiplication where
  torch has it, one product per batch for channel-major batches
  (``inference_layout``).

Which one runs is decided by measurement, on the machine the code runs on:
the first time a layer shape meets an input shape (batch size and frame
count rounded to powers of two, dtype, contiguity, thread count), both
kernels are timed, interleaved, and the faster one is kept for the rest of
the process (``kernel_choices()`` lists the decisions). The alternative is
kept only when it timed at least ``kernel_timing.CHOICE_MARGIN`` (5 %)
faster, so a near tie on a noisy machine goes to the stock kernel: the
alternative kernels can only replace a stock kernel that was clearly
slower here. The mode can be forced with
``set_cpu_kernels("stock" | "fast" | "auto")`` or the
``MR_RAWNET_CPU_KERNELS`` environment variable (default ``auto``).

Each layer subclasses the matching ``torch.nn`` layer, so its parameters,
state-dict keys and initialisation are unchanged; only ``forward`` differs,
and only for inference on the CPU: when autograd records nothing (under
``torch.no_grad``/``torch.inference_mode``, or with frozen weights as in
``EncoderClassifier``). Training and other devices run the stock
convolutions, whose backward passes are faster. The two kernels agree up
to float rounding (summation order).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import contextlib
import os

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes.channel_gemm import (
    channel_matmul,
    clear_backend_choices,
    is_channel_major,
    to_channel_major,
)
from speechbrain_ext.lobes.kernel_timing import alternative_is_faster

#: Kernel selection modes: time both (``auto``), or force one.
MODES = ("auto", "stock", "fast")
_mode = os.environ.get("MR_RAWNET_CPU_KERNELS", "auto")
if _mode not in MODES:
    raise ValueError(
        f"MR_RAWNET_CPU_KERNELS must be one of {MODES}, got {_mode!r}"
    )
#: Timed decisions: key -> True when the alternative kernel was faster.
_choices = {}


def set_cpu_kernels(mode):
    """Sets how CPU inference picks between the stock and the alternative
    kernels, for the whole process.

    Arguments
    ---------
    mode : str
        ``"auto"`` (time both at first use of each shape, keep the faster),
        ``"stock"`` (torch's kernels only) or ``"fast"`` (the alternative
        kernels whenever they apply).

    Returns
    -------
    str
        The previous mode.

    Example
    -------
    >>> previous = set_cpu_kernels("stock")
    >>> set_cpu_kernels(previous)
    'stock'
    """
    global _mode
    if mode not in MODES:
        raise ValueError(
            f"CPU kernel mode must be one of {MODES}, got {mode!r}"
        )
    previous, _mode = _mode, mode
    return previous


@contextlib.contextmanager
def cpu_kernels(mode):
    """Context manager form of :func:`set_cpu_kernels`.

    Arguments
    ---------
    mode : str
        ``"auto"``, ``"stock"`` or ``"fast"``.

    Yields
    ------
    None

    Example
    -------
    >>> conv = PointwiseConv1d(3, 4)
    >>> with torch.no_grad(), cpu_kernels("stock"):
    ...     conv(torch.randn(1, 3, 5)).shape
    torch.Size([1, 4, 5])
    """
    previous = set_cpu_kernels(mode)
    try:
        yield
    finally:
        set_cpu_kernels(previous)


def kernel_choices():
    """The timed decisions made so far in this process.

    Returns
    -------
    dict
        ``(layer, weight shape, dilation, batch bucket, frames bucket,
        dtype, contiguous, threads) -> "fast" | "stock"``.

    Example
    -------
    >>> isinstance(kernel_choices(), dict)
    True
    """
    return {
        (name, tuple(shape), dilation, batch, frames,
         str(dtype).replace("torch.", ""), contiguous, threads):
        "fast" if v else "stock"
        for (name, shape, dilation, batch, frames, dtype, contiguous,
             threads), v in _choices.items()
    }


def clear_kernel_choices():
    """Forgets the timed decisions, those of the channel products'
    backend too (the next calls time again).

    Example
    -------
    >>> clear_kernel_choices()
    >>> kernel_choices()
    {}
    """
    _choices.clear()
    clear_backend_choices()


def _use_fast_path(x, *params):
    """Whether ``x`` may go through the CPU inference kernels: on the CPU,
    when autograd records nothing (disabled, or no input needs a grad, as
    with SpeechBrain's frozen pretrained modules)."""
    if x.device.type != "cpu":
        return False
    if not torch.is_grad_enabled():
        return True
    return not any(t is not None and t.requires_grad for t in (x, *params))


def _use_fast_path_for(x, module):
    """``_use_fast_path`` with the parameters of ``module``, looked up only
    when autograd is on."""
    if torch.is_grad_enabled():
        return _use_fast_path(x, *module.parameters())
    return _use_fast_path(x)


def _run(name, weight, dilation, x, stock, fast, trial=None):
    """Runs ``fast(x)`` or ``stock(x)``, whichever the mode and the timed
    decision for this shape pick; times both at the first meeting, and
    keeps the alternative only when it was ``kernel_timing.CHOICE_MARGIN``
    faster.
    ``trial`` stands in for ``fast`` while timing (for a ``fast`` that
    works in place: a version that copies ``x`` first, so ``x`` stays as
    given; the copy counts against it)."""
    trial = fast if trial is None else trial
    if _mode == "stock":
        return stock(x)
    if _mode == "fast":
        return fast(x)
    shape = x.shape
    key = (
        name,
        weight.shape,
        dilation,
        shape[0].bit_length(),
        shape[-1].bit_length(),
        x.dtype,
        x.is_contiguous(),
        torch.get_num_threads(),
    )
    choice = _choices.get(key)
    if choice is None:
        choice, outs = alternative_is_faster(stock, trial, x)
        _choices[key] = choice
        # The chosen kernel's output, so the first call gives bit for bit
        # what every later call with this shape gives.
        return outs[1] if choice else outs[0]
    return fast(x) if choice else stock(x)


def inference_layout(x, *params):
    """``x`` in the layout the CPU inference kernels want.

    A batch is made channel-major (``channel_gemm``) for CPU inference
    unless the kernels are forced to ``"stock"``; otherwise, and at batch
    1 (where both layouts are the same memory), ``x`` is returned as is.

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C, T]``.
    *params : torch.Tensor
        The weights that will see ``x`` (for the autograd check).

    Returns
    -------
    torch.Tensor
        The same values.

    Example
    -------
    >>> x = torch.randn(2, 3, 4)
    >>> with torch.no_grad(), cpu_kernels("fast"):
    ...     inference_layout(x).stride()
    (4, 8, 1)
    """
    if _mode == "stock" or x.shape[0] == 1 or not _use_fast_path(x, *params):
        return x
    return to_channel_major(x)


def pointwise_conv1d(x, weight, bias=None, prelu=None, residual=None):
    """A 1x1 convolution, a matrix product for CPU inference, optionally
    followed by a one-parameter PReLU and a residual sum:
    ``prelu(conv(x)) + residual``.

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C_in, T]``.
    weight : torch.Tensor
        ``[C_out, C_in, 1]`` or ``[C_out, C_in]``.
    bias : torch.Tensor or None
        ``[C_out]``.
    prelu : torch.Tensor or None
        The single weight of an ``nn.PReLU()`` applied to the output.
    residual : torch.Tensor or None
        ``[B, C_out, T]`` added last.

    Returns
    -------
    torch.Tensor
        ``[B, C_out, T]``.

    Example
    -------
    >>> x, w, b = torch.randn(2, 3, 5), torch.randn(4, 3, 1), torch.randn(4)
    >>> ref = torch.nn.functional.conv1d(x, w, b)
    >>> with torch.no_grad():
    ...     y = pointwise_conv1d(x, w, b)
    >>> torch.allclose(y, ref, atol=1e-5)
    True
    """
    weight3 = weight.unsqueeze(-1) if weight.dim() == 2 else weight

    def stock(t, inplace=False):
        # For inference the activation and the sum work in the output.
        y = F.conv1d(t, weight3, bias)
        if prelu is not None:
            y = F.leaky_relu_(y, slope) if inplace else F.prelu(y, prelu)
        if residual is not None:
            y = y.add_(residual) if inplace else residual + y
        return y

    if not _use_fast_path(x, weight, bias, prelu, residual):
        return stock(x)
    slope = None if prelu is None else float(prelu)
    weight2 = weight3.squeeze(-1)
    name = "pointwise" + ("+prelu" if prelu is not None else "") + (
        "+residual" if residual is not None else ""
    )
    return _run(
        name, weight2, 1, x, lambda t: stock(t, inplace=True),
        lambda t: _channel_matmul(weight2, t, bias, slope, residual),
    )


def _channel_matmul(weight, x, bias=None, slope=None, residual=None):
    """``channel_gemm.channel_matmul``: ``weight [R, C] @ x [B, C, T]``."""
    return channel_matmul(weight, x, bias, slope, residual)


class PointwiseConv1d(nn.Conv1d):
    """``nn.Conv1d`` with kernel 1, computed as a matrix product on CPU.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    bias : bool
        Whether to add a learnable bias.

    Example
    -------
    >>> conv = PointwiseConv1d(3, 4)
    >>> x = torch.randn(2, 3, 7)
    >>> with torch.no_grad():
    ...     torch.allclose(conv(x), nn.Conv1d.forward(conv, x), atol=1e-5)
    True
    """

    def __init__(self, in_channels, out_channels, bias=True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x):
        """Applies the convolution.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C_in, T]``.

        Returns
        -------
        torch.Tensor
            ``[B, C_out, T]``.
        """
        return pointwise_conv1d(x, self.weight, self.bias)


class DepthwiseConv1d(nn.Conv1d):
    """Kernel-3 depthwise dilated ``nn.Conv1d`` with "same" zero padding.

    On the CPU it is computed as three shifted multiply-adds, several
    times faster than oneDNN's depthwise kernel at these sizes.

    Arguments
    ---------
    channels : int
        Input and output channels (one filter each).
    dilation : int
        Dilation; the padding equals it, so the length is kept.
    bias : bool
        Whether to add a learnable bias.

    Example
    -------
    >>> conv = DepthwiseConv1d(4, dilation=2)
    >>> x = torch.randn(2, 4, 9)
    >>> with torch.no_grad():
    ...     torch.allclose(conv(x), nn.Conv1d.forward(conv, x), atol=1e-5)
    True
    """

    def __init__(self, channels, dilation=1, bias=False):
        super().__init__(
            channels,
            channels,
            3,
            padding=dilation,
            dilation=dilation,
            groups=channels,
            bias=bias,
        )

    def forward(self, x):
        """Applies the convolution.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C, T]``.

        Returns
        -------
        torch.Tensor
            ``[B, C, T]``.
        """
        if not _use_fast_path(x, self.weight, self.bias):
            return super().forward(x)
        return _run(
            "depthwise", self.weight, self.dilation[0], x, super().forward,
            self._shifted_forward,
        )

    def _shifted_forward(self, x):
        """Three shifted multiply-adds."""
        d, frames = self.dilation[0], x.shape[-1]
        w = self.weight.squeeze(1)  # [C, 3]
        y = x * w[:, 1:2]
        if self.bias is not None:
            y = y + self.bias.unsqueeze(-1)
        if frames > d:
            for k, shift in ((0, -d), (2, d)):
                out, inp = _shifted(frames, shift)
                y[..., out].addcmul_(x[..., inp], w[:, k : k + 1])
        return y


class DilatedConv1d(nn.Conv1d):
    """Odd-kernel dilated ``nn.Conv1d`` with "same" zero padding.

    On the CPU, one matrix product computes every tap's contribution
    (``[K * C_out, C_in] @ x``) and the taps are added at their time
    shifts; this avoids the slow im2col path torch takes for small
    dilated convolutions at batch 1.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    kernel_size : int
        Odd kernel size.
    dilation : int
        Dilation; the padding is ``kernel_size // 2 * dilation``, so the
        length is kept.
    bias : bool
        Whether to add a learnable bias.

    Example
    -------
    >>> conv = DilatedConv1d(3, 4, kernel_size=3, dilation=2)
    >>> x = torch.randn(2, 3, 9)
    >>> with torch.no_grad():
    ...     torch.allclose(conv(x), nn.Conv1d.forward(conv, x), atol=1e-5)
    True
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, dilation=1,
                 bias=True):
        if kernel_size % 2 == 0:
            raise ValueError(
                f"DilatedConv1d needs an odd kernel_size, got {kernel_size}"
            )
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2 * dilation,
            dilation=dilation,
            bias=bias,
        )

    def forward(self, x):
        """Applies the convolution.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C_in, T]``.

        Returns
        -------
        torch.Tensor
            ``[B, C_out, T]``.
        """
        if not _use_fast_path(x, self.weight, self.bias):
            return super().forward(x)
        return self.forward_with(x, self.weight, self.bias)

    def forward_with(self, x, weight, bias):
        """The convolution with other weights (for folded layers).

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C_in, T]``.
        weight : torch.Tensor
            ``[C_out, C_in, K]``.
        bias : torch.Tensor or None
            ``[C_out]``.

        Returns
        -------
        torch.Tensor
            ``[B, C_out, T]``.
        """
        return _run(
            "dilated", weight, self.dilation[0], x,
            lambda t: self._conv_forward(t, weight, bias),
            lambda t: self._tap_forward(t, weight, bias),
        )

    def _tap_forward(self, x, weight=None, bias=None):
        """One matrix product for every tap, then shifted adds."""
        if weight is None:
            weight, bias = self.weight, self.bias
        batch, _, frames = x.shape
        kernel, out_channels = self.kernel_size[0], self.out_channels
        # weight [C_out, C_in, K] -> rows (tap, C_out), columns C_in.
        rows = kernel * out_channels
        weight = _derived(self, "_tap_matrix", weight,
                          lambda w: w.permute(2, 0, 1).reshape(rows, -1))
        taps = _channel_matmul(weight, x)
        taps = taps.unflatten(1, (kernel, out_channels))  # a view
        centre = kernel // 2
        y = taps[:, centre]  # summed in place: taps is this call's own
        if bias is not None:
            y = y.add_(bias.unsqueeze(-1))
        for k in range(kernel):
            shift = (k - centre) * self.dilation[0]
            if k != centre and abs(shift) < frames:
                out, inp = _shifted(frames, shift)
                # add_ on the view: ``y[out] += ...`` would also copy the
                # sum back onto itself through __setitem__.
                y[..., out].add_(taps[:, k, :, inp])
        return y


def conv_with(conv, x, weight, bias):
    """Runs ``conv`` on ``x`` with other weights, keeping its CPU kernel
    choice (``PointwiseConv1d``, ``DilatedConv1d``) or its stock kernel.

    Arguments
    ---------
    conv : torch.nn.Conv1d
        The layer (its stride, padding and dilation are used).
    x : torch.Tensor
        Features ``[B, C_in, T]``.
    weight : torch.Tensor
        Weights shaped like ``conv.weight``.
    bias : torch.Tensor or None
        ``[C_out]``.

    Returns
    -------
    torch.Tensor
        The convolution's output.

    Example
    -------
    >>> conv = torch.nn.Conv1d(2, 3, 3, padding=1)
    >>> x = torch.randn(1, 2, 5)
    >>> torch.equal(conv_with(conv, x, conv.weight, conv.bias), conv(x))
    True
    """
    if isinstance(conv, PointwiseConv1d):
        return pointwise_conv1d(x, weight, bias)
    if isinstance(conv, DilatedConv1d):
        return conv.forward_with(x, weight, bias)
    return conv._conv_forward(x, weight, bias)


def _derived(layer, name, source, make):
    """``make(source)``, kept on ``layer`` as ``name`` while ``source`` is
    the same tensor at the same version (a weight in the layout a kernel
    wants: rebuilding it took 240 us per call for a 256 x 256 x 2 weight).
    Holding ``source`` keeps its memory from being reused by another."""
    version = None if source.is_inference() else source._version
    key = (version, torch.is_inference_mode_enabled())
    cached = getattr(layer, name, None)
    if cached is not None and cached[0] is source and cached[1] == key:
        return cached[2]
    with torch.no_grad():
        value = make(source).contiguous()
    setattr(layer, name, (source, key, value))
    return value


def _shifted(frames, shift):
    """Slices ``(out, in)`` such that ``y[out] += x[in]`` adds ``x[t + shift]``
    to ``y[t]`` for every ``t`` where both exist."""
    if shift > 0:
        return slice(0, frames - shift), slice(shift, frames)
    return slice(-shift, frames), slice(0, frames + shift)


class PairTransposedConv1d(nn.ConvTranspose1d):
    """Kernel-2, stride-2 ``nn.ConvTranspose1d`` (doubles the frame rate).

    Each input frame produces two output frames, so on the CPU the layer is
    one matrix product followed by an interleave.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.

    Example
    -------
    >>> conv = PairTransposedConv1d(3, 4)
    >>> x = torch.randn(2, 3, 5)
    >>> with torch.no_grad():
    ...     y = conv(x)
    ...     ref = nn.ConvTranspose1d.forward(conv, x)
    >>> y.shape
    torch.Size([2, 4, 10])
    >>> torch.allclose(y, ref, atol=1e-5)
    True
    """

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, 2, stride=2)

    def forward(self, x):
        """Applies the transposed convolution.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[B, C_in, T]``.

        Returns
        -------
        torch.Tensor
            ``[B, C_out, 2 T]``.
        """
        if not _use_fast_path(x, self.weight, self.bias):
            return super().forward(x)
        return _run(
            "pair_transposed", self.weight, 1, x, super().forward,
            self._gemm_forward,
        )

    def _gemm_forward(self, x):
        """One matrix product, then an interleave of the two taps."""
        # weight [C_in, C_out, 2] -> rows (tap, C_out), columns C_in.
        rows = 2 * self.out_channels
        weight = _derived(self, "_pair_matrix", self.weight,
                          lambda w: w.permute(2, 1, 0).reshape(rows, -1))
        bias = None if self.bias is None else _derived(
            self, "_pair_bias", self.bias, lambda b: b.repeat(2))
        # out[2t + j] = tap j of t, written in the layout of x.
        return interleave_pairs(_channel_matmul(weight, x, bias))


def interleave_pairs(taps):
    """Interleaves two tap blocks into frames at twice the rate.

    ``taps[:, :C]`` holds the even output frames and ``taps[:, C:]`` the
    odd ones (the two taps of a kernel-2, stride-2 transposed convolution):
    ``out[b, c, 2 t + j] = taps[b, j * C + c, t]``. The result is laid out
    like ``taps`` (channel-major or batch-major).

    Arguments
    ---------
    taps : torch.Tensor
        ``[B, 2 C, T]``.

    Returns
    -------
    torch.Tensor
        ``[B, C, 2 T]``, a new tensor.

    Example
    -------
    >>> taps = torch.tensor([[[1.0, 2.0], [10.0, 20.0]]])
    >>> interleave_pairs(taps)
    tensor([[[ 1., 10.,  2., 20.]]])
    """
    batch, rows, frames = taps.shape
    out_channels = rows // 2
    y = taps.unflatten(1, (2, out_channels))
    if batch > 1 and is_channel_major(taps):
        y = y.permute(2, 0, 3, 1).contiguous()
        return y.view(out_channels, batch, 2 * frames).permute(1, 0, 2)
    y = y.permute(0, 2, 3, 1).contiguous()
    return y.view(batch, out_channels, 2 * frames)
