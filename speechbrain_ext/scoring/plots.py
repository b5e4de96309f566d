"""DET curves and score histograms as PNG files.

Matplotlib (and SciPy for the probit transform) is imported inside the
functions, and figures are drawn with the Agg canvas directly, without
``pyplot``, so no global backend is changed and importing this module is
cheap.

Authors
 * MR-RawNet recipe contributors
"""

import os

import numpy as np

from speechbrain_ext.scoring.operating_points import (
    _as_scores,
    operating_points,
)
from speechbrain_ext.scoring.speechbrain_metrics import _eer_from_points

__all__ = ["det_points", "plot_det", "plot_score_histogram"]

#: Default tick positions (probabilities) of the DET axes.
DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def _new_figure(figsize):
    """A matplotlib Figure bound to an Agg canvas.

    Arguments
    ---------
    figsize : tuple of float
        Width and height in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi):
    """Writes a figure as PNG, creating the parent folder.

    Arguments
    ---------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        Output file.
    dpi : int
        Resolution.

    Returns
    -------
    str
        ``path`` as a string.
    """
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def det_points(positive_scores, negative_scores, resolution=1e-3):
    """Probit-space DET curve points, thinned for plotting.

    Rates are clipped to ``[1e-7, 1 - 1e-7]`` before the probit transform.
    Consecutive points closer than ``resolution`` (probit units) on both
    axes are merged, so a curve over millions of trials stays small while
    the tails keep their detail.

    Arguments
    ---------
    positive_scores : array-like
        Scores of target trials.
    negative_scores : array-like
        Scores of non-target trials.
    resolution : float
        Grid step in probit units used to drop redundant points.

    Returns
    -------
    p_fa : numpy.ndarray
        False-alarm rates (probability, not probit) of the kept points.
    p_miss : numpy.ndarray
        Miss rates of the kept points.

    Example
    -------
    >>> p_fa, p_miss = det_points([0.9, 0.4, 0.8], [0.1, 0.5])
    >>> p_fa.tolist(), p_miss.round(3).tolist()
    ([1.0, 0.5, 0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.333, 0.333, 0.667, 1.0])
    """
    ops = operating_points(positive_scores, negative_scores)
    return _thin_det(ops, resolution)


def _thin_det(ops, resolution):
    """DET points of precomputed operating points, thinned in probit space.

    Arguments
    ---------
    ops : OperatingPoints
        Output of :func:`operating_points`.
    resolution : float
        Grid step in probit units.

    Returns
    -------
    p_fa : numpy.ndarray
        False-alarm rates of the kept points.
    p_miss : numpy.ndarray
        Miss rates of the kept points.
    """
    from scipy.special import ndtri

    # Start from "accept everything" so the curve reaches P_fa = 1.
    p_fa = np.concatenate([[1.0], ops.p_fa])
    p_miss = np.concatenate([[0.0], ops.p_miss])
    eps = 1e-7
    x = np.round(ndtri(np.clip(p_fa, eps, 1 - eps)) / resolution)
    y = np.round(ndtri(np.clip(p_miss, eps, 1 - eps)) / resolution)
    keep = np.ones(p_fa.size, dtype=bool)
    keep[1:-1] = (x[1:-1] != x[:-2]) | (y[1:-1] != y[:-2])
    return p_fa[keep], p_miss[keep]


def plot_det(curves, path, title=None, limits=(0.0005, 0.5), dpi=120):
    """Draws DET curves of several conditions on one probit-scaled plot.

    Arguments
    ---------
    curves : Mapping
        ``name -> (positive_scores, negative_scores)``; one curve each,
        labelled with its EER. The EER point is marked.
    path : str or os.PathLike
        Output PNG file (parent folders are created).
    title : str or None
        Plot title.
    limits : tuple of float
        Lowest and highest rate shown on both axes, in (0, 1).
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    str
        The PNG path.

    Example
    -------
    >>> import os, tempfile
    >>> rng = np.random.default_rng(0)
    >>> curves = {
    ...     "full": (rng.normal(2, 1, 200), rng.normal(0, 1, 400)),
    ...     "1.04s": (rng.normal(1, 1, 200), rng.normal(0, 1, 400)),
    ... }
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = plot_det(curves, os.path.join(d, "det.png"), "Vox1-O")
    ...     with open(out, "rb") as f:
    ...         f.read(8) == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    from scipy.special import ndtri

    low, high = limits
    if not 0 < low < high < 1:
        raise ValueError(f"limits must satisfy 0 < low < high < 1: {limits}")
    if not curves:
        raise ValueError("no curves to plot")
    fig = _new_figure((5.5, 5.5))
    ax = fig.add_subplot()
    for name, (pos, neg) in curves.items():
        ops = operating_points(pos, neg)
        p_fa, p_miss = _thin_det(ops, 1e-3)
        eer, _ = _eer_from_points(ops)
        (line,) = ax.plot(
            ndtri(np.clip(p_fa, 1e-7, 1 - 1e-7)),
            ndtri(np.clip(p_miss, 1e-7, 1 - 1e-7)),
            label=f"{name} (EER {100 * eer:.2f}%)",
        )
        if low < eer < high:
            ax.plot(ndtri(eer), ndtri(eer), "o", color=line.get_color())
    ticks = [t for t in DET_TICKS if low <= t <= high]
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(ndtri(ticks), labels)
    ax.set_yticks(ndtri(ticks), labels)
    ax.set_xlim(ndtri(low), ndtri(high))
    ax.set_ylim(ndtri(low), ndtri(high))
    ax.plot([ndtri(low), ndtri(high)], [ndtri(low), ndtri(high)], "k:", lw=1)
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_score_histogram(
    positive_scores, negative_scores, path, bins=100, title=None, dpi=120
):
    """Draws target and non-target score histograms (densities) as PNG.

    Arguments
    ---------
    positive_scores : array-like
        Scores of target trials.
    negative_scores : array-like
        Scores of non-target trials.
    path : str or os.PathLike
        Output PNG file (parent folders are created).
    bins : int
        Number of bins shared by both histograms.
    title : str or None
        Plot title.
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    str
        The PNG path.

    Example
    -------
    >>> import os, tempfile
    >>> rng = np.random.default_rng(0)
    >>> pos, neg = rng.normal(0.6, 0.1, 300), rng.normal(0.1, 0.1, 900)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = plot_score_histogram(pos, neg, os.path.join(d, "h.png"))
    ...     os.path.getsize(out) > 0
    True
    """
    pos = _as_scores(positive_scores, "positive (target) scores")
    neg = _as_scores(negative_scores, "negative (non-target) scores")
    edges = np.histogram_bin_edges(np.concatenate([pos, neg]), bins=bins)
    fig = _new_figure((6.0, 4.0))
    ax = fig.add_subplot()
    ax.hist(neg, bins=edges, density=True, alpha=0.6, label="non-target")
    ax.hist(pos, bins=edges, density=True, alpha=0.6, label="target")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path, dpi)
