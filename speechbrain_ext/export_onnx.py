"""ONNX export of a pretrained MR-RawNet folder, padding-aware.

Usage::

    python -m speechbrain_ext.export_onnx <pretrained folder> <model.onnx>

The graph takes raw 16 kHz audio, nothing else in front of it:

* ``wavs``: float32 ``[B, T]``, zero-padded waveforms;
* ``lengths``: float32 ``[B]``, relative lengths in (0, 1] (SpeechBrain's
  convention: utterance ``b`` has ``round(lengths[b] * T)`` samples);

and returns ``embeddings``: float32 ``[B, D]``. Batch and time are
dynamic. Each utterance is trimmed to a multiple of 320 samples and the
padding is masked at every resolution, exactly as the PyTorch lobe does, so
a padded batch gives each utterance's embedding alone. The graph does not
check its input: rows shorter than 320 samples, NaN/Inf samples or lengths
outside (0, 1] give meaningless output. ``speechbrain_ext.onnx_runtime.
OnnxEmbeddingModel`` runs it with the lobe's checks.

How: the model is copied with its CPU inference kernels replaced by the
stock torch layers they subclass (``lobes/fast_conv.py``) and with the
batch-vectorised masked layer norm, traced by ``torch.export.export`` with
symbolic batch and time, then translated by ``torch.onnx.export`` (which
needs ``onnxscript``). A branch that depends on the values of the lengths
cannot be traced symbolically: the export then stops with
:class:`OnnxExportError` instead of writing a graph fixed to the example's
lengths (``torch.onnx.export``'s ``draft_export`` fallback is never used).
Before the file is kept, onnxruntime runs it on a padded batch of lengths
not used for tracing and on a single utterance, against the PyTorch model
run on each utterance alone; below a cosine of 0.9999 the file is deleted
and the export fails. The export takes minutes on a CPU (mostly
symbolic-shape tracing), once.

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import copy
import json
import logging
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes.masking import (
    LENGTH_MULTIPLE,
    make_mask,
    sample_lengths,
)
from speechbrain_ext.lobes.tcn import GlobalLayerNorm
from speechbrain_ext.onnx_runtime import (
    INPUT_NAMES,
    OUTPUT_NAME,
    OnnxEmbeddingModel,
    require,
)

__all__ = [
    "MIN_COSINE",
    "LengthMaskedEmbedding",
    "OnnxExportError",
    "check_onnx",
    "export_onnx",
    "graph_friendly_copy",
]

logger = logging.getLogger(__name__)

#: Smallest cosine between ONNX and PyTorch embeddings accepted at export.
MIN_COSINE = 0.9999

#: Default ONNX opset.
OPSET = 18


class OnnxExportError(RuntimeError):
    """The model cannot be exported faithfully; the message says why.

    Arguments
    ---------
    message : str
        What failed.

    Example
    -------
    >>> str(OnnxExportError("padded batch differs"))
    'padded batch differs'
    """


class _VectorisedGlobalLayerNorm(GlobalLayerNorm):
    """gLN with batch-vectorised masked statistics (no per-utterance loop).

    The CPU path of :class:`GlobalLayerNorm` loops over the utterances with
    their lengths as Python integers, which a symbolic trace cannot follow;
    the masked statistics below are the same function for every device.
    """

    def forward(self, x, mask=None, inplace=False):
        """Normalises ``x`` over channels and valid frames.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, C, T]``.
        mask : torch.Tensor or None
            ``[B, 1, T]``.
        inplace : bool
            Ignored: the graph always computes a new tensor.

        Returns
        -------
        torch.Tensor
            ``[B, C, T]``.
        """
        if mask is None:
            return F.group_norm(
                x, 1, self.gamma.view(-1), self.beta.view(-1), self.eps
            )
        return self._masked(x, mask)


_STOCK_LAYERS = (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)


def _stock_base(cls):
    """The torch layer a project layer subclasses, or None."""
    if not cls.__module__.startswith("speechbrain_ext."):
        return None
    for base in cls.__mro__[1:]:
        if base in _STOCK_LAYERS:
            return base
    return None


def graph_friendly_copy(model):
    """A float32 copy of ``model`` made of layers a symbolic trace can follow.

    Project layers that subclass a stock torch layer only to run faster
    (``lobes/fast_conv.py``) become that stock layer (same parameters, same
    function); masked gLN uses its vectorised form. Parameters require
    gradients in the copy, so no CPU-inference-only kernel is chosen while
    tracing. ``model`` itself is not changed.

    Arguments
    ---------
    model : torch.nn.Module
        An ``MRRawNet``.

    Returns
    -------
    torch.nn.Module
        The copy, in eval mode.

    Example
    -------
    >>> from speechbrain_ext.lobes.fast_conv import PointwiseConv1d
    >>> layer = nn.Sequential(PointwiseConv1d(2, 3))
    >>> type(graph_friendly_copy(layer)[0]).__name__
    'Conv1d'
    """
    out = copy.deepcopy(model).float().eval()
    for module in out.modules():
        if isinstance(module, GlobalLayerNorm):
            module.__class__ = _VectorisedGlobalLayerNorm
            continue
        base = _stock_base(type(module))
        if base is not None:
            module.__class__ = base
    for param in out.parameters():
        param.requires_grad_(True)
    return out


class LengthMaskedEmbedding(nn.Module):
    """``(wavs [B, T], lengths [B]) -> [B, D]`` with every row masked.

    The lobe skips the masks when nothing is padded and trims the batch to
    its longest utterance, two decisions on the values of ``lengths``; this
    wrapper always masks and trims to ``T // 320 * 320``, which depends on
    the shape only, and gives the same embeddings.

    Arguments
    ---------
    model : MRRawNet
        The lobe (ideally a :func:`graph_friendly_copy`).

    Example
    -------
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> lobe = MRRawNet(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...     tcn_repeats=1, tcn_blocks=1, channels=8, mra_depths=[1, 1, 1],
    ...     aggregate_channels=8, attention_channels=4, lin_neurons=4).eval()
    >>> wavs = torch.randn(2, 1000)
    >>> with torch.no_grad():
    ...     out = LengthMaskedEmbedding(lobe)(wavs, torch.tensor([1.0, 0.7]))
    ...     alone = lobe(wavs[1:, :700])[:, 0]
    >>> out.shape, torch.allclose(out[1:], alone, atol=1e-4)
    (torch.Size([2, 4]), True)
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, wavs, lengths):
        """Embeds a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` float32.
        lengths : torch.Tensor
            ``[B]`` relative lengths.

        Returns
        -------
        torch.Tensor
            ``[B, D]``.
        """
        n_samples = wavs.shape[1]
        usable = n_samples // LENGTH_MULTIPLE * LENGTH_MULTIPLE
        counts = sample_lengths(lengths, n_samples)
        counts = torch.div(
            counts, LENGTH_MULTIPLE, rounding_mode="floor"
        ) * LENGTH_MULTIPLE
        mask = make_mask(counts, usable, wavs.dtype)
        return self.model._embed_trimmed(wavs[:, :usable], mask, None)


