"""Running an exported MR-RawNet ONNX model with onnxruntime.

:class:`OnnxEmbeddingModel` wraps an ``onnxruntime.InferenceSession`` of a
model written by ``python -m speechbrain_ext.export_onnx`` in the lobe's
interface, ``forward(wavs [B, T], lengths [B]) -> [B, 1, D]``, so the
batched extraction of the verification recipe and the embedding command
run it unchanged. It checks its input as the lobe does (finite samples,
relative lengths in (0, 1], at least 320 valid samples per row) before
calling the graph, which does no checks of its own.

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional dependencies
(``pip install -r requirements-deploy.txt``); only this module and
``export_onnx.py`` import them, and they say how to install them when they
are missing.

Authors
 * MR-RawNet recipe contributors
"""

import importlib
import os

import torch

__all__ = [
    "INPUT_NAMES",
    "OUTPUT_NAME",
    "OnnxEmbeddingModel",
    "require",
]

#: Graph inputs: padded waveforms [B, T] float32, relative lengths [B].
INPUT_NAMES = ("wavs", "lengths")
#: Graph output: embeddings [B, D] float32.
OUTPUT_NAME = "embeddings"

_INSTALL_HINT = (
    "pip install -r requirements-deploy.txt (or: pip install onnx "
    "onnxscript onnxruntime)"
)


def require(name):
    """Imports an optional deployment package or says how to install it.

    Arguments
    ---------
    name : str
        ``"onnx"``, ``"onnxscript"`` or ``"onnxruntime"``.

    Returns
    -------
    module
        The imported package.

    Raises
    ------
    ImportError
        When it is not installed; the message gives the install command.

    Example
    -------
    >>> require("no_such_deploy_package")
    Traceback (most recent call last):
    ...
    ImportError: no_such_deploy_package is needed for ONNX ... pip install ...
    """
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(
            f"{name} is needed for ONNX export and inference but is not "
            f"installed: {_INSTALL_HINT}"
        ) from err


class OnnxEmbeddingModel(torch.nn.Module):
    """An exported MR-RawNet behind the lobe's ``(wavs, lengths)`` interface.

    Arguments
    ---------
    path : str
        The ``.onnx`` file.
    threads : int or None
        onnxruntime intra-op threads (None: onnxruntime's default).
    providers : sequence of str
        onnxruntime execution providers.
    spin : bool
        Let idle onnxruntime threads spin-wait (onnxruntime's default,
        lowest latency on a dedicated CPU; off here, see the code).

    Example
    -------
    >>> OnnxEmbeddingModel("/no/such/model.onnx")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no ONNX model at /no/such/model.onnx
    """

    def __init__(self, path, threads=None,
                 providers=("CPUExecutionProvider",), spin=False):
        super().__init__()
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no ONNX model at {path}")
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        if not spin:
            # Idle onnxruntime threads otherwise keep spinning on the
            # cores after each run, which starves torch, the audio readers
            # and other processes on a shared CPU.
            options.add_session_config_entry(
                "session.intra_op.allow_spinning", "0"
            )
        try:
            self.session = ort.InferenceSession(
                path, options, providers=list(providers)
            )
        except Exception as err:  # noqa: BLE001 - re-raised with the path
            raise ValueError(
                f"{path} cannot be loaded by onnxruntime: {err}"
            ) from err
        inputs = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if inputs != INPUT_NAMES or outputs != (OUTPUT_NAME,):
            raise ValueError(
                f"{path} has inputs {list(inputs)} and outputs "
                f"{list(outputs)}; an MR-RawNet export has inputs "
                f"{list(INPUT_NAMES)} and output [{OUTPUT_NAME!r}]"
            )
        self.path = path
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)

    def forward(self, wavs, lengths=None):
        """Embeds a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            16 kHz waveforms ``[B, T]``, zero-padded.
        lengths : torch.Tensor or None
            Relative lengths ``[B]`` in (0, 1]; None: all full length.

        Returns
        -------
        torch.Tensor
            float32 embeddings ``[B, 1, D]`` on the CPU.
        """
        from speechbrain_ext.lobes.mr_rawnet import MRRawNet

        # The lobe's own input checks (they do not use the instance).
        MRRawNet.valid_lengths(None, wavs, lengths)
        if lengths is None:
            lengths = torch.ones(wavs.shape[0])
        feed = {
            "wavs": wavs.detach().cpu().float().contiguous().numpy(),
            "lengths": torch.as_tensor(lengths).detach().cpu().float()
            .numpy(),
        }
        out = self.session.run([OUTPUT_NAME], feed)[0]
        return torch.from_numpy(out).unsqueeze(1)
