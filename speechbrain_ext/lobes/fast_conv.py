"""Convolutions with faster CPU kernels for MR-RawNet's shapes.

On the CPU, torch's convolution kernels are slow for four kinds of
convolution that MR-RawNet uses hundreds of times per utterance:

* 1x1 convolutions, which are matrix products (``PointwiseConv1d``);
* kernel-3 depthwise dilated convolutions, which are three shifted
  multiply-adds (``DepthwiseConv1d``);
* kernel-2 stride-2 transposed convolutions, which are one matrix product
  and an interleave (``PairTransposedConv1d``);
* small dilated convolutions at batch 1, for which torch falls back to a
  slow im2col kernel; they become one matrix product and shifted adds
  (``DilatedConv1d``).

Each layer subclasses the matching ``torch.nn`` layer, so its parameters,
state-dict keys and initialisation are unchanged; only ``forward`` differs,
and only for inference on the CPU: when autograd records nothing (under
``torch.no_grad``/``torch.inference_mode``, or with frozen weights as in
``EncoderClassifier``). Training and other devices run the stock
convolutions, whose backward passes are faster. The results equal the
stock layers up to float rounding (summation order).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
import torch.nn.functional as F
from torch import nn


def _use_fast_path(x, *params):
    """Whether ``x`` goes through the CPU inference kernels: on the CPU,
    when autograd records nothing (disabled, or no input needs a grad, as
    with SpeechBrain's frozen pretrained modules)."""
    if x.device.type != "cpu":
        return False
    if not torch.is_grad_enabled():
        return True
    return not any(t is not None and t.requires_grad for t in (x, *params))


def pointwise_conv1d(x, weight, bias=None):
    """A 1x1 convolution, a matrix product for CPU inference.

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C_in, T]``.
    weight : torch.Tensor
        ``[C_out, C_in, 1]`` or ``[C_out, C_in]``.
    bias : torch.Tensor or None
        ``[C_out]``.

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
    if not _use_fast_path(x, weight, bias):
        if weight.dim() == 2:
            weight = weight.unsqueeze(-1)
        return F.conv1d(x, weight, bias)
    if weight.dim() == 3:
        weight = weight.squeeze(-1)
    return _channel_matmul(weight, x, bias)


def _channel_matmul(weight, x, bias=None):
    """``weight [R, C] @ x [B, C, T] (+ bias [R])``, without copies of ``x``.

    ``torch.matmul`` would fold ``B`` into the rows of a transposed copy of
    ``x``; one GEMM per utterance on its ``[C, T]`` slice is faster.
    """
    if x.shape[0] == 1:
        if bias is None:
            return torch.mm(weight, x[0]).unsqueeze(0)
        return torch.addmm(bias.unsqueeze(-1), weight, x[0]).unsqueeze(0)
    weight = weight.expand(x.shape[0], -1, -1)
    if bias is None:
        return torch.bmm(weight, x)
    return torch.baddbmm(bias.view(1, -1, 1), weight, x)


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
        batch, _, frames = x.shape
        kernel, out_channels = self.kernel_size[0], self.out_channels
        # weight [C_out, C_in, K] -> rows (tap, C_out), columns C_in.
        weight = self.weight.permute(2, 0, 1).reshape(kernel * out_channels, -1)
        taps = _channel_matmul(weight, x)
        taps = taps.view(batch, kernel, out_channels, frames)
        centre = kernel // 2
        y = taps[:, centre]
        y = y + self.bias.unsqueeze(-1) if self.bias is not None else y.clone()
        for k in range(kernel):
            shift = (k - centre) * self.dilation[0]
            if k != centre and abs(shift) < frames:
                out, inp = _shifted(frames, shift)
                y[..., out] += taps[:, k, :, inp]
        return y


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
        batch, _, frames = x.shape
        out_channels = self.out_channels
        # weight [C_in, C_out, 2] -> rows (tap, C_out), columns C_in.
        weight = self.weight.permute(2, 1, 0).reshape(2 * out_channels, -1)
        bias = None if self.bias is None else self.bias.repeat(2)
        y = _channel_matmul(weight, x, bias)
        y = y.view(batch, 2, out_channels, frames).permute(0, 2, 3, 1)
        return y.reshape(batch, out_channels, 2 * frames)
