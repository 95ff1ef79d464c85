"""Faces: MTCNN on synthetic faces, crop and align geometry, the no-face fallback, landmark masks."""

from __future__ import annotations

import json
import math
import warnings

import cv2
import numpy as np
import pytest

from mer_keras import faces
from mer_keras.datasets.frames import read_frame
from mer_keras.datasets.synthetic_faces import (
    CLASS_ACTION_UNITS,
    displacement_field,
    render_face,
    sample_identity,
)
from mer_keras.faces import (
    ALIGN_TEMPLATE,
    DEFAULT_MARGIN,
    Detection,
    FaceNotFoundWarning,
    FaceTransform,
    align_matrix,
    apply_face,
    check_face_mode,
    check_margin,
    clip_face_transform,
    combine_detections,
    crop_matrix,
    detect_faces,
    face_focus_mask,
    face_transform,
    landmark_mask,
    read_face_frames,
)

SIZE = 128
TARGETS = np.array([ALIGN_TEMPLATE["left_eye"], ALIGN_TEMPLATE["right_eye"]]) * SIZE


def true_landmarks(face, matrix=None):
    """The renderer's five points (eye centres, nose tip, mouth corners) in continuous pixels,
    optionally moved by a cv2 (pixel-index) 2x3 ``matrix``."""
    cx, cy = face.center
    points = np.array(
        [
            face.eye_center(-1),
            face.eye_center(1),
            (cx, cy + face.nose[0]),
            face.mouth_corner(-1),
            face.mouth_corner(1),
        ]
    )
    if matrix is not None:
        points = points @ matrix[:, :2].T + matrix[:, 2]
    return points + 0.5  # the renderer's grid is pixel-index coordinates


def scene(seed=0, angle=0.0, shift=(0.0, 0.0), noise_seeds=(1, 2, 3)):
    """Frames of one synthetic face turned by ``angle`` degrees about its centre and shifted, with
    independent sensor noise per frame; also the cv2 matrix used and the face."""
    face = sample_identity(np.random.default_rng(seed), SIZE)
    matrix = cv2.getRotationMatrix2D(face.center, angle, 1.0)
    matrix[:, 2] += shift
    image = cv2.warpAffine(
        render_face(face), matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    frames = [
        np.clip(image + np.random.default_rng(s).normal(0, 2.0, image.shape), 0, 255).astype(np.uint8)
        for s in noise_seeds
    ]
    return frames, matrix, face


@pytest.fixture(scope="module")
def detector():
    """MTCNN, built (and its graphs traced) once for the module."""
    model = faces.face_detector()
    detect_faces([np.full((SIZE, SIZE, 3), 128, np.uint8)])
    return model


# --- argument errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, received",
    [
        (lambda: check_face_mode("crops"), "Received: 'crops'"),
        (lambda: check_face_mode(None), "Received: None"),
        (lambda: check_face_mode("CROP"), "Received: 'CROP'"),
        (lambda: check_margin(-0.1), "Received: -0.1"),
        (lambda: check_margin(1.5), "Received: 1.5"),
        (lambda: check_margin(float("nan")), "Received: nan"),
        (lambda: clip_face_transform([np.zeros((8, 8, 3), np.uint8)], "square"), "Received: 'square'"),
        (lambda: clip_face_transform([np.zeros((8, 8, 3), np.uint8)], "crop", margin=2), "Received: 2"),
        (
            lambda: clip_face_transform([np.zeros((8, 8, 3), np.uint8)], "crop", detect_frames=0),
            "Received: 0",
        ),
        (
            lambda: clip_face_transform([np.zeros((8, 8, 3), np.uint8)], "crop", min_confidence=1.5),
            "Received: 1.5",
        ),
        (
            lambda: clip_face_transform([np.zeros((8, 8), np.uint8)], "align", name="s1_ne_01"),
            r"s1_ne_01: frame 0 .*Received: shape \(8, 8\)",
        ),
        (
            lambda: clip_face_transform(
                [np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)], "crop", name="s1_po_02"
            ),
            r"s1_po_02: .*one size\. Received: \[\(8, 8\), \(9, 8\)\]",
        ),
        (lambda: clip_face_transform([], "align", name="s2_sur_01"), "s2_sur_01: .*Received: 0 frames"),
        (lambda: apply_face(np.zeros((8, 8, 3), np.uint8), FaceTransform("none"), 0), "Received: 0"),
        (lambda: apply_face(np.zeros((8, 8, 3), np.float32), FaceTransform("none"), 4), "dtype float32"),
        (lambda: FaceTransform("tilt"), "Received: 'tilt'"),
        (lambda: FaceTransform.from_json({"mode": "crop", "angle": 3}), r"Received: \['angle', 'mode'\]"),
        (lambda: crop_matrix((5, 5, 5, 5)), r"Received: \(5, 5, 5, 5\)"),
        (lambda: align_matrix([(3, 4)] * 5), r"Received: \[3\.0, 4\.0\]"),
    ],
)
def test_argument_errors_say_what_was_received(call, received):
    with pytest.raises(ValueError, match=received):
        call()


