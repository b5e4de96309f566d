"""Length-sorted, padded batches of waveforms through a length-aware model.

Extraction is batched: utterances are sorted by length (longest first, so
an out-of-memory error shows up at once), grouped under a count and a
padded-seconds budget (:func:`plan_batches`), zero-padded and passed with
relative lengths to a length-aware model (:class:`BatchedEmbedder`). For
MR-RawNet the padding does not change any embedding, so batched and
one-by-one extraction agree to rounding.

Authors
 * MR-RawNet recipe contributors
"""

import warnings

import numpy as np
import torch

__all__ = [
    "BatchedEmbedder",
    "warn_if_no_cpu_bf16",
    "plan_batches",
]


_PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def warn_if_no_cpu_bf16():
    """Warns when this CPU has no native bfloat16 matrix products.

    bfloat16 inference pays on CPUs with AVX-512 BF16 or AMX; elsewhere
    oneDNN emulates it, and it was measured 13x slower than float32 on an
    AVX2 EPYC (1 x 4 s: 6.6 s against 0.49 s).

    Returns
    -------
    bool
        Whether the CPU has native bfloat16 (no warning then).

    Example
    -------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     isinstance(warn_if_no_cpu_bf16(), bool)
    True
    """
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if not native:
        warnings.warn(
            "precision bf16: this CPU has no native bfloat16 (AVX-512 BF16 "
            "or AMX), so bfloat16 inference is emulated and much slower "
            "than fp32; use precision fp32 here",
            RuntimeWarning,
            stacklevel=3,
        )
    return native


def plan_batches(lengths, batch_size, max_batch_seconds=None,
                 sample_rate=16000):
    """Groups items into batches, longest first.

    A batch holds at most ``batch_size`` items and, once padded to its
    longest item, at most ``max_batch_seconds`` of audio; an item longer
    than the budget gets a batch of its own.

    Arguments
    ---------
    lengths : sequence of int
        Length of each item in samples.
    batch_size : int
        Most items per batch (>= 1).
    max_batch_seconds : float or None
        Budget of padded audio per batch, or None for no budget.
    sample_rate : int
        Samples per second.

    Returns
    -------
    list of list of int
        Indices into ``lengths``; batches in decreasing length.

    Example
    -------
    >>> plan_batches([16000, 48000, 32000, 8000], batch_size=3)
    [[1, 2, 0], [3]]
    >>> plan_batches([16000, 48000, 32000, 8000], 4, max_batch_seconds=6)
    [[1, 2], [0, 3]]
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_batch_seconds is not None and max_batch_seconds <= 0:
        raise ValueError(
            f"max_batch_seconds must be > 0, got {max_batch_seconds}"
        )
    budget = (
        None if max_batch_seconds is None
        else float(max_batch_seconds) * sample_rate
    )
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, current = [], []
    for i in order:
        if current:
            padded = (len(current) + 1) * lengths[current[0]]
            if len(current) >= batch_size or (
                budget is not None and padded > budget
            ):
                batches.append(current)
                current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class BatchedEmbedder:
    """Embeds lists of waveforms in padded, length-sorted batches.

    Arguments
    ---------
    model : torch.nn.Module
        ``forward(wavs [B, T], lengths [B]) -> [B, 1, D]`` (or ``[B, D]``),
        length-aware; put in eval mode here.
    device : str or torch.device
        Where the model runs (moved there).
    batch_size : int
        Most utterances per forward pass.
    max_batch_seconds : float or None
        Most padded seconds of audio per forward pass.
    sample_rate : int
        Sample rate of the waveforms.
    precision : str
        ``"fp32"``, ``"fp16"`` or ``"bf16"`` (autocast; fp16 needs CUDA).

    Example
    -------
    >>> class Sum(torch.nn.Module):
    ...     def forward(self, wavs, lengths):
    ...         return wavs.sum(dim=1)[:, None, None]
    >>> embedder = BatchedEmbedder(Sum(), batch_size=2)
    >>> embedder([torch.ones(3), torch.ones(5), torch.ones(1)]).ravel()
    array([3., 5., 1.], dtype=float32)
    """

    def __init__(self, model, device="cpu", batch_size=16,
                 max_batch_seconds=None, sample_rate=16000, precision="fp32"):
        if precision not in _PRECISIONS:
            raise ValueError(
                f"precision must be one of {sorted(_PRECISIONS)}, got "
                f"{precision!r}"
            )
        self.device = torch.device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 inference needs a CUDA device")
        if precision == "bf16" and self.device.type == "cpu":
            warn_if_no_cpu_bf16()
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.max_batch_seconds = max_batch_seconds
        self.sample_rate = int(sample_rate)
        self.precision = precision
        self.forward_calls = 0

    def plan(self, lengths):
        """Batches of ``lengths`` under this embedder's limits.

        Arguments
        ---------
        lengths : sequence of int
            Item lengths in samples.

        Returns
        -------
        list of list of int
            See :func:`plan_batches`.
        """
        return plan_batches(
            lengths, self.batch_size, self.max_batch_seconds,
            self.sample_rate,
        )

    def _forward(self, wavs):
        """One padded forward pass; returns ``[B, D]`` float32 numpy."""
        lengths = [int(w.shape[0]) for w in wavs]
        longest = max(lengths)
        batch = torch.zeros(len(wavs), longest, dtype=torch.float32)
        for row, wav in enumerate(wavs):
            batch[row, : lengths[row]] = wav
        # float64 relative lengths: exact sample counts after rounding.
        rel = torch.tensor(lengths, dtype=torch.float64) / longest
        batch = batch.to(self.device, non_blocking=True)
        autocast = _PRECISIONS[self.precision]
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=autocast, enabled=autocast is not None
        ):
            emb = self.model(batch, rel.to(self.device))
        self.forward_calls += 1
        emb = emb.reshape(len(wavs), -1).float().cpu().numpy()
        if not np.isfinite(emb).all():
            raise FloatingPointError(
                "the model returned non-finite embeddings"
            )
        return emb

    def __call__(self, wavs):
        """Embeds 1-D waveforms of any lengths.

        Arguments
        ---------
        wavs : sequence of torch.Tensor
            1-D float waveforms.

        Returns
        -------
        numpy.ndarray
            ``[len(wavs), D]`` float32 embeddings, in input order.
        """
        if not len(wavs):
            raise ValueError("no waveforms to embed")
        out = None
        for group in self.plan([int(w.shape[0]) for w in wavs]):
            emb = self._forward([wavs[i] for i in group])
            if out is None:
                out = np.empty((len(wavs), emb.shape[1]), dtype=np.float32)
            out[group] = emb
        return out
