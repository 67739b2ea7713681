"""The ground floor: what every other room may import, and what imports nothing of ours.

Only the standard library and numpy: no pyarrow, torch, Ray or MLflow (a test checks).
``files``: atomic writes and canonical hashing; ``checks``: the shared validators.
"""