def _probe_batch(lengths_s, seed, sample_rate=16000):
    """Random waveforms of the given durations, padded, with rel. lengths."""
    gen = torch.Generator().manual_seed(seed)
    counts = [int(round(s * sample_rate)) for s in lengths_s]
    longest = max(counts)
    wavs = torch.zeros(len(counts), longest)
    for row, n in enumerate(counts):
        wavs[row, :n] = 0.1 * torch.randn(n, generator=gen)
    rel = torch.tensor(counts, dtype=torch.float64) / longest
    return wavs, rel, counts


def _cosines(a, b):
    """Row-wise cosine of two ``[N, D]`` arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    )


def check_onnx(onnx_path, model, threads=None):
    """Compares an exported graph with the PyTorch model it came from.

    Runs onnxruntime on a padded batch of four utterances (0.37 to 3.1 s,
    lengths not used at export) and on one 1.23 s utterance, and the
    PyTorch model on each utterance alone.

    Arguments
    ---------
    onnx_path : str
        The exported file.
    model : torch.nn.Module
        The PyTorch ``MRRawNet`` (float32, eval mode).
    threads : int or None
        onnxruntime threads.

    Returns
    -------
    dict
        ``padded_min_cosine``, ``padded_max_abs``, ``single_cosine``,
        ``single_max_abs``.
    """
    runner = OnnxEmbeddingModel(onnx_path, threads=threads)
    wavs, rel, counts = _probe_batch([3.1, 0.37, 1.91, 2.65], seed=11)
    single, single_rel, _ = _probe_batch([1.23], seed=12)
    with torch.no_grad():
        alone = torch.cat([
            model.embed(wavs[row : row + 1, :n])
            for row, n in enumerate(counts)
        ]).numpy()
        ref_single = model.embed(single, single_rel).numpy()
    padded = runner(wavs, rel)[:, 0].numpy()
    one = runner(single, single_rel)[:, 0].numpy()
    return {
        "padded_min_cosine": float(_cosines(padded, alone).min()),
        "padded_max_abs": float(np.abs(padded - alone).max()),
        "single_cosine": float(_cosines(one, ref_single).min()),
        "single_max_abs": float(np.abs(one - ref_single).max()),
    }


def _finish_file(path, metadata):
    """Names the dynamic axes ``batch`` / ``time`` and stores metadata."""
    onnx = require("onnx")
    proto = onnx.load(path)
    wavs = proto.graph.input[0].type.tensor_type.shape.dim
    names = {wavs[0].dim_param: "batch", wavs[1].dim_param: "time"}
    names.pop("", None)
    values = [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]
    for value in values:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.save(proto, path)


def export_model(model, out_path, opset=OPSET, check=True, metadata=None,
                 optimize=True):
    """Exports an ``MRRawNet`` module to ONNX and checks the result.

    Arguments
    ---------
    model : torch.nn.Module
        The lobe (left unchanged).
    out_path : str
        The ``.onnx`` file to write (replaced only when the export passed).
    opset : int
        ONNX opset.
    check : bool
        Run :func:`check_onnx` and refuse a graph below :data:`MIN_COSINE`.
    metadata : dict or None
        Extra ``metadata_props`` entries.
    optimize : bool
        Run the onnxscript graph optimiser (constant folding, fusions).

    Returns
    -------
    dict
        Agreement figures (see :func:`check_onnx`) and ``export_seconds``.

    Raises
    ------
    OnnxExportError
        If tracing fails (e.g. a branch on the lengths' values) or the
        graph does not reproduce the model on padded input.
    """
    require("onnx")
    require("onnxscript")
    require("onnxruntime")
    model = model.float().eval()
    wrapper = LengthMaskedEmbedding(graph_friendly_copy(model)).eval()
    wavs, rel, _ = _probe_batch([2.0, 1.43, 0.81], seed=5)
    start = time.time()
    dynamic = torch.export.Dim.DYNAMIC
    try:
        with torch.enable_grad():
            # torch.export directly: torch.onnx.export would fall back to
            # draft_export, which fixes data-dependent branches silently.
            exported = torch.export.export(
                wrapper,
                (wavs, rel.float()),
                dynamic_shapes={
                    "wavs": {0: dynamic, 1: dynamic},
                    "lengths": {0: dynamic},
                },
                strict=False,
            )
    except Exception as err:  # noqa: BLE001 - re-raised with the reason
        raise OnnxExportError(
            "the model cannot be traced with symbolic batch and time: a "
            "branch depends on the lengths' values or on the shapes, and "
            "the export refuses to fix it to the example's lengths "
            f"({type(err).__name__}: {str(err).splitlines()[0][:500]})"
        ) from err
    try:
        program = torch.onnx.export(
            exported,
            dynamo=True,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            opset_version=int(opset),
            optimize=bool(optimize),
            verbose=False,
        )
    except Exception as err:  # noqa: BLE001 - re-raised with the reason
        raise OnnxExportError(
            f"the traced model cannot be translated to ONNX opset {opset} "
            f"({type(err).__name__}: {str(err).splitlines()[0][:500]})"
        ) from err
    seconds = time.time() - start
    out_path = os.path.abspath(os.fspath(out_path))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    tmp = f"{out_path}.{os.getpid()}.tmp"
    try:
        program.save(tmp, external_data=False)
        _finish_file(tmp, {
            "producer": "speechbrain_ext.export_onnx",
            "inputs": "wavs float32 [B, T] 16 kHz zero-padded; lengths "
                      "float32 [B] relative in (0, 1]",
            "outputs": "embeddings float32 [B, D]",
            "sample_rate": "16000",
            **(metadata or {}),
        })
        report = {"export_seconds": round(seconds, 1)}
        if check:
            report.update(check_onnx(tmp, model))
            worst = min(report["padded_min_cosine"], report["single_cosine"])
            if not worst >= MIN_COSINE:
                raise OnnxExportError(
                    "the exported graph does not reproduce the PyTorch "
                    f"model (cosine {worst:.6f} < {MIN_COSINE} on "
                    f"{'a padded batch' if report['padded_min_cosine'] < MIN_COSINE else 'a single utterance'}"  # noqa: E501
                    "): a length-dependent branch did not survive the "
                    "export; nothing was written"
                )
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return report


def export_onnx(pretrained, out_path, opset=OPSET, check=True):
    """Exports the embedding model of a pretrained folder to ONNX.

    Arguments
    ---------
    pretrained : str
        A pretrained folder (or a training output folder holding one).
    out_path : str
        The ``.onnx`` file to write.
    opset : int
        ONNX opset.
    check : bool
        Compare the graph with PyTorch before keeping it.

    Returns
    -------
    dict
        Agreement figures, ``export_seconds``, ``onnx`` (the path) and
        ``pretrained`` (the folder).
    """
    from speechbrain_ext.pretrained import state_digest
    from speechbrain_ext.scoring.model_loading import (
        load_embedding_model,
        resolve_pretrained_folder,
    )

    folder = resolve_pretrained_folder(pretrained)
    model, checkpoint, _ = load_embedding_model(folder)
    report = export_model(
        model, out_path, opset, check,
        metadata={
            "embedding_dim": str(model.fc.out_features),
            "checkpoint_state_sha256": state_digest(checkpoint),
        },
    )
    report.update(onnx=os.path.abspath(out_path), pretrained=folder)
    return report


def main(argv=None):
    """Command line: ``export_onnx <pretrained folder> <model.onnx>``.

    Arguments
    ---------
    argv : list of str or None
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success.
    """
    parser = argparse.ArgumentParser(
        description="Export a pretrained MR-RawNet folder to ONNX "
        "(inputs wavs [B, T] and relative lengths [B], output [B, D])."
    )
    parser.add_argument("pretrained", help="pretrained folder")
    parser.add_argument("output", help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=OPSET)
    parser.add_argument(
        "--no_check", action="store_true",
        help="skip the onnxruntime-vs-PyTorch check (not recommended)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(f"Exporting {args.pretrained} (takes minutes on a CPU) ...",
          flush=True)
    try:
        report = export_onnx(
            args.pretrained, args.output, args.opset, not args.no_check
        )
    except (OnnxExportError, FileNotFoundError, ImportError) as err:
        print(f"export_onnx: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
