import numpy as np
import pytest

from mer_keras.datasets.frames import (
    FrameReadError,
    frame_number,
    is_image,
    list_frames,
    read_frame,
    read_frames,
)

from conftest import write_frames


@pytest.mark.parametrize(
    "name, expected",
    [("image559700.bmp", 559700), ("img12.jpg", 12), ("006_05562.jpg", 5562), ("reg_image7.bmp", 7)],
)
def test_frame_number(name, expected):
    assert frame_number(name) == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a1.bmp", True),
        ("A1.JPG", True),
        ("x.png", True),
        ("Thumbs.db", False),
        (".DS_Store", False),
        ("._image1.bmp", False),
        ("notes.txt", False),
    ],
)
def test_is_image(name, expected):
    assert is_image(name) is expected


def test_list_frames_sorts_numerically_and_skips_junk(tmp_path):
    write_frames(tmp_path, [1000, 999, 2, 10])
    (tmp_path / "Thumbs.db").write_bytes(b"junk")
    names = [p.rsplit("/", 1)[1] for p in list_frames(tmp_path)]
    assert names == ["image2.bmp", "image10.bmp", "image999.bmp", "image1000.bmp"]


def test_read_frame_rgb_and_size(tmp_path):
    import cv2

    bgr = np.zeros((6, 8, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "f1.png"), bgr)
    rgb = read_frame(tmp_path / "f1.png")
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 2] == 200).all() and (rgb[..., 0] == 0).all()
    assert read_frame(tmp_path / "f1.png", 4).shape == (4, 4, 3)
    assert read_frame(tmp_path / "f1.png", (3, 5)).shape == (3, 5, 3)
    assert read_frames([tmp_path / "f1.png"] * 2, 4).shape == (2, 4, 4, 3)


def test_grey_frames_become_three_channels(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "g1.jpg"), np.full((5, 5), 90, np.uint8))
    image = read_frame(tmp_path / "g1.jpg")
    assert image.shape == (5, 5, 3)
    assert np.abs(image.astype(int) - 90).max() <= 2


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"BM\x00\x01truncated"])
def test_corrupt_frame_names_the_file(tmp_path, content):
    path = tmp_path / "image12.bmp"
    path.write_bytes(content)
    with pytest.raises(FrameReadError, match="image12.bmp: cannot decode"):
        read_frame(path)


def test_missing_frame_names_the_file(tmp_path):
    with pytest.raises(FrameReadError, match="image3.bmp: frame file not found"):
        read_frame(tmp_path / "image3.bmp")


def _image_bytes(ext, shape=(64, 80, 3)):
    import cv2

    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    return cv2.imencode(ext, image)[1].tobytes()


FRAME_PROBLEMS = [
    # (file name, its bytes, the problem frame_problem names; None: it reads whole)
    ("image1.bmp", lambda: _image_bytes(".bmp"), None),
    ("image2.jpg", lambda: _image_bytes(".jpg"), None),
    ("image3.jpg", lambda: _image_bytes(".jpg") + b"\x00" * 16, None),  # padding after the end marker
    ("image4.bmp", lambda: b"", "zero-byte file"),
    ("image5.bmp", lambda: b"frame 5 was lost in the copy\n", "cannot decode the image"),
    ("image6.bmp", lambda: _image_bytes(".bmp")[:7000], "cannot decode the image"),
    ("image7.png", lambda: _image_bytes(".png")[:5000], "cannot decode the image"),
    # OpenCV decodes this one (grey rows where data is missing): only the end marker tells
    ("image8.jpg", lambda: _image_bytes(".jpg")[:4000], "truncated JPEG (no end-of-image marker)"),
]


@pytest.mark.parametrize("name, content, problem", FRAME_PROBLEMS, ids=[case[0] for case in FRAME_PROBLEMS])
def test_frame_problem_names_what_is_wrong(tmp_path, name, content, problem):
    from mer_keras.datasets.frames import frame_problem

    path = tmp_path / name
    path.write_bytes(content())
    found = frame_problem(path)
    assert found is None if problem is None else found.startswith(problem)


def test_frame_problem_of_a_broken_link(tmp_path):
    import os

    from mer_keras.datasets.frames import frame_problem

    os.symlink("/nonexistent/image9.bmp", tmp_path / "image9.bmp")
    assert frame_problem(tmp_path / "image9.bmp") == "broken symbolic link to /nonexistent/image9.bmp"
    assert frame_problem(tmp_path / "image10.bmp") == "frame file not found"
