"""Scoring for speaker verification: trial lists, metrics, AS-norm, plots.

``trials`` reads trial lists and crops test audio for the short-duration
conditions, ``voices`` reads the VOiCES lists as published, ``metrics``
computes the EER and the normalised minDCF with sort-based O(N log N)
algorithms, ``norm`` applies adaptive score normalisation and ``plots``
draws DET curves and score histograms.
``extract`` embeds audio in length-sorted batches through a resumable
on-disk cache, ``verify`` holds the steps of a scoring run (lists, cohort,
up-front audio checks, cosine and AS-norm scores) and ``report`` writes
score files, result tables and per-list figures.
"""
