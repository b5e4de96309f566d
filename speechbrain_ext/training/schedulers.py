"""Cosine annealing with linear warm-up restarts, stepped every iteration.

This is the learning-rate schedule of the official MR-RawNet training:
cycles of ``cycle_epochs`` scheduler epochs (60 by default, every cycle
the same length) where the first ``warmup_epochs`` (1) ramp linearly from
the floor ``lr_min`` (3e-6) up to the cycle's peak, and the rest of the
cycle follows a half cosine back down to the floor. The peak of cycle
``c`` (0-based) is ``lr_max * gamma ** c`` (5e-4, then 2.5e-4 ...).

A scheduler "epoch" is ``steps_per_epoch`` iterations; the official code
uses ``floor(len(train_list) / (batch_size * n_gpus))``
(:func:`official_steps_per_epoch`), counted over the whole training list,
although a real epoch is shorter (at most 500 utterances per speaker, and
utterances whose speaker is already in the batch are dropped): the LR
cycle of 60 scheduler epochs lasts somewhat more than 60 real epochs.
With ``T`` the cycle length and ``W`` the warm-up length, both in
iterations, the lr at position ``t = step mod T`` of cycle
``c = step // T`` is::

    peak = lr_max * gamma ** c
    t < W:  lr = lr_min + (peak - lr_min) * t / W
    t >= W: lr = lr_min + (peak - lr_min)
                 * (1 + cos(pi * (t - W) / (T - W))) / 2

Before the first iteration ``step = 0`` so training starts at the floor.
For the defaults this gives, at the first iteration of (0-based) epoch
1, 30, 60, 61 and 90: 5e-4, 2.581e-4, 3e-6, 2.5e-4 and 1.298e-4, the values
of the official class.

Unlike the official class, the lr is a pure function of the iteration
counter, and the counter is checkpointed, so a resumed run reproduces the
uninterrupted one exactly.

Authors
 * MR-RawNet SpeechBrain recipe contributors 2025
"""

import json
import math

from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


def official_steps_per_epoch(n_utterances, batch_size, world_size=1):
    """Iterations per scheduler epoch as the official trainer counts them.

    ``trainSpeakerNet.py`` sets ``number_iteration = len(train_dataset) //
    (batch_size * torch.cuda.device_count())``: every utterance of the
    training list counts, with no per-speaker cap.

    Arguments
    ---------
    n_utterances : int
        Utterances in the training list (all of them).
    batch_size : int
        Utterances per batch and process.
    world_size : int
        Number of processes (GPUs).

    Returns
    -------
    int
        The iterations per scheduler epoch.

    Example
    -------
    >>> official_steps_per_epoch(1_240_651, 40, 4)
    7754
    """
    steps = int(n_utterances) // (int(batch_size) * int(world_size))
    if steps < 1:
        raise ValueError(
            f"{n_utterances} training utterances give no batch of "
            f"{batch_size} x {world_size} processes"
        )
    return steps


