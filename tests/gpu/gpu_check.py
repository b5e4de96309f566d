#!/usr/bin/env python3
"""GPU readiness check: every CUDA path of the recipe, in one run.

Runs on one CUDA device, in under 8 minutes on an H200, and reports:

1. ``parity``: the shared official-format checkpoint converted and loaded
   through ``EncoderClassifier`` on the GPU; float32 cosine to the
   official float64 embeddings (floor 0.9995, as on the CPU), with and
   without TF32; padded batch = single utterances; bf16 autocast cosine
   (stated). See ``check_parity.py``.
2. ``training``: demo-sized and full-size model, fp32 / bf16 / fp16 with
   the gradient scaler: loss finite and falling; a forced non-finite step
   skipped as on the CPU. See ``check_training.py``.
3. ``ddp``: ``torchrun --nproc_per_node=1`` (and 2 on a machine with two
   GPUs) through the recipe's NCCL process-group path with SyncBatchNorm;
   a killed worker, an elastic restart and a resume. See
   ``check_ddp.py``.
4. ``throughput``: full-size training samples/s at batch 40 x 3 s, fp32
   and bf16, ours against the official ``SpeakerNet`` training step, peak
   memory; extraction real-time factor of the verification recipe. See
   ``check_throughput.py``.
5. A one-screen summary (pass/fail per item, the figures), also written to
   ``<out>/gpu_check.json`` and ``<out>/gpu_check.txt``, with one log per
   item (``<out>/item<N>_<name>.log``).

Usage::

    make gpu-check                       # or:
    python tests/gpu/gpu_check.py [--out DIR] [--shared DIR] [--items LIST]
    GPU_CHECK_OUT=DIR MR_RAWNET_SHARED=DIR python tests/gpu/gpu_check.py
    python tests/gpu/gpu_check.py --device cpu --smoke   # tiny, on the CPU

Without a CUDA device it prints one line saying so and exits 0 (``--device
cpu`` runs it on the CPU instead; ``--smoke`` uses tiny sizes, which only
proves the script works: ``tests/unit/test_gpu_check.py`` does that). The
shared folder (``fixtures/mr_rawnet_official``, ``reference/
official_mr_rawnet``) is found from ``--shared``, ``$MR_RAWNET_SHARED``,
``<repo>/shared`` or ``<repo>/../shared``; without it the parity item and
the official half of the throughput item are skipped with a line saying
so. ``tests/gpu/pack_for_device.py`` packs what a bare GPU machine needs
(a slimmed shared folder, wheels of the packages it lacks).

Each item runs in its own process with its own time limit (a hung or
crashed item is reported as failed and the next one runs); all of them
together stay inside ``--total-seconds`` (default 470). The exit status
is 0 when no item failed, 1 otherwise.

Authors
 * MR-RawNet recipe contributors
"""

import argparse
import importlib
import json
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from common import (  # noqa: E402
    OUT_ENV,
    ROOT,
    SHARED_ENV,
    TAG_ENV,
    Context,
    Report,
    SkipItem,
    find_shared,
    kill_tagged,
)

#: name -> (number, title, module, time limit in seconds on an H200).
ITEMS = {
    "parity": (1, "Parity on the device", "check_parity", 70),
    "training": (2, "Training steps fp32/bf16/fp16", "check_training", 110),
    "ddp": (3, "DDP torchrun, kill and restart", "check_ddp", 140),
    "throughput": (4, "Throughput vs official", "check_throughput", 130),
}
#: Seconds kept back for starting each item and for the summary.
RESERVE_S = 10
#: Test hook: an item named here raises at its start (isolation test).
CRASH_ENV = "GPU_CHECK_CRASH_ITEM"


def environment(device):
    """GPU model, driver and library versions.

    Arguments
    ---------
    device : str
        The device the check runs on.

    Returns
    -------
    dict
        Versions and device facts.
    """
    info = {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "host": platform.node(),
    }
    try:
        import speechbrain

        info["speechbrain"] = speechbrain.__version__
    except ImportError:
        info["speechbrain"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpus=torch.cuda.device_count(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
        )
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version",
                 "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20,
            )
            info["driver"] = out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            info["driver"] = None
    else:
        info["gpu"] = None
        info["cpu"] = platform.processor() or platform.machine()
    return info


