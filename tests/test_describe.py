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


def test_check_smic_hs_counts_official_vs_found(smic_root, capsys):
    assert main(["describe", str(smic_root), "--check", "smic-hs"]) == 1
    out = capsys.readouterr().out
    assert "clips: 6" in out  # describe shows the SMIC-HS micro clips (no non_micro), as the check reads them
    for line in ("negative           70      1    NO", "positive           51      2    NO",
                 "surprise           43      2    NO", "total clips       164      5    NO",
                 "subjects           16      3    NO"):
        assert line in out
    assert "s1       3/1      2/1      1/0   6/2    NO" in out.splitlines()
    assert "  missing        smic/s1/s1_ne_02: listed as negative (line 148), not on disk" in out
    assert "  extra          smic/s2/s2_ne_01: labelled 'negative' (negative)" in out
    assert "coding sheet" not in out  # SMIC has none


def test_check_json_and_a_check_that_contradicts_dataset(smic_root, capsys):
    assert main(["describe", str(smic_root), "--check", "smic-hs", "--json"]) == 1
    check = json.loads(capsys.readouterr().out)["check"]
    assert (check["check"], check["equal"], check["sheets"]) == ("smic-hs", False, [])
    assert check["totals"]["clips"] == {"official": 164, "found": 5}
    assert [d["clip"] for d in check["not_listed"]] == ["smic/s2/s2_ne_01"]
    assert main(["describe", str(smic_root), "--check", "smic-hs", "--dataset", "casme2"]) == 2
    assert "Received: --dataset casme2" in capsys.readouterr().err
