"""The inference ``hyperparams.yaml`` of a pretrained folder.

The graph ``EncoderClassifier.from_hparams`` builds: MR-RawNet,
pass-through feature stages, cosine classifier, the checked audio
normaliser and a Pretrainer whose loading is strict. It names this
package's objects as ``speechbrain_ext.pretrained.<name>``, which the
package ``__init__`` keeps importable. HyperPyYAML can run code by design:
load only folders whose ``hyperparams.yaml`` you trust.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import yaml


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
