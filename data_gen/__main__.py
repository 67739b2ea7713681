"""``python -m data_gen``: generate one dataset directory (see README / SPEC sections 2-3)."""

from __future__ import annotations

import sys

from sciml.cli import OneLineParser, fail_for_field
from sciml.core.checks import check_int
from sciml.physics import SystemSpec
from sciml.ray_env import settle_job_outputs

from .directory import DatasetConflictError
from .pipeline import generate_dataset
from .request import GenerationRequest

PROG = "python -m data_gen"
# Which command-line flag a validation message's field comes from.
FLAGS = {"system": "--system", "lo": "--range", "hi": "--range", "n_train": "--n-train", "n_val": "--n-val",
         "n_test": "--n-test", "resolution": "--resolution", "seed": "--seed", "shard_size": "--shard-size",
         "num_workers": "--num-workers", "out_dir": "--out"}


def parse_args(argv: list[str] | None) -> tuple:
    parser = OneLineParser(prog=PROG, description="Generate a dataset of one PDE system (Parquet shards + manifest).")
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


def main(argv: list[str] | None = None) -> int:
    settle_job_outputs()  # first: it decides where relative outputs go under `ray job submit`
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
