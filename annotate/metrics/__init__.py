"""Agreement and discretion metrics: pure functions over plain arrays (no database access)."""