def run_item_in_process(name, args):
    """Runs one item here (the ``--item`` mode); writes its result JSON.

    Arguments
    ---------
    name : str
        Item name.
    args : argparse.Namespace
        Parsed options (``device``, ``smoke``, ``shared``, ``result``).

    Returns
    -------
    int
        0 (the result file says whether it passed).
    """
    number, title, module, _ = ITEMS[name]
    print(f"== item {number}: {title} ({name}) on {args.device}", flush=True)
    rep = Report(name, args.result)
    if args.smoke and args.device == "cpu":
        torch.set_num_threads(1)  # tiny sizes; no OpenMP spinning
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"gpu_check_{name}_"))
    try:
        ctx = Context(
            device=args.device,
            smoke=args.smoke,
            shared=find_shared(args.shared),
            work=work,
            seconds=args.item_seconds,
        )
        if os.environ.get(CRASH_ENV) == name:
            raise RuntimeError(f"{CRASH_ENV}={name}: crashing on purpose")
        run = importlib.import_module(module).run
        run(ctx, rep)
    except SkipItem as err:
        rep.skip(str(err))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rep.save()
    result = rep.to_dict()
    print(f"== item {number} ({name}): {result['status']} in "
          f"{result['seconds']:.0f} s", flush=True)
    return 0


def _pump(stream, log, echo):
    """Copies a child's output to its log (and to our stdout)."""
    with open(log, "w", encoding="utf-8", errors="replace") as f:
        for line in iter(stream.readline, ""):
            f.write(line)
            f.flush()
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()


def _tail(log, n=15):
    try:
        return open(log, encoding="utf-8", errors="replace").read().splitlines(
        )[-n:]
    except OSError:
        return []


def run_item_process(name, argv, result_path, log_path, timeout, env=None,
                     echo=True):
    """Runs an item command in its own process group, with a time limit.

    A command that exits without writing ``result_path``, exits non-zero
    or runs past ``timeout`` gives a failed result naming why (with the
    end of its log); on timeout its process group and every process
    tagged with the run's ``GPU_CHECK_TAG`` are killed.

    Arguments
    ---------
    name : str
        Item name.
    argv : list of str
        The command.
    result_path : pathlib.Path
        Where the command writes its result JSON.
    log_path : pathlib.Path
        Its output.
    timeout : float
        Seconds.
    env : dict or None
        Its environment (default: ours).
    echo : bool
        Also print its output.

    Returns
    -------
    dict
        The result (see ``common.Report.to_dict``).

    Example
    -------
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> r = run_item_process("x", [sys.executable, "-c", "exit(3)"],
    ...                      d / "r.json", d / "log", 30, echo=False)
    >>> r["status"], r["checks"][0]["detail"][:24]
    ('fail', 'exited with code 3, wrot')
    >>> shutil.rmtree(d)
    """
    env = dict(os.environ if env is None else env)
    result_path = pathlib.Path(result_path)
    result_path.unlink(missing_ok=True)
    began = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, cwd=ROOT, start_new_session=True, bufsize=1,
    )
    pump = threading.Thread(
        target=_pump, args=(proc.stdout, log_path, echo), daemon=True
    )
    pump.start()
    why = None
    try:
        code = proc.wait(timeout=timeout)
        if code != 0:
            why = f"exited with code {code}"
    except subprocess.TimeoutExpired:
        why = f"timed out after {timeout:.0f} s (killed)"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if env.get(TAG_ENV):
            kill_tagged(env[TAG_ENV])
        pump.join(timeout=10)
    result = None
    if result_path.is_file():
        try:
            result = json.loads(result_path.read_text())
        except ValueError:
            why = (why or "") + " (unreadable result file)"
    if result is None:
        why = f"{why or 'exited'}, wrote no result"
        result = Report(name).to_dict()
        result["checks"] = [{"name": "item ran", "ok": False, "detail": why}]
        result["status"] = "fail"
        result["log_tail"] = _tail(log_path)
    elif why:
        result["checks"].append({"name": "item finished", "ok": False,
                                 "detail": why})
        result["status"] = "fail"
        result["log_tail"] = _tail(log_path)
    result["seconds"] = round(time.monotonic() - began, 1)
    result["log"] = pathlib.Path(log_path).name
    return result


def _fmt(figures, key, spec="{:.4g}"):
    """A figure formatted, or "-" when it is missing."""
    value = figures.get(key)
    if value is None:
        return "-"
    return spec.format(value) if isinstance(value, (int, float)) else str(
        value
    )


