"""GPU check item 4: training throughput and extraction real-time factor.

Training: the full-size model, batch 40 x 3 s (the official protocol),
7,205 AAM-softmax classes, Adam; fp32 and bf16 autocast. Three steps are
timed on the same data shape:

* ``ours``: our speed perturbation, ``MRRawNet``, SpeechBrain's cosine
  classifier and AAM loss, backward, Adam (the bare step);
* ``ours_brain``: the same through ``SpeakerBrain.fit_batch``, as the
  recipe runs it (host-to-device copy, non-finite check, gradient
  clipping, BatchNorm snapshot);
* ``official``: the official trainer's step, ``SpeakerNet(data, label)``
  (its ``MR_RawNet`` with its in-model speed perturbation and its
  ``aamsoftmax``), backward, Adam; imported unchanged from
  ``<shared>/reference/official_mr_rawnet`` (skipped when absent).

cuDNN autotuning is on for all three (the recipe turns it on on CUDA).
The figure is samples/s from the median step time after warm-up steps
(the random speed factor gives three input shapes); peak memory is
torch's peak allocation during the timed steps.

Extraction: the verification recipe's path (``BatchedEmbedder`` with the
recipe's batch limits, ``extract_embeddings`` reading wav files in
threads, an empty cache) on VoxCeleb-like durations, full length plus the
three short test crops, cuDNN autotuning off as in that recipe; the
real-time factor is seconds of audio embedded (all views) per second of
wall time, fp32 and bf16.

Authors
 * MR-RawNet recipe contributors
"""

import contextlib
import shutil
import statistics
import time

import torch
from common import OFFICIAL_CODE, SkipItem, peak_memory_gib, reset_memory

RATE = 16000
N_CLASSES = 7205


def sizes(smoke):
    """Batch, seconds, steps and extraction sizes.

    Arguments
    ---------
    smoke : bool
        Tiny sizes.

    Returns
    -------
    dict
        The sizes.

    Example
    -------
    >>> sz = sizes(False)
    >>> sz["batch"], sz["seconds"], sz["classes"]
    (40, 3.0, 7205)
    """
    if smoke:
        return {"batch": 2, "seconds": 0.64, "warmup": 1, "steps": 1,
                "classes": 16, "utts": 4, "min_s": 1.0, "max_s": 2.0}
    return {"batch": 40, "seconds": 3.0, "warmup": 5, "steps": 8,
            "classes": N_CLASSES, "utts": 160, "min_s": 4.0, "max_s": 20.0}


def autocast(ctx, precision):
    """Autocast for ``precision`` on the context's device."""
    return torch.autocast(
        "cuda" if ctx.cuda else "cpu",
        dtype=torch.bfloat16,
        enabled=precision == "bf16",
    )


def time_steps(ctx, step, warmup, steps):
    """Runs ``warmup + steps`` steps; returns the timed steps' seconds."""
    for _ in range(warmup):
        step()
    ctx.sync()
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        step()
        ctx.sync()
        times.append(time.perf_counter() - began)
    return times


def report_speed(rep, ctx, key, times, batch):
    """Records samples/s and peak memory; returns samples/s."""
    median = statistics.median(times)
    speed = rep.figure(f"{key}_samples_per_s", batch / median)
    rep.figure(f"{key}_step_ms", 1000 * median)
    peak = rep.figure(f"{key}_peak_gib", peak_memory_gib(ctx.device))
    mem = "" if peak is None else f", peak {peak:.2f} GiB"
    rep.check(
        f"{key}: timed",
        speed > 0,
        f"{speed:.1f} samples/s ({1000 * median:.0f} ms/step{mem})",
    )
    return speed


def model_kwargs(smoke):
    """The full-size configuration (tiny in smoke mode)."""
    if smoke:
        from helpers import TINY_KWARGS

        return dict(TINY_KWARGS)
    from speechbrain_ext.pretrained import OFFICIAL_MODEL_KWARGS

    return dict(OFFICIAL_MODEL_KWARGS)


