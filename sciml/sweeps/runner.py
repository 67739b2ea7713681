"""The sweep runner every question script wires a profile into.

1. generate (or reuse by content) the pre-training and downstream datasets (data_gen);
2. pre-train once per (pre-training data, preset): a Tune grid over the pre-training
   learning rates, best by validation, cached by content under `<cache>/pretrained`;
3. one Tune grid over the downstream cells: learning rate x N x recipe x preset x task
   (x seed), each trial a Ray Train run; zero-shot cells are evaluated once per task;
   (`--search optuna`: per-cell learning rates proposed by a seeded Optuna study instead of
   the grid's; `--scheduler asha`: one ASHA per cell stops unpromising trials early;
   `--scheduler race`: one trial per cell races its learning rates, sciml/training/race.py);
4. grid edges: cells whose best learning rate is the smallest or largest tried get the next
   value beyond that edge, in another Tune run, up to `extend_edges` rounds (grid search only);
5. best learning rate per cell by validation, its test error, grid-edge flags, data savings,
   the compute budget (budget.json), figures, report, and MLflow artifacts on the parent run.
An interrupted sweep resumes: finished pre-trainings are cached, and the downstream Tune
experiment is restored without redoing finished trials.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Iterable

import pandas as pd

from sciml.core.files import cache_key, copy_file, write_json
from sciml.core.tables import CELL, RANDOM_INIT
from sciml.data.manifest import load_manifest
from sciml.sweeps.datasets import (SweepData, TrialDatasets, largest_split_bytes, materialize_limit, prepare_datasets,
                                   slug)
from sciml.sweeps.questions import Question
from sciml.sweeps.budget import Budget
from sciml.sweeps.results import best_by_validation, data_savings, trial_rows
from sciml.sweeps.edges import edge_effect
from sciml.sweeps.search import edge_extensions, mark_edges, optuna_lrs, trial_cell
from sciml.sweeps.settings import STOPPING_SCHEDULERS, SweepSettings
from sciml.sweeps.trials import (FINAL_METRICS, TrialContext, TrialSpec, default_concurrency, require_trial_fit,
                                 run_trial, tune_resources)
from sciml.training.config import RACE_KEY
from sciml.sweeps.tune_state import repair as repair_tune_state
from sciml.sweeps.tune_state import STATE_SAVE_PERIOD_S, fifo_saving_on_completion, state_backup_callback

STATE_FILE = "sweep_state.json"
BUDGET_FILE = "budget.json"


@dataclass(frozen=True)
class SweepOutcome:
    results: pd.DataFrame
    savings: pd.DataFrame
    files: dict[str, str]
    parent_run_id: str | None
    tracking_uri: str | None
    budget: Budget | None = None


def _log(message: str) -> None:
    print(f"[sweep] {message}", flush=True)


class SweepRunner:
    def __init__(self, question: Question, settings: SweepSettings, tracking: bool = True, pretrained=None):
        self.question = question
        self.settings = settings
        # {(label, preset): sweeps.pretrained.PretrainedModel} replacing those pre-trainings; resolved in
        # _pretrain when not given (the CLI resolves them first, to exit 2 before any work).
        self.pretrained = pretrained
        self.out = os.path.abspath(settings.out)
        self.tracking = tracking
        self.tracker = None
        self.parent_run_id: str | None = None
        self.stage_wall, self.slots = 0.0, 0  # the downstream stage's Tune wall time and concurrency

    # -- grid ---------------------------------------------------------------------------
    def seeds(self) -> range:
        return range(self.settings.seed, self.settings.seed + self.settings.seeds)

    def searching_seeds(self) -> range:
        """The seeds whose cells search the learning rate (every seed, or the first: --search-seeds)."""
        return range(self.settings.seed, self.settings.seed + 1) if self.settings.search_seeds == "first" \
            else self.seeds()

    def pretraining_trials(self) -> list[TrialSpec]:
        labels = {p.label: p for t in self.question.tasks for p in t.pretrainings}
        return [TrialSpec(recipe="pretrain", preset=preset, seed=self.settings.seed, pretrain=label, lr=lr)
                for label in labels for preset in self.settings.presets for lr in self.settings.pretrain_lrs]

    def lrs(self, recipe: str, preset: str, seed: int, pretrain: str, n_train: int, common: dict) -> tuple[float, ...]:
        """The learning rates one cell trains: the grid's, or those its seeded Optuna study proposes."""
        s = self.settings
        grid = s.recipe_lrs[recipe]
        if s.search == "grid":
            return grid
        cell = trial_cell({"recipe": recipe, "preset": preset, "seed": seed, "pretrain": pretrain,
                           "n_train": n_train, **common})
        return tuple(optuna_lrs(cell, min(grid), max(grid), s.trials_per_cell, s.seed))

    def downstream_trials(self, checkpoints: dict[tuple[str, str], str]) -> list[TrialSpec]:
        s = self.settings
        trials = []
        for task in self.question.tasks:
            common = {"task": task.name, "shift": task.shift, "system": task.system}
            for preset in s.presets:
                for seed in self.seeds():
                    trials.append(TrialSpec("zeroshot", preset, seed, RANDOM_INIT, **common))
                    for p in task.pretrainings:
                        trials.append(TrialSpec("zeroshot", preset, seed, p.label, checkpoint=checkpoints[p.label, preset],
                                                **common))
                for seed in self.searching_seeds():
                    for n in s.n_values + s.scratch_extra_n:
                        for lr in self.lrs("scratch", preset, seed, RANDOM_INIT, n, common):
                            trials.append(TrialSpec("scratch", preset, seed, RANDOM_INIT, n_train=n, lr=lr, **common))
                    for p in task.pretrainings:
                        for n in s.n_values:
                            for lr in self.lrs("finetune", preset, seed, p.label, n, common):
                                trials.append(TrialSpec("finetune", preset, seed, p.label, n_train=n, lr=lr,
                                                        checkpoint=checkpoints[p.label, preset], **common))
        # Zero-shot evaluations are identical across seeds only for pre-trained models.
        unique = {t.key: t for t in trials if not (t.recipe == "zeroshot" and t.pretrain != RANDOM_INIT
                                                    and t.seed != s.seed)}
        return races(list(unique.values())) if s.scheduler == "race" else list(unique.values())

    # -- stages -------------------------------------------------------------------------
    def run(self) -> SweepOutcome:
        from sciml.ray_env import ensure_ray

        cluster = ensure_ray()
        _log(f"{self.question.title}: profile {self.settings.profile}, cluster {dict(cluster)}")
        reason = require_trial_fit(self.settings)  # raises before any work where nothing would ever run
        if reason:
            _log(f"no node fits a trial yet ({reason}): trials wait for the autoscaler to add one")
        os.makedirs(self.out, exist_ok=True)
        self._start_tracking()
        try:
            from sciml.sweeps.pretrained import replaced_labels

            given = self._registered_models()
            # Data only a registered model's pre-training would read is not generated (nor planned).
            data = prepare_datasets(self.question, self.settings, replaced_labels(self.question, self.settings, given))
            _log("datasets: " + ", ".join(f"{k} -> {v}" for k, v in data.directories.items()))
            checkpoints = self._pretrain(data, cluster, given)
            results = self._downstream(data, checkpoints, cluster)
            outcome = self._finish(results)
        except BaseException:
            if self.tracker and self.parent_run_id:
                self.tracker.end_run(self.parent_run_id, status="FAILED")
            raise
        return outcome

    def _start_tracking(self) -> None:
        if not self.tracking:
            return
        from sciml.tracking import Tracker

        self.tracker = Tracker()
        state_path = os.path.join(self.out, STATE_FILE)
        state = json.load(open(state_path)) if os.path.exists(state_path) else {}
        grid_key = cache_key([self.question.key, self.settings.to_dict()])
        if (state.get("grid_key") == grid_key and state.get("tracking_uri") == self.tracker.uri
                and self.tracker.run_exists(state["parent_run_id"])):
            self.parent_run_id = state["parent_run_id"]
        else:
            self.parent_run_id = self.tracker.start_run(
                self._experiment(), f"{self.question.key}-{self.settings.profile}",
                params=self.settings.to_dict(),
                tags={"question": self.question.key, "profile": self.settings.profile, "kind": "sweep"})
            write_json(state_path, {"grid_key": grid_key, "tracking_uri": self.tracker.uri,
                                     "parent_run_id": self.parent_run_id})

    def _experiment(self) -> str:
        return f"{self.question.key}-{self.question.title.split(' ', 1)[1].replace(' ', '-')}"

    def _context(self, data: SweepData, trials: list[TrialSpec], name: str) -> TrialContext:
        s = self.settings
        sources = {}
        for task in self.question.tasks:
            sources[task.name] = (data.source(task.downstream),)
            for p in task.pretrainings:
                if all(spec.name in data.directories for spec in p.specs):  # else replaced (--pretrained)
                    sources[p.label] = data.pretraining_sources(p)
        context = TrialContext(
            question=self.question.key, settings=s, sources=sources, datasets={},
            trials_dir=os.path.join(self.out, "trials", name), storage_path=self._storage(),
            tracking_uri=self.tracker.uri if self.tracker else None, experiment=self._experiment(),
            parent_run_id=self.parent_run_id)
        biggest, limit = largest_split_bytes(s), materialize_limit()
        registry = TrialDatasets(materialize=biggest < limit)
        # The rehearsal and tests/sweeps/test_large_datasets.py look for this line.
        _log(f"{name}: " + (f"datasets materialised up front (largest split {biggest:,} B < limit {limit:,} B)"
                            if biggest < limit else
                            f"datasets streamed through Ray Data (largest split {biggest:,} B >= limit {limit:,} B, "
                            "SCIML_MATERIALIZE_LIMIT_BYTES): each trial reads its own selection"))
        for trial in trials:
            for key in context.dataset_keys(trial).values():
                label, split, limit = key
                if key not in context.datasets:
                    total = limit if split == "train" else None
                    context.datasets[key] = registry.get(sources[label], split, total)
        return context

    def _storage(self) -> str:
        root = os.environ.get("SCIML_STORAGE")
        return os.path.join(root, "ray", os.path.basename(self.out)) if root else os.path.join(self.out, "ray")

    def later_seeds(self) -> list[int]:
        return [seed for seed in self.seeds() if seed not in self.searching_seeds()]

    def edge_trials(self, plan: dict[tuple, list[float]], checkpoints: dict[tuple[str, str], str],
                    seeds: Iterable[int] | None = None) -> list[TrialSpec]:
        """Trials of the cells in `plan` (CELL values -> learning rates): every lr, for every seed in `seeds`
        (default: the searching seeds). An edge-extension round, or the later seeds of --search-seeds first."""
        trials = []
        for (task, shift, system, pretrain, preset, recipe, n_train), lrs in plan.items():
            checkpoint = checkpoints.get((pretrain, preset)) if recipe == "finetune" else None
            for seed in self.searching_seeds() if seeds is None else seeds:
                for lr in lrs:
                    trials.append(TrialSpec(recipe, preset, seed, pretrain, task=task, shift=shift, system=system,
                                            n_train=int(n_train), lr=float(lr), checkpoint=checkpoint))
        return trials

    def _tune(self, name: str, trials: list[TrialSpec], context: TrialContext, cluster: dict,
              scheduler: str = "fifo"):
        from ray import tune

        s = self.settings
        # Tune saves its experiment state when a trial completes or is stopped (the schedulers
        # below force it), so that a resumed sweep knows about every trial that finished before
        # an interruption; other results (per-epoch reports) wait for the period.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_SAVE_PERIOD_S)
        trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), tune_resources(s))
        path = os.path.join(context.storage_path, name)
        concurrency = default_concurrency(s, cluster)
        for action in repair_tune_state(path):
            _log(f"{name}: {action}")
        if tune.Tuner.can_restore(path):
            _log(f"{name}: resuming the Tune experiment in {path}")
            tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
        else:
            _log(f"{name}: {len(trials)} trials, up to {concurrency} at a time ({s.search} search, {scheduler})")
            schedule = {"scheduler": fifo_saving_on_completion()}
            if scheduler in STOPPING_SCHEDULERS:
                from sciml.sweeps.search import cell_asha

                schedule["scheduler"] = cell_asha(s.epochs, s.grace_period, s.reduction_factor,
                                                  demote=scheduler == "halving")
            tuner = tune.Tuner(
                trainable,
                param_space={"trial": tune.grid_search([asdict(t) for t in trials])},
                # A trial a scheduler stops mid-run leaves its training thread running in its actor, and
                # reusing that actor fails ("reset_config() ... must return True"): fresh actors then.
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrency,
                                            reuse_actors=scheduler not in STOPPING_SCHEDULERS,
                                            trial_name_creator=_trial_key, trial_dirname_creator=_trial_key,
                                            **schedule),
                run_config=tune.RunConfig(name=name, storage_path=context.storage_path, verbose=0,
                                          callbacks=[progress_callback(name, len(trials)),
                                                     state_backup_callback()],
                                          failure_config=tune.FailureConfig(max_failures=1)),
            )
        grid = tuner.fit()
        finished, failed = [], []
        for result in grid:
            spec = result.config["trial"]
            metrics = _final_metrics(result.metrics, result.error)
            if metrics is None:
                failed.append((TrialSpec(**spec).key, result.error))
                continue
            metrics.update(search=s.search, scheduler=scheduler)
            trial_id = metrics.get("trial_key", TrialSpec(**spec).key)
            finished += race_results(spec, metrics, trial_id) if RACE_KEY in metrics else [(spec, metrics, trial_id)]
        # Only trials Tune stopped left their MLflow runs open (a race closes its stopped learning rates' runs).
        if scheduler in STOPPING_SCHEDULERS:
            self._tag_stopped([m for _, m, _ in finished if m.get("stopped_early")])
        self._close_orphans(name)  # after the stopped ones are closed as such
        for key, error in failed:
            _log(f"trial failed: {key}: {str(error).splitlines()[0] if error else 'no metrics'}")
        return finished, failed

    def _close_orphans(self, name: str) -> None:
        """After a Tune run no trial of this sweep runs, so a child run still RUNNING lost its process
        (a node stopped or died under it, a kill): KILLED and tagged, not left half-written. Its trial,
        retried by Tune, logged a run of its own."""
        if not (self.tracker and self.parent_run_id):
            return
        orphans = self.tracker.running_children(self.parent_run_id)
        for run_id in orphans:
            self.tracker.set_tags(run_id, {"orphaned": "its process ended without closing the run (node lost?)"})
            self.tracker.end_run(run_id, status="KILLED")
        if orphans:
            _log(f"{name}: {len(orphans)} MLflow runs whose process was lost marked KILLED")

    def _tag_stopped(self, stopped: list[dict]) -> None:
        """A stopped trial's process ends mid-run: its MLflow run says so here (tag, KILLED)."""
        if not self.tracker:
            return
        for metrics in stopped:
            run_id = metrics.get("mlflow_run_id")
            if run_id and self.tracker.run_exists(run_id):
                self.tracker.set_tags(run_id, {"stopped_early": True})
                self.tracker.end_run(run_id, status="KILLED")

    def _pretrain(self, data: SweepData, cluster: dict, given: dict | None = None) -> dict[tuple[str, str], str]:
        s = self.settings
        given = self._registered_models() if given is None else given
        trials = [t for t in self.pretraining_trials() if (t.pretrain, t.preset) not in given]
        checkpoints: dict[tuple[str, str], str] = {cell: model.path for cell, model in given.items()}
        missing: list[TrialSpec] = []
        keys: dict[tuple[str, str], str] = {}
        sources_of: dict[tuple[str, str], list[str]] = {}
        for trial in trials:
            sources = [data.directories[spec.name] for p in self._pretrainings() if p.label == trial.pretrain
                       for spec in p.specs]
            sources_of[trial.pretrain, trial.preset] = sources
            hashes = [load_manifest(d)["content_hash"] for d in sources]
            folder = pretrained_folder(s, trial.pretrain, trial.preset, hashes)
            keys[trial.pretrain, trial.preset] = folder
            if os.path.exists(os.path.join(folder, "model.pt")):
                checkpoints[trial.pretrain, trial.preset] = os.path.join(folder, "model.pt")
            else:
                missing.append(trial)
        if not missing:
            _log(f"pre-training: {len(checkpoints) - len(given)} cached checkpoints reused"
                 + (f", {len(given)} registered models (--pretrained)" if given else ""))
            return checkpoints
        name = pretrain_experiment(missing, keys)
        context = self._context(data, missing, name)
        finished, failed = self._tune(name, missing, context, cluster)
        best: dict[tuple[str, str], tuple[float, dict]] = {}
        for spec, metrics, _ in finished:
            cell = (spec["pretrain"], spec["preset"])
            if cell not in best or metrics["val_rel_l2"] < best[cell][0]:
                best[cell] = (metrics["val_rel_l2"], {**metrics, "lr": spec["lr"]})
        for cell, folder in keys.items():
            if cell in checkpoints:
                continue
            if cell not in best:
                raise RuntimeError(f"pre-training {cell} failed for every learning rate")
            metrics = best[cell][1]
            copy_file(metrics["model_path"], os.path.join(folder, "model.pt"))
            registered = self._register(cell, os.path.join(folder, "model.pt"), sources_of[cell], metrics)
            write_json(os.path.join(folder, "info.json"), {"pretrain": cell[0], "preset": cell[1], **metrics,
                                                           "registered_model": registered})
            checkpoints[cell] = os.path.join(folder, "model.pt")
            _log(f"pre-trained {cell[0]} {cell[1]}: lr {metrics['lr']:g}, val {metrics['val_rel_l2']:.4g}, "
                 f"test {metrics['test_rel_l2']:.4g}")
        return checkpoints

    def _registered_models(self) -> dict:
        """The --pretrained models by cell, recorded on the sweep's parent run (lineage)."""
        if self.pretrained is None:
            from sciml.sweeps.pretrained import resolve_pretrained

            self.pretrained = resolve_pretrained(self.question, self.settings) if self.settings.pretrained else {}
        for (label, preset), model in self.pretrained.items():
            _log(f"pre-training {label} {preset}: registered {model.fetched.version.uri} "
                 f"({model.fetched.requested}, run {model.fetched.version.run_id})")
        if self.tracker and self.parent_run_id and self.pretrained:
            from sciml.tracking.registry import lineage_tags

            self.tracker.set_tags(self.parent_run_id, {
                f"{key}.{slug(label)}.{preset}": value for (label, preset), model in self.pretrained.items()
                for key, value in lineage_tags(model.fetched).items()})
        return self.pretrained

    def _register(self, cell: tuple[str, str], path: str, sources: list[str], metrics: dict) -> str | None:
        """Log the kept model on its pre-training run and register it (sciml-<data>-<preset>, alias best)."""
        run_id = metrics.get("mlflow_run_id")
        if not (self.tracker and run_id):
            return None
        from sciml.training.registration import register_pretrained

        try:
            self.tracker.log_artifact(run_id, path, "model")
            registration = register_pretrained(path, cell[0], sources, metrics, run_id, self.tracker.uri)
        except Exception as err:  # the model is cached and the sweep goes on; say so loudly
            _log(f"WARNING: pre-trained {cell[0]} {cell[1]} not registered in MLflow: {err}")
            return None
        _log(f"registered {registration.version.uri}" + (" (alias best)" if registration.is_best else ""))
        return registration.version.uri

    def _pretrainings(self):
        return {p.label: p for t in self.question.tasks for p in t.pretrainings}.values()

    def _downstream(self, data: SweepData, checkpoints: dict, cluster: dict) -> pd.DataFrame:
        from sciml.training.config import ModelConfig

        s = self.settings
        trials = self.downstream_trials(checkpoints)
        name = downstream_experiment(trials)
        context = self._context(data, trials, name)
        started = time.perf_counter()
        finished, failed = self._tune(name, trials, context, cluster, s.scheduler)
        self.slots = default_concurrency(s, cluster)
        n_params = {p: ModelConfig.parse(p).n_params for p in s.presets}
        rows = trial_rows(self.question.key, finished, n_params)
        # Grid edges, before anything is computed from the best rows (data savings included).
        # Deterministic in the finished trials, so a resumed sweep plans (and restores) the same rounds.
        for round_ in range(s.extend_edges if s.search == "grid" else 0):
            plan = edge_extensions(best_by_validation(rows), rows, s.recipe_lrs)
            if not plan:
                break
            extra = self.edge_trials(plan, checkpoints)
            _log(f"grid edges, round {round_ + 1}: {len(plan)} cells at an edge, {len(extra)} more trials")
            name = f"edges-{cache_key([asdict(t) for t in extra], 8)}"
            more, more_failed = self._tune(name, extra, self._context(data, extra, name), cluster, s.scheduler)
            failed += more_failed
            trials = trials + extra
            rows = pd.concat([rows, trial_rows(self.question.key, more, n_params)], ignore_index=True)
        if self.settings.search_seeds == "first" and self.settings.seeds > 1:
            extra, more_failed, rows = self._later_seeds(data, rows, checkpoints, cluster, n_params)
            failed += more_failed
            trials = trials + extra
        self.stage_wall = time.perf_counter() - started
        # Each pre-trained zero-shot point was evaluated once; every seed shares it.
        if self.settings.seeds > 1:
            zero = rows[(rows["recipe"] == "zeroshot") & (rows["pretrain"] != RANDOM_INIT)]
            rows = pd.concat([rows] + [zero.assign(seed=seed) for seed in self.seeds() if seed != self.settings.seed],
                             ignore_index=True)
        if failed:
            _log(f"{len(failed)} of {len(trials)} downstream trials failed; their cells are missing")
        return rows

    def _later_seeds(self, data, rows, checkpoints, cluster, n_params):
        """The seeds after the first, each cell once at the learning rate the first seed chose by validation."""
        chosen = {tuple(row[k] for k in CELL): float(row["lr"])
                  for _, row in best_by_validation(rows, select_seed=self.settings.seed).iterrows()
                  if row["recipe"] in ("scratch", "finetune")}
        extra = self.edge_trials({cell: [lr] for cell, lr in chosen.items()}, checkpoints, self.later_seeds())
        _log(f"later seeds: {len(chosen)} cells at the learning rate seed {self.settings.seed} chose, "
             f"{len(extra)} trials")
        name = f"seeds-{cache_key([asdict(t) for t in extra], 8)}"
        context = self._context(data, extra, name)
        # One trial per cell: nothing for a scheduler to stop, so no per-validation reports or tests either.
        context.settings = replace(self.settings, scheduler="fifo")
        more, failed = self._tune(name, extra, context, cluster)
        return extra, failed, pd.concat([rows, trial_rows(self.question.key, more, n_params)], ignore_index=True)

    def _finish(self, rows: pd.DataFrame) -> SweepOutcome:
        from sciml.sweeps.report import write_outputs

        s = self.settings
        # Optuna proposes other learning rates on every seed: each seed its own best, unless only the first searched.
        per_seed = s.search == "optuna" and s.search_seeds == "each"
        best = mark_edges(best_by_validation(rows, by_seed=per_seed, select_seed=s.seed if s.search_seeds == "first"
                                             else None), rows, s.recipe_lrs, s.search)
        savings = data_savings(best)
        budget = replace(Budget.from_trials(rows, s.recipe_lrs), stage_wall_seconds=self.stage_wall, slots=self.slots)
        edges = edge_effect(rows, s.recipe_lrs) if s.search == "grid" else None
        files = write_outputs(self.question, s, best, savings, rows, self.out, budget=budget, edges=edges)
        files[BUDGET_FILE] = str(write_json(os.path.join(self.out, BUDGET_FILE), budget.to_dict()))
        if self.tracker and self.parent_run_id:
            self._log_curves(best)
            for path in files.values():
                self.tracker.log_artifact(self.parent_run_id, path, "results")
            self.tracker.end_run(self.parent_run_id)
        return SweepOutcome(best, savings, files, self.parent_run_id, self.tracker.uri if self.tracker else None,
                            budget)

    def _log_curves(self, best: pd.DataFrame) -> None:
        """Test error against N as metrics of the sweep's parent run, one per (task, preset, recipe, pretraining),
        with N as the step: the MLflow UI charts each curve on the run's "Model metrics" tab (docs/mlflow.md)."""
        from sciml.sweeps.results import cell_summary

        by_n: dict[int, dict[str, float]] = {}
        for row in cell_summary(best).itertuples():
            # The UI makes a section per prefix (task and preset) and a chart per recipe in it.
            source = "" if row.recipe == "scratch" else "_random_init" if row.pretrain == RANDOM_INIT else \
                f"_from_{slug(row.pretrain)}"
            key = f"test_rel_l2/{slug(row.task)}/{row.preset}/{row.recipe}{source}"
            by_n.setdefault(int(row.n_train), {})[key] = float(row.test_rel_l2)
        for n, metrics in sorted(by_n.items()):
            self.tracker.log_metrics(self.parent_run_id, metrics, step=n)


