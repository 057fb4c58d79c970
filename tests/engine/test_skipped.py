"""``skipped_videos`` counts every broken video of the run: across a resume (the failure table goes
into the checkpoint) and across processes (each process's table is gathered); and a checkpoint of
one process count resumes on another."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_distributed import run_two_processes
from vidgrid.config import load_config, save_config
from vidgrid.engine.checkpoint import checkpoint_path, load_checkpoint
from vidgrid.engine.trainer import train


@pytest.fixture
def broken_lists(synthetic_data, tmp_path) -> tuple[Path, Path, list[list[str]]]:
    """The synthetic lists with missing videos added: 3 in training, and the first 2 of validation."""
    folder = tmp_path / "lists"
    folder.mkdir()
    shutil.copy(synthetic_data / "classes.txt", folder)

    def rewrite(name: str, missing: list[str], first: bool) -> Path:
        good = [f"{synthetic_data / line.split()[0]} {line.split()[1]}" for line in (synthetic_data / name).read_text().splitlines()]
        bad = [f"{folder / m} {k}" for k, m in enumerate(missing)]
        (folder / name).write_text("\n".join(bad + good if first else good + bad) + "\n")
        return folder / name

    train_list = rewrite("train.csv", ["gone_a.mp4", "gone_b.mp4", "gone_c.mp4"], first=False)
    val_list = rewrite("val.csv", ["gone_v0.mp4", "gone_v1.mp4"], first=True)
    expected = sorted([str(folder / m), "missing file"] for m in ("gone_a.mp4", "gone_b.mp4", "gone_c.mp4", "gone_v0.mp4", "gone_v1.mp4"))
    return train_list, val_list, expected


@pytest.mark.slow
def test_a_resumed_run_reports_the_videos_skipped_before_the_stop(tiny_config, broken_lists, tmp_path):
    train_list, val_list, expected = broken_lists
    cfg = tiny_config(f"data.train_list={train_list}", f"data.val_list={val_list}", "multigrid.enabled=false",
                      "train.batch_size=4", "train.checkpoint_every=1", "train.keep_checkpoints=20", "train.eval_every=0")
    uninterrupted = train(cfg, tmp_path / "whole")
    assert sorted(uninterrupted["skipped_videos"]) == expected
    # a run stopped after iteration 11 of 12 (the last epoch's first iterations found the broken videos)
    (tmp_path / "resumed" / "checkpoints").mkdir(parents=True)
    stopped = checkpoint_path(tmp_path / "whole" / "checkpoints", uninterrupted["iterations"] - 1)
    shutil.copy(stopped, tmp_path / "resumed" / "checkpoints")
    resumed = train(cfg, tmp_path / "resumed", resume="auto")
    assert resumed["iterations"] == uninterrupted["iterations"]
    assert sorted(resumed["skipped_videos"]) == expected


@pytest.mark.slow
def test_two_processes_report_every_skipped_video_and_resume_on_one(tiny_config, broken_lists, tmp_path, capsys):
    train_list, val_list, expected = broken_lists
    cfg = tiny_config(f"data.train_list={train_list}", f"data.val_list={val_list}", "multigrid.enabled=false",
                      "train.batch_size=4", "train.checkpoint_every=1", "train.keep_checkpoints=20")
    save_config(cfg, tmp_path / "config.yaml")
    ranks = run_two_processes(tmp_path / "config.yaml", tmp_path)
    assert len(ranks) == 2 and all("error" not in r for r in ranks), [r.get("traceback") for r in ranks]
    summary = ranks[0]["summary"]
    assert sorted(summary["skipped_videos"]) == expected  # gone_v1 is only in rank 1's validation shard
    assert summary["iterations"] == 12  # 23 videos, 6 iterations of 4 per epoch

    # a mid-epoch checkpoint of the two processes resumes on one, from the start of that epoch
    (tmp_path / "one" / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint_path(tmp_path / "run" / "checkpoints", 8), tmp_path / "one" / "checkpoints")
    assert load_checkpoint(tmp_path / "one" / "checkpoints" / "ckpt-000000008.pt")["train"]["state"]["step"] == 2
    capsys.readouterr()
    resumed = train(load_config(tmp_path / "config.yaml"), tmp_path / "one", resume="auto")
    assert "note: resuming 2 processes' run on 1; RNG streams restart; epoch 2 restarts from its beginning" in capsys.readouterr().err
    assert resumed["epochs"] == 2 and resumed["iterations"] == 8 + 6
    assert sorted(resumed["skipped_videos"]) == expected