@register_checkpoint_hooks
class WarmupCosineRestarts:
    """Per-iteration cosine annealing with linear warm-up and restarts.

    The object counts iterations in ``n_steps`` (the number of iterations
    already run). Two calling conventions are supported; use one only:

    * ``scheduler(optimizer)`` just before every optimiser step that is
      taken (``FaultTolerantBrain.optimizers_step`` does this, so skipped
      non-finite steps do not advance it): sets ``get_lr(n_steps)`` for
      that step, then advances.
    * the official order: ``scheduler.apply(optimizer)`` once before
      training (after checkpoint recovery), then
      ``scheduler.on_batch_end(optimizer)`` after every optimizer step,
      which advances and sets the lr for the next iteration.

    Either way, iteration ``i`` (0-based, counted over the whole training)
    runs with ``get_lr(i)``.

    Arguments
    ---------
    steps_per_epoch : int
        Iterations per scheduler epoch.
    lr_max : float
        Peak lr of the first cycle.
    lr_min : float
        Floor lr, reached at the start and end of every cycle.
    cycle_epochs : int
        Length of every cycle, in scheduler epochs (T_0; T_mult is 1).
    warmup_epochs : float
        Length of the linear warm-up at the start of every cycle, in
        scheduler epochs. Must be shorter than a cycle.
    gamma : float
        Multiplier of the peak after every restart.

    Example
    -------
    >>> import torch
    >>> param = torch.nn.Parameter(torch.zeros(1))
    >>> opt = torch.optim.Adam([param], lr=1.0)
    >>> sched = WarmupCosineRestarts(steps_per_epoch=10)
    >>> sched(opt)  # first iteration runs at the floor
    3e-06
    >>> opt.param_groups[0]["lr"]
    3e-06
    >>> sched.n_steps
    1
    >>> sched.get_lr(10)  # start of epoch 1: end of the warm-up
    0.0005
    >>> round(sched.get_lr(610), 10)  # start of epoch 61: halved peak
    0.00025
    """

    def __init__(
        self,
        steps_per_epoch,
        lr_max=5e-4,
        lr_min=3e-6,
        cycle_epochs=60,
        warmup_epochs=1,
        gamma=0.5,
    ):
        if steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be >= 1")
        self.steps_per_epoch = int(steps_per_epoch)
        self.lr_max = float(lr_max)
        self.lr_min = float(lr_min)
        self.cycle_epochs = cycle_epochs
        self.warmup_epochs = warmup_epochs
        self.gamma = float(gamma)
        self.cycle_steps = int(round(cycle_epochs * self.steps_per_epoch))
        self.warmup_steps = int(round(warmup_epochs * self.steps_per_epoch))
        if not 0 <= self.warmup_steps < self.cycle_steps:
            raise ValueError("need 0 <= warm-up < cycle length (in steps)")
        self.n_steps = 0

    def get_lr(self, step):
        """Returns the lr of iteration ``step`` (pure; no state change).

        Arguments
        ---------
        step : int
            0-based iteration index over the whole training.

        Returns
        -------
        float
            The learning rate.

        Example
        -------
        >>> sched = WarmupCosineRestarts(steps_per_epoch=4)
        >>> sched.get_lr(0), round(sched.get_lr(2), 10)
        (3e-06, 0.0002515)
        >>> sched.get_lr(240)  # restart at epoch 60: back to the floor
        3e-06
        """
        if step < 0:
            raise ValueError("step must be >= 0")
        cycle, t = divmod(int(step), self.cycle_steps)
        peak = self.lr_max * self.gamma**cycle
        span = peak - self.lr_min
        if t < self.warmup_steps:
            return self.lr_min + span * t / self.warmup_steps
        progress = (t - self.warmup_steps) / (
            self.cycle_steps - self.warmup_steps
        )
        return self.lr_min + span * (1.0 + math.cos(math.pi * progress)) / 2

    @property
    def current_lr(self):
        """The lr of the next iteration to run, ``get_lr(n_steps)``."""
        return self.get_lr(self.n_steps)

    def apply(self, optimizer):
        """Sets ``current_lr`` on all param groups without advancing.

        Arguments
        ---------
        optimizer : torch.optim.Optimizer
            The optimizer to update.

        Returns
        -------
        float
            The lr that was set.

        Example
        -------
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], 1.0)
        >>> WarmupCosineRestarts(steps_per_epoch=2).apply(opt)
        3e-06
        >>> opt.param_groups[0]["lr"]
        3e-06
        """
        lr = self.current_lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def __call__(self, optimizer):
        """Sets the lr of the iteration about to run, then advances.

        Call at the start of every iteration (before the optimizer step).

        Arguments
        ---------
        optimizer : torch.optim.Optimizer
            The optimizer to update.

        Returns
        -------
        float
            The lr set for this iteration.

        Example
        -------
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], 1.0)
        >>> sched = WarmupCosineRestarts(steps_per_epoch=2)
        >>> [round(sched(opt), 7) for _ in range(3)]
        [3e-06, 0.0002515, 0.0005]
        """
        lr = self.apply(optimizer)
        self.n_steps += 1
        return lr

    def on_batch_end(self, optimizer):
        """Advances one iteration, then sets the lr of the next one.

        The official calling order: ``apply`` once before training, then
        this after every optimizer step.

        Arguments
        ---------
        optimizer : torch.optim.Optimizer
            The optimizer to update.

        Returns
        -------
        float
            The lr set for the next iteration.

        Example
        -------
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], 1.0)
        >>> sched = WarmupCosineRestarts(steps_per_epoch=2)
        >>> sched.apply(opt)
        3e-06
        >>> round(sched.on_batch_end(opt), 7)
        0.0002515
        """
        self.n_steps += 1
        return self.apply(optimizer)

    def _config(self):
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "lr_max": self.lr_max,
            "lr_min": self.lr_min,
            "cycle_steps": self.cycle_steps,
            "warmup_steps": self.warmup_steps,
            "gamma": self.gamma,
        }

    @mark_as_saver
    def save(self, path):
        """Saves the iteration counter (and the config, for checking).

        Arguments
        ---------
        path : str or pathlib.Path
            File to write (JSON).

        Example
        -------
        >>> tmp = getfixture("tmp_path") / "sched.json"
        >>> sched = WarmupCosineRestarts(steps_per_epoch=3)
        >>> sched.n_steps = 7
        >>> sched.save(tmp)
        >>> fresh = WarmupCosineRestarts(steps_per_epoch=3)
        >>> fresh.load(tmp)
        >>> fresh.n_steps
        7
        """
        state = {"n_steps": self.n_steps, "config": self._config()}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restores the iteration counter written by ``save``.

        The lr is a pure function of the counter, so the next iteration
        gets exactly the lr it would have had without the interruption
        (call ``apply(optimizer)`` if you use the ``on_batch_end`` order).
        A config mismatch (e.g. a different ``steps_per_epoch``) is logged
        as a warning; the counter is kept and the lr then follows the new
        config.

        Arguments
        ---------
        path : str or pathlib.Path
            File written by ``save``.
        end_of_epoch : bool
            Unused; the counter is exact at any point.

        Returns
        -------
        None

        Example
        -------
        >>> tmp = getfixture("tmp_path") / "sched.json"
        >>> WarmupCosineRestarts(steps_per_epoch=3).save(tmp)
        >>> WarmupCosineRestarts(steps_per_epoch=3).load(tmp)
        """
        del end_of_epoch  # the counter is exact at any point
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        self.n_steps = int(state["n_steps"])
        saved = state.get("config")
        if saved is not None and saved != self._config():
            logger.warning(
                "LR scheduler config differs from the checkpoint: "
                f"saved {saved}, now {self._config()}"
            )


def lr_steps_per_epoch(hparams, n_utterances, sampler, world_size):
    """Iterations per LR-scheduler epoch, as ``lr_steps_per_epoch`` says.

    ``official``: the official trainer's count, every training utterance
    over the batch size times the number of processes (see
    :func:`~speechbrain_ext.training.schedulers.official_steps_per_epoch`);
    ``drawn``: the batches this rank draws in epoch 1; a number: itself.

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters.
    n_utterances : int
        Training utterances.
    sampler : SpeakerBalancedBatchSampler
        The training sampler.
    world_size : int
        Number of processes.

    Returns
    -------
    tuple
        ``(steps, description)``.

    Example
    -------
    >>> lr_steps_per_epoch({"batch_size": 4}, 100, None, 2)
    (12, 'official: 100 utterances // (4 x 2 processes)')
    """
    rule = hparams.get("lr_steps_per_epoch", "official")
    batch = hparams["batch_size"]
    if rule == "official":
        steps = official_steps_per_epoch(n_utterances, batch, world_size)
        why = (
            f"official: {n_utterances} utterances // ({batch} x "
            f"{world_size} processes)"
        )
    elif rule == "drawn":
        sampler.set_epoch(1)
        steps = len(sampler)
        why = "drawn: the batches of epoch 1 on this rank"
    elif isinstance(rule, int) and not isinstance(rule, bool) and rule > 0:
        steps, why = rule, "given"
    else:
        raise ValueError(
            "lr_steps_per_epoch must be official, drawn or a positive "
            f"number, got {rule!r}"
        )
    return steps, why
