"""Model-side library of Concord: generation, judging, agreement, scoring.

No Django imports here: inputs and outputs are plain dataclasses and JSON-able values, so the same code
runs inside a Celery worker, a benchmark or a notebook.
"""
