"""Data preparation for the MR-RawNet recipes: VoxCeleb CSVs, trials."""
