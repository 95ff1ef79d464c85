"""Grad-CAM on data and on run folders: frame sampling, choosing l_s, experiments.gradcam, exp1 --gradcam."""

import json

import numpy as np
import pytest
from PIL import Image

from mer_keras.backbone import gradcam_candidates, retrain_candidates, split_backbone, vggface_resnet50
from mer_keras.datasets import load_dataset, read_frame
from mer_keras.datasets.synthetic import read_mask
from mer_keras.gradcam import (
    choose_layer,
    choose_retrain_layer,
    describe_regions,
    face_layout_mask,
    sample_frames,
)

SIZE = 32
CLASSES = ["negative", "positive", "surprise", "non_micro"]
TINY = [
    "--backbone",
    "tiny",
    "--image-size",
    "32",
    "--folds",
    "2",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--verbose",
    "0",
]


@pytest.fixture(scope="module")
def tiny_smic(tmp_path_factory):
    from mer_keras.datasets.synthetic import make_synthetic_smic

    return make_synthetic_smic(
        tmp_path_factory.mktemp("synthetic"), subjects=6, seed=1, size=32, clips_scale=0.4, progress=False
    )


@pytest.fixture(scope="module")
def clips(tiny_smic):
    return load_dataset(tiny_smic, "auto")


@pytest.mark.parametrize("n", [1, 5])
def test_sample_frames_takes_centre_frames_of_distinct_subjects(clips, n):
    samples = sample_frames(clips, CLASSES, SIZE, per_class=2, n=n)
    assert [CLASSES[s.label] for s in samples] == [k for k in CLASSES for _ in range(2)]
    for label in range(len(CLASSES)):
        picked = [s for s in samples if s.label == label]
        available = {c.subject for c in clips if c.label == CLASSES[label]}
        assert len({s.clip.subject for s in picked}) == min(2, len(available))
    for sample in samples:
        assert sample.clip.label == CLASSES[sample.label] and sample.frame == len(sample.clip) // 2
        centre = sample.image if n == 1 else sample.image[n // 2]
        assert sample.image.shape == ((SIZE, SIZE, 3) if n == 1 else (n, SIZE, SIZE, 3))
        np.testing.assert_array_equal(centre, read_frame(sample.clip.frames[sample.frame], SIZE))
        np.testing.assert_array_equal(sample.mask, read_mask(sample.clip, SIZE))
        assert sample.mask.any() == (sample.clip.label != "non_micro")  # non-micro clips move nothing
    assert describe_regions(clips)["kind"].startswith("moving-region masks")


def test_real_data_without_masks_gets_the_face_layout(smic_root):
    clips = load_dataset(smic_root, "auto")
    samples = sample_frames(clips, ["negative", "positive"], SIZE, per_class=1, face_box=(0.25, 0, 0.75, 1))
    for sample in samples:
        np.testing.assert_array_equal(sample.mask, face_layout_mask((SIZE, SIZE), (0.25, 0, 0.75, 1)))
    regions = describe_regions(clips, (0.25, 0, 0.75, 1))
    assert regions["kind"].startswith("fixed face layout") and regions["face_box"] == [0.25, 0, 0.75, 1]


def test_face_layout_covers_the_synthetic_moving_regions(clips):
    layout = face_layout_mask((SIZE, SIZE))
    moving = [read_mask(c, SIZE) for c in clips if c.label != "non_micro"]
    inside = np.mean([mask[layout].sum() / mask.sum() for mask in moving])
    assert inside > 2 * layout.mean()  # the proxy finds the moving regions far above its own area share


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"per_class": 0}, "per_class"),
        ({"classes": ["anger"]}, "No clip has a label in \\['anger'\\]"),
    ],
)
def test_sample_frames_refuses(clips, kwargs, error):
    with pytest.raises(ValueError, match=error):
        sample_frames(clips, kwargs.pop("classes", CLASSES), SIZE, **kwargs)


def test_choose_retrain_layer_names_the_block_whose_output_focuses_best(clips):
    backbone = vggface_resnet50(weights=None, input_shape=(SIZE, SIZE, 3), blocks=(1, 1, 1, 1), width=1 / 16)
    retrain_from, scores = choose_retrain_layer(backbone, clips, SIZE, per_class=2)
    assert list(scores) == gradcam_candidates(backbone)
    assert all(0.0 <= s <= 1.0 for s in scores.values() if np.isfinite(s))
    assert retrain_from in retrain_candidates(backbone)
    assert retrain_from.removesuffix("_1x1_reduce") == choose_layer(scores).removesuffix("_out")
    # the backbone still splits where the lead will cut it (Grad-CAM only added nodes to its layers)
    prefix, suffix = split_backbone(backbone, retrain_from)
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(suffix(prefix(images)), backbone(images), rtol=1e-5, atol=1e-6)


