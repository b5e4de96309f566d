"""Neural building blocks of MR-RawNet, one idea per module."""
