"""The command line every sweep script shares: a profile plus overrides."""

from __future__ import annotations

import argparse

from sciml.cli import OneLineParser, fail, fail_for_field
from sciml.ray_env import settle_job_outputs
from sciml.sweeps.profiles import PROFILES, profile_settings
from sciml.sweeps.questions import Q4_OOD, QUESTIONS, Question

# Which command-line flag sets each SweepSettings field a validation message names.
FLAGS = {"profile": "--profile", "presets": "--presets", "preset": "--presets", "n_values": "--n-values",
         "scratch_extra_n": "--scratch-extra-n", "lrs": "--lrs", "pretrain_lrs": "--pretrain-lrs",
         "epochs": "--epochs", "pretrain_epochs": "--pretrain-epochs", "systems": "--systems",
         "workers_per_trial": "--workers-per-trial", "cpus_per_worker": "--cpus-per-worker",
         "gpus_per_worker": "--gpus-per-worker", "max_concurrent": "--max-concurrent", "seed": "--seed",
         "seeds": "--seeds", "out": "--out", "cache": "--cache", "pretrained": "--pretrained"}


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.replace(",", " ").split())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace(",", " ").split())


def _words(text: str) -> tuple[str, ...]:
    return tuple(v for v in text.replace(",", " ").split())


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
    p.add_argument("--pretrain-lrs", type=_floats, help="pre-training learning rates")
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
    p.add_argument("--pretrained", action="append", metavar="[LABEL=]models:/NAME@ALIAS",
                   help="fine-tune from a registered model instead of pre-training (repeatable; LABEL is a "
                        "pre-training such as 'SYS-1(1,5)', default the label the model was registered under)")
    if question.key == "q4":
        p.add_argument("--ood", action="store_true", help="also the out-of-distribution tasks of Q3")
    return p


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
            seeds=args.seeds, out=args.out, cache=args.cache, ood=getattr(args, "ood", None) or None,
            pretrained=tuple(args.pretrained) if args.pretrained else None)
        if settings.ood:
            question = Question(question.key, question.title, question.figure, question.tasks + Q4_OOD)
        question = question.restricted_to(settings.systems)
        pretrained = None
        if settings.pretrained:
            from sciml.sweeps.pretrained import resolve_pretrained

            pretrained = resolve_pretrained(question, settings)  # downloads; every mismatch exits 2 here
    except ValueError as err:
        fail_for_field(parser_prog(question), err, FLAGS)

    from sciml.ray_env import ClusterTooSmall
    from sciml.sweeps.runner import SweepRunner, print_summary

    try:
        outcome = SweepRunner(question, settings, tracking=not args.no_tracking, pretrained=pretrained).run()
    except ClusterTooSmall as err:
        fail(f"{parser_prog(question)}: error: {err}")
    print_summary(outcome)
    return 0
