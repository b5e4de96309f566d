"""The MR-RawNet configuration that official checkpoints and the recipe use.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

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
