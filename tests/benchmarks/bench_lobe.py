"""Benchmark: MR-RawNet inference speed on the CPU (float32, 2 threads).

Prints embeddings/s and the real-time factor (processing time / audio
time) for batch 1 x 4 s, batch 8 x 2 s and a batch of 16 mixed 1-10 s
utterances. With ``--official DIR`` (a folder holding the official
``MR_RawNet.py``, importable together with ``asteroid_filterbanks``) it times
the official network too, on the same weights and inputs, interleaved with
ours so machine load affects both alike, and prints the largest output
difference. The official network is not length-aware, so in the mixed batch
it embeds padded inputs; the timing comparison is still like for like.

Usage::

    python tests/benchmarks/bench_lobe.py [--official DIR] [--repeats 7]

This is a measurement, not a test.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from speechbrain_ext.convert_official import convert_state_dict  # noqa: E402
from speechbrain_ext.lobes.mr_rawnet import MRRawNet  # noqa: E402
from speechbrain_ext.pretrained import OFFICIAL_MODEL_KWARGS  # noqa: E402

SR = 16000


def load_official(folder):
    """Imports the official network class from ``folder/MR_RawNet.py``."""
    path = os.path.join(folder, "MR_RawNet.py")
    spec = importlib.util.spec_from_file_location("official_mr_rawnet", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, folder)
    spec.loader.exec_module(module)
    cls = getattr(module, "MainModel", None) or module.MR_RawNet
    return cls(nOut=256)


def cases(seed=0):
    """The three benchmark batches: (name, wavs, relative lengths)."""
    gen = torch.Generator().manual_seed(seed)
    one = torch.randn(1, 4 * SR, generator=gen) * 0.1
    eight = torch.randn(8, 2 * SR, generator=gen) * 0.1
    secs = torch.linspace(1.0, 10.0, 16)
    n = (secs * SR).long()
    mixed = torch.zeros(16, int(n.max()))
    for i, length in enumerate(n.tolist()):
        mixed[i, :length] = torch.randn(length, generator=gen) * 0.1
    return [
        ("1 x 4 s", one, None, 4.0),
        ("8 x 2 s", eight, None, 16.0),
        ("16 x 1-10 s", mixed, n / n.max(), float(secs.sum())),
    ]


def time_interleaved(runs, repeats):
    """Median wall time of each callable, calls alternating between them.

    Alternating makes a change in machine load hit every model alike.
    """
    for _, fn in runs:
        fn()  # warm-up
    times = {label: [] for label, _ in runs}
    for _ in range(repeats):
        for label, fn in runs:
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


def main():
    """Runs the benchmark and prints a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", help="folder with the official code")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ours = MRRawNet(**OFFICIAL_MODEL_KWARGS).eval()
    official = None
    if args.official:
        official = load_official(args.official).eval()
        ours.load_state_dict(convert_state_dict(official.state_dict()))

    print(f"torch {torch.__version__}, {args.threads} threads, float32, "
          f"median of {args.repeats}")
    header = f"{'batch':<13}{'model':<10}{'seconds':>9}{'emb/s':>9}{'RTF':>9}"
    print(header)
    with torch.inference_mode():
        for name, wavs, lengths, audio_s in cases():
            n = wavs.shape[0]
            runs = [("ours", lambda w=wavs, ln=lengths: ours(w, ln))]
            if official is not None:
                trim = wavs[:, : wavs.shape[1] // 320 * 320]
                runs.append(("official", lambda t=trim: official(t)))
            results = time_interleaved(runs, args.repeats)
            for label, secs in results.items():
                print(f"{name:<13}{label:<10}{secs:9.3f}{n / secs:9.2f}"
                      f"{secs / audio_s:9.4f}")
            if official is not None:
                ratio = results["official"] / results["ours"]
                print(f"{'':<13}speed-up  {ratio:8.2f}x")
                if lengths is None:
                    diff = (ours(wavs)[:, 0] - official(wavs)).abs().max()
                    print(f"{'':<13}max |ours - official| = {float(diff):.2e}")


if __name__ == "__main__":
    main()
