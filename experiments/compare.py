"""Compare two finished runs on the same clips: python -m experiments.compare RUN_A RUN_B [--json]."""

import argparse
import json
import sys

from mer_keras.compare import compare_runs, comparison_text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.compare", description=__doc__.split(":")[0] + ".")
    p.add_argument("run_a", help="a finished run folder (A)")
    p.add_argument("run_b", help="another finished run folder on the same clips (B); differences are B - A")
    p.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples of subjects (default 2000)"
    )
    p.add_argument(
        "--permutations",
        type=int,
        default=10000,
        help="random subject swaps of the permutation test (exact when 2^subjects is fewer)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    try:
        result = compare_runs(
            args.run_a, args.run_b, resamples=args.resamples, permutations=args.permutations, seed=args.seed
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else comparison_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