def _png_size(path):
    with Image.open(path) as image:
        return image.size


@pytest.fixture(scope="module")
def exp1_run(tiny_smic, tmp_path_factory):
    """A tiny Exp-I run made by the command line, with --gradcam."""
    from experiments.exp1 import main

    out = tmp_path_factory.mktemp("runs") / "exp1"
    assert main(["--data", str(tiny_smic), "--out", str(out), *TINY, "--fc-units", "16,8", "--gradcam"]) == 0
    return out


@pytest.mark.slow
def test_exp1_gradcam_writes_focus_and_figures(exp1_run):
    focus = json.loads((exp1_run / "gradcam" / "focus.json").read_text())
    layers = ["conv2_1_out", "conv3_1_out", "conv4_1_out", "conv5_1_out"]
    assert list(focus["layers"]) == layers
    for pair in focus["layers"].values():
        assert set(pair) == {"before", "after"}
        assert all(v is None or 0.0 <= v <= 1.0 for v in pair.values())
    before = {k: float("nan") if v["before"] is None else v["before"] for k, v in focus["layers"].items()}
    assert focus["chosen"] == choose_layer(before)
    assert focus["retrain_from"] == focus["chosen"].replace("_out", "_1x1_reduce")
    assert focus["regions"]["kind"].startswith("moving-region masks") and 0 < focus["chance"] < 1
    # the rebuilt starting backbone is the run's: its frozen layers equal the trained model's exactly
    frozen = focus["before"]["run_frozen_layers"]
    assert frozen["same"] and frozen["frozen_layers_compared"] > 30
    assert focus["before"]["weights"]["source"] == "random"
    assert len(focus["samples"]) == 3 * len(CLASSES)
    assert focus["maps_with_a_region"] == 9  # 3 frames of each class but non_micro, which moves nothing
    assert all(0 <= n <= 9 for pair in focus["maps_with_a_score"].values() for n in pair.values())
    width, height = _png_size(focus["figures"]["before"])
    assert width > 4 * 100 and height > 12 * 100  # 4 layers x 12 frames
    assert _png_size(focus["figures"]["before_after"])[1] > 4 * 100  # one frame per class


@pytest.mark.slow
def test_gradcam_command_options(exp1_run, tmp_path):
    from experiments.gradcam import main

    out = tmp_path / "pp"
    assert (
        main(
            [
                "--run",
                str(exp1_run),
                "--method",
                "gradcam++",
                "--layers",
                "conv3_1_out,conv4_1_out",
                "--per-class",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    focus = json.loads((out / "focus.json").read_text())
    assert list(focus["layers"]) == ["conv3_1_out", "conv4_1_out"] and focus["method"] == "gradcam++"
    assert len(focus["samples"]) == len(CLASSES) and (out / "before_after.png").is_file()


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda d: None, FileNotFoundError, "no config.json"),
        (
            lambda d: (d / "config.json").write_text("{}"),
            ValueError,
            "written by another version of mer_keras",
        ),
    ],
)
def test_gradcam_command_refuses_unfinished_or_old_runs(tmp_path, make, error, match):
    from experiments.gradcam import main

    make(tmp_path)
    with pytest.raises(error, match=match):
        main(["--run", str(tmp_path)])


def test_exp1_gradcam_needs_the_final_model(capsys):
    from experiments.exp1 import main

    with pytest.raises(SystemExit):
        main(["--gradcam", "--no-final"])
    assert "--gradcam explains the final model" in capsys.readouterr().err


@pytest.mark.slow
def test_gradcam_of_a_clip_run_gives_per_frame_maps(tiny_smic, tmp_path):
    from mer_keras.cli import parse_config
    from mer_keras.experiment import run_experiment
    from mer_keras.gradcam.run import gradcam_run

    run_experiment(
        parse_config(
            "exp2",
            ["--data", str(tiny_smic), "--out", str(tmp_path), *TINY, "--lstm-units", "8,8,8", "--n", "5"],
        )[0]
    )
    focus = gradcam_run(tmp_path, per_class=1, layers=["conv2_1_out", "conv3_1_out"])
    assert list(focus["layers"]) == ["conv2_1_out", "conv3_1_out"]
    assert focus["before"]["run_frozen_layers"]["same"]
    assert (tmp_path / "gradcam" / "sweep_after.png").is_file()
    with pytest.raises(ValueError, match="per-frame Grad-CAM only"):
        gradcam_run(tmp_path, per_class=1, method="gradcam++")
