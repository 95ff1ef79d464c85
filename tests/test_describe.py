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
    for line in (
        "negative           70      1    NO",
        "positive           51      2    NO",
        "surprise           43      2    NO",
        "total clips       164      5    NO",
        "subjects           16      3    NO",
    ):
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


def test_check_frames_lists_unreadable_frames_and_exits_1(smic_root, capsys):
    assert main(["describe", str(smic_root), "--check-frames"]) == 0
    captured = capsys.readouterr()
    assert "frames decoded: 110, unreadable: 0" in captured.out
    assert "decoding frames" in captured.err  # the progress bar
    hs = smic_root / "SMIC_all_raw" / "HS"
    truncated = hs / "s2" / "micro" / "surprise" / "s2_sur_01" / "image1203.bmp"
    truncated.write_bytes(truncated.read_bytes()[:100])
    text = hs / "s11" / "non_micro" / "s11_nm_01" / "image100.bmp"
    text.write_text("not a frame\n")
    empty = hs / "s1" / "micro" / "negative" / "s1_ne_01" / "image1000.bmp"
    empty.write_bytes(b"")
    assert main(["describe", str(smic_root), "--check-frames"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "frames decoded: 110, unreadable: 3" in lines
    assert f"  {empty} (clip smic/s1/s1_ne_01): zero-byte file" in lines
    undecodable = "cannot decode the image (corrupt, truncated or not an image)"
    assert f"  {truncated} (clip smic/s2/s2_sur_01): {undecodable}" in lines
    assert f"  {text} (clip smic/s11/s11_nm_01): {undecodable}" in lines
    assert main(["describe", str(smic_root), "--check-frames", "--json"]) == 1
    check = json.loads(capsys.readouterr().out)["frame_check"]
    assert check["frames"] == 110
    assert [r["frame"] for r in check["unreadable"]] == [str(empty), str(truncated), str(text)]


def test_describe_without_check_frames_decodes_nothing(smic_root, capsys):
    frame = smic_root / "SMIC_all_raw" / "HS" / "s1" / "micro" / "negative" / "s1_ne_01" / "image1000.bmp"
    frame.write_bytes(b"")
    assert main(["describe", str(smic_root), "--json"]) == 0
    assert "frame_check" not in json.loads(capsys.readouterr().out)


def test_describe_reads_the_sheet_given(tmp_path, capsys):
    import shutil

    from sheet_fixtures import CASME2_SHEET, build_casme2

    root = build_casme2(tmp_path / "casme2")
    shutil.copy(root / CASME2_SHEET, root / "CASME2-coding-20190701.xlsx")
    assert main(["describe", str(root)]) == 2
    assert "pass --sheet PATH" in capsys.readouterr().err
    assert main(["describe", str(root), "--sheet", str(root / CASME2_SHEET), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["clips"] == 6
    assert (
        main(["describe", str(root), "--sheet", str(root / CASME2_SHEET), "--check", "casme2", "--json"]) == 1
    )
    assert json.loads(capsys.readouterr().out)["check"]["sheets"][0]["file"].endswith(CASME2_SHEET)
    assert main(["describe", str(root), "--check", "smic-hs", "--sheet", "x.xlsx"]) == 2
    assert "--check smic-hs reads none. Received: --sheet x.xlsx" in capsys.readouterr().err


def test_describe_a_file(tmp_path, capsys):
    (tmp_path / "data.zip").write_bytes(b"PK")
    assert main(["describe", str(tmp_path / "data.zip")]) == 2
    assert "data.zip: is a file, not a dataset folder" in capsys.readouterr().err
