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
resampling; a missing local file is a ``FileNotFoundError`` naming it, and
:func:`local_audio` avoids SpeechBrain's Hub lookup of a relative path.

One module per job:

* :mod:`~speechbrain_ext.pretrained.folder`: :func:`write_pretrained_folder`
  and the model card;
* :mod:`~speechbrain_ext.pretrained.hyperparams`: :func:`hyperparams_yaml`;
* :mod:`~speechbrain_ext.pretrained.label_encoder`:
  :func:`write_label_encoder`;
* :mod:`~speechbrain_ext.pretrained.strict_loading`:
  :func:`load_state_dict_strict` and the Pretrainer hooks
  :func:`strict_transfer`, :func:`strict_label_transfer`;
* :mod:`~speechbrain_ext.pretrained.audio_checks`:
  :class:`CheckedAudioNormalizer`, :func:`local_audio`,
  :func:`missing_local_audio`, :func:`install_missing_file_check`;
* :mod:`~speechbrain_ext.pretrained.digests`: :func:`state_digest`,
  :func:`state_dict_digest`, :func:`sha256_of`;
* :mod:`~speechbrain_ext.pretrained.model_config`:
  :data:`OFFICIAL_MODEL_KWARGS`.

Every public name is imported here as well: the ``hyperparams.yaml`` of
every folder written so far names ``speechbrain_ext.pretrained.
CheckedAudioNormalizer``, ``...strict_transfer`` and
``...strict_label_transfer``, and the README and model cards
``speechbrain_ext.pretrained.local_audio``; those names stay valid.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

from speechbrain_ext.pretrained.audio_checks import (
    CheckedAudioNormalizer,
    install_missing_file_check,
    local_audio,
    missing_local_audio,
)
from speechbrain_ext.pretrained.digests import (
    sha256_of,
    state_dict_digest,
    state_digest,
)
from speechbrain_ext.pretrained.folder import write_pretrained_folder
from speechbrain_ext.pretrained.hyperparams import hyperparams_yaml
from speechbrain_ext.pretrained.label_encoder import write_label_encoder
from speechbrain_ext.pretrained.model_config import OFFICIAL_MODEL_KWARGS
from speechbrain_ext.pretrained.strict_loading import (
    load_state_dict_strict,
    strict_label_transfer,
    strict_transfer,
)

__all__ = [
    "OFFICIAL_MODEL_KWARGS",
    "CheckedAudioNormalizer",
    "hyperparams_yaml",
    "install_missing_file_check",
    "load_state_dict_strict",
    "local_audio",
    "missing_local_audio",
    "sha256_of",
    "state_dict_digest",
    "state_digest",
    "strict_label_transfer",
    "strict_transfer",
    "write_label_encoder",
    "write_pretrained_folder",
]
