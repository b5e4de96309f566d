"""Self-contained pretrained folders for ``EncoderClassifier``.

A pretrained folder holds everything ``EncoderClassifier.from_hparams``
needs, with no hub ID or absolute path anywhere, so it loads offline and can
be moved or archived:

* ``hyperparams.yaml``: the inference graph (MR-RawNet, pass-through feature
  stages, cosine classifier, audio normaliser, a Pretrainer whose loading is
  strict);
* ``embedding_model.ckpt`` and ``classifier.ckpt``: state dicts;
* ``label_encoder.txt`` (and the same content as ``label_encoder.ckpt``,
  the name SpeechBrain's Pretrainer looks for), when speaker labels are
  known;
* ``README.md``: a short model card.

SpeechBrain's default parameter transfer is non-strict and only logs a
warning when keys do not match, so a wrong checkpoint silently yields a
random model. Every load here goes through :func:`load_state_dict_strict`,
which raises an error naming the offending keys.

Untrusted files: the checkpoints are read with ``torch.load(weights_only=
True)`` (:func:`strict_transfer`), so a crafted pickle is refused without
running its code. ``hyperparams.yaml`` is HyperPyYAML, which can run code by
design: load only folders whose ``hyperparams.yaml`` you trust.

Audio input: ``load_audio`` (and so ``verify_files`` and ``classify_file``)
passes each decoded file through :class:`CheckedAudioNormalizer`, which
rejects empty and NaN/Inf audio with a clear ``ValueError`` before
resampling. For the models of these folders (those whose audio normaliser
is a :class:`CheckedAudioNormalizer`), a missing local file (an absolute
path, or one whose folder exists) is a ``FileNotFoundError`` naming it,
where SpeechBrain's decoder would raise a ``RuntimeError`` (see
:func:`install_missing_file_check`; other models are left alone).
SpeechBrain resolves a relative path whose folder does not exist as a
Hugging Face Hub ID; :func:`local_audio` avoids that lookup and raises
``FileNotFoundError`` for a missing file.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import functools
import hashlib
import os

import torch
import yaml
from speechbrain.dataio.preprocess import AudioNormalizer

from speechbrain_ext.atomic_files import (
    atomic_replace,
    atomic_write,
    atomic_write_text,
)

#: The official MR-RawNet configuration (constructor defaults).
OFFICIAL_MODEL_KWARGS = {
    "sinc_filters": 256,
    "tcn_channels": 128,
    "tcn_hidden": 96,
    "tcn_repeats": 3,
    "tcn_blocks": 4,
    "channels": 256,
    "mra_depths": [3, 3, 3],
    "mra_dilation": 2,
    "mra_scale": 4,
    "aggregate_channels": 1536,
    "attention_channels": 256,
    "lin_neurons": 256,
}

_MAX_LISTED = 10


def _listing(names):
    """First names of a list, with the total count."""
    names = sorted(names)
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def load_state_dict_strict(module, state_dict, source="state dict"):
    """Loads ``state_dict`` into ``module``, refusing any mismatch.

    Arguments
    ---------
    module : torch.nn.Module
        The module to fill.
    state_dict : dict
        Tensors by key.
    source : str
        Where the state dict comes from, for error messages.

    Returns
    -------
    torch.nn.Module
        ``module``, loaded.

    Raises
    ------
    ValueError
        If keys are missing or unexpected, or shapes differ; the message
        names them.

    Example
    -------
    >>> layer = torch.nn.Linear(2, 3)
    >>> _ = load_state_dict_strict(layer, torch.nn.Linear(2, 3).state_dict())
    >>> load_state_dict_strict(layer, {"weight": torch.zeros(3, 2)})
    Traceback (most recent call last):
    ...
    ValueError: state dict does not match Linear: missing keys: bias
    """
    expected = module.state_dict()
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    shapes = [
        f"{k} {list(state_dict[k].shape)} != {list(expected[k].shape)}"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_listing(shapes)}")
    if problems:
        raise ValueError(
            f"{source} does not match {type(module).__name__}: "
            + "; ".join(problems)
        )
    module.load_state_dict(state_dict, strict=True)
    return module


def strict_transfer(obj, path):
    """Pretrainer hook: strict, weights-only loading of a module checkpoint.

    Arguments
    ---------
    obj : torch.nn.Module
        The module to fill.
    path : str or pathlib.Path
        A ``torch.save``'d state dict.

    Returns
    -------
    torch.nn.Module
        ``obj``, loaded.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "layer.ckpt")
    >>> torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    >>> _ = strict_transfer(torch.nn.Linear(2, 2), path)
    >>> torch.save([1, 2], path)
    >>> strict_transfer(torch.nn.Linear(2, 2), path)
    Traceback (most recent call last):
    ...
    ValueError: ... is not a state dict of tensors (got list)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle refused, corrupt or truncated file
        raise ValueError(
            f"{path}: cannot be read as a weights-only checkpoint "
            f"({type(err).__name__}: {err})"
        ) from err
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"{path} is not a state dict of tensors (got "
            f"{type(state).__name__})"
        )
    return load_state_dict_strict(obj, state, source=str(path))


