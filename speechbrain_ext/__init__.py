"""MR-RawNet speaker verification for SpeechBrain.

The package holds the lobes, data preparation, augmentation, scoring and
checkpoint conversion used by the recipes in ``recipes/``. It never imports
from ``recipes/``.
"""