def races(trials: list[TrialSpec]) -> list[TrialSpec]:
    """--scheduler race: each cell's learning rates as one trial that races them (sciml/training/race.py);
    a cell with a single learning rate (and every zero-shot evaluation) stays a plain trial."""
    cells: dict[tuple, list[TrialSpec]] = {}
    for trial in trials:
        cells.setdefault(trial_cell(asdict(trial)) if trial.lr is not None else (trial.key,), []).append(trial)
    return [group[0] if len(group) == 1 else replace(group[0], lr=None, lrs=tuple(t.lr for t in group))
            for group in cells.values()]


def race_results(spec: dict, metrics: dict, trial_id: str) -> list[tuple[dict, dict, str]]:
    """A race trial's result as its candidates' (spec, final metrics, trial id): one row per learning rate.
    The trial's seconds outside training (start-up, data, evaluation) are shared out equally."""
    candidates = json.loads(metrics.pop(RACE_KEY))
    outside = metrics["trial_seconds"] - sum(c["train_seconds"] for c in candidates)
    rows = []
    for candidate, single in zip(candidates, TrialSpec(**spec).candidates()):
        final = {**metrics, **{k: candidate[k] for k in FINAL_METRICS if k in candidate},
                 "mlflow_run_id": candidate.get("mlflow_run_id", ""), "trial_key": single.key,
                 "trial_seconds": candidate["train_seconds"] + outside / len(candidates)}
        rows.append((asdict(single), final, f"{trial_id}/{single.key}"))
    return rows


