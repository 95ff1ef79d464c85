"""The flow front end: TV-L1 accuracy on a warped face, strain, resizing, onset/apex rules, the cache."""

import json
import os

import cv2
import numpy as np
import pytest

from mer_keras.datasets import Clip, DatasetError
from mer_keras.datasets.synthetic_faces import displacement_field, render_face, sample_identity
from mer_keras.flow import (
    CHANNELS,
    ApexSearch,
    TVL1Params,
    choose_onset_apex,
    estimate_apex,
    flow_images,
    flow_images_of_files,
    flow_inputs,
    middle_frame,
    motion_score,
    optical_strain,
    resize_flow,
    tvl1_flow,
)
from mer_keras.flow import cache as flow_cache

SIZE = 64


@pytest.fixture(scope="module")
def face():
    identity = sample_identity(np.random.default_rng(0), SIZE)
    return identity, np.clip(np.rint(render_face(identity)), 0, 255).astype(np.uint8)


def _inside_face(identity, shrink=0.9):
    """The head ellipse shrunk to 90 %: face and hairline, no background."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    (cx, cy), (rx, ry) = identity.center, identity.radii
    return ((xs - cx) / (rx * shrink)) ** 2 + ((ys - cy) / (ry * shrink)) ** 2 <= 1


def _warp_forward(image, field):
    """``image`` with every pixel p moved to p + field(p) (cv2 flow convention), and that true flow.

    ``cv2.remap`` needs the backward map: output pixel q samples q - field(p) where p + field(p) = q,
    found by fixed-point iteration (the field is smooth and small, so it converges in a few steps).
    """
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    px, py = xs.copy(), ys.copy()
    for _ in range(20):
        dx, dy = field(px, py)
        px, py = xs - dx, ys - dy
    warped = cv2.remap(
        image, px.astype(np.float32), py.astype(np.float32), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    return warped, np.stack(field(xs, ys), axis=-1)


def _sinusoid(x, y):
    """u in 0.5..1.5 px, v in 0..1 px: one period across the 64-px frame."""
    return 1.0 + 0.5 * np.sin(2 * np.pi * y / SIZE), 0.5 + 0.5 * np.cos(2 * np.pi * x / SIZE)


def _translation(x, y):
    return np.full_like(x, 1.5), np.full_like(y, -1.0)


def _epe(flow, truth, mask):
    return float(np.hypot(*(flow - truth).transpose(2, 0, 1))[mask].mean())


def test_tvl1_recovers_a_smooth_warp_of_the_face(face):
    identity, image = face
    warped, truth = _warp_forward(image, _sinusoid)
    flow = tvl1_flow(image, warped)
    assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32
    # Measured 0.097 px mean endpoint error inside the face (0.10-0.13 for seeds 1-3) for a
    # 0.5-1.5 px field, OpenCV's default TV-L1 parameters; the bound leaves a 2.5x margin.
    assert _epe(flow, truth, _inside_face(identity)) < 0.25
    # the sign convention: (u, v) at p in the first frame points to where p went in the second
    assert flow[..., 0][_inside_face(identity)].mean() == pytest.approx(1.0, abs=0.15)
    reversed_flow = tvl1_flow(warped, image)
    assert reversed_flow[..., 0][_inside_face(identity)].mean() == pytest.approx(-1.0, abs=0.15)


def test_translation_flow_is_accurate_and_its_strain_is_near_zero(face):
    identity, image = face
    moved, truth = _warp_forward(image, _translation)
    mask = _inside_face(identity)
    flow = tvl1_flow(image, moved)
    assert _epe(flow, truth, mask) < 0.05  # measured 0.010 px
    strain = optical_strain(flow)
    # Measured mean strain 0.0064 inside the face for this translation, against 0.028 for the
    # sinusoidal field above (whose true strain reaches 0.07): bound 0.02.
    assert strain[mask].mean() < 0.02
    sinusoid_strain = optical_strain(tvl1_flow(image, _warp_forward(image, _sinusoid)[0]))
    assert sinusoid_strain[mask].mean() > 2 * strain[mask].mean()


def test_flow_images_are_u_v_strain_in_pixels_of_the_resized_image(face):
    _, image = face
    moved, _ = _warp_forward(image, _translation)
    images = flow_images(image, moved, 28)
    assert images.shape == (28, 28, 3) and images.dtype == np.float32 and CHANNELS == ("u", "v", "strain")
    inner = images[4:-4, 4:-4]
    assert inner[..., 0].mean() == pytest.approx(1.5 * 28 / SIZE, abs=0.03)  # measured 0.656 (true 0.656)
    assert inner[..., 1].mean() == pytest.approx(-1.0 * 28 / SIZE, abs=0.03)  # measured -0.435
    assert inner[..., 2].mean() < 0.02 and (images[..., 2] >= 0).all()  # measured 0.0065


def test_identical_frames_give_zeros_not_nan(face):
    _, image = face
    for first in (image, np.full((SIZE, SIZE), 128, np.uint8)):  # textured and textureless
        images = flow_images(first, first.copy(), 28)
        assert np.isfinite(images).all() and not images.any()


def test_strain_formula_on_linear_fields():
    ys, xs = np.mgrid[0:20, 0:30].astype(np.float64)
    stretch = np.stack([0.02 * xs, -0.03 * ys], axis=-1)  # u_x = 0.02, v_y = -0.03
    np.testing.assert_allclose(optical_strain(stretch), np.hypot(0.02, 0.03), rtol=1e-6)
    shear = np.stack([0.04 * ys, 0.0 * xs], axis=-1)  # u_y = 0.04: sqrt(1/2 * 0.04^2)
    np.testing.assert_allclose(optical_strain(shear), np.sqrt(0.5) * 0.04, rtol=1e-6)
    rotation = np.stack([-0.01 * ys, 0.01 * xs], axis=-1)  # u_y = -v_x: a rotation does not strain
    np.testing.assert_allclose(optical_strain(rotation), 0.0, atol=1e-7)


def test_resize_flow_rescales_u_by_width_and_v_by_height():
    flow = np.empty((40, 60, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, 2.0
    resized = resize_flow(flow, 28)
    assert resized.shape == (28, 28, 2)
    np.testing.assert_allclose(resized[..., 0], 3.0 * 28 / 60, rtol=1e-5)
    np.testing.assert_allclose(resized[..., 1], 2.0 * 28 / 40, rtol=1e-5)
    np.testing.assert_allclose(resize_flow(flow, (80, 120))[..., 0], 6.0, rtol=1e-5)  # enlarging too


def test_crop_box_and_bad_arguments(face, tmp_path):
    _, image = face
    moved, _ = _warp_forward(image, _translation)
    for name, frame in (("a.png", image), ("b.png", moved)):
        cv2.imwrite(str(tmp_path / name), frame[..., ::-1])
    cropped = flow_images_of_files(tmp_path / "a.png", tmp_path / "b.png", 16, transform=(12, 10, 40, 44))
    assert cropped.shape == (16, 16, 3)
    assert cropped[3:-3, 3:-3, 0].mean() == pytest.approx(1.5 * 16 / 40, abs=0.05)
    assert cropped[3:-3, 3:-3, 1].mean() == pytest.approx(-1.0 * 16 / 44, abs=0.05)
    with pytest.raises(ValueError, match=r"inside the 64x64 frame.*Received: transform=\(50, 0, 20, 20\)"):
        flow_images_of_files(tmp_path / "a.png", tmp_path / "b.png", transform=(50, 0, 20, 20))
    with pytest.raises(ValueError, match=r"Received: lambda_=-1"):
        TVL1Params(lambda_=-1)
    with pytest.raises(ValueError, match=r"Received: size=0"):
        flow_images(image, image, 0)
    with pytest.raises(ValueError, match=r"same size. Received"):
        tvl1_flow(image, image[:32])


# --- onset and apex ------------------------------------------------------------------------------

PEAK = 6


def _expression_clip(tmp_path, face, name="s1_po_01", n_frames=12, peak=PEAK, **coded):
    """A clip whose AU12 displacement (x3, about 1.5 px at 64 px) rises to ``peak`` and falls back,
    under a constant 0.4 px head shift from frame 1 on (which the median removal must ignore)."""
    identity, image = face
    dx, dy, _ = displacement_field(identity, ("AU12",))
    envelope = np.interp(np.arange(n_frames), [0, peak, n_frames - 1], [0.0, 1.0, 0.1])
    folder = tmp_path / name
    folder.mkdir()
    paths = []
    for t in range(n_frames):
        shift = 0.4 if t else 0.0
        warped, _ = _warp_forward(
            image,
            lambda x, y, t=t, shift=shift: (
                3 * envelope[t] * _sample(dx, x, y) + shift,
                3 * envelope[t] * _sample(dy, x, y),
            ),
        )
        path = folder / f"img{t + 1}.png"
        cv2.imwrite(str(path), warped[..., ::-1])
        paths.append(str(path))
    return Clip("casme2", "sub01", name, "positive", tuple(paths), 200.0, **coded)


def _sample(field, x, y):
    return cv2.remap(
        field.astype(np.float32),
        x.astype(np.float32),
        y.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float64)


@pytest.fixture
def expression_clip(tmp_path, face):
    return _expression_clip(tmp_path, face)


def test_flow_apex_finds_the_known_peak(expression_clip):
    assert estimate_apex(expression_clip) == PEAK
    assert estimate_apex(expression_clip, search=ApexSearch(stride=4)) == PEAK  # 1, 5, 9, 11, then 2-8
    choice = choose_onset_apex(expression_clip)
    assert (choice.onset, choice.apex, choice.source, choice.issue) == (0, PEAK, "flow", None)
    middle = choose_onset_apex(expression_clip, estimate="middle")
    assert (middle.apex, middle.source) == (6, "middle")
    assert middle_frame(0, 12) == 6 and middle_frame(3, 5) == 4 and middle_frame(0, 2) == 1


def test_motion_score_ignores_a_uniform_shift():
    shift = np.full((20, 20, 2), 0.7, np.float32)
    assert motion_score(shift) == 0.0 and motion_score(shift, percentile=None) == 0.0
    local = shift.copy()
    local[4:10, 4:10] += 1.0  # 36 of 400 pixels (9 %) move by (1, 1): the 95th percentile sees them
    assert motion_score(local) == pytest.approx(np.sqrt(2.0), rel=1e-5)
    assert motion_score(local, percentile=None) == pytest.approx(0.09 * np.sqrt(2.0), rel=1e-5)


def test_coded_apex_is_used_and_sheet_quirks_are_reported(tmp_path, face):
    clip = _expression_clip(tmp_path, face, onset=1, apex=4)
    assert choose_onset_apex(clip).as_dict() == {
        "clip": "casme2/sub01/s1_po_01",
        "onset": 1,
        "apex": 4,
        "source": "coded",
        "issue": None,
    }
    assert choose_onset_apex(clip, use_coded_apex=False).apex == PEAK
    cases = {
        "onset_after_apex": (
            {"onset": 8, "apex": 3},
            8,
            "coded apex 3 is not after the onset 8: apex estimated",
        ),
        "apex_outside": ({"onset": 0, "apex": 40}, 0, "coded apex 40 is outside the clip's frames 0..11"),
        "onset_outside": ({"onset": 11, "apex": None}, 0, "coded onset 11 is not a frame before the last"),
    }
    for name, (coded, onset, issue) in cases.items():
        report = []
        choice = choose_onset_apex(
            _expression_clip(tmp_path, face, name=name, **coded), estimate="middle", report=report
        )
        assert choice.onset == onset and choice.source == "middle" and choice.apex == middle_frame(onset, 12)
        assert issue in choice.issue and report == [{"clip": f"casme2/sub01/{name}", "issue": choice.issue}]
    with pytest.raises(ValueError, match=r"Received: estimate='peak'"):
        choose_onset_apex(clip, estimate="peak")


def test_a_one_frame_clip_is_refused_naming_it(tmp_path, expression_clip):
    single = Clip("samm", "006", "006_1_2", "anger", expression_clip.frames[:1], 200.0)
    for call in (
        lambda: choose_onset_apex(single),
        lambda: estimate_apex(single),
        lambda: flow_inputs([expression_clip, single], cache_dir=False, progress=False),
    ):
        with pytest.raises(DatasetError, match=r"Clip samm/006/006_1_2 has 1 frame.*Received: frames="):
            call()


# --- cache ---------------------------------------------------------------------------------------


def test_flow_inputs_are_cached_reused_and_invalidated_by_a_changed_frame(tmp_path, face, monkeypatch):
    clips = [
        _expression_clip(tmp_path, face, name="a", n_frames=8, peak=4),
        _expression_clip(tmp_path, face, name="b", n_frames=6, peak=3, onset=0, apex=3),
    ]
    cache = tmp_path / "cache"
    calls = []
    compute = flow_cache.flow_images_of_files
    monkeypatch.setattr(
        flow_cache, "flow_images_of_files", lambda *a, **k: calls.append(a[0]) or compute(*a, **k)
    )

    report = []
    first = flow_inputs(clips, cache_dir=cache, progress=False, report=report)
    assert first.shape == (2, 28, 28, 3) and first.dtype == np.float32 and len(calls) == 2
    assert [(r["clip"], r["onset"], r["apex"], r["source"], r["cached"]) for r in report] == [
        ("casme2/sub01/a", 0, 4, "flow", False),
        ("casme2/sub01/b", 0, 3, "coded", False),
    ]
    assert len(list(cache.glob("*.npy"))) == 2 and len(list(cache.glob("*.json"))) == 2
    record = json.loads(next(cache.glob("*.json")).read_text())
    assert record["description"]["channels"] == ["u", "v", "strain"] and "choice" in record

    report = []
    again = flow_inputs(clips, cache_dir=cache, progress=False, report=report)
    np.testing.assert_array_equal(again, first)
    assert len(calls) == 2 and [r["cached"] for r in report] == [True, True]
    uncached = flow_inputs(clips, cache_dir=False, progress=False)
    np.testing.assert_array_equal(uncached, first)
    assert len(calls) == 4

    frame = clips[1].frames[2]  # not the onset or the apex: the key still covers every frame
    stat = os.stat(frame)
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    report = []
    flow_inputs(clips, cache_dir=cache, progress=False, report=report)
    assert [r["cached"] for r in report] == [True, False] and len(calls) == 5

    report = []
    other = flow_inputs(clips, size=16, cache_dir=cache, progress=False, report=report)  # a new key
    assert other.shape == (2, 16, 16, 3) and [r["cached"] for r in report] == [False, False]
    assert len(list(cache.glob("*.npy"))) == 5


def test_a_damaged_cache_entry_is_recomputed(tmp_path, face):
    clips = [_expression_clip(tmp_path, face, name="a", n_frames=5, peak=2, onset=0, apex=2)]
    cache = tmp_path / "cache"
    first = flow_inputs(clips, cache_dir=cache, progress=False)
    entry = next(cache.glob("*.npy"))
    entry.write_bytes(b"not an array")
    report = []
    np.testing.assert_array_equal(flow_inputs(clips, cache_dir=cache, progress=False, report=report), first)
    assert report[0]["cached"] is False and np.load(entry).shape == (28, 28, 3)


def test_cache_takes_crop_boxes_by_clip_and_refuses_callables(tmp_path, face):
    clips = [_expression_clip(tmp_path, face, name="a", n_frames=4, peak=2, onset=0, apex=2)]
    boxed = flow_inputs(
        clips, cache_dir=tmp_path / "c", progress=False, transforms={clips[0].key: (8, 8, 48, 48)}
    )
    whole = flow_inputs(clips, cache_dir=tmp_path / "c", progress=False)
    assert boxed.shape == whole.shape and not np.array_equal(boxed, whole)
    assert len(list((tmp_path / "c").glob("*.npy"))) == 2
    with pytest.raises(ValueError, match=r"sub01/a: the flow cache takes crop boxes.*Received: <function"):
        flow_inputs(clips, cache_dir=tmp_path / "c", progress=False, transforms={clips[0].key: lambda g: g})


def test_default_cache_folder_is_under_the_user_cache(tmp_path, monkeypatch, face):
    monkeypatch.setenv("MER_KERAS_CACHE", str(tmp_path / "user"))
    clips = [_expression_clip(tmp_path, face, name="a", n_frames=3, peak=1, onset=0, apex=1)]
    flow_inputs(clips, progress=False)
    assert len(list((tmp_path / "user" / "flow").glob("*.npy"))) == 1


# --- benchmark -----------------------------------------------------------------------------------


def test_apex_benchmark_ends_with_its_json_line(tmp_path, capsys):
    from benchmarks import apex
    from mer_keras.datasets.synthetic import make_synthetic_smic

    root = make_synthetic_smic(tmp_path / "data", subjects=1, size=48, clips_scale=0.5, progress=False)
    manifest = json.loads((root / "SMIC_all_raw" / "synthetic_manifest.json").read_text())["clips"]
    assert apex.main(["--root", str(root), "--limit", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["clips"] == 3
    assert result["non_micro_left_out"] == sum(c["label"] == "non_micro" for c in manifest)
    for name in ("flow", "flow_mean", "middle"):
        assert 0 <= result[f"{name}_within_tolerance"] <= 1 and result[f"{name}_mean_abs_error_frames"] >= 0
    assert result["tvl1_ms_per_clip"] > 0 and result["settings"]["frame_shape"] == [48, 48]
    with pytest.raises(SystemExit):
        apex.main(["--root", str(root), "--tolerance", "-1"])
