"""GPU check item 2: training steps under fp32, bf16 and fp16.

For the demo-sized and the full-size (official) MR-RawNet, and each of
fp32, bf16 (autocast) and fp16 (autocast with SpeechBrain's gradient
scaler), the training recipe's ``SpeakerBrain`` takes a few ``fit_batch``
steps on two fixed batches of tone speakers
(:mod:`tone_corpus`); the loss must be finite and fall. Then the step
after is made non-finite through the recipe's own fault hook
(``MRRAWNET_FAULT_NAN_BATCHES``, ``tests/fault_injection.py``),
and it must be skipped as ``tests/unit/test_brain_faults.py`` checks on
the CPU: weights, BatchNorm statistics and Adam's state unchanged, no
optimiser step; counted in ``skipped_steps`` under fp32 and bf16, while
under fp16 the scaler lowers its scale instead (overflows are routine
there, see ``SpeakerBrain._skip_nonfinite_step``). One more normal step
must then change the weights.

SpeechBrain refuses fp16 on the CPU; with ``--device cpu`` the fp16 case
runs with a CPU gradient scaler and CPU fp16 autocast swapped in, so that
the check's own logic is exercised (figures marked ``emulated``).

Authors
 * MR-RawNet recipe contributors
"""

import os
import statistics
import sys
import time

import speechbrain as sb
import torch
from common import ROOT, peak_memory_gib, reset_memory
from tone_corpus import tone_batch

PRECISIONS = ("fp32", "bf16", "fp16")


def hparams_model_kwargs(path):
    """``model_kwargs`` of a HyperPyYAML file (its tags are ignored).

    Arguments
    ---------
    path : str or pathlib.Path
        The hparams file.

    Returns
    -------
    dict
        The ``model_kwargs`` mapping.

    Example
    -------
    >>> kw = hparams_model_kwargs(ROOT / "hparams" / "mr_rawnet_demo.yaml")
    >>> kw["lin_neurons"]
    64
    """
    import yaml

    class Loader(yaml.SafeLoader):
        """Reads plain values; every ``!tag`` node becomes None."""

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(path, encoding="utf-8") as f:
        return dict(yaml.load(f, Loader=Loader)["model_kwargs"])


def model_sizes(smoke):
    """Model configurations by name.

    Arguments
    ---------
    smoke : bool
        One tiny model instead of the demo and official ones.

    Returns
    -------
    dict
        ``name -> MRRawNet kwargs``.
    """
    if smoke:  # one size: the full-size case runs the same code
        from helpers import TINY_KWARGS

        return {"demo": dict(TINY_KWARGS)}
    from speechbrain_ext.pretrained import OFFICIAL_MODEL_KWARGS

    demo = hparams_model_kwargs(ROOT / "hparams" / "mr_rawnet_demo.yaml")
    return {"demo": demo, "full": dict(OFFICIAL_MODEL_KWARGS)}


def make_brain(model_kwargs, n_classes, device, precision, lr,
               train_pipeline=None, margin=0.2):
    """A SpeakerBrain ready for ``fit_batch`` (optimiser, epoch 1 started).

    Arguments
    ---------
    model_kwargs : dict
        MRRawNet configuration.
    n_classes : int
        AAM-softmax classes.
    device : str
        Device.
    precision : str
        ``fp32``, ``bf16`` or ``fp16`` (fp16 on the CPU: emulated).
    lr : float
        Adam's learning rate.
    train_pipeline : callable or None
        ``(wavs, lengths) -> (wavs, lengths)`` applied to training batches.
    margin : float
        AAM margin.

    Returns
    -------
    SpeakerBrain
        The brain; ``brain.emulated`` tells whether fp16 is emulated.
    """
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

    from speechbrain_ext.lobes.mr_rawnet import MRRawNet

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import training_recipe

    SpeakerBrain = training_recipe().SpeakerBrain

    emulate = precision == "fp16" and not str(device).startswith("cuda")
    torch.manual_seed(0)
    hparams = {
        "compute_cost": LogSoftmaxWrapper(
            AdditiveAngularMargin(margin=margin, scale=30)
        ),
    }
    if train_pipeline is not None:
        hparams["train_pipeline"] = train_pipeline
    brain = SpeakerBrain(
        modules={
            "embedding_model": MRRawNet(**model_kwargs),
            "classifier": Classifier(
                model_kwargs["lin_neurons"], lin_blocks=0,
                out_neurons=n_classes,
            ),
        },
        opt_class=lambda params: torch.optim.Adam(params, lr=lr),
        hparams=hparams,
        run_opts={
            "device": device,
            "precision": "fp32" if emulate else precision,
            "noprogressbar": True,
        },
    )
    if emulate:
        brain.scaler = torch.GradScaler("cpu", enabled=True)
        brain.training_ctx = torch.autocast("cpu", dtype=torch.float16)
    brain.emulated = emulate
    brain.init_optimizers()
    brain.modules.train()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    return brain


def fit(brain, batch):
    """One ``fit_batch`` as ``Brain.fit`` calls it; returns the loss."""
    brain.step += 1
    return float(brain.fit_batch(batch))


def snapshot(brain):
    """Copies of every module tensor and of Adam's state."""
    state = {
        f"{name}.{key}": value.detach().clone()
        for name, module in brain.modules.items()
        for key, value in module.state_dict().items()
    }
    for i, group in enumerate(brain.optimizer.state_dict()["state"].values()):
        for key, value in group.items():
            state[f"opt{i}.{key}"] = torch.as_tensor(value).clone()
    return state


def changed(a, b):
    """Names of the tensors that differ between two snapshots."""
    return [k for k in a if not torch.equal(a[k], b[k])]


