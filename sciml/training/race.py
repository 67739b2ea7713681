"""Successive halving over learning rates inside one training run (a sweep's `--scheduler race`).

Why one run: a sweep cell has a handful of learning rates. As separate trials on a few
slots they start at different times (three rates on two slots: the third starts several
validations late), so an asynchronous scheduler compares them late and a loser trains
long; and each trial pays its own start-up and data loading. Here the candidates share one
process, one copy of the data and one start-up, and advance in lockstep: at each rung of
`RaceConfig` (grace_period x reduction_factor^k validations) the best 1/reduction_factor of
those still running go on; the others stop there.

What a rung ranks by (`RaceConfig.rank_by`): `best`, each candidate's best validation error
so far (the error the run's answer is chosen by); `averaged` (the default), the better of
that and the validation error of a running average of its weights (loop.WeightAverage).
Why the average: under a cosine schedule a high learning rate's iterates are noisy until the
schedule decays, so early on its validation errors say it is losing when its run will win
(measured on the laptop Q1: fine-tuning at N = 512, the grid's 1e-3 trails 3e-4 by 20-30%
until validation 12 of 30, while its averaged weights lead from validation 3;
docs/results.md, "Run 10"). The average costs no optimizer steps, and the candidate's own
weights, answer and model file are those of its run alone.

Each candidate is an ordinary `Trainer`: its own model (the same initial weights, as
separate runs would have), Adam, cosine schedule over the full run (as if it trained
alone), best-by-validation weights and MLflow run. A stopped candidate's answer is the test
error of its best weights so far. The final report is the winner's (its model file) and
carries every candidate's final metrics as JSON under `race` (the winner's marked `winner`).

With DDP workers every worker runs the same race: validation errors are all-reduced, so
every worker stops the same candidates at the same rung. Candidates keep no resumable
checkpoints: a worker group restarted after a failure runs the race again from its start.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sciml.training.config import RACE_KEY, LoopConfig, RaceConfig
from sciml.training.loop import LoopData, Trainer, WeightAverage, run_logger, worker_environment


def race_loop(config: LoopConfig) -> dict[str, Any]:
    """Ray Train's entry point for a race (`train_loop_per_worker` dispatches here)."""
    session, device = worker_environment(config)
    data = LoopData.load(session, config.train, device)
    trainers = [candidate(config, index, session, data, device) for index in range(len(config.race.lrs))]
    try:
        return Race(config.race, trainers).run()
    finally:
        for trainer in trainers:
            trainer.release()


def candidate(config: LoopConfig, index: int, session, data: LoopData, device) -> Trainer:
    """The Trainer of the race's `index`-th learning rate, on the shared session and data."""
    target = config.candidate_tracking[index] if config.candidate_tracking else None
    own = replace(config, train=replace(config.train, lr=config.race.lrs[index]), tracking=target, race=None,
                  candidate_tracking=(), progress=False)
    trainer = Trainer(own, session, data, device, run_logger(target, session))
    trainer.checkpoint_every = None  # no resumable checkpoints (module docstring)
    if config.race.rank_by == "averaged":
        trainer.average = WeightAverage(trainer.model)
    return trainer


def rank_error(trainer: Trainer) -> float:
    """The error a rung ranks a candidate by: its best validation error so far, or, when it
    keeps a weight average, the better of that and the average's last validation error."""
    return min(trainer.best.val_rel_l2, trainer.averaged_val)


class Race:
    def __init__(self, race: RaceConfig, trainers: list[Trainer]):
        self.race, self.trainers = race, trainers

    def _ranked(self, running: list[int]) -> list[int]:
        """Best first, by `RaceConfig.rank_by` (the module docstring); ties keep the grid's order."""
        return sorted(running, key=lambda i: (rank_error(self.trainers[i]), i))

    def run(self) -> dict[str, Any]:
        for trainer in self.trainers:
            trainer.start()
        finals: dict[int, dict[str, Any]] = {}
        running = list(range(len(self.trainers)))
        for rung, keep in self.race.schedule(self.trainers[0].schedule.validations):
            for i in running:
                self.trainers[i].advance(rung)
            ranked = self._ranked(running)
            running = ranked[:keep]
            for i in ranked[keep:]:
                finals[i] = self.trainers[i].conclude()
        for i in running:
            if len(running) == 1:
                # The winner: nothing left to rank it against, so spare the updates and validations.
                # (Several survivors keep averaging: their curves are what race_policies replays.)
                self.trainers[i].average = None
            self.trainers[i].advance()
        # The answer is chosen by validation error, as a sweep chooses among its trials.
        winner = min(running, key=lambda i: (self.trainers[i].best.val_rel_l2, i))
        for i in running:
            finals[i] = self.trainers[i].conclude()
        summary = [{"lr": self.race.lrs[i], **finals[i], "winner": i == winner} for i in range(len(self.trainers))]
        return self.trainers[winner].report_final({**finals[winner], RACE_KEY: json.dumps(summary)})