def strict_label_transfer(obj, path, n_classes=None):
    """Pretrainer hook: loads a label encoder, refusing a corrupt file.

    SpeechBrain's default hook for a ``CategoricalEncoder`` ignores a file
    it cannot parse and leaves the encoder empty, so ``classify_*`` fails
    much later. The file format is Python literals, read with
    ``ast.literal_eval``, which never runs code.

    Arguments
    ---------
    obj : speechbrain.dataio.encoder.CategoricalEncoder
        The encoder to fill.
    path : str or pathlib.Path
        A ``CategoricalEncoder`` file.
    n_classes : int or None
        Expected number of labels (the classifier's rows).

    Returns
    -------
    speechbrain.dataio.encoder.CategoricalEncoder
        ``obj``, loaded.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> path = os.path.join(tempfile.mkdtemp(), "label_encoder.txt")
    >>> _ = write_label_encoder(path, ["a", "b"])
    >>> len(strict_label_transfer(CategoricalEncoder(), path, 2))
    2
    >>> strict_label_transfer(CategoricalEncoder(), path, 3)
    Traceback (most recent call last):
    ...
    ValueError: ... has 2 labels but the classifier has 3 classes
    """
    try:
        obj.load(path)
    except (ValueError, SyntaxError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: not a valid label encoder file "
            f"({type(err).__name__}: {err})"
        ) from err
    if n_classes is not None and len(obj) != n_classes:
        raise ValueError(
            f"{path} has {len(obj)} labels but the classifier has "
            f"{n_classes} classes"
        )
    return obj


