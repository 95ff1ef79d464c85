"""Exp-I: VGGFace2 ResNet-50 frame classifier. See --help."""

import sys

from mer_keras.cli import parse_args
from mer_keras.runner import run_experiment


def main(argv=None) -> int:
    options = parse_args("exp1", argv)
    run_experiment(options)
    if options.gradcam:
        from experiments.gradcam import main as gradcam_main

        gradcam_main(["--run", str(options.out)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