def headline(name, figures):
    """The figures of an item that the summary screen shows.

    Arguments
    ---------
    name : str
        Item name.
    figures : dict
        The item's figures (all of them go to the JSON).

    Returns
    -------
    list of str
        At most four lines.

    Example
    -------
    >>> headline("ddp", {"ddp1_seconds": 41.0})
    ['torchrun x1 41 s, x2 -']
    """
    f = figures
    if name == "parity":
        cos = "{:.6f}"
        return [
            f"cosine to official fp64: fp32 {_fmt(f, 'fp32_min_cosine', cos)}"
            f", fp32 no-TF32 {_fmt(f, 'fp32_no_tf32_min_cosine', cos)}, "
            f"padded {_fmt(f, 'padded_min_cosine', cos)}",
            f"padded vs single {_fmt(f, 'padded_vs_single_min_cosine', cos)}"
            f", bf16 {_fmt(f, 'bf16_min_cosine', cos)} (min over "
            f"{_fmt(f, 'cases')} cases)",
        ]
    if name == "training":
        lines = []
        for size in ("demo", "full"):
            parts = [
                f"{p} {_fmt(f, f'{size}_{p}_loss_first', '{:.2f}')}->"
                f"{_fmt(f, f'{size}_{p}_loss_last', '{:.2f}')} "
                f"({_fmt(f, f'{size}_{p}_step_ms', '{:.0f}')} ms)"
                for p in ("fp32", "bf16", "fp16")
                if f"{size}_{p}_loss_first" in f
            ]
            if parts:
                lines.append(f"{size}: loss " + ", ".join(parts))
        return lines
    if name == "ddp":
        return [
            f"torchrun x1 {_fmt(f, 'ddp1_seconds', '{:.0f}')} s, x2 "
            + (_fmt(f, "ddp2_seconds", "{:.0f}") + " s"
               if "ddp2_seconds" in f else "-")
        ]
    if name == "throughput":
        lines = []
        for p in ("fp32", "bf16"):
            lines.append(
                f"{p} samples/s: ours {_fmt(f, f'ours_{p}_samples_per_s')} "
                f"({_fmt(f, f'ours_{p}_peak_gib', '{:.1f}')} GiB), Brain "
                f"{_fmt(f, f'ours_brain_{p}_samples_per_s')}, official "
                f"{_fmt(f, f'official_{p}_samples_per_s')} "
                f"({_fmt(f, f'official_{p}_peak_gib', '{:.1f}')} GiB); "
                f"ratio {_fmt(f, f'ours_vs_official_{p}', '{:.2f}')}x"
            )
        lines.append(
            f"extraction RTF: fp32 {_fmt(f, 'extraction_fp32_rtf', '{:.0f}')}"
            f"x, bf16 {_fmt(f, 'extraction_bf16_rtf', '{:.0f}')}x "
            f"({_fmt(f, 'extraction_audio_s', '{:.0f}')} s of audio)"
        )
        return lines
    return []


def summary_text(env, results, seconds, out):
    """The one-screen summary.

    Arguments
    ---------
    env : dict
        From :func:`environment`.
    results : dict
        Item name -> result.
    seconds : float
        Total wall time.
    out : pathlib.Path
        Output folder.

    Returns
    -------
    str
        Lines to print.

    Example
    -------
    >>> res = {"parity": {"status": "skip", "skipped": "no fixture",
    ...                   "checks": [], "figures": {}, "seconds": 1.0}}
    >>> print(summary_text({"device": "cpu", "torch": "2"}, res, 1.0,
    ...                    pathlib.Path("o")))  # doctest: +ELLIPSIS
    ===...
    GPU check on cpu: torch 2, CUDA None, ...
    [SKIP] 1 parity ...: no fixture
    ...
    """
    gpu = env.get("gpu") or env.get("cpu") or "?"
    lines = [
        "=" * 78,
        f"GPU check on {env['device']}: torch {env['torch']}, CUDA "
        f"{env.get('cuda')}, cuDNN {env.get('cudnn')}, speechbrain "
        f"{env.get('speechbrain')}; {gpu}"
        + (f", driver {env['driver']}" if env.get("driver") else ""),
    ]
    for name, result in results.items():
        number = ITEMS[name][0] if name in ITEMS else "-"
        status = result["status"].upper()
        head = f"[{status}] {number} {name} ({result['seconds']:.0f} s)"
        if result["status"] == "skip":
            lines.append(f"{head}: {result.get('skipped', '')}")
            continue
        failed = [c for c in result["checks"] if not c["ok"]]
        passed = len(result["checks"]) - len(failed)
        lines.append(f"{head}: {passed}/{len(result['checks'])} checks")
        for check in failed[:4]:
            lines.append(f"    FAIL {check['name']}: {check['detail']}"[:158])
        for line in headline(name, result.get("figures", {})):
            lines.append(f"    {line}")
        skips = [n for n in result.get("notes", []) if "skipped" in n]
        for note in skips[:2]:
            lines.append(f"    {note}"[:158])
    lines.append(f"5 summary: {seconds:.0f} s in all; {out}/gpu_check.json")
    lines.append("=" * 78)
    return "\n".join(lines)


