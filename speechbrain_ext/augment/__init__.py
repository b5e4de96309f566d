"""Offline preparation of noise (MUSAN) and room impulse response CSVs."""
