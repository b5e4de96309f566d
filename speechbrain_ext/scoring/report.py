"""Score files, result tables (Markdown and JSON) and per-list figures.

Every file is written to a temporary name and renamed, so an interrupted
run never leaves a half-written score file or table behind.

Authors
 * MR-RawNet recipe contributors
"""

import json
import os

import numpy as np

from speechbrain_ext.atomic_files import atomic_write_text
from speechbrain_ext.scoring.calibration_metrics import calibration_summary
from speechbrain_ext.scoring.metrics import compute_metrics
from speechbrain_ext.scoring.plots import _new_figure, _save

__all__ = [
    "metrics_row",
    "plot_score_histograms",
    "results_markdown",
    "write_results",
    "write_scores",
]


def write_scores(path, enrol, test, labels, scores):
    """Writes one trial per line: ``enrol test label score``.

    Arguments
    ---------
    path : str
        Output file (parent folders created).
    enrol : sequence of str
        Enrolment utterance of each trial (as in the trial list).
    test : sequence of str
        Test utterance of each trial.
    labels : sequence of int
        1 target, 0 non-target.
    scores : sequence of float
        Score of each trial.

    Returns
    -------
    str
        ``path``.

    Example
    -------
    >>> path = os.path.join(str(getfixture("tmp_path")), "scores", "full.txt")
    >>> _ = write_scores(path, ["a.wav"], ["b.wav"], [1], [0.25])
    >>> open(path).read()
    'a.wav b.wav 1 0.25000000\\n'
    """
    n = len(scores)
    if not len(enrol) == len(test) == len(labels) == n:
        raise ValueError("enrol, test, labels and scores differ in length")
    lines = [
        f"{e} {t} {int(lab)} {float(s):.8f}\n"
        for e, t, lab, s in zip(enrol, test, labels, scores, strict=True)
    ]
    return atomic_write_text(path, "".join(lines))


def metrics_row(list_name, condition, scoring, labels, scores,
                p_targets=(0.01, 0.05), llr=False):
    """EER and minDCFs of one list, condition and scoring, as a flat dict.

    For calibrated scores (``llr=True``) the row also holds the Cllr, the
    min-Cllr and, per prior, the actual DCF and error rates of the Bayes
    decision (see :mod:`speechbrain_ext.scoring.calibration_metrics`).

    Arguments
    ---------
    list_name : str
        Trial list name.
    condition : str
        Condition name (e.g. ``"full"``, ``"1.04s"``).
    scoring : str
        ``"cosine"`` or ``"as-norm"``.
    labels : array-like
        1 target, 0 non-target.
    scores : array-like
        One score per trial.
    p_targets : sequence of float
        Priors of the minDCFs.
    llr : bool
        The scores are calibrated natural-log LLRs.

    Returns
    -------
    dict
        ``list``, ``condition``, ``scoring``, ``eer`` (fraction),
        ``eer_threshold``, ``min_dcf@<p>``, ``n_trials``, ``n_target``,
        ``n_nontarget``; with ``llr``, also ``cllr``, ``min_cllr``,
        ``act_dcf@<p>``, ``p_fa@<p>`` and ``p_miss@<p>``.

    Example
    -------
    >>> row = metrics_row("o", "full", "cosine", [1, 0, 1, 0],
    ...                   [0.9, 0.1, 0.8, 0.85])
    >>> row["eer"], row["n_trials"], row["min_dcf@0.05"]
    (0.5, 4, 0.5)
    """
    m = compute_metrics(labels, scores, p_targets=tuple(p_targets))
    row = {
        "list": list_name,
        "condition": condition,
        "scoring": scoring,
        "eer": m.eer,
        "eer_threshold": m.eer_threshold,
    }
    for p in p_targets:
        row[f"min_dcf@{p:g}"] = m.min_dcf[p]
    if llr:
        row.update(calibration_summary(labels, scores, tuple(p_targets)))
    row.update(
        n_trials=m.n_target + m.n_nontarget,
        n_target=m.n_target,
        n_nontarget=m.n_nontarget,
    )
    return row


