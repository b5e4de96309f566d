"""Benchmark: MR-RawNet training throughput and data-pipeline speed (CPU).

Prints

1. training samples/s of the FULL-size model (official widths): batch
   8 x 3 s, forward + AAM-softmax loss (7205 classes) + backward + Adam,
   timed over a few steps after warm-up steps;
2. data-pipeline utterances/s on a generated corpus: the training loader
   alone (speaker-balanced batches, 3 s random crops, N workers), the
   training augmentation alone (variable crops, one of six MUSAN/RIR
   conditions per utterance, speed perturbation; noise files read ahead
   by N threads; mixing on the CPU), and both together, as a trainer
   running on the CPU would see them.

Usage::

    python tests/benchmarks/bench_training.py [--workers 2] [--steps 3]
        [--batches 8] [--corpus DIR] [--skip_model]

This is a measurement, not a test. The corpus is cached in ``--corpus``
(default: a folder under the system temp dir).
"""

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from speechbrain_ext.augment.official import (  # noqa: E402
    OfficialAugmentation,
)
from speechbrain_ext.augment.pipeline import TrainingPipeline  # noqa: E402
from speechbrain_ext.augment.speed import SpeedPerturbation  # noqa: E402
from speechbrain_ext.pretrained import OFFICIAL_MODEL_KWARGS  # noqa: E402

SR = 16000


def bench_model(batch, seconds, steps, warmup, n_classes):
    """Times full training steps of the official-size model."""
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

    from speechbrain_ext.lobes.mr_rawnet import MRRawNet

    torch.manual_seed(0)
    model = MRRawNet(**OFFICIAL_MODEL_KWARGS)
    classifier = Classifier(256, lin_blocks=0, out_neurons=n_classes)
    loss_fn = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.3, scale=30))
    params = list(model.parameters()) + list(classifier.parameters())
    opt = torch.optim.Adam(params, lr=5e-4, weight_decay=5e-5)
    wavs = 0.1 * torch.randn(batch, int(seconds * SR))
    lengths = torch.ones(batch)
    labels = torch.randint(0, n_classes, (batch, 1))
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        loss = loss_fn(classifier(model(wavs, lengths)), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
        print(f"  step {step + 1}: {times[-1]:.2f} s", flush=True)
    timed = times[warmup:]
    return batch * len(timed) / sum(timed), times


def make_corpus(folder):
    """A cached synthetic corpus with >= 40 training speakers."""
    from speechbrain_ext.synthetic import generate_corpus

    return generate_corpus(
        folder,
        n_train_speakers=48,
        n_test_speakers=2,
        utts_per_speaker=6,
        seed=0,
        min_duration=2.0,
        max_duration=8.0,
        progress=True,
    )["paths"]


def bench_data(paths, workers, batches, batch_size, save):
    """Loader, augmentation and loader + augmentation throughput."""
    import speechbrain as sb
    from speechbrain.dataio.batch import PaddedBatch
    from speechbrain.dataio.dataloader import SaveableDataLoader
    from speechbrain.dataio.dataset import DynamicItemDataset

    from speechbrain_ext.augment.prepare import prepare_augmentation
    from speechbrain_ext.data.audio_read import read_checked_crop
    from speechbrain_ext.data.samplers import SpeakerBalancedBatchSampler
    from speechbrain_ext.data.voxceleb_train import prepare_voxceleb_train

    prep = prepare_voxceleb_train(
        save,
        [paths["root"]],
        trial_lists=[paths["trials"]],
        valid_ratio=0.0,
        workers=2,
    )
    csvs = prepare_augmentation(
        os.path.join(save, "augment"),
        musan_folder=paths["musan_dir"],
        rirs_folder=paths["rirs_dir"],
        workers=2,
    )
    n = 3 * SR

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio(wav):
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        return torch.from_numpy(read_checked_crop(wav, n, rng=seed))

    data = DynamicItemDataset.from_csv(prep["train"])
    data.add_dynamic_item(audio)
    data.set_output_keys(["id", "sig"])
    sampler = SpeakerBalancedBatchSampler.from_dataset(
        data, batch_size=batch_size, max_per_speaker=None
    )

    def batches_of(epoch):
        sampler.set_epoch(epoch)
        loader = SaveableDataLoader(
            data,
            batch_sampler=sampler,
            collate_fn=PaddedBatch,
            num_workers=workers,
        )
        while True:
            yield from loader

    aug = OfficialAugmentation(
        noise_csv=csvs["noise"],
        music_csv=csvs["music"],
        speech_csv=csvs["speech"],
        rir_csv=csvs["rirs"],
        threads=workers,
        seed=0,
    )
    pipe = TrainingPipeline(aug, SpeedPerturbation(seed=0), full_samples=48000)
    results = {}

    it = batches_of(1)
    next(it)  # start the workers
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        count += len(next(it).sig.data)
    results["loader (3 s random crops)"] = count / (time.perf_counter() - start)

    # Host-side part of the augmentation (what a GPU run costs on the
    # CPU): reading noise clips ahead with the thread pool.
    aug._setup()
    bank = aug._banks["speech"]
    bank.take(64)
    start = time.perf_counter()
    for _ in range(batches):
        bank.take(64)
    clips_per_s = 64 * batches / (time.perf_counter() - start)
    results["noise clips read/s (read-ahead threads)"] = clips_per_s
    # A batch needs (0 + 1 + 1 + 5 + 1 + 6) / 6 noise clips and 1/6 RIR
    # per utterance on average.
    results["utterances/s that clip reading can feed"] = clips_per_s / 2.5

    wavs = 0.1 * torch.randn(batch_size, n)
    pipe(wavs, torch.ones(batch_size))  # start the read-ahead
    start = time.perf_counter()
    for _ in range(batches):
        pipe(wavs, torch.ones(batch_size))
    results["augmentation on the CPU (mixing included)"] = (
        batch_size * batches / (time.perf_counter() - start)
    )

    it = batches_of(2)
    first = next(it)
    pipe(*first.sig)
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        batch = next(it)
        out, _ = pipe(*batch.sig)
        count += out.shape[0]
    elapsed = time.perf_counter() - start
    results["loader + augmentation on the CPU"] = count / elapsed
    aug.close()
    return results


def main(argv=None):
    """Runs the benchmarks and prints the figures.

    Arguments
    ---------
    argv : list of str or None
        Command line.

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=40)
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--skip_model", action="store_true")
    parser.add_argument("--skip_data", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )

    if not args.skip_model:
        print("Full-size MR-RawNet training step, batch 8 x 3 s, CPU fp32:")
        rate, times = bench_model(8, 3.0, args.steps, args.warmup, 7205)
        print(
            f"MODEL  {rate:.2f} training samples/s "
            f"({sum(times[args.warmup :]) / args.steps:.2f} s per step)"
        )

    if not args.skip_data:
        corpus = args.corpus or os.path.join(
            tempfile.gettempdir(), "mr_rawnet_bench_corpus"
        )
        paths = make_corpus(corpus)
        with tempfile.TemporaryDirectory() as save:
            results = bench_data(
                paths, args.workers, args.batches, args.batch_size, save
            )
        print(
            f"Data pipeline, batch {args.batch_size} x 3 s, "
            f"{args.workers} workers / read-ahead threads:"
        )
        for name, rate in results.items():
            unit = "" if "/s" in name else " utterances/s"
            print(f"DATA   {name}: {rate:.0f}{unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
