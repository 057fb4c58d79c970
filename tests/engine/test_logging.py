"""Progress lines, metrics.jsonl (+ resume), plots and summary.json."""

import io
import json
import re
import sys
import types

import pytest

from vidgrid.engine import logging as logging_module
from vidgrid.errors import ConfigError
from vidgrid.engine.logging import (
    MetricsLogger,
    Progress,
    format_duration,
    format_summary,
    plot_run,
    read_metrics,
    write_summary,
)
from vidgrid.types import ClipShape


def test_progress_plain_stream_prints_lines():
    stream = io.StringIO()  # not a TTY: tqdm's text as plain lines, rate-limited
    bar = Progress(100, epochs=5, stream=stream, interval_s=3600)
    bar.update(1, epoch=0, loss=2.5, lr=0.1, clips_per_s=12.0, batch=32, shape=ClipShape(8, 112))
    bar.update(2, epoch=0, loss=2.4, lr=0.1, clips_per_s=12.0, batch=32, shape=ClipShape(8, 112))  # too soon
    bar.write("epoch 0: val top-1 50.0%")
    bar.update(100, epoch=4, loss=0.1, lr=0.001, clips_per_s=20.0, batch=8, shape=ClipShape(16, 224))  # last: always
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in stream.getvalue()
    assert lines[0].startswith("ep 0/5:   1%|") and " 1/100 [" in lines[0]
    assert lines[0].endswith("loss 2.5000 | lr 0.1 | 12.0 clips/s | 32×8x112²]")
    assert lines[1] == "epoch 0: val top-1 50.0%"
    assert lines[2].startswith("ep 4/5: 100%|##########| 100/100 [") and "8×16x224²" in lines[2]
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "1:05"


def test_metrics_logger_resume_and_plots(tmp_path, monkeypatch):
    clock = [1000.0]  # the logger's wall clock: 10 s per iteration
    monkeypatch.setattr(logging_module.time, "perf_counter", lambda: clock[0])
    with MetricsLogger(tmp_path, loggers=["tensorboard"]) as log:
        for it in range(1, 6):
            clock[0] = 1000.0 + 10 * it
            log.log("train", iteration=it, epoch=it / 5, loss=2.0 / it, lr=0.1 * it, clips_per_s=10.0)
        log.log("val", iteration=5, epoch=1, top1=0.5, top5=0.9)
        clock[0] = 1060.0
        log.log("train", iteration=6, epoch=1.2, loss=0.3, lr=0.5)
    assert any((tmp_path / "tb").iterdir())
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["split"] for r in records] == ["train"] * 5 + ["val", "train"]
    assert records[5]["top1"] == 0.5
    assert [r["wall_s"] for r in records] == [10.0, 20.0, 30.0, 40.0, 50.0, 50.0, 60.0]  # since the logger started

    # resume from the checkpoint at iteration 5: the record of iteration 6 is dropped, and the wall
    # clock continues from the last kept record (50 s), not from the dropped one (60 s) or from 0
    clock[0] = 5000.0
    with MetricsLogger(tmp_path, loggers=[], resume_iteration=5) as log:
        clock[0] = 5003.0
        log.log("train", iteration=6, epoch=1.2, loss=0.25, lr=0.5)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in records] == [1, 2, 3, 4, 5, 5, 6] and records[-1]["loss"] == 0.25
    assert records[-1]["wall_s"] == 53.0
    monkeypatch.undo()

    written = plot_run(tmp_path, metrics=["top1", "top5"])
    assert sorted(p.name for p in written) == ["accuracy.png", "loss.png", "lr.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_summary(tmp_path):
    summary = {"top1": 0.9, "top5": 1.0, "wall_time_s": 75.0, "iterations": 1234, "epochs": 15,
               "clips_seen": 9000, "skipped_videos": []}
    path = write_summary(tmp_path, summary)
    assert json.loads(path.read_text()) == summary
    assert format_summary(summary, headline="top-1 90.0% · top-5 100.0%") == "top-1 90.0% · top-5 100.0% · 1,234 iterations · 15 epochs · 1:15 wall"
    with pytest.raises(ValueError, match="clips_seen"):
        write_summary(tmp_path, {k: v for k, v in summary.items() if k != "clips_seen"})


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_one_line():
    stream = _Terminal()
    bar = Progress(10, epochs=1, stream=stream, start_iteration=4)  # resumed at step 4
    bar.update(10, epoch=1, loss=0.5, lr=0.1, clips_per_s=5.0, batch=4, shape=ClipShape(4, 32))
    bar.write("done")
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\r 40%|") and "\rdone\n" in text
    assert "\rep 1/1: 100%|██████████| 10/10 [" in text and text.rstrip(" \n").endswith("4×4x32²]") and text.endswith("\n") and "\n" not in text[:-1].replace("done\n", "")


class _FakeWandbRun:
    def __init__(self, calls: list, **init) -> None:
        self.calls = calls
        calls.append(("init", init))

    def log(self, values: dict, step: int) -> None:
        self.calls.append(("log", step, values))

    def finish(self) -> None:
        self.calls.append(("finish",))


def _fake_wandb(monkeypatch) -> list:
    calls: list = []
    fake = types.SimpleNamespace(init=lambda **kw: _FakeWandbRun(calls, **kw))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return calls


def test_wandb_logger_logs_numbers_offline_and_resumes_the_same_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    calls = _fake_wandb(monkeypatch)
    with MetricsLogger(tmp_path, loggers=["wandb"], config={"train": {"epochs": 3}}) as log:
        log.log("train", iteration=10, epoch=0.5, loss=1.5, lr=0.1, shape="8x112")
        log.log("val", iteration=10, epoch=1, top1=0.25, loss=float("nan"))
    init = calls[0][1]
    assert (init["resume"], init["mode"], init["dir"]) == ("allow", "offline", str(tmp_path))
    assert re.fullmatch(r"[0-9a-f]{12}", init["id"]) and (tmp_path / "wandb_id.txt").read_text() == init["id"] + "\n"
    assert init["config"] == {"train": {"epochs": 3}} and init["name"] == tmp_path.name
    assert calls[1:] == [("log", 10, {"train/loss": 1.5, "train/lr": 0.1}), ("log", 10, {"val/top1": 0.25}), ("finish",)]
    assert not (tmp_path / "tb").exists()

    calls.clear()
    monkeypatch.setenv("WANDB_API_KEY", "key")
    with MetricsLogger(tmp_path, loggers=["wandb"], resume_iteration=10):
        pass
    assert calls[0][1]["id"] == init["id"] and calls[0][1]["mode"] == "online"  # the same W&B run continues


def test_wandb_logger_without_the_extra_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"^train.loggers includes wandb, which needs the extra: pip install 'vidgrid\[wandb\]'$"):
        MetricsLogger(tmp_path, loggers=["tensorboard", "wandb"])


@pytest.mark.slow
def test_wandb_offline_run_writes_its_files(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    with MetricsLogger(tmp_path, loggers=["wandb"], config={"model": {"name": "x3d_xs"}}) as log:
        log.log("train", iteration=1, epoch=0.1, loss=2.0)
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
