"""The MRA block's first layers on its input, folded into one product.

In an MRA block three things are computed from the input ``x [B, C, T]``
by linear maps before any non-linearity:

* the ``same`` bottleneck's ``conv1`` (then ReLU -> BN1);
* the ``up`` path: a kernel-2, stride-2 transposed convolution ``U`` to
  ``2 T`` frames, then the ``up`` bottleneck's ``conv1`` (then ReLU -> BN1);
  ``conv1(U(x))`` at output frame ``2 t + j`` is ``W1 U_j x[t] + W1 b_U +
  b1``, so the two are one product with the weights ``W1 U_j`` at the
  input rate, one row block per tap ``j``;
* the ``up`` bottleneck's residual, ``U(x)``, which is needed only after
  the path's average pooling. AFMS scales and shifts each channel by the
  same amount at every frame and its time average is unchanged by pooling
  pairs, so ``pool(afms(y + U(x))) = afms(pool(y) + pool(U(x)))`` with
  ``pool(U(x))[t] = (U_0 + U_1) / 2 x[t] + b_U``: one more row block.

Stacked, these are one ``[4 C, C]`` matrix product with a bias, followed
by per-channel clamps (the eval BatchNorms after the ReLUs, folded as in
``folding.py``). Against the layers as written (``C * T`` multiply-adds
counted per ``C``-wide block: 1 for ``same.conv1``, 2 for ``U``, 2 for
``up.conv1`` at twice the rate) this does 4 instead of 5, in one product
instead of three, skips the interleave of ``U(x)``, and runs the ``up``
path's residual sum and AFMS at ``T`` frames instead of ``2 T``. Results
equal the layers as written up to float rounding.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch

from speechbrain_ext.lobes.folding import _fingerprint, _folded, _sources


def merged_input_weights(block):
    """Weights of the folded input product of an eval-mode MRA block.

    Arguments
    ---------
    block : speechbrain_ext.lobes.mra.MRABlock
        The block (its ``same`` and ``up`` BatchNorms in eval mode).

    Returns
    -------
    tuple or None
        ``(weight [3 C' + C, C], bias [3 C' + C], floor_same [C', 1],
        floor_up [2 C', 1])`` where ``C'`` is the bottleneck width times
        scale (``C`` for MR-RawNet): rows ``0:C'`` give the ``same``
        groups, ``C':3C'`` the ``up`` groups of the even then the odd
        frames (each clamped from below at its floor), the last ``C`` the
        pooled ``up`` residual. None when a
        BatchNorm is in training mode or has a scale that is not positive.
        Cached on the block until any source tensor changes.

    Example
    -------
    >>> from speechbrain_ext.lobes.mra import MRABlock
    >>> block = MRABlock(8).eval()
    >>> weight, bias, floor_same, floor_up = merged_input_weights(block)
    >>> tuple(weight.shape), tuple(bias.shape)
    ((32, 8), (32,))
    >>> tuple(floor_same.shape), tuple(floor_up.shape)
    ((8, 1), (16, 1))
    """
    same, up, pair = block.same, block.up, block.up_conv
    if same.bn1.training or up.bn1.training:
        return None
    if same.bn1.running_var is None or up.bn1.running_var is None:
        return None
    same_sources = _sources(same.conv1, same.bn1)
    up_sources = _sources(up.conv1, up.bn1)
    sources = same_sources + up_sources + (pair.weight, pair.bias)
    key = _fingerprint(sources)
    cached = getattr(block, "_merged_input", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    same_folded = _folded(same.conv1, same.bn1, same_sources)
    up_folded = _folded(up.conv1, up.bn1, up_sources)
    merged = None
    if same_folded is not None and up_folded is not None:
        merged = _merge(same_folded, up_folded, pair)
    block._merged_input = (key, merged)
    return merged


def _merge(same_folded, up_folded, pair):
    """Stacks the folded ``same`` rows, the ``up`` rows composed with the
    transposed convolution, and the pooled transposed convolution."""
    with torch.no_grad():
        w_same, b_same, floor_same = same_folded
        w_up, b_up, floor_up = up_folded
        w_same, w_up = w_same.squeeze(-1), w_up.squeeze(-1)
        # pair.weight [C_in, C_out, 2]: tap j is the [C_out, C_in] matrix.
        taps = [pair.weight[:, :, j].t() for j in range(2)]
        pair_bias = pair.bias
        if pair_bias is None:
            pair_bias = pair.weight.new_zeros(pair.weight.shape[1])
        up_bias = w_up @ pair_bias + b_up
        weight = torch.cat(
            [w_same, w_up @ taps[0], w_up @ taps[1], (taps[0] + taps[1]) / 2]
        )
        bias = torch.cat([b_same, up_bias, up_bias, pair_bias])
        return (
            weight.contiguous(), bias, floor_same,
            torch.cat([floor_up, floor_up]),
        )
