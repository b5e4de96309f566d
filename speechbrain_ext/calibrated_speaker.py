"""SpeechBrain's ``SpeakerRecognition`` with a calibrated decision.

SpeechBrain's ``verify_batch`` / ``verify_files`` return a cosine score and
decide at a fixed 0.25 for every model. :class:`CalibratedSpeakerRecognition`
loads a pretrained folder exactly like ``SpeakerRecognition.from_hparams``
and, when the folder holds a ``calibration.json`` (written by
``python -m speechbrain_ext.calibrate``), returns calibrated natural-log
likelihood ratios instead and accepts a trial when its LLR exceeds the
Bayes threshold of a stated prior: ``log((1 - P_target) / P_target)``,
4.595 for the default P_target = 0.01 (C_miss = C_fa = 1). Without a
calibration file it behaves exactly as ``SpeakerRecognition``.

Authors
 * MR-RawNet recipe contributors
"""

import logging
import os

from speechbrain.inference.speaker import SpeakerRecognition

from speechbrain_ext.scoring.calibration import (
    CALIBRATION_FILE,
    CalibrationError,
    LogisticCalibration,
    bayes_threshold,
    folder_calibration,
)

__all__ = ["DEFAULT_P_TARGET", "CalibratedSpeakerRecognition"]

logger = logging.getLogger(__name__)

#: Prior of the calibrated decision unless the calibration file says
#: otherwise.
DEFAULT_P_TARGET = 0.01


def _find_calibration(source, savedir):
    """The calibration of a local folder (or a fetched file), or None."""
    from speechbrain.utils.fetching import FetchFrom, FetchSource, fetch

    if isinstance(source, FetchSource):
        if source.FetchFrom == FetchFrom.LOCAL:
            return folder_calibration(source.path)
        source = source.path
    if os.path.isdir(os.fspath(source)):
        return folder_calibration(source)
    try:  # a hub or URL source: the file is optional
        path = fetch(CALIBRATION_FILE, source=source, savedir=savedir)
    except (OSError, ValueError) as err:
        logger.debug("No %s for %s: %s", CALIBRATION_FILE, source, err)
        return None
    return LogisticCalibration.load(path)


class CalibratedSpeakerRecognition(SpeakerRecognition):
    """``SpeakerRecognition`` that decides on calibrated LLRs when it can.

    Build it with :meth:`from_hparams` (as ``SpeakerRecognition``). When
    the pretrained folder has a calibration, :meth:`verify_batch` (and so
    ``verify_files``) returns ``(llr, llr > threshold)``; otherwise
    ``(cosine, cosine > 0.25)`` as SpeechBrain does.

    Arguments
    ---------
    *args : tuple
        Forwarded to ``SpeakerRecognition``.
    calibration : LogisticCalibration or None
        The cosine-to-LLR map (set by :meth:`from_hparams`).
    p_target : float or None
        Prior of the decision; None: the calibration file's
        ``decision_p_target``, else 0.01.
    **kwargs : dict
        Forwarded to ``SpeakerRecognition``.

    Example
    -------
    >>> import torch
    >>> from speechbrain_ext.lobes.mr_rawnet import MRRawNet
    >>> from speechbrain_ext.pretrained import write_pretrained_folder
    >>> kw = dict(sinc_filters=8, tcn_channels=8, tcn_hidden=6,
    ...           tcn_repeats=1, tcn_blocks=1, channels=8,
    ...           mra_depths=[1, 1, 1], aggregate_channels=8,
    ...           attention_channels=4, lin_neurons=4)
    >>> folder = write_pretrained_folder(str(getfixture("tmp_path")), kw,
    ...     MRRawNet(**kw).state_dict(), torch.randn(3, 4))
    >>> _ = LogisticCalibration([10.0], -5.0).save(
    ...     os.path.join(folder, CALIBRATION_FILE))
    >>> savedir = str(getfixture("tmp_path_factory").mktemp("d"))
    >>> model = CalibratedSpeakerRecognition.from_hparams(
    ...     source=folder, savedir=savedir)
    >>> round(model.threshold, 3)
    4.595
    >>> wav = torch.randn(1, 8000)
    >>> llr, same = model.verify_batch(wav, wav)
    >>> round(float(llr), 3), bool(same)  # cosine 1 -> LLR 10 - 5
    (5.0, True)
    """

    def __init__(self, *args, calibration=None, p_target=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.calibration = calibration
        self.p_target = p_target

    @classmethod
    def from_hparams(cls, source, hparams_file="hyperparams.yaml", **kwargs):
        """Loads a pretrained folder and its calibration, if any.

        Arguments
        ---------
        source : str or FetchSource
            The pretrained folder (or any SpeechBrain source).
        hparams_file : str
            The hyperparameter file in it.
        **kwargs : dict
            As for ``SpeakerRecognition.from_hparams`` (``savedir``,
            ``run_opts``, ...).

        Returns
        -------
        CalibratedSpeakerRecognition or None
            The interface (None with ``download_only=True``).
        """
        model = super().from_hparams(source, hparams_file, **kwargs)
        if model is not None:
            model.calibration = _find_calibration(
                source, kwargs.get("savedir")
            )
            if model.calibration is not None:
                names = model.calibration.features
                if names != ["cosine"]:
                    raise CalibrationError(
                        f"the calibration of {source} takes the features "
                        f"{names}; CalibratedSpeakerRecognition provides "
                        "only the cosine score"
                    )
        return model

    @property
    def decision_p_target(self):
        """The prior of the calibrated decision (float)."""
        if self.p_target is not None:
            return float(self.p_target)
        if self.calibration is not None:
            stored = self.calibration.info.get("decision_p_target")
            if stored is not None:
                return float(stored)
        return DEFAULT_P_TARGET

    @property
    def threshold(self):
        """LLR threshold of the calibrated decision, or None uncalibrated."""
        if self.calibration is None:
            return None
        return bayes_threshold(self.decision_p_target)

    def verify_batch(self, wavs1, wavs2, wav1_lens=None, wav2_lens=None,
                     threshold=None):
        """Scores and decides pairs of utterances.

        Arguments
        ---------
        wavs1 : torch.Tensor
            First utterances ``[B, T]`` at 16 kHz.
        wavs2 : torch.Tensor
            Second utterances ``[B, T]``.
        wav1_lens : torch.Tensor or None
            Relative lengths of ``wavs1``.
        wav2_lens : torch.Tensor or None
            Relative lengths of ``wavs2``.
        threshold : float or None
            Decision threshold on the returned score; None: the Bayes
            threshold when calibrated, SpeechBrain's 0.25 otherwise.

        Returns
        -------
        score : torch.Tensor
            ``[B, 1]`` calibrated LLRs (or cosine scores uncalibrated).
        decision : torch.Tensor
            ``[B, 1]`` booleans, True for "same speaker".
        """
        if self.calibration is None:
            return super().verify_batch(
                wavs1, wavs2, wav1_lens, wav2_lens,
                0.25 if threshold is None else threshold,
            )
        emb1 = self.encode_batch(wavs1, wav1_lens, normalize=False)
        emb2 = self.encode_batch(wavs2, wav2_lens, normalize=False)
        cosine = self.similarity(emb1, emb2)
        weight = float(self.calibration.weights[0])
        llr = cosine.double() * weight + self.calibration.bias
        llr = llr.to(cosine.dtype)
        if threshold is None:
            threshold = self.threshold
        return llr, llr > threshold
