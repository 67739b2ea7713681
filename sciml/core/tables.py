"""The results-table vocabulary: what the sweep writes and the figures and reports read.

One row per trial (or per best cell), with the columns below. Kept here, below both the
sweep runner and the figures, so that drawing a table never imports the code that made it.
"""

from __future__ import annotations

# The `pretrain` label of a randomly initialised model (scratch, and the random-init zero-shot).
RANDOM_INIT = "none"

RESULT_COLUMNS = ["question", "task", "shift", "preset", "n_params", "recipe", "n_train", "lr",
                  "val_rel_l2", "test_rel_l2", "trial_id", "pretrain", "system", "seed", "mlflow_run_id"]
# A cell is everything but the learning rate (and the seed, whose runs share one lr).
CELL = ["task", "shift", "system", "pretrain", "preset", "recipe", "n_train"]
SAVINGS_COLUMNS = ["question", "task", "shift", "preset", "pretrain", "n_train", "finetune_test_rel_l2",
                   "scratch_equivalent_n", "savings", "bound"]
