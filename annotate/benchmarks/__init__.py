"""Benchmarks run by `python manage.py benchmark <name>`.

Each module here defines `add_arguments(parser)` (optional) and `run(options: dict) -> dict`; the
command prints the returned figures as one JSON object on its last line. Benchmarks are not tests.
"""
