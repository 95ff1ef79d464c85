"""Grad-CAM of a finished run: python -m experiments.gradcam --run DIR (writes DIR/gradcam/)."""

import argparse
import sys


def _face_box(text):
    from mer_keras.gradcam.focus import check_face_box

    try:
        return check_face_box(text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    from mer_keras.gradcam.cam import METHODS

    p = argparse.ArgumentParser(
        prog="python -m experiments.gradcam",
        description="Grad-CAM layer sweep of a run's untrained and trained model: focus score per layer "
        "(share of the map inside the moving face regions), the chosen layer l_s, figures.",
    )
    p.add_argument("--run", required=True, help="a finished run folder (config.json, final/model.keras)")
    p.add_argument(
        "--per-class",
        type=int,
        default=3,
        help="sample clips per class, their apex or centre frame (default: %(default)s)",
    )
    p.add_argument(
        "--method",
        choices=list(METHODS),
        default="gradcam",
        help="Grad-CAM or Grad-CAM++ (tf-keras-vis); clip models: per-frame Grad-CAM only "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--layers",
        default=None,
        help="comma-separated layer names (default: every block output of the backbone)",
    )
    p.add_argument("--seed", type=int, default=0, help="which clips are sampled (default: %(default)s)")
    p.add_argument(
        "--face-box",
        type=_face_box,
        default=(0.0, 0.0, 1.0, 1.0),
        help="real data only: x0,y0,x1,y1 fractions of the frame holding the face, for the fixed "
        "face-region layout (default: the whole frame, as in cropped releases)",
    )
    p.add_argument("--data", default=None, help="where the run's dataset is now, if it moved since the run")
    p.add_argument("--out", default=None, help="output folder (default: RUN/gradcam)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from mer_keras.gradcam.run import gradcam_run

    focus = gradcam_run(
        args.run,
        per_class=args.per_class,
        method=args.method,
        layers=args.layers.split(",") if args.layers else None,
        seed=args.seed,
        face_box=args.face_box,
        out=args.out,
        data=args.data,
    )
    for layer, pair in focus["layers"].items():
        mark = "  <- chosen" if layer == focus["chosen"] else ""
        print(f"{layer:>16}  before {pair['before']:.3f}  after {pair['after']:.3f}{mark}")
    print(f"chance {focus['chance']:.3f}; figures: {', '.join(focus['figures'].values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
