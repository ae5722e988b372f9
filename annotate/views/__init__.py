"""Web views, split by screen. Each parses input, calls one core function and renders."""