class CheckedAudioNormalizer(AudioNormalizer):
    """SpeechBrain's ``AudioNormalizer`` that first rejects unusable audio.

    ``EncoderClassifier.load_audio`` passes every decoded file through the
    ``audio_normalizer`` of the pretrained folder. SpeechBrain's resampler
    fails on an empty file at another rate with an unrelated reshape error,
    and NaN samples would only be reported later by the model; this
    normaliser raises a ``ValueError`` that names the problem instead.
    Usable audio is resampled and mixed exactly as by ``AudioNormalizer``.

    Arguments
    ---------
    sample_rate : int
        Rate of the model.
    mix : str
        ``"avg-to-mono"`` or ``"keep"``.

    Example
    -------
    >>> norm = CheckedAudioNormalizer(16000)
    >>> norm(torch.ones(800, 2), 8000).shape
    torch.Size([1600])
    >>> norm(torch.zeros(0, 2), 8000)
    Traceback (most recent call last):
    ...
    ValueError: audio is empty (0 samples at 8000 Hz)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        install_missing_file_check()

    def __call__(self, audio, sample_rate):
        """Checks, resamples and mixes one decoded file.

        Arguments
        ---------
        audio : torch.Tensor
            ``[time]`` or ``[time, channels]``.
        sample_rate : int
            Rate of ``audio``.

        Returns
        -------
        torch.Tensor
            The audio at the model's rate (mono with ``avg-to-mono``).
        """
        if audio.numel() == 0:
            raise ValueError(
                f"audio is empty (0 samples at {sample_rate} Hz)"
            )
        if not bool(torch.isfinite(audio).all()):
            raise ValueError("audio holds NaN or Inf samples")
        return super().__call__(audio, sample_rate)


def local_audio(path):
    """Marks an audio path as local for SpeechBrain's ``load_audio``.

    ``load_audio`` takes a path whose folder does not exist for a Hugging
    Face Hub ID and looks it up there (or fails with a repo-ID validation
    error), and a missing file in an existing folder gives an unspecific
    decoding error. The returned source is always read locally.

    Arguments
    ---------
    path : str or os.PathLike
        An audio file.

    Returns
    -------
    speechbrain.utils.fetching.FetchSource
        A local source, for ``verify_files``, ``classify_file`` or
        ``load_audio``.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``; the message names it.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> _ = open(path, "wb").write(b"")
    >>> local_audio(path).path == path
    True
    >>> local_audio(path + ".missing")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no audio file at ....wav.missing
    """
    from speechbrain.utils.fetching import FetchFrom, FetchSource

    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no audio file at {path}")
    return FetchSource(FetchFrom.LOCAL, path)


def missing_local_audio(path):
    """The absolute path of a missing local audio file, else None.

    A plain path (not a URL, not a ``FetchSource``) is local when it is
    absolute or when its folder exists: SpeechBrain would read it from
    disk, and a missing file there can be found nowhere else. A relative
    path whose folder does not exist may be a Hugging Face Hub file
    (``"speechbrain/spkrec-ecapa-voxceleb/example1.wav"``) and gives None.

    Arguments
    ---------
    path : str or os.PathLike or object
        What was passed to ``load_audio``.

    Returns
    -------
    str or None
        The missing file's absolute path, or None.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> missing_local_audio(os.path.join(folder, "a.wav")) is not None
    True
    >>> missing_local_audio("some-user/some-repo/a.wav") is None
    True
    """
    if not isinstance(path, (str, os.PathLike)):
        return None
    text = os.fspath(path)
    if not isinstance(text, str) or "://" in text:
        return None
    folder = os.path.dirname(text) or "."
    local = os.path.isabs(text) or os.path.isdir(folder)
    if local and not os.path.isfile(text):
        return os.path.abspath(text)
    return None


def _checked_load_audio(load_audio):
    """Wraps ``Pretrained.load_audio`` with the missing-file check."""

    @functools.wraps(load_audio)
    def checked(self, path, savedir=None, **kwargs):
        normalizer = getattr(self, "audio_normalizer", None)
        if savedir is None and isinstance(normalizer, CheckedAudioNormalizer):
            missing = missing_local_audio(path)
            if missing is not None:
                raise FileNotFoundError(f"no audio file at {missing}")
        return load_audio(self, path, savedir=savedir, **kwargs)

    checked.mrrawnet_checked = True
    return checked


def install_missing_file_check():
    """Makes ``load_audio`` of these folders' models name a missing file.

    SpeechBrain's ``Pretrained.load_audio`` (used by ``verify_files`` and
    ``classify_file``) reports a missing file in an existing folder as
    ``RuntimeError: ... Error opening ...: System error.``, and an
    absolute path in a missing folder as an invalid Hub ID. This wraps the
    method, once per process, so that for a model whose audio normaliser
    is a :class:`CheckedAudioNormalizer` (every folder written here) such a
    path raises ``FileNotFoundError("no audio file at <path>")`` before
    any fetching; any other model, a URL, a ``FetchSource``, a ``savedir``
    and a possible Hub path go to SpeechBrain unchanged. Called when a
    :class:`CheckedAudioNormalizer` is built, i.e. when such a folder is
    loaded.

    Returns
    -------
    None

    Example
    -------
    >>> from speechbrain.inference.interfaces import Pretrained
    >>> install_missing_file_check()
    >>> Pretrained.load_audio.mrrawnet_checked
    True
    """
    from speechbrain.inference.interfaces import Pretrained

    if not getattr(Pretrained.load_audio, "mrrawnet_checked", False):
        Pretrained.load_audio = _checked_load_audio(Pretrained.load_audio)


def hyperparams_yaml(model_kwargs, n_classes, with_labels, sample_rate=16000):
    """Renders the inference ``hyperparams.yaml`` of a pretrained folder.

    Arguments
    ---------
    model_kwargs : dict
        ``MRRawNet`` constructor arguments.
    n_classes : int
        Rows of the cosine classifier.
    with_labels : bool
        Whether the folder has a label encoder to load.
    sample_rate : int
        Sample rate the model expects; files are resampled to it.

    Returns
    -------
    str
        The YAML text.

    Example
    -------
    >>> text = hyperparams_yaml({"lin_neurons": 4}, 3, with_labels=False)
    >>> "out_neurons: 3" in text and "label_encoder:" not in text
    True
    """
    model = yaml.safe_dump(dict(model_kwargs), default_flow_style=None)
    model = "".join(f"    {line}\n" for line in model.splitlines())
    emb_dim = model_kwargs.get("lin_neurons", 256)
    label_line = (
        "        label_encoder: !ref <label_encoder>\n" if with_labels else ""
    )
    label_hook = (
        "        label_encoder: !name:speechbrain_ext.pretrained."
        f"strict_label_transfer\n            n_classes: {n_classes}\n"
        if with_labels
        else ""
    )
    label_obj = (
        "label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder\n"
        if with_labels
        else ""
    )
    return f"""\
