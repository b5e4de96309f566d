"""Scoring for speaker verification: trial lists, metrics, AS-norm, plots.

``trials`` reads trial lists and crops test audio for the short-duration
conditions, ``voices`` reads the VOiCES lists as published,
``operating_points``, ``speechbrain_metrics``, ``official_metrics`` and
``metrics`` compute the EER and the normalised minDCF with sort-based
O(N log N) algorithms, ``norm`` applies adaptive score normalisation and
``plots`` draws DET curves and score histograms.
``audio_files``, ``views``, ``batching``, ``embedding_cache``,
``model_loading`` and ``extract`` embed audio in length-sorted batches
through a resumable on-disk cache; ``trial_lists``, ``verify`` and
``trial_scores`` hold the steps of a scoring run (lists; cohort, views
needed and up-front audio checks; cosine and AS-norm scores) and
``report`` writes score files, result tables and per-list figures.
"""
