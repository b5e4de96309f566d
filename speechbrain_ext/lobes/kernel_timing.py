"""Timing two CPU kernels on the running machine and keeping the faster.

Every alternative CPU inference kernel of this package is chosen by
measurement, never assumed: the first time a shape is met, the incumbent
kernel and its alternative are both run on the real input, interleaved
(``TIMING_ROUNDS`` rounds of ``TIMING_REPEATS`` calls each, the best time
counting, so that a load change hits both alike), and the alternative wins
only when it timed at least ``CHOICE_MARGIN`` faster, so a near tie on a
noisy machine keeps the incumbent. ``fast_conv`` uses it to choose between
torch's convolutions and matrix-product kernels, ``channel_gemm`` to choose
between oneDNN's matrix product and ``torch.mm`` for each product shape.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import time

#: Timed repetitions of each kernel per round when a new shape is met.
TIMING_REPEATS = 3
#: Interleaved timing rounds (the best time of all rounds counts).
TIMING_ROUNDS = 3
#: How much faster the alternative kernel must time to be chosen: on a
#: shared or noisy machine a near tie goes to the incumbent kernel, so that
#: timing noise cannot make a timed choice slower than the incumbent.
CHOICE_MARGIN = 0.05


def best_of(fn, *args):
    """Shortest wall time of ``TIMING_REPEATS`` calls of ``fn(*args)``.

    Arguments
    ---------
    fn : callable
        The kernel.
    *args
        Its inputs.

    Returns
    -------
    float
        Seconds.

    Example
    -------
    >>> best_of(sum, [1, 2, 3]) >= 0.0
    True
    """
    best = float("inf")
    for _ in range(TIMING_REPEATS):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def alternative_is_faster(incumbent, alternative, *args):
    """Times both kernels on ``args`` and says whether to switch.

    Each kernel is called once first (its warm-up; the outputs are
    returned so that the caller can hand out the chosen kernel's result
    and the first call gives what every later call gives), then both are
    timed in ``TIMING_ROUNDS`` interleaved rounds.

    Arguments
    ---------
    incumbent : callable
        The default kernel.
    alternative : callable
        The kernel that replaces it when it timed ``CHOICE_MARGIN`` faster.
    *args
        The inputs both are called with (neither may change them).

    Returns
    -------
    bool
        Whether ``alternative`` was clearly faster.
    tuple
        The two warm-up outputs, ``(incumbent(*args), alternative(*args))``.

    Example
    -------
    >>> import time
    >>> slow = lambda x: time.sleep(0.002) or x
    >>> faster, outs = alternative_is_faster(slow, lambda x: x, 7)
    >>> faster, outs
    (True, (7, 7))
    """
    outs = (incumbent(*args), alternative(*args))
    incumbent_s = alternative_s = float("inf")
    for _ in range(TIMING_ROUNDS):
        incumbent_s = min(incumbent_s, best_of(incumbent, *args))
        alternative_s = min(alternative_s, best_of(alternative, *args))
    return alternative_s < (1.0 - CHOICE_MARGIN) * incumbent_s, outs