@pytest.mark.parametrize(
    "call, received",
    [
        (lambda: check_margin("0.2"), "Received: '0.2'"),
        (lambda: check_margin(True), "Received: True"),
        (lambda: check_margin(None), "Received: None"),
        (lambda: FaceTransform.from_json([["mode", "crop"]]), "Received: list"),
        (lambda: apply_face(np.zeros((8, 8, 3), np.uint8), {"mode": "none"}, 4), "Received: dict"),
    ],
)
def test_type_errors_say_what_was_received(call, received):
    with pytest.raises(TypeError, match=received):
        call()


def test_check_margin_accepts_the_documented_range():
    assert [check_margin(m) for m in (0, DEFAULT_MARGIN, 1)] == [0.0, 0.2, 1.0]


# --- geometry without the detector -----------------------------------------------------------


def _detection(landmarks, box=(30.0, 26.0, 98.0, 110.0), confidence=0.99):
    return Detection(box=box, landmarks=tuple(map(tuple, landmarks)), confidence=confidence)


def test_crop_is_a_square_around_the_box_centre_with_the_margin():
    box = (30.0, 26.0, 98.0, 110.0)  # 68 wide, 84 tall: the longer side sets the square
    transform = face_transform("crop", _detection(np.zeros((5, 2)) + (60, 60), box), (128, 160), margin=0.25)
    corners = transform.to_output([(box[0], box[1]), (box[2], box[3]), (64.0, 68.0)], 200)
    side = 200 / (1 + 2 * 0.25)
    np.testing.assert_allclose(corners[2], (100, 100), atol=1e-6)  # box centre -> output centre
    np.testing.assert_allclose(corners[1, 1] - corners[0, 1], side, atol=1e-6)
    np.testing.assert_allclose(corners[1, 0] - corners[0, 0], side * 68 / 84, atol=1e-6)
    matrix = transform.output_matrix(200)
    assert matrix[0, 1] == matrix[1, 0] == 0 and matrix[0, 0] == matrix[1, 1]  # scale + translation only


def test_align_puts_the_eyes_on_the_template_whatever_the_pose():
    rng = np.random.default_rng(0)
    for _ in range(5):
        angle, scale, shift = rng.uniform(-0.5, 0.5), rng.uniform(0.5, 3), rng.uniform(-50, 50, 2)
        rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        template = np.array([(0.35, 0.38), (0.65, 0.38), (0.5, 0.55), (0.38, 0.72), (0.62, 0.72)]) * 100
        landmarks = template @ rotation.T + shift
        transform = face_transform("align", _detection(landmarks), (300, 400))
        eyes = transform.output_landmarks(SIZE)[:2]
        assert np.abs(eyes - TARGETS).max() < 0.01  # landmarks are stored to 0.01 px
        matrix = transform.output_matrix(SIZE)[:, :2]
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(2) * abs(np.linalg.det(matrix)), atol=1e-9)


def test_json_round_trip_hash_and_key():
    landmarks = [(47.1, 56.6), (76.9, 56.1), (62.0, 73.8), (46.7, 86.5), (78.5, 85.5)]
    align = face_transform("align", _detection(landmarks), (128, 128))
    crop = face_transform("crop", _detection(landmarks), (128, 128))
    fallback = face_transform("crop", None, (128, 128))
    for transform in (align, crop, fallback, FaceTransform("none")):
        again = FaceTransform.from_json(json.loads(json.dumps(transform.to_json())))
        assert again == transform and hash(again) == hash(transform) and again.key() == transform.key()
    keys = {align.key(), crop.key(), face_transform("crop", _detection(landmarks), (128, 128), 0.3).key()}
    assert len(keys) == 3 and all(len(k) == 16 for k in keys)
    assert fallback.key() == FaceTransform("none").key()  # same pixels, same key
    assert (fallback.found, fallback.fell_back, FaceTransform("none").fell_back) == (False, True, False)
    assert crop.to_json()["margin"] == DEFAULT_MARGIN and align.to_json()["margin"] is None