def nonfinite_step(brain):
    """Makes the next step's loss NaN via the recipe's fault hook.

    Returns
    -------
    dict
        What happened: ``loss``, ``changed`` (tensor names),
        ``optimizer_steps`` and ``skipped_steps`` taken, the scale
        before and after.
    """
    before = snapshot(brain)
    steps, skipped = brain.optimizer_step, brain.skipped_steps
    scale = float(brain.scaler.get_scale()) if brain.scaler.is_enabled() else 0
    import fault_injection as faults  # tests/ is on sys.path (common)

    faults.install()
    os.environ[faults.ENV_NAN_BATCHES] = f"1:{brain.step + 1}"
    try:
        loss = fit(brain, brain.check_batches[0])
    finally:
        del os.environ[faults.ENV_NAN_BATCHES]
    new_scale = (
        float(brain.scaler.get_scale()) if brain.scaler.is_enabled() else 0
    )
    return {
        "loss": loss,
        "changed": changed(before, snapshot(brain)),
        "optimizer_steps": brain.optimizer_step - steps,
        "skipped_steps": brain.skipped_steps - skipped,
        "scale": (scale, new_scale),
    }


def run_case(ctx, rep, size, model_kwargs, precision, sizes):
    """Steps, the non-finite step and one more step for one configuration."""
    name = f"{size} {precision}"
    reset_memory(ctx.device)
    n_spk = sizes["speakers"]
    brain = make_brain(
        model_kwargs, n_spk, ctx.device, precision, sizes["lr"][size]
    )
    batches = [
        tone_batch(range(n_spk), sizes["seconds"], seed=s) for s in (1, 2)
    ]
    brain.check_batches = batches
    losses, times = [], []
    # fp16: the scaler starts high and skips the steps that overflow until
    # its scale fits; count until `steps` optimiser steps are taken.
    limit = sizes["steps"] + (24 if brain.scaler.is_enabled() else 0)
    for i in range(limit):
        if i >= sizes["steps"] and brain.optimizer_step >= sizes["steps"]:
            break
        ctx.sync()
        began = time.perf_counter()
        losses.append(fit(brain, batches[i % 2]))
        ctx.sync()
        times.append(time.perf_counter() - began)
    key = f"{size}_{precision}"
    k = sizes["window"]
    first, last = statistics.mean(losses[:k]), statistics.mean(losses[-k:])
    tag = " (fp16 emulated on the CPU)" if brain.emulated else ""
    rep.figure(f"{key}_loss_first", first)
    rep.figure(f"{key}_loss_last", last)
    rep.figure(f"{key}_step_ms", 1000 * statistics.median(times[2:] or times))
    rep.figure(f"{key}_peak_gib", peak_memory_gib(ctx.device))
    if brain.scaler.is_enabled():
        rep.figure(f"{key}_overflow_steps", len(losses) - brain.optimizer_step)
    finite = all(torch.isfinite(torch.tensor(losses)))
    rep.check(
        f"{name}: loss finite and falling{tag}",
        finite and last < first,
        f"mean of first {k} {first:.3f} -> last {k} {last:.3f} over "
        f"{len(losses)} steps ({brain.optimizer_step} taken)",
    )

    bad = nonfinite_step(brain)
    if brain.scaler.is_enabled():
        ok = (
            not bad["changed"]
            and bad["optimizer_steps"] == 0
            and bad["scale"][1] < bad["scale"][0]
        )
        how = (
            f"scale {bad['scale'][0]:g} -> {bad['scale'][1]:g}, "
            f"skipped_steps +{bad['skipped_steps']} (fp16: not counted)"
        )
    else:
        ok = (
            not bad["changed"]
            and bad["optimizer_steps"] == 0
            and bad["skipped_steps"] == 1
        )
        how = f"skipped_steps +{bad['skipped_steps']}"
    changed_names = ", ".join(bad["changed"][:3]) or "nothing"
    rep.check(
        f"{name}: forced non-finite step skipped, no trace{tag}",
        ok,
        f"loss {bad['loss']}, optimiser steps +{bad['optimizer_steps']}, "
        f"{how}; changed: {changed_names}",
    )

    before = snapshot(brain)
    steps = brain.optimizer_step
    # Under fp16 a step may overflow at the new scale: a few tries.
    tries = 0
    while tries < (3 if brain.scaler.is_enabled() else 1):
        tries += 1
        loss = fit(brain, batches[1])
        if brain.optimizer_step > steps:
            break
    moved = changed(before, snapshot(brain))
    rep.check(
        f"{name}: next step trains again",
        bool(torch.isfinite(torch.tensor(loss)))
        and brain.optimizer_step == steps + 1
        and any(k.startswith("embedding_model.") for k in moved),
        f"loss {loss:.3f}, optimiser steps +{brain.optimizer_step - steps} "
        f"in {tries} step(s)",
    )
    del brain
    reset_memory(ctx.device)


def run(ctx, rep):
    """Runs the item.

    Arguments
    ---------
    ctx : common.Context
        Device, sizes, folders.
    rep : common.Report
        Filled with checks and figures.
    """
    if ctx.smoke:
        sizes = {"speakers": 4, "seconds": 0.5, "steps": 6, "window": 2,
                 "lr": {"demo": 0.01, "full": 0.01}}
    else:
        sizes = {"speakers": 8, "seconds": 2.0, "steps": 12, "window": 3,
                 "lr": {"demo": 0.002, "full": 0.001}}
    rep.figure("batch", f"{sizes['speakers']} x {sizes['seconds']} s")
    for size, kwargs in model_sizes(ctx.smoke).items():
        for precision in PRECISIONS:
            with rep.guard(f"{size} {precision}"):
                run_case(ctx, rep, size, kwargs, precision, sizes)