def pretrain_experiment(missing: list[TrialSpec], folders: dict[tuple[str, str], str]) -> str:
    """The Tune experiment of the pre-trainings not cached yet (a rerun resumes it by this name)."""
    return f"pretrain-{cache_key([t.key for t in missing] + [folders[t.pretrain, t.preset] for t in missing], 8)}"


def downstream_experiment(trials: list[TrialSpec]) -> str:
    """The downstream Tune experiment: named by its grid, checkpoint paths included."""
    return f"downstream-{cache_key([asdict(t) for t in trials], 8)}"


def pretrained_folder(settings: SweepSettings, pretrain: str, preset: str, hashes: list[str]) -> str:
    """The cache folder of one pre-trained model: keyed by its data's content hashes and settings.

    Pure, so the cost plan finds the checkpoints a sweep would reuse without running anything.
    """
    s = settings
    key = cache_key([hashes, preset, s.pretrain_lrs, s.pretrain_epochs, s.pretrain_batch_size,
                     s.n_pretrain, s.seed, s.precision, s.loss])
    return os.path.join(os.path.abspath(s.cache), "pretrained", f"{slug(pretrain)}-{preset}-{key}")


def _final_metrics(metrics: dict | None, error) -> dict | None:
    """A trial's row metrics: its final report, or for a trial a scheduler stopped, its last validation's.

    A stopped trial's best weights so far are its answer: their validation error, and the
    test error the loop measured when they became the best (test_on_improvement).
    """
    if error is not None or not metrics:
        return None
    metrics = dict(metrics)
    if "test_rel_l2" not in metrics:
        if "best_test_rel_l2" not in metrics:
            return None
        metrics.update(val_rel_l2=metrics["best_val_rel_l2"], test_rel_l2=metrics["best_test_rel_l2"],
                       epochs_run=metrics["epoch"], stopped_early=True)
    metrics["trial_seconds"] = metrics.get("time_total_s", math.nan)
    return metrics


