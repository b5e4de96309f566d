"""The training speakers as classes: list, label encoder, classifier size.

* :func:`read_speakers`: the sorted speaker list of data preparation
  (class i is the i-th speaker);
* :func:`build_label_encoder`: the label encoder, written once by rank 0;
  an existing one with other speakers is an error, not a relabelling;
* :func:`check_classifier_size`: the classifier's rows against the
  number of speakers (``n_neurons_from_data`` to adapt);
* :func:`start_from_weights`: the initial weights of large-margin
  fine-tuning (``init_from``), unless the run resumes.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import os

from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.logger import get_logger

from speechbrain_ext.pretrained import write_label_encoder
from speechbrain_ext.training.distributed import run_on_main_and_share
from speechbrain_ext.training.export import LABEL_ENCODER_FILE, read_labels
from speechbrain_ext.training.init_weights import load_initial_weights

logger = get_logger(__name__)


def read_speakers(speakers_file):
    """Reads the sorted speaker list written by data preparation.

    Arguments
    ---------
    speakers_file : str
        One speaker per line.

    Returns
    -------
    list of str
        The speakers, in file order (class index order).

    Example
    -------
    >>> path = getfixture("tmp_path") / "speakers.txt"
    >>> _ = path.write_text("id1\\nid2\\n")
    >>> read_speakers(path)
    ['id1', 'id2']
    """
    with open(speakers_file, encoding="utf-8") as f:
        speakers = [line.strip() for line in f if line.strip()]
    if speakers != sorted(set(speakers)):
        raise ValueError(f"{speakers_file} is not a sorted unique list")
    return speakers


def build_label_encoder(hparams, speakers):
    """Label encoder with class i = the i-th sorted speaker.

    Rank 0 writes ``label_encoder.txt`` in the save folder. An existing
    file with other speakers means the checkpoints there belong to other
    data: that is an error rather than a silent relabelling.

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters.
    speakers : list of str
        Sorted training speakers.

    Returns
    -------
    speechbrain.dataio.encoder.CategoricalEncoder
        The encoder.

    Example
    -------
    >>> hparams = {"save_folder": str(getfixture("tmp_path"))}
    >>> encoder = build_label_encoder(hparams, ["id1", "id2"])
    >>> encoder.encode_label("id2")
    1
    """
    path = os.path.join(hparams["save_folder"], LABEL_ENCODER_FILE)

    def write():
        if os.path.isfile(path):
            old = read_labels(path)
            if old != speakers:
                raise ValueError(
                    f"{path} lists {len(old)} speakers that differ from the "
                    f"{len(speakers)} prepared now; the checkpoints in "
                    f"{hparams['save_folder']} belong to other data. Use "
                    "another --output_folder (or delete that folder)."
                )
            return path
        return write_label_encoder(path, speakers)

    run_on_main_and_share(write)
    encoder = CategoricalEncoder()
    encoder.load(path)
    encoder.expect_len(len(speakers))
    return encoder


def check_classifier_size(hparams, n_speakers):
    """Makes the classifier size match the number of training speakers.

    A number of speakers other than ``out_n_neurons`` (the official run:
    7,205) is an error naming both, unless ``n_neurons_from_data: True``,
    which replaces the classifier (with a warning) by one of the data's
    size.

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters (changed in place).
    n_speakers : int
        Number of training speakers.

    Returns
    -------
    None

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    >>> classifier = Classifier(4, lin_blocks=0, out_neurons=3)
    >>> hparams = {"classifier": classifier, "n_neurons_from_data": False}
    >>> check_classifier_size(hparams, 3)  # matches: nothing to do
    >>> check_classifier_size(hparams, 5)
    Traceback (most recent call last):
    ...
    ValueError: the data has 5 training speakers but out_n_neurons is 3; ...
    """
    old = hparams["classifier"]
    if old.weight.shape[0] == n_speakers:
        return
    message = (
        f"the data has {n_speakers} training speakers but out_n_neurons is "
        f"{old.weight.shape[0]}"
    )
    if not hparams["n_neurons_from_data"]:
        raise ValueError(
            message + f"; pass --out_n_neurons={n_speakers} (or set "
            "n_neurons_from_data: True)"
        )
    logger.warning(message + f"; using a classifier of {n_speakers} classes")
    new = type(old)(
        input_size=old.weight.shape[1], lin_blocks=0, out_neurons=n_speakers
    )
    hparams["classifier"] = new
    hparams["out_n_neurons"] = n_speakers
    hparams["modules"]["classifier"] = new
    recoverables = hparams["checkpointer"].recoverables
    for name, obj in list(recoverables.items()):
        if obj is old:
            recoverables[name] = new


def start_from_weights(hparams, speakers):
    """Loads ``init_from`` (large-margin fine-tuning) unless resuming.

    See :mod:`speechbrain_ext.training.init_weights`. Every rank loads the
    same files, before the modules are wrapped for DDP.

    Arguments
    ---------
    hparams : dict
        Loaded hyperparameters (``init_from``, ``init_classifier``).
    speakers : list of str
        This run's speaker of each classifier row.

    Returns
    -------
    str or None
        The protocol line (None without ``init_from``).

    Example
    -------
    >>> start_from_weights({"init_from": None}, ["id1"]) is None
    True
    """
    source = hparams.get("init_from")
    if not source:
        return None
    if hparams["checkpointer"].find_checkpoint() is not None:
        logger.info(
            "Resuming from this run's own checkpoint: init_from %s is not "
            "read", source,
        )
    else:
        keep_classifier = hparams.get("init_classifier", True)
        loaded = load_initial_weights(
            source,
            hparams["modules"]["embedding_model"],
            hparams["modules"]["classifier"] if keep_classifier else None,
            speakers,
            hparams["model_kwargs"],
        )
        logger.info(
            "Initialised from %s (embedding model %s, classifier %s)",
            source, loaded["embedding"], loaded["classifier"] or "new",
        )
        if not keep_classifier:
            logger.warning(
                "init_classifier is False: the classifier starts from "
                "random weights"
            )
    return (
        f"init_from: {source} (weights only; classifier "
        f"{'kept' if hparams.get('init_classifier', True) else 'new'})"
    )
