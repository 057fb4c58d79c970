"""`vidgrid schedule`: table, --json, plot, dataset size from the train list, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from vidgrid.cli import main

RECIPE = "slowfast_r50_multigrid"


def run_json(capsys, *args):
    assert main(["schedule", RECIPE, *args, "--plot", "", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_paper_recipe_json(capsys):
    report = run_json(capsys, "--dataset-size", "240000")
    seg = report["segments"][0]
    for key in ("start_epoch", "end_epoch", "frames", "crop", "global_batch", "lr_multiplier", "iterations"):
        assert key in seg
    got = (seg["start_epoch"], seg["frames"], seg["crop"], seg["global_batch"], seg["lr_multiplier"])
    assert got == (0, 8, 158, 4096, 8)
    assert [s["crop"] for s in seg["short_cycle"]] == [112, 158, 158]
    assert report["multigrid"]["epochs"] == 358 and report["baseline"]["epochs"] == 239
    assert report["multigrid"]["iterations"] == sum(s["iterations"] for s in report["segments"])
    assert 3.3 <= report["baseline"]["iterations"] / report["multigrid"]["iterations"] <= 3.6
    # Eq. 1 keeps the cost of an iteration: compute falls like the iterations
    assert 0.25 < report["multigrid"]["relative_compute"] < 0.32
    assert report["segments"][-1]["end_epoch"] == 358


def test_overrides_and_processes(capsys):
    report = run_json(capsys, "multigrid.short_cycle=false", "--dataset-size", "240000", "--processes", "64")
    assert 2.1 <= report["iteration_reduction"] <= 2.3  # long cycle only
    assert report["processes"] == 64
    (step,) = report["segments"][0]["short_cycle"]
    assert step == {"frames": 8, "crop": 158, "global_batch": 4096, "batch_per_process": 64}


def test_overrides_may_follow_the_options(capsys):
    before = run_json(capsys, "multigrid.short_cycle=false", "train.epochs=250", "--dataset-size", "240000")
    assert main(["schedule", RECIPE, "multigrid.short_cycle=false", "--dataset-size", "240000", "--plot", "",
                 "--json", "train.epochs=250"]) == 0
    assert json.loads(capsys.readouterr().out) == before
    assert before["baseline"]["epochs"] == 250
    with pytest.raises(SystemExit):  # a stray word is still an argparse error, not an override
        main(["schedule", RECIPE, "--plot", "", "stray"])
    assert "unrecognized arguments: stray" in capsys.readouterr().err


def test_table_and_plot(capsys, tmp_path):
    plot = tmp_path / "sched.png"
    assert main(["schedule", RECIPE, "train.epochs=20", "schedule.steps=[0, 8, 13, 16]", "--dataset-size", "3000",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "8x158²" in out and "fewer than the baseline" in out and "baseline:  20 epochs" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dataset_size_from_the_train_list(capsys, tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"v{i}.mp4 {i % 3}\n" for i in range(1000)))
    report = run_json(capsys, f"data.train_list={listing}")
    assert report["dataset_size"] == 1000


def test_missing_list_is_a_one_line_error(capsys):
    assert main(["schedule", RECIPE, "--plot", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--dataset-size" in err and err.count("\n") == 1
    assert main(["schedule", RECIPE, "--dataset-size", "240000", "--processes", "3", "--plot", ""]) == 2
    assert "train.batch_size" in capsys.readouterr().err


def test_output_into_a_closed_pipe_ends_quietly():
    """`vidgrid schedule ... | head -1`: a reader that has gone away is no BrokenPipeError traceback."""
    code = f"import sys; from vidgrid.cli import main; sys.exit(main(['schedule', {RECIPE!r}, '--dataset-size', '240000', '--plot', '']))"
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    try:
        result = subprocess.run([sys.executable, "-c", code], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert result.stderr == ""
