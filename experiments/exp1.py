"""Exp-I: VGGFace2 ResNet-50 frame classifier. See --help."""

import sys

from mer_keras.cli import run_main


def _gradcam(config, extras):
    if extras["gradcam"]:
        from experiments.gradcam import main as gradcam_main

        gradcam_main(["--run", config.out])


def main(argv=None) -> int:
    return run_main("exp1", argv, after=_gradcam)


if __name__ == "__main__":
    sys.exit(main())
