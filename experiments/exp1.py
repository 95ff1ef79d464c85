"""Exp-I: VGGFace2 ResNet-50 frame classifier. See --help."""

import sys

from mer_keras.cli import build_parser, parse_args
from mer_keras.runner import run_experiment

GRADCAM_HELP = ("after training, run the Grad-CAM layer sweep on the run folder "
                "(as python -m experiments.gradcam --run OUT): OUT/gradcam/focus.json and figures")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser("exp1")
    parser.add_argument("--gradcam", action="store_true", help=GRADCAM_HELP)
    gradcam = parser.parse_args(argv).gradcam  # --help and typos handled here, with --gradcam listed
    options = parse_args("exp1", [a for a in argv if not (a.startswith("--g") and "--gradcam".startswith(a))])
    if gradcam and not options.final:
        parser.error("--gradcam explains the final model: drop --no-final")
    run_experiment(options)
    if gradcam:
        from experiments.gradcam import main as gradcam_main

        gradcam_main(["--run", str(options.out)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
