"""The command line every sweep script shares: a profile plus overrides."""

from __future__ import annotations

import argparse
import os

from sciml.cli import OneLineParser, fail, fail_for_field
from sciml.ray_env import settle_job_outputs
from sciml.sweeps.profiles import PROFILES, profile_settings
from sciml.sweeps.questions import Q4_OOD, QUESTIONS, Question
from sciml.sweeps.settings import RACE_RANKS, SCHEDULERS, SEARCH_SEEDS, SEARCHES

# Which command-line flag sets each SweepSettings field a validation message names.
FLAGS = {"profile": "--profile", "presets": "--presets", "preset": "--presets", "n_values": "--n-values",
         "scratch_extra_n": "--scratch-extra-n", "lrs": "--lrs", "pretrain_lrs": "--pretrain-lrs",
         "epochs": "--epochs", "pretrain_epochs": "--pretrain-epochs", "systems": "--systems",
         "workers_per_trial": "--workers-per-trial", "cpus_per_worker": "--cpus-per-worker",
         "gpus_per_worker": "--gpus-per-worker", "max_concurrent": "--max-concurrent", "seed": "--seed",
         "seeds": "--seeds", "out": "--out", "cache": "--cache", "loss": "--loss", "scratch_lrs": "--scratch-lrs",
         "gpu_share": "--gpu-share", "gpu_memory_gb": "--gpu-memory-gb", "plan_gpus": "--plan-gpus",
         "plan_cpus": "--plan-cpus", "pretrained": "--pretrained",
         # Search, early stopping and grid edges (sciml/sweeps/search.py).
         "search": "--search", "trials_per_cell": "--trials-per-cell", "scheduler": "--scheduler",
         "grace_period": "--grace-period", "reduction_factor": "--reduction-factor", "extend_edges": "--extend-edges",
         "search_seeds": "--search-seeds", "race_rank": "--race-rank"}


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.replace(",", " ").split())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace(",", " ").split())


def _words(text: str) -> tuple[str, ...]:
    return tuple(v for v in text.replace(",", " ").split())


def _shares(text: str) -> tuple[tuple[str, float], ...]:
    pairs = []
    for item in _words(text):
        preset, _, share = item.partition("=")
        pairs.append((preset, float(share)))
    return tuple(pairs)


def parser_prog(question: Question) -> str:
    return f"sweeps/{question.key}_*.py"


def parser(question: Question) -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=parser_prog(question), description=f"{question.title}: pre-train, fine-tune and compare.",
        epilog="Connects to the Ray cluster in RAY_ADDRESS when set (as under `ray job submit`), "
               "otherwise starts an embedded local Ray. MLflow: MLFLOW_TRACKING_URI or sqlite:///mlruns.db.")
    p.add_argument("--profile", choices=PROFILES, default="laptop")
    p.add_argument("--presets", type=_words, help="model presets (64K 1M 16M 256M) or dWmM, e.g. '64K 1M'")
    p.add_argument("--n-values", type=_ints, help="downstream sizes N, e.g. '8 32 128'")
    p.add_argument("--scratch-extra-n", type=_ints, help="extra N for scratch only (data-savings range)")
    p.add_argument("--lrs", type=_floats, help="downstream learning rates, e.g. '1e-4 1e-3'")
    p.add_argument("--scratch-lrs", type=_floats, help="scratch learning rates (default: the --lrs grid)")
    p.add_argument("--pretrain-lrs", type=_floats, help="pre-training learning rates")
    p.add_argument("--loss", help="training loss of every stage: mse (the paper's) or rel_l2")
    p.add_argument("--epochs", type=int, help="downstream epochs")
    p.add_argument("--pretrain-epochs", type=int)
    p.add_argument("--systems", type=_words, help="restrict to systems: poisson advdiff helmholtz")
    p.add_argument("--workers-per-trial", type=int, help="Ray Train workers per trial (0 = local mode)")
    p.add_argument("--cpus-per-worker", type=int)
    p.add_argument("--gpus-per-worker", type=float)
    p.add_argument("--max-concurrent", type=int, help="trials at a time (default: what the cluster fits)")
    p.add_argument("--seed", type=int)
    p.add_argument("--seeds", type=int, help="repeat every cell with this many seeds (quartile bands)")
    p.add_argument("--out", help="output directory (tables, figures, report)")
    p.add_argument("--cache", help="dataset and pre-trained checkpoint cache shared between sweeps")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--gpu-share", type=_shares,
                   help="GPU share per preset, e.g. '64K=0.25 1M=0.25' (--gpus-per-worker sets one for all)")
    p.add_argument("--gpu-memory-gb", type=float, help="one GPU's memory; a share a trial cannot fit is refused")
    p.add_argument("--plan", action="store_true",
                   help="print the cost plan (datasets, trials, steps, hours, storage) and exit: runs nothing")
    p.add_argument("--plan-json", action="store_true", help="the plan as JSON")
    p.add_argument("--plan-gpus", type=float, default=8, help="GPUs of the cluster the plan's wall time assumes")
    p.add_argument("--plan-cpus", type=float, help="CPUs of that cluster (default: 4 per GPU, or 8)")
    p.add_argument("--pretrained", action="append", metavar="[LABEL=]models:/NAME@ALIAS",
                   help="fine-tune from a registered model instead of pre-training (repeatable; LABEL is a "
                        "pre-training such as 'SYS-1(1,5)', default the label the model was registered under)")
    search = p.add_argument_group("search and early stopping (default: the paper's full grid)")
    search.add_argument("--search", choices=SEARCHES, help="grid: every lr of --lrs; optuna: per cell, a seeded "
                        "TPE study proposes --trials-per-cell lrs log-uniform in [min, max] of --lrs")
    search.add_argument("--trials-per-cell", type=int, help="optuna: learning rates per cell (default 3)")
    search.add_argument("--scheduler", choices=SCHEDULERS, help="fifo: every trial runs to the end; asha: per "
                        "cell, ASHA stops unpromising trials on val_rel_l2; halving: ASHA, and a trial that "
                        "later trials of its cell push out of a rung's top 1/factor stops too; race: one trial "
                        "per cell trains its lrs in lockstep and keeps the best 1/factor at each rung")
    search.add_argument("--grace-period", type=int, help="asha, halving, race: validations before a learning "
                        "rate may be stopped (2)")
    search.add_argument("--reduction-factor", type=float, help="asha, halving, race: keep the best 1/factor at "
                        "each rung (3)")
    search.add_argument("--race-rank", choices=RACE_RANKS, help="race: rank candidates at a rung by averaged "
                        "(default): the better of their best validation error so far and that of a running "
                        "average of their weights; best: the former only")
    search.add_argument("--extend-edges", type=int, help="grid: rounds adding the next lr beyond a cell's best lr "
                        "when it is the smallest or largest tried (laptop, paper: 1; smoke: 0)")
    search.add_argument("--search-seeds", choices=SEARCH_SEEDS, help="with --seeds k: each (default): every seed "
                        "searches; first: the first seed searches, the other k-1 train once at its best lr")
    if question.key == "q4":
        p.add_argument("--ood", action="store_true", help="also the out-of-distribution tasks of Q3")
    return p


