"""Training building blocks for the MR-RawNet recipes (LR schedules)."""
