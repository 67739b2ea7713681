"""Successive halving over learning rates inside one training run (a sweep's `--scheduler race`).

Why one run: a sweep cell has a handful of learning rates. As separate trials on a few
slots they start at different times (three rates on two slots: the third starts several
validations late), so an asynchronous scheduler compares them late and a loser trains
long; and each trial pays its own start-up and data loading. Here the candidates share one
process, one copy of the data and one start-up, and advance in lockstep: at each rung of
`RaceConfig` (grace_period x reduction_factor^k validations) the best 1/reduction_factor of
those still running, by their best validation error so far (the error the run's answer is
chosen by), go on; the others stop there.

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
from sciml.training.loop import LoopData, Trainer, run_logger, worker_environment


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
    return trainer


class Race:
    def __init__(self, race: RaceConfig, trainers: list[Trainer]):
        self.race, self.trainers = race, trainers

    def _ranked(self, running: list[int]) -> list[int]:
        return sorted(running, key=lambda i: (self.trainers[i].best.val_rel_l2, i))

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
            self.trainers[i].advance()
        winner = self._ranked(running)[0]
        for i in running:
            finals[i] = self.trainers[i].conclude()
        summary = [{"lr": self.race.lrs[i], **finals[i], "winner": i == winner} for i in range(len(self.trainers))]
        return self.trainers[winner].report_final({**finals[winner], RACE_KEY: json.dumps(summary)})