def results_markdown(rows, p_targets=(0.01, 0.05)):
    """The results as a Markdown table (EER in percent).

    When a row holds calibrated scores, Cllr, min-Cllr and actual-DCF
    columns are added (``-`` in the other rows).

    Arguments
    ---------
    rows : sequence of dict
        Outputs of :func:`metrics_row`.
    p_targets : sequence of float
        Priors of the minDCF columns.

    Returns
    -------
    str
        The table, one row per list, condition and scoring.

    Example
    -------
    >>> row = metrics_row("o", "full", "cosine", [1, 0], [0.9, 0.1])
    >>> print(results_markdown([row], p_targets=[0.05]))
    | List | Condition | Scoring | EER (%) | minDCF@0.05 | Trials |
    |---|---|---|---:|---:|---:|
    | o | full | cosine | 0.000 | 0.0000 | 2 |
    """
    calibrated = any("cllr" in row for row in rows)
    head = ["List", "Condition", "Scoring", "EER (%)"]
    head += [f"minDCF@{p:g}" for p in p_targets]
    if calibrated:
        head += ["Cllr", "minCllr"] + [f"actDCF@{p:g}" for p in p_targets]
    head += ["Trials"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|---|---|---|" + "---:|" * (len(head) - 3),
    ]
    for row in rows:
        cells = [row["list"], row["condition"], row["scoring"]]
        cells.append(f"{100 * row['eer']:.3f}")
        cells += [f"{row[f'min_dcf@{p:g}']:.4f}" for p in p_targets]
        if calibrated and "cllr" in row:
            cells += [f"{row['cllr']:.4f}", f"{row['min_cllr']:.4f}"]
            cells += [f"{row[f'act_dcf@{p:g}']:.4f}" for p in p_targets]
        elif calibrated:
            cells += ["-"] * (2 + len(p_targets))
        cells.append(str(row["n_trials"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(rows, folder, p_targets=(0.01, 0.05), meta=None):
    """Writes ``results.md`` and ``results.json``.

    The JSON holds ``meta``, the flat ``rows`` and the same numbers nested
    as ``results[list][condition][scoring]``.

    Arguments
    ---------
    rows : sequence of dict
        Outputs of :func:`metrics_row`.
    folder : str
        Output folder.
    p_targets : sequence of float
        Priors of the minDCF columns.
    meta : dict or None
        Run description (model, settings) stored in the JSON.

    Returns
    -------
    tuple of str
        Paths of the Markdown and the JSON file.

    Example
    -------
    >>> row = metrics_row("o", "full", "cosine", [1, 0], [0.9, 0.1])
    >>> md, js = write_results([row], str(getfixture("tmp_path")))
    >>> json.load(open(js))["results"]["o"]["full"]["cosine"]["n_trials"]
    2
    """
    nested = {}
    for row in rows:
        values = {
            k: v for k, v in row.items()
            if k not in ("list", "condition", "scoring")
        }
        nested.setdefault(row["list"], {}).setdefault(
            row["condition"], {}
        )[row["scoring"]] = values
    md = "# Speaker verification results\n\n"
    md += results_markdown(rows, p_targets) + "\n"
    md += (
        "\nEER in percent; minDCF normalised, C_miss = C_fa = 1.\n"
    )
    if any("cllr" in row for row in rows):
        md += (
            "Calibrated rows: scores are natural-log LLRs; Cllr and "
            "min-Cllr in bits; actDCF is the normalised cost of deciding "
            "at LLR > log((1 - P_target) / P_target).\n"
        )
    md_path = atomic_write_text(os.path.join(folder, "results.md"), md)
    payload = {"meta": meta or {}, "rows": list(rows), "results": nested}
    json_path = atomic_write_text(
        os.path.join(folder, "results.json"),
        json.dumps(payload, indent=1, default=_json_default) + "\n",
    )
    return md_path, json_path


def _json_default(value):
    """JSON encoding of numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def plot_score_histograms(curves, path, title=None, bins=60, dpi=110):
    """Target and non-target score histograms, one panel per condition.

    Arguments
    ---------
    curves : Mapping
        ``condition -> (positive_scores, negative_scores)``.
    path : str
        Output PNG (parent folders created).
    title : str or None
        Figure title.
    bins : int
        Bins per panel (shared by the two classes).
    dpi : int
        Resolution.

    Returns
    -------
    str
        The PNG path.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> curves = {"full": (rng.normal(1, 1, 50), rng.normal(0, 1, 50)),
    ...           "1.04s": (rng.normal(0.5, 1, 50), rng.normal(0, 1, 50))}
    >>> out = plot_score_histograms(
    ...     curves, os.path.join(str(getfixture("tmp_path")), "h.png"), "demo")
    >>> open(out, "rb").read(4) == b"\\x89PNG"
    True
    """
    if not curves:
        raise ValueError("no score sets to plot")
    from matplotlib.ticker import MaxNLocator

    n = len(curves)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig = _new_figure((4.5 * cols, 3.2 * rows + (0.4 if title else 0)))
    for i, (name, (pos, neg)) in enumerate(curves.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        pos = np.asarray(pos, dtype=np.float64)
        neg = np.asarray(neg, dtype=np.float64)
        edges = np.histogram_bin_edges(np.concatenate([pos, neg]), bins=bins)
        ax.hist(neg, bins=edges, density=True, alpha=0.6, label="non-target")
        ax.hist(pos, bins=edges, density=True, alpha=0.6, label="target")
        ax.set_title(name)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel("score")
        ax.set_ylabel("density")
        if i == 0:
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)
