"""Inputs and run folders that must give one ``error:`` line (exit 2), never a traceback, a silent
pass or a lost run: a reused or unwritable ``--out``, a full disk, non-finite numbers, broken lists."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test_cli import one_error_line
from vidgrid.cli import main
from vidgrid.config import config_to_dict
from vidgrid.data.encode import write_video
from vidgrid.engine import checkpoint
from vidgrid.engine.build import build_model, load_split
from vidgrid.engine.checkpoint import list_checkpoints, load_checkpoint, write_checkpoint
from vidgrid.engine.logging import read_metrics


@pytest.fixture
def train_args(tiny_args, tmp_path):
    """``train_args(*overrides, out=...)``: ``vidgrid train`` argv of the tiny recipe (one epoch of 3 iterations)."""
    base = ("train.epochs=1", "multigrid.enabled=false")
    return lambda *extra, out=tmp_path / "run": ["train", "demo", *tiny_args(*base, *extra), "--out", str(out)]


def last_error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; it must exit with 2, print no traceback, and end with its only ``error: ...`` line
    (progress lines of a run that started may come before it)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err and len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0]


@pytest.fixture
def tiny_checkpoint(tiny_config, tmp_path) -> Path:
    """An untrained checkpoint of the tiny recipe (what eval and predict need)."""
    cfg = tiny_config()
    classes = list(load_split(cfg, "val").classes)
    state = {"model": build_model(cfg, num_classes=len(classes)).state_dict(), "config": config_to_dict(cfg),
             "classes": classes, "epoch": 1, "iteration": 3}
    torch.save(state, tmp_path / "tiny.pt")
    return tmp_path / "tiny.pt"


# --------------------------------------------------------------------------------------------------
# run folders


@pytest.mark.slow
def test_a_fresh_run_in_a_folder_that_holds_a_run_is_refused_unless_overwritten(capsys, train_args, tmp_path):
    assert main(train_args("train.checkpoint_every=1")) == 0
    capsys.readouterr()
    before = sorted(p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints"))
    line = one_error_line(capsys, train_args())
    assert "holds a run already" in line and "--resume auto" in line and "--overwrite" in line
    assert sorted(p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")) == before  # nothing deleted
    # --overwrite: only the new run's checkpoints and log records remain
    assert main([*train_args("train.batch_size=4"), "--overwrite"]) == 0
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["ckpt-000000005.pt"]
    assert [r["iteration"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"] == [1, 2, 3, 4, 5]


def test_rotation_keeps_the_newest_of_the_run_being_written(tmp_path):
    for iteration in (8, 9, 10):  # a run this one replaced (resumed from an earlier checkpoint)
        write_checkpoint({"iteration": iteration}, tmp_path, iteration=iteration, keep=2)
    write_checkpoint({"iteration": 3}, tmp_path, iteration=3, keep=2)
    write_checkpoint({"iteration": 4}, tmp_path, iteration=4, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000000003.pt", "ckpt-000000004.pt"]


def test_out_that_is_a_file(capsys, train_args, tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_error_line(capsys, train_args(out=tmp_path / "file"))


def test_out_that_cannot_be_written(capsys, train_args, tmp_path):
    unwritable = tmp_path / "read-only"
    unwritable.mkdir()
    unwritable.chmod(0o555)
    if os.access(unwritable, os.W_OK):  # root ignores permission bits: take a read-only kernel folder
        unwritable = Path("/sys/kernel")
        if not unwritable.is_dir() or os.access(unwritable / "probe", os.F_OK):
            pytest.skip("no unwritable folder on this machine")
    line = one_error_line(capsys, train_args(out=unwritable))
    assert f"--out {unwritable}: cannot write there" in line


def test_resume_auto_without_out_is_refused(capsys, tiny_args):
    assert "nothing to resume" in one_error_line(capsys, ["train", "demo", *tiny_args(), "--resume", "auto"])


# --------------------------------------------------------------------------------------------------
# disks


class FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` bytes, as on a full disk."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.f.write(bytes(data)[: self.room])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def test_a_full_disk_stops_the_run_with_one_line_naming_the_previous_checkpoint(capsys, train_args, tmp_path, monkeypatch):
    opened = []

    def filling(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        opened.append(path)
        return FullDisk(f, 1000) if len(opened) == 2 else f  # the second checkpoint finds the disk full

    monkeypatch.setattr(checkpoint, "open", filling, raising=False)
    line = last_error_line(capsys, train_args("train.checkpoint_every=1", "train.batch_size=4"))
    folder = tmp_path / "run" / "checkpoints"
    assert f"{folder / 'ckpt-000000002.pt'}: cannot write the checkpoint (no space left on device)" in line
    assert f"the last checkpoint is {folder / 'ckpt-000000001.pt'}" in line
    assert os.listdir(folder) == ["ckpt-000000001.pt"]  # intact, and no temporary left
    assert load_checkpoint(folder / "ckpt-000000001.pt")["train"]["state"]["iteration"] == 1


@pytest.mark.slow
def test_temporaries_of_killed_writes_are_removed_at_the_next_start(tiny_config, tmp_path):
    from vidgrid.engine.trainer import train

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / ".ckpt-000000002.pt.1a2b3c4d.tmp").write_bytes(b"half")
    train(tiny_config("train.epochs=1"), tmp_path / "run", resume="auto")
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "ckpt-000000003.pt"]  # no temporary left


def test_checkpoints_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        path = write_checkpoint({"iteration": 1}, tmp_path, iteration=1, keep=1)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o664  # a group can share the run folder


# --------------------------------------------------------------------------------------------------
# bad values and lists


@pytest.mark.parametrize("override", ["optim.lr=.inf", "optim.weight_decay=.nan", "data.mean=[.inf, 0.4, 0.4]",
                                      "train.label_smoothing=-.inf"])
def test_non_finite_numbers_are_refused(capsys, train_args, override):
    key = override.split("=")[0]
    assert f"'{key}' = " in (line := one_error_line(capsys, train_args(override))) and "expected a finite number" in line


def test_model_option_of_the_wrong_type(capsys, train_args):
    line = one_error_line(capsys, train_args("model.options={width_factor: abc}"))
    assert line.startswith("error: 'model.options' = {'width_factor': 'abc'}: x3d_xs cannot be built")


def test_zero_epochs_names_train_epochs(capsys, train_args):
    assert "'train.epochs' = 0: expected an integer >= 1" in one_error_line(capsys, train_args("train.epochs=0"))


def test_a_data_root_holding_none_of_the_videos_is_one_line_also_with_workers(capsys, train_args, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    errors = []
    for workers in (0, 1):
        assert main(train_args(f"data.root={tmp_path / 'elsewhere'}", f"data.workers={workers}")) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "worker" not in err and "skipping" not in err, err
        errors.append([line for line in err.splitlines() if line.startswith("error: ")])
    assert len(errors[0]) == 1 and "videos tried failed (missing file:" in errors[0][0] and "probably wrong" in errors[0][0]
    assert len(errors[1]) == 1 and errors[1][0].split("(")[0] == errors[0][0].split("(")[0]


def test_eval_where_nothing_decodes_fails(capsys, tiny_args, tiny_checkpoint, tmp_path, synthetic_data):
    lines = (synthetic_data / "val.csv").read_text().splitlines()[:3]  # fewer than stop a run early
    (tmp_path / "val.csv").write_text("".join(f"gone/{line}\n" for line in lines))
    (tmp_path / "classes.txt").write_text((synthetic_data / "classes.txt").read_text())
    args = ["eval", "demo", *tiny_args(f"data.val_list={tmp_path / 'val.csv'}"), "--checkpoint", str(tiny_checkpoint)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none of its 3 videos could be evaluated" in err and "missing file" in err, err


def test_predict_reports_an_image_and_a_too_short_video(capsys, tiny_checkpoint, tmp_path, synthetic_data):
    import matplotlib.image

    matplotlib.image.imsave(tmp_path / "photo.png", np.zeros((32, 32, 3)))
    (tmp_path / "photo.mp4").write_bytes((tmp_path / "photo.png").read_bytes())
    write_video(tmp_path / "two.mp4", np.zeros((2, 32, 32, 3), np.uint8), 30)
    video = next(synthetic_data.rglob("*.mp4"))
    assert main(["predict", str(tmp_path / "photo.mp4"), str(tmp_path / "two.mp4"), str(video), "--checkpoint", str(tiny_checkpoint)]) == 2
    out, err = capsys.readouterr()
    *errors, throughput = err.splitlines()
    assert errors == [
        f"error: {tmp_path / 'photo.mp4'}: not a video (a still image, png)",
        f"error: {tmp_path / 'two.mp4'}: fewer frames than the base clip",
    ]
    assert throughput.startswith("1 video in ") and throughput.endswith(" videos/s")
    assert str(video) in out


@pytest.mark.slow
def test_a_raw_pickle_checkpoint_is_refused_in_one_line(tmp_path):
    with open(tmp_path / "raw.pt", "wb") as f:
        pickle.dump({"model": {}, "config": {}}, f)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "vidgrid", "predict", str(tmp_path / "v.mp4"), "--checkpoint",
                           str(tmp_path / "raw.pt")], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "raw.pt: not a readable checkpoint" in proc.stderr, proc.stderr
