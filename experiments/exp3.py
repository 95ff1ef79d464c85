"""Exp-III: VGGFace2 ResNet-50 + Bi-LSTM on windows of N frames. See --help."""

import sys

from mer_keras.cli import parse_args
from mer_keras.runner import run_experiment


def main(argv=None) -> int:
    run_experiment(parse_args("exp3", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
