"""Scoring for speaker verification: trial lists, metrics, AS-norm, plots.

``trials`` reads trial lists and crops test audio for the short-duration
conditions, ``metrics`` computes the EER and the normalised minDCF with
sort-based O(N log N) algorithms, ``norm`` applies adaptive score
normalisation and ``plots`` draws DET curves and score histograms.
"""
