"""Benchmark: MR-RawNet inference speed on the CPU against the official code.

Times three batches (1 x 4 s, 8 x 2 s and 16 utterances of 1-10 s), float32,
for three networks on the same random weights, in one process, calls
interleaved (the order rotates every round) so that a change in machine
load hits all of them alike:

* ``official``: the official network, ``MainModel(nOut=256)`` imported
  unchanged from ``models/MR_RawNet.py`` of the folder given with
  ``--official`` (it needs ``asteroid-filterbanks``); its state dict,
  resampler kernels included, is converted with ``convert_state_dict``;
* ``ours``: this project's lobe as users get it (``set_cpu_kernels("auto")``:
  each alternative CPU kernel only where it was timed faster here);
* ``ours stock``: the same lobe with torch's stock convolution kernels
  only (``set_cpu_kernels("stock")``);
* with ``--bf16``, also ``ours bf16``: the opt-in bfloat16 mode (CPU
  autocast, as the verification recipe's ``--precision=bf16``), with its
  smallest cosine to our float32 embeddings.

It prints the CPU (``lscpu`` model name and the vector extensions that
matter), the thread count, the torch version and the load average, then
per batch the median seconds, the ratios and the largest difference
between our embeddings and the official ones. The official network is not
length-aware, so for the mixed batch it is timed on the padded batch (the
way it would be used) and compared on each utterance run alone.

Usage::

    python tests/benchmarks/bench_lobe.py \\
        --official ../shared/reference/official_mr_rawnet [--repeats 11]

Ratios depend on the processor. This is a measurement, not a test.
"""

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from speechbrain_ext.convert_official import convert_state_dict  # noqa: E402
from speechbrain_ext.lobes import channel_gemm, fast_conv  # noqa: E402
from speechbrain_ext.lobes.mr_rawnet import MRRawNet  # noqa: E402
from speechbrain_ext.pretrained import OFFICIAL_MODEL_KWARGS  # noqa: E402

SR = 16000
#: CPU flags that decide which kernels are fast.
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
         "amx_tile", "amx_bf16")


def cpu_description():
    """``lscpu`` model name and the vector extensions present.

    Returns
    -------
    str
        One line.
    """
    try:
        text = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    fields = dict(
        line.split(":", 1) for line in text.splitlines() if ":" in line
    )
    model = fields.get("Model name", "unknown CPU").strip()
    flags = set(fields.get("Flags", "").split())
    present = [f for f in FLAGS if f in flags]
    return f"{model}; {', '.join(present) or 'no AVX2'}"


def load_official(folder):
    """Imports the official ``MainModel`` from ``folder/models``.

    Arguments
    ---------
    folder : str
        The official code's root (holding ``models/MR_RawNet.py``).

    Returns
    -------
    torch.nn.Module
        ``MainModel(nOut=256)``.
    """
    folder = os.path.abspath(folder)
    if not os.path.isfile(os.path.join(folder, "models", "MR_RawNet.py")):
        sys.exit(f"--official: no models/MR_RawNet.py in {folder}")
    sys.path.insert(0, folder)
    try:
        module = importlib.import_module("models.MR_RawNet")
    except ImportError as err:
        sys.exit(f"the official network needs {err.name} "
                 "(pip install -r requirements-dev.txt)")
    return module.MainModel(nOut=256)


def cases(seed=0):
    """The benchmark batches: (name, wavs, sample counts or None)."""
    gen = torch.Generator().manual_seed(seed)
    one = torch.randn(1, 4 * SR, generator=gen) * 0.1
    eight = torch.randn(8, 2 * SR, generator=gen) * 0.1
    counts = (torch.linspace(1.0, 10.0, 16) * SR).long() // 320 * 320
    mixed = torch.zeros(16, int(counts.max()))
    for i, n in enumerate(counts.tolist()):
        mixed[i, :n] = torch.randn(n, generator=gen) * 0.1
    return [
        ("1 x 4 s", one, None),
        ("8 x 2 s", eight, None),
        ("16 x 1-10 s", mixed, counts),
    ]


def with_kernels(model, mode):
    """``model`` called with the CPU kernel mode ``mode``."""
    def run(wavs, lengths):
        with fast_conv.cpu_kernels(mode):
            return model(wavs, lengths)
    return run


