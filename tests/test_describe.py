import json

from mer_keras.datasets.__main__ import main


def test_describe_json(smic_root, capsys):
    assert main(["describe", str(smic_root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 8 and summary["subjects"] == 3
    assert summary["classes"]["non_micro"] == {"clips": 2, "frames": 25}
    assert summary["frames"]["min"] == 9 and summary["frames"]["max"] == 20
    assert summary["per_subject"]["s2"] == {"negative": 1, "non_micro": 0, "positive": 0, "surprise": 1}


def test_describe_text(smic_root, capsys):
    assert main(["describe", str(smic_root)]) == 0
    out = capsys.readouterr().out
    assert "clips: 8" in out and "total" in out and "min 9" in out


def test_describe_bad_root(tmp_path, capsys):
    assert main(["describe", str(tmp_path / "missing")]) == 2
    assert "missing: dataset folder not found" in capsys.readouterr().err