def parse_args(argv):
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default=os.environ.get(OUT_ENV),
                        help=f"output folder (default ${OUT_ENV} or "
                        "results/gpu_check)")
    parser.add_argument("--shared", default=None,
                        help=f"shared folder (default ${SHARED_ENV}, "
                        "<repo>/shared or <repo>/../shared)")
    parser.add_argument("--device", default="cuda",
                        help="cuda (default), cuda:N or cpu")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes: checks the script, not the GPU")
    parser.add_argument("--items", default=",".join(ITEMS),
                        help="comma-separated items to run")
    parser.add_argument("--total-seconds", type=float, default=None,
                        help="time limit of the whole run (default 470; "
                        "smoke: 600)")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="multiplies the item time limits (default 1; "
                        "smoke: 1.5)")
    parser.add_argument("--item", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--item-seconds", type=float, default=60.0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the check.

    Arguments
    ---------
    argv : list of str or None
        Command line.

    Returns
    -------
    int
        Exit status.
    """
    args = parse_args(argv)
    if args.item:
        return run_item_in_process(args.item, args)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"GPU check skipped: no CUDA device (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda}, torch.cuda.is_available() "
            "is False); run with --device cpu --smoke to test the script"
        )
        return 0
    names = [n.strip() for n in args.items.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ITEMS))
    if unknown:
        print(f"unknown item(s) {unknown}; choose from {list(ITEMS)}")
        return 2
    total = args.total_seconds or (600.0 if args.smoke else 470.0)
    scale = args.time_scale or (1.5 if args.smoke else 1.0)
    out = pathlib.Path(args.out or ROOT / "results" / "gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    shared = find_shared(args.shared)
    env_info = environment(args.device)
    env_info["shared"] = str(shared) if shared else None
    env_info["smoke"] = args.smoke
    print(
        f"GPU check: {env_info.get('gpu') or args.device}, torch "
        f"{env_info['torch']}, items {names}, total limit {total:.0f} s, "
        f"shared folder {shared or 'not found (items needing it skip)'}",
        flush=True,
    )
    began = time.monotonic()
    deadline = began + total
    tag = uuid.uuid4().hex
    child_env = {**os.environ, TAG_ENV: tag, "PYTHONUNBUFFERED": "1"}
    if shared:
        child_env[SHARED_ENV] = str(shared)
    if args.smoke and args.device == "cpu":
        # Tiny sizes: one thread each (OpenMP spinning on a busy machine
        # made steps 50 times slower).
        child_env.setdefault("OMP_NUM_THREADS", "1")
        child_env.setdefault("MKL_NUM_THREADS", "1")
    results = {}
    for name in names:
        number = ITEMS[name][0]
        left = deadline - time.monotonic() - RESERVE_S
        limit = min(ITEMS[name][3] * scale, left)
        log = out / f"item{number}_{name}.log"
        if limit < 20:
            results[name] = {
                "item": name, "status": "fail", "figures": {}, "notes": [],
                "checks": [{"name": "item ran", "ok": False,
                            "detail": f"not started: {left:.0f} s left of "
                            f"the {total:.0f} s limit"}],
                "seconds": 0.0,
            }
            continue
        argv = [
            sys.executable, str(pathlib.Path(__file__).resolve()),
            "--item", name, "--result", str(out / f"item{number}.json"),
            "--device", args.device, "--item-seconds", str(limit - 5),
        ]
        if args.smoke:
            argv.append("--smoke")
        if shared:
            argv += ["--shared", str(shared)]
        results[name] = run_item_process(
            name, argv, out / f"item{number}.json", log, limit, child_env
        )
        (out / f"item{number}.json").unlink(missing_ok=True)
    seconds = time.monotonic() - began
    text = summary_text(env_info, results, seconds, out)
    print(text)
    report = {"environment": env_info, "seconds": round(seconds, 1),
              "total_limit_s": total, "items": results,
              "passed": all(r["status"] != "fail" for r in results.values())}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    (out / "gpu_check.txt").write_text(text + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
