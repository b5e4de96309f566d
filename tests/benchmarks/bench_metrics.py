"""Time and peak memory of EER + minDCF: ours vs SpeechBrain's.

Every measurement runs in a fresh subprocess, which generates random
scores (half target, N(2, 1); half non-target, N(0, 1)), then records the
resident set size (RSS) just before the metric call and the peak RSS
during it. On Linux the peak is reset (``/proc/self/clear_refs``) before
the call, so data generation does not mask it; elsewhere ``ru_maxrss`` is
used and the delta may be an underestimate.

Ours: ``compute_metrics`` (one sort; EER and minDCF at P_target 0.01 and
0.05). SpeechBrain: ``EER`` + ``minDCF`` at 0.01 and 0.05, float32 scores,
one torch thread. SpeechBrain's ``minDCF`` allocates a thresholds x scores
matrix (~18 GB at 37k trials), so it only runs with ``--with-speechbrain``
and on ``--sb-trials`` (default 5000) trials.

Usage::

    python tests/benchmarks/bench_metrics.py
    python tests/benchmarks/bench_metrics.py --with-speechbrain
    python tests/benchmarks/bench_metrics.py --sizes 100000 --no-ours \\
        --with-speechbrain --sb-trials 2000

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_TRIALS, TARGET_SECONDS, TARGET_MB = 10_000_000, 10.0, 2048.0


def _status_kb(field):
    """A ``kB`` field of /proc/self/status, or None off Linux.

    Arguments
    ---------
    field : str
        E.g. ``"VmRSS"`` or ``"VmHWM"``.

    Returns
    -------
    int or None
        The value in kB.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak():
    """Resets the peak-RSS counter (Linux); returns whether it worked.

    Returns
    -------
    bool
        True if VmHWM now tracks the peak from this point on.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def _maxrss_kb():
    """Peak RSS of this process in kB (``ru_maxrss``).

    Returns
    -------
    int
        Peak RSS in kB (bytes are converted on macOS).
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _worker(kind, n_trials, seed):
    """Runs one measurement and prints its result as JSON.

    Arguments
    ---------
    kind : str
        ``"ours"`` or ``"speechbrain"``.
    n_trials : int
        Number of trials.
    seed : int
        Random seed of the scores.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n_pos = n_trials // 2
    labels = np.zeros(n_trials, dtype=np.int8)
    labels[:n_pos] = 1
    scores = rng.standard_normal(n_trials)
    scores[:n_pos] += 2.0
    result = {"kind": kind, "n_trials": n_trials}
    if kind == "ours":
        sys.path.insert(0, str(ROOT))
        from speechbrain_ext.scoring.metrics import compute_metrics

        def run():
            m = compute_metrics(labels, scores, p_targets=(0.01, 0.05))
            return m.eer, m.min_dcf[0.01], m.min_dcf[0.05]

    else:
        import torch

        torch.set_num_threads(1)
        from speechbrain.utils.metric_stats import EER, minDCF

        pos = torch.tensor(scores[:n_pos], dtype=torch.float32)
        neg = torch.tensor(scores[n_pos:], dtype=torch.float32)

        def run():
            eer, _ = EER(pos, neg)
            d1, _ = minDCF(pos, neg, p_target=0.01)
            d5, _ = minDCF(pos, neg, p_target=0.05)
            return eer, d1 / 0.01, d5 / 0.05

    before_kb = _status_kb("VmRSS") or _maxrss_kb()
    exact_peak = _reset_peak()
    start = time.perf_counter()
    eer, dcf1, dcf5 = run()
    result["seconds"] = time.perf_counter() - start
    peak_kb = _status_kb("VmHWM") if exact_peak else _maxrss_kb()
    result.update(
        eer=eer,
        min_dcf_001=dcf1,
        min_dcf_005=dcf5,
        rss_before_mb=before_kb / 1024,
        peak_rss_mb=peak_kb / 1024,
        peak_delta_mb=(peak_kb - before_kb) / 1024,
        exact_peak=exact_peak,
    )
    print(json.dumps(result))


def _measure(kind, n_trials, seed):
    """Runs :func:`_worker` in a subprocess and returns its result.

    Arguments
    ---------
    kind : str
        ``"ours"`` or ``"speechbrain"``.
    n_trials : int
        Number of trials.
    seed : int
        Random seed.

    Returns
    -------
    dict
        The worker's JSON result.
    """
    cmd = [sys.executable, __file__, "--worker", kind, str(n_trials)]
    cmd += ["--seed", str(seed)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} at {n_trials} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_row(r):
    """Prints one result line.

    Arguments
    ---------
    r : dict
        A worker result.
    """
    print(
        f"{r['kind']:<12} {r['n_trials']:>11,} {r['seconds']:>9.2f} "
        f"{r['peak_delta_mb']:>11.0f} {r['peak_rss_mb']:>10.0f} "
        f"{100 * r['eer']:>8.4f} {r['min_dcf_001']:>8.5f} "
        f"{r['min_dcf_005']:>8.5f}",
        flush=True,
    )


def main(argv=None):
    """Parses arguments and runs the benchmark (or one worker).

    Arguments
    ---------
    argv : list of str or None
        Command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        help="trial counts for our implementation",
    )
    parser.add_argument(
        "--with-speechbrain",
        action="store_true",
        help="also time SpeechBrain's EER + minDCF (memory hungry)",
    )
    parser.add_argument(
        "--sb-trials",
        type=int,
        default=5000,
        help="trials for SpeechBrain (37611 = VoxCeleb1-O needs ~18 GB)",
    )
    parser.add_argument(
        "--no-ours", action="store_true", help="skip our implementation"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker[0], int(args.worker[1]), args.seed)
        return

    print(
        f"{'impl':<12} {'trials':>11} {'time (s)':>9} {'peak +MB':>11} "
        f"{'peak MB':>10} {'EER (%)':>8} {'DCF.01':>8} {'DCF.05':>8}"
    )
    results = []
    if not args.no_ours:
        for n in args.sizes:
            results.append(_measure("ours", n, args.seed))
            _print_row(results[-1])
    if args.with_speechbrain:
        for kind in ("ours", "speechbrain"):
            results.append(_measure(kind, args.sb_trials, args.seed))
            _print_row(results[-1])
    if not all(r["exact_peak"] for r in results):
        print("note: peak RSS from ru_maxrss; deltas may be underestimated")
    for r in results:
        if r["kind"] == "ours" and r["n_trials"] == TARGET_TRIALS:
            met = (
                r["seconds"] < TARGET_SECONDS
                and r["peak_delta_mb"] < TARGET_MB
            )
            print(
                f"target (10M trials < {TARGET_SECONDS:g} s and "
                f"< {TARGET_MB / 1024:g} GB extra): "
                f"{'met' if met else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