def test_combine_takes_the_median_of_the_faces_that_agree():
    base = np.array([(40.0, 50.0), (70.0, 50.0), (55.0, 65.0), (42.0, 80.0), (68.0, 80.0)])
    near = [
        _detection(base + d, (20 + d, 20 + d, 90 + d, 100 + d), c)
        for d, c in ((0.0, 0.95), (1.0, 0.99), (2.0, 0.97))
    ]
    far = _detection(base + 60, (80, 80, 150, 160), 0.9)  # another face: left out
    box, landmarks, confidence, used = combine_detections([near[0], None, far, near[1], near[2]])
    assert (confidence, used) == (0.99, 3)
    np.testing.assert_allclose(landmarks, base + 1.0)
    np.testing.assert_allclose(box, (21, 21, 91, 101))


def test_none_and_fallback_resize_exactly_like_read_frame(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3)).astype(np.uint8)
    path = tmp_path / "image1.png"
    cv2.imwrite(str(path), image[..., ::-1])
    fallback = face_transform("align", None, (48, 64))
    for size in (32, 96):
        expected = read_frame(path, size)
        assert np.array_equal(apply_face(read_frame(path), FaceTransform("none"), size), expected)
        assert np.array_equal(apply_face(read_frame(path), fallback, size), expected)
    assert read_face_frames([path, path], fallback, 32).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match=r"found on 48x64 frames\. Received: shape \(64, 48, 3\)"):
        apply_face(np.zeros((64, 48, 3), np.uint8), fallback, 32)


def test_apply_face_warps_to_the_matrix():
    """A bright dot at a known source point lands where the matrix says, shrinking or not."""
    image = np.zeros((300, 400, 3), np.uint8)
    cv2.circle(image, (250, 120), 6, (255, 255, 255), -1)  # centre (250.5, 120.5) in continuous pixels
    landmarks = [(200.0, 100.0), (260.0, 110.0), (230.0, 140.0), (205.0, 170.0), (255.0, 175.0)]
    transform = face_transform("align", _detection(landmarks), (300, 400))
    for size in (64, 224):  # 64: a 2.7x shrink goes through INTER_AREA first
        out = apply_face(image, transform, size).astype(float)[..., 0]
        ys, xs = np.mgrid[0:size, 0:size] + 0.5
        centroid = np.array([(xs * out).sum(), (ys * out).sum()]) / out.sum()
        np.testing.assert_allclose(centroid, transform.to_output([(250.5, 120.5)], size)[0], atol=0.3)


def test_landmark_mask_falls_on_the_face_and_its_moving_parts():
    face = sample_identity(np.random.default_rng(0), SIZE)
    points = true_landmarks(face)
    mask = landmark_mask(points, (SIZE, SIZE))
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    (cx, cy), (rx, ry) = face.center, face.radii
    head = ((xs - 0.5 - cx) / rx) ** 2 + ((ys - 0.5 - cy) / ry) ** 2 <= 1
    assert 0.1 < mask.mean() < 0.4
    assert (mask & head).sum() / mask.sum() > 0.97
    for x, y in points:
        assert mask[int(y), int(x)]
    moving = np.zeros((SIZE, SIZE), bool)
    for units in CLASS_ACTION_UNITS.values():
        moving |= displacement_field(face, units)[2] >= 0.5
    assert (moving & mask).sum() / moving.sum() > 0.8  # the mask covers where the action units move
    # The regions turn with the face: mask of rotated landmarks ~ rotated mask.
    turn = cv2.getRotationMatrix2D((64.0, 64.0), 15, 1.0)
    turned = landmark_mask((points - 0.5) @ turn[:, :2].T + turn[:, 2] + 0.5, (SIZE, SIZE))
    warped = cv2.warpAffine(mask.astype(np.uint8), turn, (SIZE, SIZE), flags=cv2.INTER_NEAREST) > 0
    assert (turned & warped).sum() / (turned | warped).sum() > 0.9
    with pytest.raises(ValueError, match="no landmarks"):
        face_focus_mask(face_transform("align", None, (SIZE, SIZE)), SIZE)


# --- with MTCNN ------------------------------------------------------------------------------


def test_mtcnn_finds_the_synthetic_face_and_its_landmarks(detector):
    frames, matrix, face = scene(seed=0)
    found = detect_faces(frames[:1])[0]
    assert found is not None and found.confidence >= 0.9
    error = np.linalg.norm(np.array(found.landmarks) - true_landmarks(face, matrix), axis=1)
    assert error[:2].max() < 2.5 and error[3:].max() < 3.0  # eyes and mouth corners, input pixels
    box = found.box
    assert box[0] < face.eye_center(-1)[0] < face.eye_center(1)[0] < box[2]
    assert box[1] < face.eye_center(-1)[1] < face.mouth_corner(1)[1] < box[3]


