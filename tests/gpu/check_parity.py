"""GPU check item 1: the official checkpoint's embeddings on the device.

The shared official-format checkpoint is converted
(:func:`speechbrain_ext.convert_official.convert`) and loaded through
SpeechBrain's ``EncoderClassifier`` on the device. Then, against the
official network's float64 embeddings of ``parity_cases.npz``:

* float32, torch's default settings (on CUDA that lets cuDNN use TF32 for
  convolutions): cosine >= 0.9995 for every case, the floor of the CPU
  test ``test_official_parity.py``;
* float32 with TF32 switched off (CUDA only): the same floor; a
  diagnosis when the first check fails;
* all cases zero-padded into one batch with their relative lengths: each
  embedding as its single-utterance one (cosine >= 0.9999) and above the
  floor (the vectorised masked path of the lobe on CUDA);
* bf16 autocast: the cosine is stated (no floor); it must be finite.

The checkpoint may also be given gzipped
(``official_format_checkpoint.pt.gz``, as ``pack_for_device.py`` writes
it to fit the device machine's transfer limit).

Authors
 * MR-RawNet recipe contributors
"""

import gzip
import pathlib  # noqa: F401 - used in the example
import shutil

import numpy as np
import torch
from common import FIXTURE, SkipItem, cosine

FLOOR = 0.9995
BATCH_FLOOR = 0.9999


def fixture_files(shared, work):
    """The checkpoint and cases files, or :class:`SkipItem`.

    Arguments
    ---------
    shared : pathlib.Path or None
        The shared folder.
    work : pathlib.Path
        Where a gzipped checkpoint is unpacked.

    Returns
    -------
    checkpoint : pathlib.Path
        Official-format checkpoint.
    cases : pathlib.Path
        ``parity_cases.npz``.

    Example
    -------
    >>> fixture_files(None, pathlib.Path("/tmp"))
    Traceback (most recent call last):
    ...
    common.SkipItem: no shared folder found (give --shared DIR or set ...)
    """
    hint = "give --shared DIR or set MR_RAWNET_SHARED to the shared folder"
    if shared is None:
        raise SkipItem(f"no shared folder found ({hint})")
    folder = shared / FIXTURE
    cases = folder / "parity_cases.npz"
    ckpt = folder / "official_format_checkpoint.pt"
    packed = folder / "official_format_checkpoint.pt.gz"
    if not cases.is_file() or not (ckpt.is_file() or packed.is_file()):
        raise SkipItem(f"parity fixture not found in {folder} ({hint})")
    if not ckpt.is_file():
        ckpt = work / ckpt.name
        with gzip.open(packed, "rb") as src, open(ckpt, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
    return ckpt, cases


def _embed(clf, wavs, lengths=None):
    """``encode_batch`` on CPU input; ``[B, D]`` float64 on the CPU."""
    emb = clf.encode_batch(wavs, lengths)
    return emb.reshape(wavs.shape[0], -1).double().cpu()


def _singles(ctx, clf, wavs, refs):
    """Cosines of each case's single-utterance embedding to its reference."""
    embs, cosines = {}, {}
    for name, wav in wavs.items():
        embs[name] = _embed(clf, wav[None])[0]
        cosines[name] = cosine(embs[name], refs[name])
    return embs, cosines


def _worst(cosines):
    name = min(cosines, key=cosines.get)
    return f"min {cosines[name]:.6f} ({name}), {len(cosines)} cases"


def run(ctx, rep):
    """Runs the item.

    Arguments
    ---------
    ctx : common.Context
        Device, sizes, folders.
    rep : common.Report
        Filled with checks and figures.
    """
    from speechbrain.inference.speaker import EncoderClassifier

    from speechbrain_ext.convert_official import convert

    ckpt, cases_file = fixture_files(ctx.shared, ctx.work)
    data = np.load(cases_file)
    names = [k[len("wav__"):] for k in data.files if k.startswith("wav__")]
    names.sort(key=lambda n: len(data[f"wav__{n}"]))
    if ctx.smoke:
        names = names[:2]
    wavs = {n: torch.from_numpy(data[f"wav__{n}"]).float() for n in names}
    refs = {n: torch.from_numpy(data[f"emb_fp64__{n}"]) for n in names}
    folder = ctx.work / "pretrained"
    convert(str(ckpt), str(folder))
    clf = EncoderClassifier.from_hparams(
        source=str(folder),
        savedir=str(ctx.work / "savedir"),
        run_opts={"device": ctx.device},
    )
    rep.figure("cases", len(names))
    if ctx.cuda:
        rep.figure("cudnn_allow_tf32", torch.backends.cudnn.allow_tf32)
        rep.figure(
            "matmul_allow_tf32", torch.backends.cuda.matmul.allow_tf32
        )

    singles = {}
    with rep.guard("fp32 (defaults) vs official fp64"):
        singles, cosines = _singles(ctx, clf, wavs, refs)
        rep.figure("fp32_min_cosine", min(cosines.values()))
        rep.check(
            f"fp32 (defaults) cosine >= {FLOOR}",
            min(cosines.values()) >= FLOOR,
            _worst(cosines),
        )

    if ctx.cuda:
        with rep.guard("fp32 (TF32 off) vs official fp64"):
            saved = (
                torch.backends.cudnn.allow_tf32,
                torch.backends.cuda.matmul.allow_tf32,
            )
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            try:
                _, strict = _singles(ctx, clf, wavs, refs)
            finally:
                (
                    torch.backends.cudnn.allow_tf32,
                    torch.backends.cuda.matmul.allow_tf32,
                ) = saved
            rep.figure("fp32_no_tf32_min_cosine", min(strict.values()))
            rep.check(
                f"fp32 (TF32 off) cosine >= {FLOOR}",
                min(strict.values()) >= FLOOR,
                _worst(strict),
            )

    with rep.guard("padded batch"):
        longest = max(len(w) for w in wavs.values())
        batch = torch.zeros(len(names), longest)
        for i, name in enumerate(names):
            batch[i, : len(wavs[name])] = wavs[name]
        lengths = torch.tensor([len(wavs[n]) / longest for n in names])
        embs = _embed(clf, batch, lengths)
        to_ref = {n: cosine(embs[i], refs[n]) for i, n in enumerate(names)}
        rep.figure("padded_min_cosine", min(to_ref.values()))
        rep.check(
            f"padded batch cosine to official >= {FLOOR}",
            min(to_ref.values()) >= FLOOR,
            _worst(to_ref),
        )
        if singles:
            to_single = {
                n: cosine(embs[i], singles[n]) for i, n in enumerate(names)
            }
            diff = max(
                float((embs[i] - singles[n]).abs().max())
                for i, n in enumerate(names)
            )
            rep.figure("padded_vs_single_min_cosine", min(to_single.values()))
            rep.figure("padded_vs_single_max_abs", diff)
            rep.check(
                f"padded batch = single utterances (cosine >= {BATCH_FLOOR})",
                min(to_single.values()) >= BATCH_FLOOR,
                f"{_worst(to_single)}, max |diff| {diff:.2e}",
            )

    with rep.guard("bf16 autocast"):
        device_type = "cuda" if ctx.cuda else "cpu"
        with torch.autocast(device_type, dtype=torch.bfloat16):
            _, bf16 = _singles(ctx, clf, wavs, refs)
        rep.figure("bf16_min_cosine", min(bf16.values()))
        finite = all(np.isfinite(list(bf16.values())))
        rep.check("bf16 autocast finite (cosine stated)", finite, _worst(bf16))
