"""``python -m data_gen``: generate (or verify and repair) one dataset directory; ``verify`` checks some.

    python -m data_gen --system poisson --range 1 5 --n-train ... --out DIR  # generate, or repair DIR
    python -m data_gen verify DIR [DIR ...]                                  # exit 0 ok, 1 damaged, 2 not a dataset

See README / SPEC sections 2-3.
"""

from __future__ import annotations

import sys

from sciml.cli import OneLineParser, fail_for_field
from sciml.core.checks import check_int
from sciml.physics import SystemSpec
from sciml.ray_env import settle_job_outputs

from sciml.data.verify import NotADatasetError, read_manifest, repair_command, verify_dataset

from .directory import DatasetConflictError
from .pipeline import generate_dataset
from .request import GenerationRequest

PROG = "python -m data_gen"
# Which command-line flag a validation message's field comes from.
FLAGS = {"system": "--system", "lo": "--range", "hi": "--range", "n_train": "--n-train", "n_val": "--n-val",
         "n_test": "--n-test", "resolution": "--resolution", "seed": "--seed", "shard_size": "--shard-size",
         "num_workers": "--num-workers", "out_dir": "--out"}


def parse_args(argv: list[str] | None) -> tuple:
    parser = OneLineParser(
        prog=PROG, description="Generate a dataset of one PDE system (Parquet shards + manifest).",
        epilog="A rerun with the same arguments verifies every shard of a finished dataset against its manifest "
               "(XXH3-128 content hash; at most a few s per GB, 0.2-0.4 s for a laptop pre-training set; "
               "docs/benchmarks.md) and regenerates exactly the damaged or missing ones, with the same bytes. "
               "`python -m data_gen verify DIR [DIR...]` only checks.")
    parser.add_argument("--system", required=True, help="poisson | advdiff | helmholtz")
    parser.add_argument("--range", required=True, nargs=2, type=float, metavar=("LO", "HI"),
                        help="e range (poisson), Psi range (advdiff) or integer omega range (helmholtz)")
    parser.add_argument("--n-train", required=True, type=int)
    parser.add_argument("--n-val", required=True, type=int)
    parser.add_argument("--n-test", required=True, type=int)
    parser.add_argument("--resolution", required=True, type=int, help="grid size n (even, >= 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="dataset directory")
    parser.add_argument("--shard-size", type=int, default=1024, help="rows per Parquet shard")
    parser.add_argument("--num-workers", type=int, default=None, help="concurrent map tasks (default: all CPUs)")
    parser.add_argument("--address", default=None, help="existing Ray cluster to connect to (default: start one)")
    parser.add_argument("--overwrite", action="store_true", help="replace a different or finished dataset in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        spec = SystemSpec(args.system, args.range[0], args.range[1])
        request = GenerationRequest(spec, args.n_train, args.n_val, args.n_test, args.resolution, args.seed,
                                    args.shard_size)
        if args.num_workers is not None:
            check_int("num_workers", args.num_workers, 1)
    except ValueError as error:
        fail_for_field(PROG, error, FLAGS)
    return args, request


EXIT_DAMAGED = 1
EXIT_NOT_A_DATASET = 2


def verify_main(argv: list[str]) -> int:
    """``verify DIR [DIR...]``: per directory OK or its bad shards; the worst outcome is the exit code."""
    parser = OneLineParser(
        prog=f"{PROG} verify",
        description="Check dataset directories against their manifests: every shard present, readable, with the "
                    "rows and XXH3-128 content hash recorded (at most a few s per GB, 0.2-0.4 s for a laptop "
                    "pre-training set of 71 MB; docs/benchmarks.md).",
        epilog="Exit 0: all intact; 1: some shard damaged or missing (the regenerate command is printed); "
               "2: a directory is not a dataset.")
    parser.add_argument("directories", nargs="+", metavar="DIR")
    args = parser.parse_args(argv)
    code = 0
    for directory in args.directories:
        try:
            manifest = read_manifest(directory)
        except NotADatasetError as error:
            print(f"{directory}: NOT A DATASET: {error}")
            code = max(code, EXIT_NOT_A_DATASET)
            continue
        bad = verify_dataset(directory, manifest)
        if not bad:
            shards = sum(len(entries) for entries in manifest["shards"].values())
            print(f"{directory}: OK ({shards} shards, {manifest['name']})")
            continue
        code = max(code, EXIT_DAMAGED)
        print(f"{directory}: DAMAGED, {len(bad)} bad shard(s):")
        for shard in bad:
            print(f"  {shard}")
        print(f"  repair (regenerates exactly these shards): {repair_command(directory, manifest)}")
    return code


def main(argv: list[str] | None = None) -> int:
    settle_job_outputs()  # first: it decides where relative outputs go under `ray job submit`
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["verify"]:
        return verify_main(argv[1:])
    args, request = parse_args(argv)
    try:
        manifest = generate_dataset(request, args.out, num_workers=args.num_workers, address=args.address,
                                    overwrite=args.overwrite, progress=not args.no_progress)
    except DatasetConflictError as error:
        fail_for_field(PROG, error, FLAGS)
    counts = ", ".join(f"{split} {count}" for split, count in manifest["counts"].items())
    print(f"{manifest['name']}: {counts} at {manifest['resolution']}^2 in {args.out} "
          f"(content hash {manifest['content_hash'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