def test_align_puts_the_eyes_within_2_px_of_the_template(detector):
    frames, matrix, face = scene(seed=0, angle=10.0, shift=(6.0, -4.0))
    transform = clip_face_transform(frames, "align", name="s1_po_01")
    assert transform.found and transform.detections == 3 and transform.confidence >= 0.9
    aligned = apply_face(frames[0], transform, SIZE)
    assert aligned.shape == (SIZE, SIZE, 3) and aligned.dtype == np.uint8
    again = detect_faces([aligned])[0]  # detected afresh on the output
    assert np.linalg.norm(np.array(again.landmarks[:2]) - TARGETS, axis=1).max() <= 2.0
    eyes = transform.to_output(true_landmarks(face, matrix)[:2], SIZE)  # the drawn eyes
    assert np.linalg.norm(eyes - TARGETS, axis=1).max() <= 2.0
    tilt = math.degrees(math.atan2(eyes[1, 1] - eyes[0, 1], eyes[1, 0] - eyes[0, 0]))
    assert abs(tilt) < 2.0  # the 10 degree turn is undone
    mask = face_focus_mask(transform, SIZE)
    for x, y in eyes:
        assert mask[int(y), int(x)]


def test_crop_centres_the_face_in_a_square_with_the_margin(detector):
    frames, matrix, face = scene(seed=0, shift=(12.0, -8.0))
    transform = clip_face_transform(frames, "crop", name="s1_ne_01")
    assert transform.found and transform.margin == DEFAULT_MARGIN
    x0, y0, x1, y1 = transform.box
    mapped = transform.to_output([(x0, y0), (x1, y1)], SIZE)
    np.testing.assert_allclose(mapped.mean(axis=0), (SIZE / 2, SIZE / 2), atol=1e-6)
    np.testing.assert_allclose((mapped[1] - mapped[0]).max(), SIZE / (1 + 2 * DEFAULT_MARGIN), atol=1e-6)
    cropped = apply_face(frames[0], transform, SIZE)
    again = detect_faces([cropped])[0]
    assert np.abs(np.array(again.centre) - SIZE / 2).max() < 3.0
    assert abs(again.side / (SIZE / (1 + 2 * DEFAULT_MARGIN)) - 1) < 0.15
    eyes = transform.to_output(true_landmarks(face, matrix)[:2], SIZE)  # the drawn eyes, moved by the shift
    assert abs(eyes[:, 0].mean() - SIZE / 2) < 3.0 and abs(eyes[0, 1] - eyes[1, 1]) < 1e-6


@pytest.mark.parametrize("kind", ["grey", "noise"])
def test_a_clip_without_a_face_falls_back_to_the_whole_frame(detector, kind, tmp_path):
    if kind == "grey":
        image = np.full((96, 128, 3), 127, np.uint8)
    else:
        image = np.random.default_rng(0).integers(0, 256, (96, 128, 3)).astype(np.uint8)
    folder = tmp_path / "s3_nm_01"
    folder.mkdir()
    paths = [folder / f"image{n}.png" for n in (10, 11, 12, 13)]
    for path in paths:
        cv2.imwrite(str(path), image)
    with pytest.warns(
        FaceNotFoundWarning,
        match=r"s3_nm_01: MTCNN found no face .* first 3 frame\(s\); "
        r"--face align falls back to the whole frame, resized",
    ):
        transform = clip_face_transform(paths, "align")
    assert (transform.found, transform.fell_back, transform.frame_size) == (False, True, (96, 128))
    assert np.array_equal(apply_face(read_frame(paths[0]), transform, 64), read_frame(paths[0], 64))


def test_the_transform_is_deterministic_and_the_same_from_files(detector, tmp_path):
    frames, _, _ = scene(seed=5, angle=-8.0, shift=(-3.0, 2.0))
    paths = []
    for n, frame in enumerate(frames):
        paths.append(tmp_path / f"img{n}.png")
        cv2.imwrite(str(paths[-1]), frame[..., ::-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FaceNotFoundWarning)
        first = clip_face_transform(frames, "align")
        second = clip_face_transform(frames, "align")
        from_files = clip_face_transform(paths, "align")
    assert first.found and first == second and first.key() == second.key() == from_files.key()
    assert clip_face_transform(paths, "none") == FaceTransform("none")
