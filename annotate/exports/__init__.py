"""Dataset exports (DPO preference pairs first)."""
