"""`python -m benchmarks.backbone --json` runs and ends with the JSON line the lead's report reads."""

import json

import pytest

from benchmarks import backbone as bench


def test_benchmark_json_line_on_a_small_input(capsys):
    assert bench.main(["--size", "32", "--batch", "2", "--repeats", "2", "--warmup", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["size"], result["batch"], result["repeats"]) == (32, 2, 2)
    assert result["ours_params"] == 23_561_152 and result["keras_applications_params"] == 23_587_712
    assert result["ratio_vs_keras_applications"] == pytest.approx(
        result["ours_median_s"] / result["keras_applications_median_s"]
    )
    for key in ("ours_images_per_s", "keras_applications_images_per_s"):
        assert result[key] == pytest.approx(2 / result[key.replace("images_per_s", "median_s")])


@pytest.mark.parametrize("args", [["--size", "16"], ["--batch", "0"], ["--repeats", "0"]])
def test_benchmark_rejects_bad_options(args):
    with pytest.raises(SystemExit):
        bench.main(args)