def check_creatable(field: str, path: str) -> None:
    """ValueError('<field>: ...') unless ``path`` is a writable directory or could be created as one.

    Nothing is created: the nearest existing ancestor must be a directory this process may write.
    """
    target = os.path.abspath(path)
    if os.path.exists(target) and not os.path.isdir(target):
        raise ValueError(f"{field}: {path} exists and is not a directory")
    ancestor = target
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ValueError(f"{field}: cannot create {path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        what = "write to" if ancestor == target else f"create {path} in"
        raise ValueError(f"{field}: cannot {what} {ancestor}: no write permission (read-only?)")


def main(question_key: str, argv: list[str] | None = None) -> int:
    settle_job_outputs()  # first: it decides where relative outputs go under `ray job submit`
    question = QUESTIONS[question_key]
    args = parser(question).parse_args(argv)
    try:
        settings = profile_settings(question.key, args.profile).with_overrides(
            presets=args.presets, n_values=args.n_values, scratch_extra_n=args.scratch_extra_n, lrs=args.lrs,
            pretrain_lrs=args.pretrain_lrs, epochs=args.epochs, pretrain_epochs=args.pretrain_epochs,
            systems=args.systems, workers_per_trial=args.workers_per_trial, cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker, max_concurrent=args.max_concurrent, seed=args.seed,
            seeds=args.seeds, out=args.out, cache=args.cache, loss=args.loss, scratch_lrs=args.scratch_lrs,
            ood=getattr(args, "ood", None) or None, gpu_memory_gb=args.gpu_memory_gb,
            # --gpus-per-worker is one share for every preset: it overrides the profile's map.
            gpu_share=args.gpu_share if args.gpu_share is not None else (() if args.gpus_per_worker is not None
                                                                         else None),
            pretrained=tuple(args.pretrained) if args.pretrained else None, search=args.search,
            trials_per_cell=args.trials_per_cell, scheduler=args.scheduler, grace_period=args.grace_period,
            reduction_factor=args.reduction_factor, extend_edges=args.extend_edges, search_seeds=args.search_seeds,
            race_rank=args.race_rank)
        if settings.ood:
            question = Question(question.key, question.title, question.figure, question.tasks + Q4_OOD)
        question = question.restricted_to(settings.systems)
        from sciml.core.checks import check_number
        from sciml.sweeps.plan import check_gpu_memory, format_plan, plan_sweep

        check_gpu_memory(settings)  # before any work: a share no trial fits would fail on the cluster
        from sciml.sweeps.datasets import materialize_limit

        materialize_limit()  # SCIML_MATERIALIZE_LIMIT_BYTES: a bad value exits 2 here, not mid-sweep
        check_number("plan_gpus", args.plan_gpus, 0)
        if args.plan_cpus is not None:
            check_number("plan_cpus", args.plan_cpus, 0, low_open=True)
    except ValueError as err:
        fail_for_field(parser_prog(question), err, FLAGS)
    if args.plan or args.plan_json:
        import json

        plan = plan_sweep(question, settings, gpus=args.plan_gpus, cpus=args.plan_cpus)
        print(json.dumps(plan, indent=1) if args.plan_json else format_plan(plan))
        return 0

    try:  # before Ray, MLflow or a state file: a directory that cannot be made fails now, not after 12 s
        for name in ("out", "cache"):
            check_creatable(name, getattr(settings, name))
        pretrained = None
        if settings.pretrained:  # after the plan, which writes nothing: this downloads the models
            from sciml.sweeps.pretrained import resolve_pretrained

            pretrained = resolve_pretrained(question, settings)  # every mismatch exits 2 here
    except ValueError as err:
        fail_for_field(parser_prog(question), err, FLAGS)

    from sciml.ray_env import ClusterTooSmall
    from sciml.sweeps.runner import SweepRunner, print_summary

    try:
        outcome = SweepRunner(question, settings, tracking=not args.no_tracking, pretrained=pretrained).run()
    except ClusterTooSmall as err:
        fail(f"{parser_prog(question)}: error: {err}")
    print_summary(outcome, budget=outcome.budget)
    return 0
