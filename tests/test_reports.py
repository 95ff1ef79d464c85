import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from mer_keras import files, reports

from test_metrics import summarize_predictions

CLASSES = ["negative", "positive", "surprise"]


def png_size(path):
    """(width, height) from the PNG header."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def summary():
    folds = [
        (["negative", "negative", "positive", "surprise"], ["negative", "positive", "positive", "surprise"]),
        (["negative", "positive", "positive"], ["negative", "negative", "positive"]),
    ]
    return summarize_predictions(folds, CLASSES)


def test_write_json_converts_numpy_and_keeps_key_order(tmp_path):
    path = tmp_path / "run" / "fold_1" / "metrics.json"  # parents created
    obj = {
        "z": np.float32(0.5),
        "a": np.arange(3),
        "m": {np.int64(2): np.bool_(True)},
        "nan": float("nan"),
        "p": tmp_path,
        "t": (1, 2),
    }
    files.write_json(path, obj)
    text = path.read_text()
    assert list(json.loads(text)) == ["z", "a", "m", "nan", "p", "t"]
    assert files.read_json(path) == {
        "z": 0.5,
        "a": [0, 1, 2],
        "m": {"2": True},
        "nan": None,
        "p": str(tmp_path),
        "t": [1, 2],
    }
    assert text.startswith('{\n  "z"')  # indent=2
    assert leftovers(path.parent) == []


@pytest.mark.parametrize("bad", [{"ok": 1, "bad": object()}, {"s": {1, 2}}])
def test_failed_json_write_leaves_old_file_intact(tmp_path, bad):
    path = tmp_path / "results.json"
    files.write_json(path, {"old": 1})
    with pytest.raises(TypeError, match="Cannot write obj\\[.*\\] to JSON. Received"):
        files.write_json(path, bad)
    assert files.read_json(path) == {"old": 1}
    assert leftovers(tmp_path) == []


def test_failure_during_replace_removes_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "results.md"
    files.write_text(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        files.write_text(path, "new")
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_written_file_respects_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = files.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_read_json_names_a_malformed_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        files.read_json(path)


@pytest.mark.parametrize("k, width, height", [(3, 650, 550), (5, 870, 770)])
def test_plot_confusion_writes_png_of_expected_size(tmp_path, k, width, height):
    import matplotlib.pyplot as plt

    counts = np.arange(k * k).reshape(k, k)
    counts[-1] = 0  # a class with no clips must not break the % (shown as a dash)
    path = reports.plot_confusion(tmp_path / "confusion.png", counts, [f"c{i}" for i in range(k)], "Exp-II")
    w, h = png_size(path)
    assert abs(w - width) <= 2 and abs(h - height) <= 2
    assert path.stat().st_size > 5000
    assert plt.get_fignums() == []  # no pyplot figures left open


def test_plot_confusion_rejects_wrong_shape_and_keeps_old_png(tmp_path):
    path = reports.plot_confusion(tmp_path / "confusion.png", [[1, 0], [0, 1]], ["a", "b"])
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"Received: shape \(2, 2\)"):
        reports.plot_confusion(path, [[1, 0], [0, 1]], ["a", "b", "c"])
    with pytest.raises(ValueError, match="counts >= 0"):
        reports.plot_confusion(path, [[1, -1], [0, 1]], ["a", "b"])
    assert path.read_bytes() == before


def test_plot_curves_tolerates_missing_keys(tmp_path):
    histories = {
        "fold_1": {"loss": [1.0, 0.8, 0.5], "val_loss": [1.1, 0.9, 0.9], "accuracy": [0.3, 0.5, 0.7]},
        "fold_2": {"loss": [1.2, float("nan")], "val_accuracy": [0.2, 0.4], "learning_rate": [1e-3] * 2},
        "fold_3": {},
    }
    path = reports.plot_curves(tmp_path / "curves.png", histories)
    assert png_size(path) == (1100, 450)
    assert path.stat().st_size > 10000


@pytest.mark.parametrize(
    "histories, match",
    [
        ({}, "non-empty dict"),
        ({"f": {"loss": ["high"]}}, r"'f'\['loss'\] must be numbers"),
        ({"f": [0.1]}, "must be a dict of lists"),
    ],
)
def test_plot_curves_errors(tmp_path, histories, match):
    with pytest.raises(ValueError, match=match):
        reports.plot_curves(tmp_path / "curves.png", histories)
    assert not (tmp_path / "curves.png").exists()


def test_results_markdown_contains_our_and_the_papers_numbers(summary):
    md = reports.results_markdown(
        summary,
        experiment="Exp-II",
        pattern="3-Layer-LSTM",
        n=13,
        data_number=1234,
        method_name="VGGFace2+LSTM",
        dataset="synthetic",
        protocol="2-fold subject-wise CV",
    )
    acc, uf1, uar = (f"{100 * summary[k]:.2f} %" for k in ("accuracy", "uf1", "uar"))
    assert acc == "71.43 %"  # 5 of 7 clips right
    assert f"| 3-Layer-LSTM | 13 | 1234 | {acc} |" in md
    assert f"| VGGFace2+LSTM | {acc} | {uf1} | {uar} | this run, pooled |" in md
    mean, std = summary["fold_mean"]["accuracy"], summary["fold_std"]["accuracy"]
    assert f"{100 * mean:.2f} ± {100 * std:.2f} %" in md
    for paper in ("30.20 %", "57.58 %", "60.60 %", "59.09 %", "60.06 %", "11276"):
        assert paper in md
    assert "inconsistent" in md
    assert "| positive | 66.67 % | 66.67 % | 66.67 % | 3 |" in md  # per class, pooled
    assert "| negative | 2 | 1 | 0 |" in md  # confusion row
    assert md.count("| 2 | 3 |") == 1  # per-fold row: fold 2, 3 clips


def test_results_markdown_without_f_n_and_bad_inputs(summary):
    md = reports.results_markdown(
        summary,
        experiment="Exp-I",
        pattern="VGGFace2",
        n=None,
        data_number=None,
        method_name="VGGFace2",
        dataset="d",
        protocol="p",
    )
    assert "| VGGFace2 | — | — |" in md
    with pytest.raises(ValueError, match=r"lacks \['fold_mean'"):
        reports.results_markdown(
            {k: v for k, v in summary.items() if k != "fold_mean"},
            experiment="e",
            pattern="p",
            n=1,
            data_number=1,
            method_name="m",
            dataset="d",
            protocol="p",
        )


def test_results_text(summary):
    text = reports.results_text(summary)
    assert text.splitlines()[0].startswith("Pooled over 2 folds, 7 clips: accuracy 71.43 %")
    assert "ddof=0" in text and "negative" in text and len(text.splitlines()) == 3
