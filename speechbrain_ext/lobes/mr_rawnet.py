"""MR-RawNet: multi-resolution raw-waveform speaker embeddings.

Kim et al., "MR-RawNet: Speaker verification system with multiple temporal
resolutions for variable duration utterances using raw waveforms",
Interspeech 2024. The constructor defaults reproduce the official network
(``kimho1wq/MR-RawNet``, ``nOut=256``, ``C=256``) exactly; the widths and
depths are parameters so that small models can be built for tests and demos.

Wiring: pre-emphasis and instance norm -> multi-resolution front end ->
three stages of MRA blocks (stage 2 takes ``x1 + x2``) -> concatenation of
the stage outputs -> 1x1 conv -> ReLU -> attentive statistics pooling ->
BN -> linear -> BN.

Unlike the official network, this one is length-aware: zero padding inside
a batch does not change any utterance's embedding (see ``masking.py``).
In evaluation mode on the CPU, a batch of mixed lengths is split into groups of
similar length that are embedded one after another, so that little work
is spent on padding (``masking.length_groups``).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes.channel_gemm import cat_channels
from speechbrain_ext.lobes.fast_conv import PointwiseConv1d, inference_layout
from speechbrain_ext.lobes.frontend import MultiResolutionFrontEnd
from speechbrain_ext.lobes.masking import (
    LENGTH_MULTIPLE,
    length_groups,
    make_mask,
    sample_lengths,
)
from speechbrain_ext.lobes.mra import MRABlock
from speechbrain_ext.lobes.pooling import ContextAttentiveStatsPooling
from speechbrain_ext.lobes.preprocess import PreEmphasis, WaveformInstanceNorm


class MRRawNet(nn.Module):
    """MR-RawNet speaker embedding model, as a SpeechBrain lobe.

    Arguments
    ---------
    sinc_filters : int
        Sinc filterbank channels per front-end branch (official: 256).
    tcn_channels : int
        TCN width per branch (official: 128).
    tcn_hidden : int
        Channels inside the temporal blocks (official: 96).
    tcn_repeats : int
        TCN stacks per branch (official: 3).
    tcn_blocks : int
        Temporal blocks per stack (official: 4).
    channels : int
        Backbone width ``C`` (official: 256).
    mra_depths : list of int
        MRA blocks per stage (official: [3, 3, 3]).
    mra_dilation : int
        Dilation of the Res2Net group convolutions (official: 2).
    mra_scale : int
        Res2Net groups (official: 4).
    aggregate_channels : int
        Channels of the 1x1 conv before pooling (official: 1536).
    attention_channels : int
        Hidden width of the pooling attention (official: 256).
    lin_neurons : int
        Embedding size (official: 256).
    preemphasis : float
        Pre-emphasis coefficient.

    Example
    -------
    >>> model = MRRawNet(
    ...     sinc_filters=8, tcn_channels=8, tcn_hidden=6, tcn_repeats=1,
    ...     tcn_blocks=2, channels=8, mra_depths=[1, 1, 1],
    ...     aggregate_channels=12, attention_channels=4, lin_neurons=5,
    ... ).eval()
    >>> wavs = torch.randn(2, 1000)
    >>> model(wavs, torch.tensor([1.0, 0.7])).shape
    torch.Size([2, 1, 5])
    """

    def __init__(
        self,
        sinc_filters=256,
        tcn_channels=128,
        tcn_hidden=96,
        tcn_repeats=3,
        tcn_blocks=4,
        channels=256,
        mra_depths=(3, 3, 3),
        mra_dilation=2,
        mra_scale=4,
        aggregate_channels=1536,
        attention_channels=256,
        lin_neurons=256,
        preemphasis=0.97,
    ):
        super().__init__()
        if len(mra_depths) != 3:
            raise ValueError(
                f"mra_depths must list 3 stages, got {list(mra_depths)}"
            )
        self.preemphasis = PreEmphasis(preemphasis)
        self.input_norm = WaveformInstanceNorm(eps=1e-4)
        self.frontend = MultiResolutionFrontEnd(
            sinc_filters, tcn_channels, tcn_hidden, tcn_repeats, tcn_blocks,
            channels,
        )
        self.stages = nn.ModuleList(
            nn.ModuleList(
                MRABlock(channels, 3, mra_dilation, mra_scale)
                for _ in range(depth)
            )
            for depth in mra_depths
        )
        self.aggregate = PointwiseConv1d(3 * channels, aggregate_channels)
        self.pooling = ContextAttentiveStatsPooling(
            aggregate_channels, attention_channels
        )
        self.pool_norm = nn.BatchNorm1d(2 * aggregate_channels)
        self.fc = nn.Linear(2 * aggregate_channels, lin_neurons)
        self.emb_norm = nn.BatchNorm1d(lin_neurons)

    def valid_lengths(self, wavs, lengths=None):
        """Checks the input and returns each utterance's usable length.

        Lengths are trimmed down to a multiple of 320 samples, which the
        network's resolutions need.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``[B, T]``.
        lengths : torch.Tensor or None
            Relative lengths ``[B]`` in (0, 1].

        Returns
        -------
        torch.Tensor
            Usable sample counts ``[B]`` (int64, on the CPU).

        Example
        -------
        >>> MRRawNet.valid_lengths(None, torch.zeros(2, 1000),
        ...                        torch.tensor([1.0, 0.5]))
        tensor([960, 320])
        """
        if not isinstance(wavs, torch.Tensor) or wavs.dim() != 2:
            shape = getattr(wavs, "shape", type(wavs).__name__)
            raise ValueError(
                f"MRRawNet expects waveforms of shape [batch, time], got "
                f"{tuple(shape) if hasattr(shape, '__len__') else shape}"
            )
        if not torch.isfinite(wavs).all():
            bad = (~torch.isfinite(wavs)).any(dim=1).nonzero().flatten()
            raise ValueError(
                "MRRawNet input contains NaN or Inf values (batch rows "
                f"{bad.tolist()})"
            )
        batch, n_samples = wavs.shape
        if batch == 0:
            raise ValueError(
                f"MRRawNet got an empty batch (shape {tuple(wavs.shape)}): "
                "pass at least one waveform"
            )
        if n_samples == 0:
            raise ValueError(
                "MRRawNet got empty waveforms (0 samples); it needs at least "
                f"{LENGTH_MULTIPLE} samples (20 ms at 16 kHz) per utterance"
            )
        if lengths is None:
            counts = torch.full((batch,), n_samples, dtype=torch.long)
        else:
            lengths = torch.as_tensor(lengths).detach().cpu()
            if lengths.shape != (batch,):
                raise ValueError(
                    f"lengths must have shape [{batch}], got "
                    f"{list(lengths.shape)}"
                )
            bad = ~((lengths > 0) & (lengths <= 1))
            if bad.any():
                raise ValueError(
                    "relative lengths must lie in (0, 1], got "
                    f"{lengths[bad].tolist()} at batch rows "
                    f"{bad.nonzero().flatten().tolist()}"
                )
            counts = sample_lengths(lengths, n_samples)
        counts = counts // LENGTH_MULTIPLE * LENGTH_MULTIPLE
        short = (counts < LENGTH_MULTIPLE).nonzero().flatten()
        if len(short):
            raise ValueError(
                f"MRRawNet needs at least {LENGTH_MULTIPLE} samples (20 ms "
                f"at 16 kHz) per utterance; batch rows {short.tolist()} are "
                "shorter"
            )
        return counts

    def forward(self, wavs, lengths=None):
        """Computes speaker embeddings.

        Arguments
        ---------
        wavs : torch.Tensor
            16 kHz waveforms ``[B, T]``, zero-padded.
        lengths : torch.Tensor or None
            Relative lengths ``[B]`` in (0, 1]; None means all full length.

        Returns
        -------
        torch.Tensor
            Embeddings ``[B, 1, lin_neurons]``.
        """
        return self.embed(wavs, lengths).unsqueeze(1)

    def embed(self, wavs, lengths=None, taps=None):
        """Computes ``[B, D]`` embeddings, optionally recording taps.

        Arguments
        ---------
        wavs : torch.Tensor
            16 kHz waveforms ``[B, T]``.
        lengths : torch.Tensor or None
            Relative lengths ``[B]`` in (0, 1].
        taps : dict or None
            If given, filled with intermediate outputs: ``mrfe``,
            ``stage0``-``stage2`` (``[B, C, frames]``) and ``pooled``
            (``[B, 2 * aggregate_channels]``).

        Returns
        -------
        torch.Tensor
            Embeddings ``[B, lin_neurons]``.
        """
        counts = self.valid_lengths(wavs, lengths)
        if (taps is None and not self.training and len(counts) > 1
                and wavs.device.type == "cpu"):
            groups = length_groups(counts.tolist())
            if len(groups) > 1:
                return self._embed_groups(wavs, counts, groups)
        return self._embed_counts(wavs, counts, taps)

    def _embed_counts(self, wavs, counts, taps=None):
        """Embeds a batch padded to its longest valid length."""
        n_max = int(counts.max())
        wavs = wavs[:, :n_max]
        mask = None
        if bool((counts < n_max).any()):
            mask = make_mask(counts.to(wavs.device), n_max, wavs.dtype)
        return self._embed_trimmed(wavs, mask, taps)

    def _embed_groups(self, wavs, counts, groups):
        """Embeds each group of similar lengths on its own (same result:
        padding never changes an embedding; less padding work)."""
        out = None
        for group in groups:
            index = torch.tensor(group)
            emb = self._embed_counts(
                wavs[index.to(wavs.device)], counts[index]
            )
            if out is None:
                out = emb.new_empty(len(counts), emb.shape[-1])
            out[index.to(out.device)] = emb
        return out

    def _embed_trimmed(self, wavs, mask, taps):
        """Embeds waveforms whose lengths are multiples of 320."""
        dtype = self.fc.weight.dtype
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            x = self.preemphasis(wavs.to(self.frontend_dtype()))
            x = self.input_norm(x, mask)
        hop = MultiResolutionFrontEnd.FINEST_HOP
        fine = None if mask is None else mask[..., ::hop].to(dtype)
        x = inference_layout(self.frontend(x, fine), self.fc.weight)
        out_mask = None if mask is None else mask[..., :: 8 * hop].to(dtype)
        self._tap(taps, "mrfe", x)

        outputs = []
        for i, stage in enumerate(self.stages):
            if i == 2:
                x = outputs[0] + outputs[1]
            for block in stage:
                x = block(x, out_mask)
            outputs.append(x)
            self._tap(taps, f"stage{i}", x)

        h = F.relu(self.aggregate(cat_channels(outputs)), inplace=True)
        pooled = self.pooling(h, out_mask)
        self._tap(taps, "pooled", pooled)
        return self.emb_norm(self.fc(self.pool_norm(pooled)))

    def frontend_dtype(self):
        """The dtype of the sinc front end (float32 unless made float64).

        Returns
        -------
        torch.dtype
            The dtype of the sinc parameters.

        Example
        -------
        >>> MRRawNet(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
        ...          channels=8, aggregate_channels=8,
        ...          lin_neurons=4).frontend_dtype()
        torch.float32
        """
        return self.frontend.branches[0].sinc.low_hz_.dtype

    @staticmethod
    def _tap(taps, name, value):
        if taps is not None:
            taps[name] = value
