"""Padding masks and masked statistics over time.

MR-RawNet is made length-aware by two rules, applied at every time
resolution of the network:

1. every statistic over time (means, variances, softmax) counts the valid
   frames of each utterance only;
2. the input of every convolution whose kernel spans several frames is zero
   beyond the valid frames, exactly as if the utterance had been processed
   alone with the convolution's own zero padding.

A mask is a float tensor ``[B, 1, T]`` holding 1.0 on valid frames and 0.0
on padding, or ``None`` when no utterance in the batch is padded (the fast
path: no masking work at all).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch

from speechbrain_ext.lobes.fast_conv import _run, _use_fast_path

#: Every valid length is trimmed to a multiple of this many samples, the
#: granularity the official network needs (the coarsest sinc hop times two).
LENGTH_MULTIPLE = 320


def sample_lengths(lengths, n_samples):
    """Turns SpeechBrain relative lengths into absolute sample counts.

    Arguments
    ---------
    lengths : torch.Tensor or None
        Relative lengths ``[B]`` in (0, 1], or None for "all full length".
    n_samples : int
        The padded length of the batch, in samples.

    Returns
    -------
    torch.Tensor
        Integer sample counts ``[B]`` (int64), or None when ``lengths`` is
        None.

    Example
    -------
    >>> sample_lengths(torch.tensor([1.0, 0.5]), 640)
    tensor([640, 320])
    """
    if lengths is None:
        return None
    return torch.round(lengths.double() * n_samples).long()


def make_mask(frame_counts, n_frames, dtype=torch.float32):
    """Builds a ``[B, 1, T]`` mask from per-utterance frame counts.

    Arguments
    ---------
    frame_counts : torch.Tensor
        Number of valid frames per utterance ``[B]``.
    n_frames : int
        Number of frames of the padded tensor.
    dtype : torch.dtype
        Floating-point type of the mask.

    Returns
    -------
    torch.Tensor
        The mask, 1.0 on valid frames and 0.0 on padding.

    Example
    -------
    >>> make_mask(torch.tensor([3, 1]), 4)
    tensor([[[1., 1., 1., 0.]],
    <BLANKLINE>
            [[1., 0., 0., 0.]]])
    """
    steps = torch.arange(n_frames, device=frame_counts.device)
    mask = steps.unsqueeze(0) < frame_counts.unsqueeze(1)
    return mask.unsqueeze(1).to(dtype)


def downsample_mask(mask):
    """Mask at half the frame rate (stride-2 pooling, even frame counts).

    Arguments
    ---------
    mask : torch.Tensor or None
        A ``[B, 1, T]`` mask with an even number of valid frames.

    Returns
    -------
    torch.Tensor or None
        The ``[B, 1, T // 2]`` mask.

    Example
    -------
    >>> downsample_mask(torch.tensor([[[1.0, 1.0, 0.0, 0.0]]]))
    tensor([[[1., 0.]]])
    """
    if mask is None:
        return None
    return mask[..., ::2]


def upsample_mask(mask):
    """Mask at twice the frame rate (stride-2 transposed convolution).

    Arguments
    ---------
    mask : torch.Tensor or None
        A ``[B, 1, T]`` mask.

    Returns
    -------
    torch.Tensor or None
        The ``[B, 1, 2 T]`` mask.

    Example
    -------
    >>> upsample_mask(torch.tensor([[[1.0, 0.0]]]))
    tensor([[[1., 1., 0., 0.]]])
    """
    if mask is None:
        return None
    return mask.repeat_interleave(2, dim=-1)


def apply_mask(x, mask):
    """Zeroes the padded frames of ``x`` (no-op when ``mask`` is None).

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C, T]``.
    mask : torch.Tensor or None
        A ``[B, 1, T]`` mask.

    Returns
    -------
    torch.Tensor
        ``x`` with zeros on padded frames.

    Example
    -------
    >>> apply_mask(torch.ones(1, 2, 3), torch.tensor([[[1.0, 1.0, 0.0]]]))
    tensor([[[1., 1., 0.],
             [1., 1., 0.]]])
    """
    if mask is None:
        return x
    return x * mask


def masked_mean(x, mask, dim=-1):
    """Mean over time of the valid frames.

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C, T]``.
    mask : torch.Tensor or None
        A ``[B, 1, T]`` mask; None means every frame is valid.
    dim : int
        The time dimension (kept, with size 1).

    Returns
    -------
    torch.Tensor
        ``[B, C, 1]`` means.

    Example
    -------
    >>> x = torch.tensor([[[1.0, 3.0, 100.0]]])
    >>> masked_mean(x, torch.tensor([[[1.0, 1.0, 0.0]]]))
    tensor([[[2.]]])
    """
    if mask is None:
        return x.mean(dim=dim, keepdim=True)
    count = mask.sum(dim=dim, keepdim=True)
    return (x * mask).sum(dim=dim, keepdim=True) / count


def _var_mean(x, correction):
    """``torch.var_mean`` over the last dimension, or for CPU inference
    the two-pass form (mean, then the mean of squared deviations) when it
    was measured faster for this shape (``fast_conv``'s timed choice; on a
    2-core Xeon ``torch.var_mean`` of ``[1, 1536, 400]`` took 1.6 ms and
    the two passes 0.15 ms). Both are exact up to float rounding."""

    def stock(t):
        return torch.var_mean(t, dim=-1, keepdim=True, correction=correction)

    def two_pass(t):
        mean = t.mean(dim=-1, keepdim=True)
        sq = (t - mean).square_().sum(dim=-1, keepdim=True)
        return sq / (t.shape[-1] - correction), mean

    if x.dim() != 3 or x.shape[-1] <= correction or not _use_fast_path(x):
        return stock(x)
    return _run("var_mean", x[0, :, 0], correction, x, stock, two_pass)


def masked_mean_std(x, mask, eps_min=1e-4, eps_max=1e4, unbiased=True):
    """Mean and clamped standard deviation over time of the valid frames.

    The variance is clamped to ``[eps_min, eps_max]`` before the square root,
    as in the official attentive statistics pooling.

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C, T]``.
    mask : torch.Tensor or None
        A ``[B, 1, T]`` mask; None means every frame is valid.
    eps_min : float
        Lower clamp of the variance.
    eps_max : float
        Upper clamp of the variance.
    unbiased : bool
        Divide by ``n - 1`` instead of ``n``.

    Returns
    -------
    tuple of torch.Tensor
        ``(mean, std)``, each ``[B, C, 1]``.

    Example
    -------
    >>> x = torch.tensor([[[1.0, 3.0, 100.0]]])
    >>> mean, std = masked_mean_std(x, torch.tensor([[[1.0, 1.0, 0.0]]]))
    >>> float(mean), round(float(std) ** 2, 4)
    (2.0, 2.0)
    """
    if mask is None:
        var, mean = _var_mean(x, int(unbiased))
    else:
        count = mask.sum(dim=-1, keepdim=True)
        mean = (x * mask).sum(dim=-1, keepdim=True) / count
        sq = ((x - mean) * mask).pow(2).sum(dim=-1, keepdim=True)
        var = sq / (count - 1 if unbiased else count)
    return mean, var.clamp(eps_min, eps_max).sqrt()


def pool_pairs(x, mode="avg"):
    """Halves the frame rate by pooling non-overlapping pairs of frames.

    Equal to ``avg_pool1d(x, 2)`` / ``max_pool1d(x, 2)`` (an odd last frame
    is dropped), written as two strided views, which is several times
    faster on the CPU for these shapes.

    Arguments
    ---------
    x : torch.Tensor
        Features ``[B, C, T]``.
    mode : str
        ``"avg"`` or ``"max"``.

    Returns
    -------
    torch.Tensor
        ``[B, C, T // 2]``.

    Example
    -------
    >>> x = torch.tensor([[[1.0, 3.0, 2.0, 8.0, 5.0]]])
    >>> pool_pairs(x), pool_pairs(x, "max")
    (tensor([[[2., 5.]]]), tensor([[[3., 8.]]]))
    """
    n = x.shape[-1] // 2 * 2
    even, odd = x[..., 0:n:2], x[..., 1:n:2]
    if mode == "max":
        return torch.maximum(even, odd)
    return torch.add(even, odd).mul_(0.5)



#: Cost of one extra forward pass, in samples of audio (about 0.5 s): the
#: fixed per-call work (hundreds of kernel launches) on a 2-core CPU.
GROUP_OVERHEAD_SAMPLES = 8000
#: Extra cost per sample of a padded (masked) batch over an unpadded one.
MASKED_PENALTY = 0.25


def length_groups(counts, overhead=GROUP_OVERHEAD_SAMPLES,
                  masked_penalty=MASKED_PENALTY):
    """Splits a batch into groups of similar length to skip padding work.

    A padded batch costs as if every utterance were as long as the longest
    one. This picks, by dynamic programming over the utterances sorted by
    length, the split into consecutive groups that minimises
    ``sum(overhead + size * longest * (1 + masked_penalty if lengths
    differ))``, in samples. Groups are then embedded one after another,
    each padded only to its own longest utterance; since padding does not
    change any embedding, the result is the same.

    Arguments
    ---------
    counts : list of int
        Valid samples of each utterance.
    overhead : float
        Fixed cost of one more forward pass, in samples.
    masked_penalty : float
        Relative extra cost of a batch whose lengths differ.

    Returns
    -------
    list of list of int
        Indices into ``counts``, longest group first.

    Example
    -------
    >>> length_groups([16000, 16000, 160000, 160000, 159680])
    [[2, 3], [4], [0, 1]]
    >>> length_groups([16000, 15680], masked_penalty=0.1)
    [[0, 1]]
    """
    order = sorted(range(len(counts)), key=lambda i: -counts[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n
    start = [0] * (n + 1)
    for end in range(1, n + 1):
        for first in range(end):
            longest = counts[order[first]]
            masked = counts[order[end - 1]] != longest
            cost = best[first] + overhead + (end - first) * longest * (
                1 + masked_penalty * masked
            )
            if cost < best[end]:
                best[end], start[end] = cost, first
    groups = []
    end = n
    while end > 0:
        groups.append(order[start[end] : end])
        end = start[end]
    return groups[::-1]
