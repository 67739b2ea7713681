"""Synthetic sweep results for the results, fits, claims and report tests (no Ray, no training)."""

import pytest

from sciml.sweeps.results import best_by_validation, trial_rows

N_PARAMS = {"64K": 67329, "d16m8": 263937, "1M": 1050369, "16M": 16_000_000}


class Synthetic:
    """Builds trials (spec, final metrics, id) and the best-per-cell table a sweep would make of them."""

    def __init__(self):
        self.trials = []

    def add(self, recipe, n, err, *, seed=0, task="SYS-1(5,10)", shift="med", system="poisson", preset="64K",
            pretrain=None, lr=1e-3, val=None, best_epoch=5, epochs=30, **metrics):
        pretrain = pretrain or ("none" if recipe == "scratch" else "SYS-1(1,5)")
        spec = {"recipe": recipe, "task": task, "shift": shift, "system": system, "preset": preset,
                "n_train": n, "lr": None if recipe == "zeroshot" else lr, "seed": seed, "pretrain": pretrain}
        values = {"val_rel_l2": err if val is None else val, "test_rel_l2": err,
                  "best_epoch": 0 if recipe == "zeroshot" else best_epoch, "epochs": 0 if recipe == "zeroshot"
                  else epochs, **metrics}
        self.trials.append((spec, values, f"{recipe}-{task}-{preset}-{pretrain}-{n}-{lr}-{seed}"))
        return self

    def q1(self, seeds=1, ns=(8, 32, 128), ft_factor=0.25, noise=0.05, **common):
        """Scratch err = N^-1/2 (also at 4x the largest N), fine-tune ft_factor times that, zero-shot 0.3."""
        for seed in range(seeds):
            scale = 1 + noise * seed
            self.add("zeroshot", 0, 0.3, seed=seed, **common)
            self.add("zeroshot", 0, 1.5, seed=seed, pretrain="none", **common)
            for n in (*ns, 4 * ns[-1]):
                self.add("scratch", n, scale / n**0.5, seed=seed, **common)
            for n in ns:
                self.add("finetune", n, ft_factor * scale / n**0.5, seed=seed, **common)
        return self

    def rows(self, question="q1"):
        return trial_rows(question, self.trials, N_PARAMS)

    def best(self, question="q1"):
        return best_by_validation(self.rows(question))


@pytest.fixture
def synthetic():
    return Synthetic()