def with_bf16(model):
    """``model`` called under CPU bfloat16 autocast (the opt-in mode)."""
    def run(wavs, lengths):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(wavs, lengths).float()
    return run


def time_interleaved(runs, repeats):
    """Median wall time of each callable; the call order rotates each round.

    Arguments
    ---------
    runs : list of (str, callable)
        Labelled zero-argument callables.
    repeats : int
        Rounds.

    Returns
    -------
    dict
        label -> median seconds.
    """
    times = {label: [] for label, _ in runs}
    for r in range(repeats):
        for label, fn in runs[r % len(runs):] + runs[: r % len(runs)]:
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


def load():
    """The 1-minute load average, as a string."""
    return f"{os.getloadavg()[0]:.2f}"


def main():
    """Runs the benchmark and prints a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True,
                        help="the official code's folder")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", nargs="+", type=int, default=[0, 1, 2],
                        help="which batches to time (0, 1, 2)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time the opt-in bfloat16 autocast mode")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    official = load_official(args.official).eval()
    ours = MRRawNet(**OFFICIAL_MODEL_KWARGS).eval()
    ours.load_state_dict(convert_state_dict(official.state_dict()))
    default = with_kernels(ours, "auto")
    stock = with_kernels(ours, "stock")
    bf16 = with_bf16(ours)

    print(f"CPU: {cpu_description()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"float32, median of {args.repeats}, calls interleaved; "
          f"load average {load()}")
    print(f"{'batch':<13}{'official':>10}{'ours':>9}{'stock':>9}"
          f"{'off/ours':>10}{'off/stock':>10}{'stock/ours':>11}"
          f"{'max|diff|':>11}{'load':>6}"
          + (f"{'bf16':>8}{'off/bf16':>10}{'cos bf16':>10}"
             if args.bf16 else ""))
    with torch.inference_mode():
        for index, (name, wavs, counts) in enumerate(cases()):
            if index not in args.batches:
                continue
            lengths = None if counts is None else counts / wavs.shape[1]
            start = time.perf_counter()
            ref = default(wavs, lengths)[:, 0]  # first use: kernel timing
            first = time.perf_counter() - start
            stock(wavs, lengths)
            official(wavs)
            runs = [
                ("official", lambda w=wavs: official(w)),
                ("ours", lambda w=wavs, n=lengths: default(w, n)),
                ("stock", lambda w=wavs, n=lengths: stock(w, n)),
            ]
            if args.bf16:
                cos = torch.nn.functional.cosine_similarity(
                    ref, bf16(wavs, lengths)[:, 0]
                ).min()
                runs.append(("bf16", lambda w=wavs, n=lengths: bf16(w, n)))
            med = time_interleaved(runs, args.repeats)
            if counts is None:
                diff = (ref - official(wavs)).abs().max()
            else:
                diff = max(
                    (ref[i] - official(wavs[i : i + 1, :n])[0]).abs().max()
                    for i, n in enumerate(counts.tolist())
                )
            print(
                f"{name:<13}{med['official']:>10.3f}{med['ours']:>9.3f}"
                f"{med['stock']:>9.3f}"
                f"{med['official'] / med['ours']:>9.2f}x"
                f"{med['official'] / med['stock']:>9.2f}x"
                f"{med['stock'] / med['ours']:>10.2f}x"
                f"{float(diff):>11.1e}{load():>6}"
                + (f"{med['bf16']:>8.3f}"
                   f"{med['official'] / med['bf16']:>9.2f}x"
                   f"{float(cos):>10.6f}" if args.bf16 else "")
            )
            print(f"{'':<13}first call of ours (kernel timing included): "
                  f"{first:.3f} s")
    chosen = fast_conv.kernel_choices()
    fast = sum(v == "fast" for v in chosen.values())
    backends = channel_gemm.backend_choices()
    mm = sum(v == "mm" for v in backends.values())
    print(f"kernel choices: {fast} of {len(chosen)} layer/input shapes use "
          f"the alternative kernel; {mm} of {len(backends)} product shapes "
          f"run on torch.mm, not oneDNN; load average at the end {load()}")


if __name__ == "__main__":
    main()
