"""The results-table vocabulary: what the sweep writes and the figures and reports read.

One row per trial (or per best cell and seed), with the columns below. Kept here, below
both the sweep runner and the figures, so that drawing a table never imports the code
that made it.
"""

from __future__ import annotations

# The `pretrain` label of a randomly initialised model (scratch, and the random-init zero-shot).
RANDOM_INIT = "none"

# The first columns are what every results table has always had (readers index them by position).
RESULT_COLUMNS = ["question", "task", "shift", "preset", "n_params", "recipe", "n_train", "lr",
                  "val_rel_l2", "test_rel_l2", "trial_id", "pretrain", "system", "seed", "mlflow_run_id",
                  # The trial's compute and schedule (NaN / defaults where a trial did not report them).
                  "best_epoch", "epochs", "epochs_run", "steps", "train_seconds", "trial_seconds",
                  "stopped_early", "search", "scheduler",
                  # A fine-tune whose best-by-validation weights are its pre-trained start (epoch 0).
                  "kept_start"]
# Integer columns that stay integers when every trial reported them (NaN otherwise).
RESULT_INT_COLUMNS = ["best_epoch", "epochs", "epochs_run", "steps"]
# A cell is everything but the learning rate (and the seed, whose runs share one lr).
CELL = ["task", "shift", "system", "pretrain", "preset", "recipe", "n_train"]
# Optional flag a sweep may add to its best rows: the cell's best lr is the smallest or largest tried.
LR_AT_EDGE = "lr_at_edge"

# One row per cell: the test error over seeds as median and quartiles (SPEC 8, seed sensitivity).
CELL_COLUMNS = ["question", "task", "shift", "system", "preset", "n_params", "recipe", "pretrain", "n_train",
                "lr", "test_rel_l2", "test_q25", "test_q75", "val_rel_l2", "n_seeds", "kept_start",
                "kept_start_seeds", LR_AT_EDGE]
# The quantiles a cell reports over its seeds: first quartile, median, third quartile.
SEED_QUANTILES = (0.25, 0.5, 0.75)

# Data savings per fine-tuned cell and seed, then summarised over seeds (median and quartiles).
SAVINGS_SEED_COLUMNS = ["question", "task", "shift", "preset", "pretrain", "n_train", "seed",
                        "finetune_test_rel_l2", "kept_start", "scratch_equivalent_n", "savings", "bound", "note"]
SAVINGS_COLUMNS = ["question", "task", "shift", "preset", "pretrain", "n_train", "finetune_test_rel_l2",
                   "scratch_equivalent_n", "savings", "savings_q25", "savings_q75", "n_seeds", "bound", "note"]

# Power-law fits of the error against N (data scaling) and against parameter count (model scaling).
SCALING_FIT_COLUMNS = ["task", "shift", "recipe", "preset", "pretrain", "a", "alpha", "c", "alpha_low",
                       "alpha_high", "n_points", "n_min", "n_max", "rmse_log", "method", "note",
                       "bootstrap_samples", "bootstrap_seed"]
MODEL_FIT_COLUMNS = ["task", "shift", "recipe", "pretrain", "n_train", "a", "beta", "c", "beta_low", "beta_high",
                     "n_points", "p_min", "p_max", "rmse_log", "method", "note", "bootstrap_samples",
                     "bootstrap_seed"]

CLAIM_COLUMNS = ["question", "claim", "scope", "rule", "evidence", "verdict", "why"]
VERDICTS = ("supported", "contradicted", "inconclusive")
