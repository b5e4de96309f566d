"""Benchmark: onnxruntime vs our PyTorch lobe vs the official network (CPU).

All three run the same full-size weights (the official network's random
initialisation, converted) on 1 x 4 s, 8 x 2 s and 16 mixed 1-10 s
utterances, float32, with the same thread count, calls interleaved so that
machine load hits every back end alike (median of ``--repeats``). Our two
back ends take the mixed batch padded with its lengths; the official
network is not length-aware and gets the padded batch as it is (same
amount of work). The ONNX file is exported once (minutes) and kept in
``--cache`` under the weights' digest.

Prints the CPU model, the load average before and after (the machine may be
shared), versions, and per batch the median seconds, the speed ratios and
the largest difference between onnxruntime and PyTorch.

Usage::

    python tests/benchmarks/bench_onnx.py [--repeats 11] [--threads 2]

This is a measurement, not a test.
"""

import argparse
import os
import platform
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "benchmarks"))

from bench_lobe import time_interleaved  # noqa: E402

from speechbrain_ext.convert_official import (  # noqa: E402
    convert_state_dict,
    split_official_checkpoint,
)
from speechbrain_ext.export_onnx import export_model  # noqa: E402
from speechbrain_ext.lobes.mr_rawnet import MRRawNet  # noqa: E402
from speechbrain_ext.onnx_runtime import OnnxEmbeddingModel  # noqa: E402
from speechbrain_ext.pretrained import (  # noqa: E402
    OFFICIAL_MODEL_KWARGS,
    state_dict_digest,
)

SR = 16000


def cpu_model():
    """``lscpu`` model name (or the platform's processor string)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average():
    """The 1/5/15-minute load averages as text."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def official_network():
    """The official MR-RawNet (``MainModel(nOut=256)``) from the shared
    reference folder, or None when it cannot be imported."""
    try:
        from official_code import official_module

        module = official_module("models.MR_RawNet")
    except BaseException as err:  # noqa: BLE001 - pytest.skip is BaseException
        print(f"official network not available: {err}")
        return None
    return module.MainModel(nOut=256).eval()


def cases(seed=0):
    """The benchmark batches: (name, wavs, relative lengths or None)."""
    gen = torch.Generator().manual_seed(seed)
    one = torch.randn(1, 4 * SR, generator=gen) * 0.1
    eight = torch.randn(8, 2 * SR, generator=gen) * 0.1
    n = (torch.linspace(1.0, 10.0, 16) * SR).long()
    mixed = torch.zeros(16, int(n.max()))
    for i, length in enumerate(n.tolist()):
        mixed[i, :length] = torch.randn(length, generator=gen) * 0.1
    return [
        ("1 x 4 s", one, None),
        ("8 x 2 s", eight, None),
        ("16 x 1-10 s", mixed, n.double() / n.max()),
    ]


def main():
    """Runs the benchmark and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default=os.path.join(
        ROOT, "results", "bench_onnx"))
    parser.add_argument(
        "--checkpoint", help="official-format checkpoint to load into all "
        "three (default: the official network's random initialisation)")
    parser.add_argument(
        "--onnx", help="an export of these weights (checked by digest)")
    args = parser.parse_args()
    import onnxruntime

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"CPU: {cpu_model()}; load average before: {load_average()}")
    official = official_network()
    ours = MRRawNet(**OFFICIAL_MODEL_KWARGS).eval()
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu",
                           weights_only=True)
        network, _ = split_official_checkpoint(state)
        if official is not None:
            official.load_state_dict(network)
        ours.load_state_dict(convert_state_dict(network))
    elif official is not None:
        ours.load_state_dict(convert_state_dict(official.state_dict()))
    digest = state_dict_digest(ours.state_dict())
    path = args.onnx or os.path.join(
        args.cache, f"mr_rawnet_{digest[:16]}.onnx"
    )
    if args.onnx:
        meta = OnnxEmbeddingModel(path).metadata
        stored = meta.get("checkpoint_state_sha256")
        if stored is not None and stored != digest:
            raise SystemExit(f"{path} holds other weights than the model")
    elif not os.path.isfile(path):
        print(f"exporting to {path} (minutes) ...", flush=True)
        report = export_model(ours, path)
        print(f"export: {report}")
    runner = OnnxEmbeddingModel(path, threads=args.threads)
    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{args.threads} threads, float32, median of {args.repeats}, "
        "interleaved"
    )
    print(f"{'batch':<13}{'back end':<13}{'seconds':>9}{'RTF':>9}")
    rows = []
    with torch.inference_mode():
        for name, wavs, lengths in cases():
            audio_s = float(
                (lengths if lengths is not None else torch.ones(len(wavs)))
                .sum() * wavs.shape[1] / SR
            )
            runs = [
                ("onnxruntime", lambda w=wavs, ln=lengths: runner(w, ln)),
                ("ours torch", lambda w=wavs, ln=lengths: ours(w, ln)),
            ]
            if official is not None:
                trim = wavs[:, : wavs.shape[1] // 320 * 320]
                runs.append(("official", lambda t=trim: official(t)))
            result = time_interleaved(runs, args.repeats)
            for label, secs in result.items():
                print(f"{name:<13}{label:<13}{secs:9.3f}{secs / audio_s:9.4f}")
            a = runner(wavs, lengths)[:, 0].numpy().astype(np.float64)
            b = ours(wavs, lengths)[:, 0].numpy().astype(np.float64)
            cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(
                b, axis=1)
            line = (
                f"{'':<13}torch/onnxruntime "
                f"{result['ours torch'] / result['onnxruntime']:.2f}x"
            )
            if official is not None:
                line += (
                    f", official/onnxruntime "
                    f"{result['official'] / result['onnxruntime']:.2f}x, "
                    f"official/torch "
                    f"{result['official'] / result['ours torch']:.2f}x"
                )
            print(line)
            print(f"{'':<13}onnxruntime vs torch: min cosine {cos.min():.7f}, "
                  f"max |diff| {np.abs(a - b).max():.2e}")
            rows.append((name, result))
    print(f"load average after: {load_average()}")
    return rows


if __name__ == "__main__":
    main()