def ours_step(ctx, precision, sz):
    """Our bare training step (see the module docstring)."""
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

    from speechbrain_ext.augment.speed import SpeedPerturbation
    from speechbrain_ext.lobes.mr_rawnet import MRRawNet

    torch.manual_seed(0)
    kwargs = model_kwargs(ctx.smoke)
    model = MRRawNet(**kwargs).to(ctx.device).train()
    classifier = Classifier(
        kwargs["lin_neurons"], lin_blocks=0, out_neurons=sz["classes"]
    ).to(ctx.device)
    loss_fn = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.3, scale=30))
    speed = SpeedPerturbation(seed=0)
    params = list(model.parameters()) + list(classifier.parameters())
    opt = torch.optim.Adam(params, lr=5e-4, weight_decay=5e-5)
    wavs = 0.1 * torch.randn(
        sz["batch"], int(sz["seconds"] * RATE), device=ctx.device
    )
    lengths = torch.ones(sz["batch"], device=ctx.device)
    labels = torch.randint(0, sz["classes"], (sz["batch"], 1),
                           device=ctx.device)

    def step():
        with autocast(ctx, precision):
            w, lens = speed(wavs, lengths)
            loss = loss_fn(classifier(model(w, lens)), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def brain_step(ctx, precision, sz):
    """Our training step through ``SpeakerBrain.fit_batch``."""
    from check_training import fit, make_brain
    from speechbrain.dataio.batch import PaddedBatch

    from speechbrain_ext.augment.speed import SpeedPerturbation

    brain = make_brain(
        model_kwargs(ctx.smoke), sz["classes"], ctx.device, precision,
        lr=5e-4, train_pipeline=SpeedPerturbation(seed=0), margin=0.3,
    )
    gen = torch.Generator().manual_seed(0)
    batch = PaddedBatch([
        {
            "sig": 0.1 * torch.randn(int(sz["seconds"] * RATE), generator=gen),
            "spk_id_encoded": torch.tensor([k % sz["classes"]]),
        }
        for k in range(sz["batch"])
    ])

    def step():
        fit(brain, batch)

    return step


@contextlib.contextmanager
def tensor_cuda_is_identity():
    """On the CPU, lets the official code's ``.cuda()`` calls be no-ops."""
    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = saved


def official_step(ctx, precision, sz):
    """The official trainer's step (see the module docstring)."""
    if ctx.shared is None or not (ctx.shared / OFFICIAL_CODE).is_dir():
        raise SkipItem(
            "official code not found (give --shared DIR or set "
            "MR_RAWNET_SHARED to the shared folder)"
        )
    from official_code import official_speakernet

    torch.manual_seed(0)
    net = official_speakernet(sz["classes"]).to(ctx.device).train()
    opt = torch.optim.Adam(net.parameters(), lr=5e-4, weight_decay=5e-5)
    data = 0.1 * torch.randn(
        sz["batch"], int(sz["seconds"] * RATE), device=ctx.device
    )
    label = torch.randint(0, sz["classes"], (sz["batch"],), device=ctx.device)
    patch = contextlib.nullcontext if ctx.cuda else tensor_cuda_is_identity

    def step():
        net.zero_grad()
        with patch(), autocast(ctx, precision):
            nloss, _ = net(data, label)
        nloss.backward()
        opt.step()

    return step


def training_throughput(ctx, rep, sz):
    """Times the three steps under fp32 and bf16."""
    if ctx.cuda:
        torch.backends.cudnn.benchmark = True
    makers = {"ours": ours_step, "ours_brain": brain_step,
              "official": official_step}
    speeds = {}
    for precision in ("fp32", "bf16"):
        for who, make in makers.items():
            key = f"{who}_{precision}"
            if ctx.smoke and key == "official_bf16":
                rep.note("smoke: official bf16 left out (slow on a CPU)")
                continue
            with rep.guard(key):
                reset_memory(ctx.device)
                step = make(ctx, precision, sz)
                times = time_steps(ctx, step, sz["warmup"], sz["steps"])
                speeds[key] = report_speed(rep, ctx, key, times, sz["batch"])
                del step
            reset_memory(ctx.device)
        for who in ("ours", "ours_brain"):
            base = speeds.get(f"official_{precision}")
            if base and f"{who}_{precision}" in speeds:
                ratio = speeds[f"{who}_{precision}"] / base
                rep.figure(f"{who}_vs_official_{precision}", ratio)
                rep.note(f"{who} / official ({precision}): {ratio:.2f}x")


def extraction_rtf(ctx, rep, sz):
    """Real-time factor of the verification recipe's extraction."""
    from bench_extraction import voxceleb_like_durations, write_corpus

    from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    from speechbrain_ext.scoring.audio_files import file_stamps
    from speechbrain_ext.scoring.batching import BatchedEmbedder
    from speechbrain_ext.scoring.embedding_cache import EmbeddingCache
    from speechbrain_ext.scoring.extract import extract_embeddings
    from speechbrain_ext.scoring.views import condition_views

    folder = ctx.work / "extraction"
    folder.mkdir(exist_ok=True)
    durations = voxceleb_like_durations(
        sz["utts"], 0, low=sz["min_s"], high=sz["max_s"]
    )
    lengths = write_corpus(str(folder), durations)
    stamps = file_stamps(lengths)
    views = list(condition_views(["full", "1.04s", "2.04s", "5.04s"]).values())
    needs = {p: views for p in lengths}
    audio = sum(lengths.values()) + sum(
        v * len(lengths) for v in views if v is not None
    )
    rep.figure("extraction_utterances", len(lengths))
    rep.figure("extraction_audio_s", audio / RATE)
    torch.manual_seed(0)
    model = MRRawNet(**model_kwargs(ctx.smoke))
    # The verification recipe leaves cuDNN autotuning off (every padded
    # batch has its own length).
    torch.backends.cudnn.benchmark = False
    for precision in ("fp32", "bf16"):
        with rep.guard(f"extraction {precision}"):
            # The recipe's limits (hparams/verification_mr_rawnet.yaml).
            embedder = BatchedEmbedder(
                model, ctx.device, 32, 320.0, RATE, precision=precision
            )
            first = dict(list(needs.items())[:2])
            warm = EmbeddingCache(str(folder / f"warm_{precision}"), "0" * 64)
            extract_embeddings(embedder, warm, first, lengths, stamps,
                               progress=False)
            cache = EmbeddingCache(str(folder / f"cache_{precision}"),
                                   "1" * 64)
            ctx.sync()
            began = time.perf_counter()
            emb = extract_embeddings(embedder, cache, needs, lengths, stamps,
                                     progress=False)
            ctx.sync()
            wall = time.perf_counter() - began
            rtf = rep.figure(f"extraction_{precision}_rtf", audio / RATE / wall)
            rep.check(
                f"extraction {precision}: all views embedded",
                len(emb) == len(needs) * len(views)
                and all(v is not None for v in emb.values()),
                f"RTF {rtf:.0f}x ({audio / RATE:.0f} s of audio in "
                f"{wall:.1f} s, {embedder.forward_calls} forward passes)",
            )
    shutil.rmtree(folder, ignore_errors=True)


def run(ctx, rep):
    """Runs the item.

    Arguments
    ---------
    ctx : common.Context
        Device, sizes, folders.
    rep : common.Report
        Filled with checks and figures.
    """
    sz = sizes(ctx.smoke)
    rep.figure("train_batch", f"{sz['batch']} x {sz['seconds']} s, "
               f"{sz['classes']} classes")
    training_throughput(ctx, rep, sz)
    with rep.guard("extraction"):
        extraction_rtf(ctx, rep, sz)
