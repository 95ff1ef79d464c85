"""Exp-II: VGGFace2 ResNet-50 + 3-layer LSTM on windows of N frames. See --help."""

import sys

from mer_keras.cli import run_main


def main(argv=None) -> int:
    return run_main("exp2", argv)


if __name__ == "__main__":
    sys.exit(main())
