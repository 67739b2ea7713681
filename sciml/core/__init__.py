"""The ground floor: what every other room may import, and what imports nothing of ours.

Only the standard library and numpy: no pyarrow, torch, Ray or MLflow (tests/core checks).
``layout``: splits and their random-number keys, coefficient and channel names;
``statistics``: the normalization statistics (SPEC 5); ``checks``: the shared validators;
``files``: atomic writes and canonical hashing; ``tables``: the results-table vocabulary.
"""