def progress_callback(name: str, total: int):
    """One line per finished trial (Tune's own tables print every trial's full config)."""
    from ray import tune

    class SweepProgress(tune.Callback):
        def _line(self, trials, trial, outcome: str) -> None:
            ended = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")} | {trial.trial_id}
            print(f"[sweep] {name} {len(ended)}/{total} {_trial_key(trial)}: {outcome}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            errors = [f"{k} {result[k]:.4g}" for k in ("val_rel_l2", "test_rel_l2") if k in result]
            self._line(trials, trial, ", ".join(errors) + f" ({result.get('time_total_s', 0):.0f} s)")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trials, trial, "FAILED (see the trial's error.txt under the Tune experiment)")

    return SweepProgress()


def _trial_key(trial) -> str:
    return TrialSpec(**trial.config["trial"]).key


def print_summary(outcome: SweepOutcome, stream=sys.stdout, budget=None) -> None:
    """Claims first (with the compute budget when given, kept-start and grid-edge counts), then the tables."""
    from sciml.sweeps.report import summary_sections
    from sciml.sweeps.results import cell_summary, markdown_table

    print("\n" + "\n".join(summary_sections(outcome.results, outcome.savings, budget)), file=stream)
    table = cell_summary(outcome.results).drop(columns=["question", "system"])
    print("Results (best learning rate per cell by validation; test error: median and quartiles over seeds):",
          file=stream)
    print(markdown_table(table), file=stream)
    if not outcome.savings.empty:
        print("\nData savings (scratch examples needed for the fine-tuned error / N; median over seeds):",
              file=stream)
        print(markdown_table(outcome.savings.drop(columns=["question"])), file=stream)
    print("\nFiles:", file=stream)
    for label, path in outcome.files.items():
        print(f"  {label}: {path}", file=stream)
    if outcome.tracking_uri:
        uri = outcome.tracking_uri
        print("\nMLflow UI (choose 'Model training' at its top left; the sweep's run charts test error against N "
              "on its 'Model metrics' tab, docs/mlflow.md):", file=stream)
        if uri.startswith("sqlite:") or uri.startswith("file:"):
            print(f"  mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000", file=stream)
        else:
            print(f"  open {uri}", file=stream)
