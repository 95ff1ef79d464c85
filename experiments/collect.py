"""Pool a run folder whose folds were trained by several invocations (``--only-folds``). See --help."""

import argparse
import logging
import sys

from mer_keras.cli import USER_ERRORS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.collect",
        description="Pool the folds of RUN_DIR (trained with --only-folds, maybe on several machines) "
        "into its predictions.csv, results.json, results.md and figures, as the end of a full run "
        "does; refuses, naming the missing folds, until every fold is finished. Trains no fold.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (holds config.json, fold_K/)")
    parser.add_argument(
        "--final",
        action="store_true",
        help="also train the final model on all subjects and export it (as a run without --no-final)",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not one line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from mer_keras.experiment import collect_run

    try:
        collect_run(args.run_dir, final=args.final)
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"error: {error} (--debug shows the traceback)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