# MR-RawNet speaker embeddings: inference graph for EncoderClassifier.
# Written by speechbrain_ext.pretrained. HyperPyYAML can run code: only load
# files you trust.

sample_rate: {sample_rate}

embedding_model: !new:speechbrain_ext.lobes.mr_rawnet.MRRawNet
{model}
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: {emb_dim}
    out_neurons: {n_classes}
    lin_blocks: 0

# MR-RawNet reads raw waveforms and normalises them itself.
compute_features: !new:speechbrain_ext.lobes.passthrough.PassThrough
mean_var_norm: !new:speechbrain_ext.lobes.passthrough.PassThrough

# Files are resampled to the model's rate and mixed down to mono; empty and
# NaN/Inf files are refused with a clear error.
audio_normalizer: !new:speechbrain_ext.pretrained.CheckedAudioNormalizer
    sample_rate: !ref <sample_rate>
    mix: avg-to-mono

{label_obj}
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        classifier: !ref <classifier>
{label_line}    custom_hooks:
        embedding_model: !name:speechbrain_ext.pretrained.strict_transfer
        classifier: !name:speechbrain_ext.pretrained.strict_transfer
{label_hook}"""


def state_digest(path):
    """SHA-256 of a checkpoint's tensors (names, dtypes, shapes, values).

    Unlike a hash of the file's bytes, it does not change when the same
    weights are saved again.

    Arguments
    ---------
    path : str
        A ``torch.save``'d state dict.

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> import tempfile
    >>> a = os.path.join(tempfile.mkdtemp(), "a.ckpt")
    >>> b = os.path.join(tempfile.mkdtemp(), "b.ckpt")
    >>> state = torch.nn.Linear(2, 2).state_dict()
    >>> torch.save(state, a); torch.save(state, b)
    >>> state_digest(a) == state_digest(b)
    True
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state_dict_digest(state)


def state_dict_digest(state):
    """SHA-256 of a state dict: names, dtypes, shapes and values.

    Equal digests mean bit-identical tensors. Used for checkpoint files
    (:func:`state_digest`) and for live modules (training's weight checks).

    Arguments
    ---------
    state : dict
        Names to tensors (other values are hashed by ``repr``).

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> a = {"w": torch.ones(2)}
    >>> state_dict_digest(a) == state_dict_digest({"w": torch.ones(2)})
    True
    >>> state_dict_digest(a) == state_dict_digest({"w": torch.ones(2, 1)})
    False
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        digest.update(f"{key}|".encode())
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().contiguous()
            digest.update(f"{value.dtype}|{list(value.shape)}|".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(value).encode("utf-8"))
    return digest.hexdigest()


def write_label_encoder(path, labels):
    """Writes a SpeechBrain ``CategoricalEncoder`` file, labels in order.

    Arguments
    ---------
    path : str
        Output file.
    labels : list of str
        Labels; the i-th gets index i.

    Returns
    -------
    str
        ``path``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> path = os.path.join(tempfile.mkdtemp(), "label_encoder.txt")
    >>> _ = write_label_encoder(path, ["id1", "id2"])
    >>> enc = CategoricalEncoder()
    >>> enc.load(path)
    >>> enc.encode_label("id2")
    1
    """
    from speechbrain.dataio.encoder import CategoricalEncoder

    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate labels given for {path}")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(labels)
    return atomic_replace(path, encoder.save)


def write_pretrained_folder(out_dir, model_kwargs, embedding_state,
                            classifier_weight, labels=None, card=""):
    """Writes a self-contained pretrained folder for ``EncoderClassifier``.

    Arguments
    ---------
    out_dir : str
        Folder to create or update.
    model_kwargs : dict
        ``MRRawNet`` constructor arguments.
    embedding_state : dict
        ``MRRawNet`` state dict (checked strictly before writing).
    classifier_weight : torch.Tensor
        Cosine classifier weights ``[n_classes, emb_dim]``.
    labels : list of str or None
        Speaker label of each classifier row, in order.
    card : str
        Extra model-card text (origin, results).

    Returns
    -------
    str
        ``out_dir``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> kw = dict(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...           tcn_repeats=1, tcn_blocks=1, channels=8,
    ...           mra_depths=[1, 1, 1], aggregate_channels=8,
    ...           attention_channels=4, lin_neurons=4)
    >>> out = write_pretrained_folder(tempfile.mkdtemp(), kw,
    ...     MRRawNet(**kw).state_dict(), torch.randn(3, 4), ["a", "b", "c"])
    >>> sorted(os.listdir(out))  # doctest: +NORMALIZE_WHITESPACE
    ['README.md', 'classifier.ckpt', 'embedding_model.ckpt',
     'hyperparams.yaml', 'label_encoder.ckpt', 'label_encoder.txt']
    """
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier

    from speechbrain_ext.lobes.mr_rawnet import MRRawNet

    model_kwargs = dict(model_kwargs)
    load_state_dict_strict(
        MRRawNet(**model_kwargs), embedding_state, "embedding model"
    )
    n_classes, emb_dim = classifier_weight.shape
    if emb_dim != model_kwargs.get("lin_neurons", 256):
        raise ValueError(
            f"classifier weight is {list(classifier_weight.shape)} but the "
            f"embedding size is {model_kwargs.get('lin_neurons', 256)}"
        )
    if labels is not None and len(labels) != n_classes:
        raise ValueError(
            f"{len(labels)} speaker labels for a classifier of {n_classes} "
            "classes"
        )
    classifier = Classifier(emb_dim, lin_blocks=0, out_neurons=n_classes)
    load_state_dict_strict(
        classifier, {"weight": classifier_weight.detach().float()},
        "classifier weight",
    )
    os.makedirs(out_dir, exist_ok=True)

    def save_state(name, state):
        # Saved through a file object, torch names the archive "archive",
        # so re-exports of the same weights are byte-identical.
        path = os.path.join(out_dir, name)
        atomic_write(path, lambda f: torch.save(state, f), binary=True)

    save_state(
        "embedding_model.ckpt",
        {k: v.detach().cpu() for k, v in embedding_state.items()},
    )
    save_state("classifier.ckpt", classifier.state_dict())
    for name in ("label_encoder.txt", "label_encoder.ckpt"):
        path = os.path.join(out_dir, name)
        if labels is not None:
            write_label_encoder(path, list(labels))
        elif os.path.exists(path):
            os.remove(path)
    text = hyperparams_yaml(model_kwargs, n_classes, labels is not None)
    atomic_write_text(os.path.join(out_dir, "hyperparams.yaml"), text)
    atomic_write_text(
        os.path.join(out_dir, "README.md"),
        _model_card(model_kwargs, n_classes, labels is not None, card),
    )
    return out_dir


def _model_card(model_kwargs, n_classes, with_labels, card):
    """Short model card of a pretrained folder."""
    config = "\n".join(f"- `{k}`: {v}" for k, v in model_kwargs.items())
    labels = (
        "`label_encoder.txt` maps classifier rows to speaker IDs."
        if with_labels
        else "No speaker labels were given, so `classify_*` returns indices."
    )
    return f"""# MR-RawNet speaker embedding model

Raw 16 kHz waveform in, {model_kwargs.get('lin_neurons', 256)}-d speaker
embedding out (Kim et al., Interspeech 2024). Loads offline with
SpeechBrain:

```python
from speechbrain.inference.speaker import SpeakerRecognition
model = SpeakerRecognition.from_hparams(source="<this folder>",
                                        savedir="<a cache folder>")
score, same = model.verify_files("a.wav", "b.wav")
```

Files at other rates are resampled to 16 kHz and stereo is mixed to mono;
empty or NaN/Inf files raise a `ValueError`. SpeechBrain takes a path whose
folder does not exist for a Hugging Face Hub ID: wrap local paths with
`speechbrain_ext.pretrained.local_audio(path)` for a `FileNotFoundError`
instead. `hyperparams.yaml` can run code (HyperPyYAML): load only folders
you trust; the checkpoints are read weights-only.
Embeddings are length-aware: batching with zero padding does not change
them. Classifier rows: {n_classes}. {labels}

{card}

## Configuration

{config}
"""


def sha256_of(path, chunk=1 << 20):
    """SHA-256 of a file, for model cards.

    Arguments
    ---------
    path : str
        File to hash.
    chunk : int
        Read size.

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x")
    >>> _ = open(path, "wb").write(b"abc")
    >>> sha256_of(path)[:8]
    'ba7816bf'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
