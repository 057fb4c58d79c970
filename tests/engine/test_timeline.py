"""`vidgrid predict` on folders and long videos: sliding windows, the timeline files, throughput.

The long video is two minutes of synthetic clips (``render_video``, the generator of ``vidgrid
synth``) of the four slide directions, one class per 4 s segment. A motion oracle stands in for a
trained network: it moves the class of a clip from the shift of its bright object's centroid between
the first and last frame, so every window that lies inside one segment must name that segment's
class, and a window over two segments must name both: windows, times and frame order are right.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from torch import nn

from vidgrid.cli import main
from vidgrid.config import config_to_dict, load_config
from vidgrid.data.encode import write_video
from vidgrid.data.sampling import window_starts
from vidgrid.data.synthetic_classes import render_video
from vidgrid.models import registry

DIRECTIONS = ["slide_left", "slide_right", "slide_up", "slide_down"]
FPS, SEGMENT_S, SEGMENTS, SIZE = 12, 4, 30, 32


class MotionOracle(nn.Module):
    """logits = 10 · signed centroid shift of the brightest pixels, first to last frame (left, right, up, down)."""

    default_input = (3, 8, SIZE, SIZE)
    min_frames, frames_multiple, crop_multiple = 1, 1, 1

    def __init__(self, num_classes: int = 4, dropout: float | None = None, drop_path: float | None = None) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        brightness = x.mean(1)  # (B, C, T, H, W) -> (B, T, H, W)
        weight = (brightness - brightness.flatten(2).median(-1).values[..., None, None]).clamp(min=0) ** 2
        h, w = brightness.shape[-2:]
        ys, xs = torch.arange(h, dtype=x.dtype).view(h, 1), torch.arange(w, dtype=x.dtype).view(1, w)
        mass = weight.sum((-2, -1)).clamp(min=1e-6)
        cx, cy = (weight * xs).sum((-2, -1)) / mass, (weight * ys).sum((-2, -1)) / mass  # (B, T) each
        dx, dy = cx[:, -1] - cx[:, 0], cy[:, -1] - cy[:, 0]
        return self.scale * torch.stack([-dx, dx, -dy, dy], 1)

    def no_weight_decay(self) -> set[str]:
        return set()


@pytest.fixture
def long_video(tmp_path, monkeypatch):
    """``videos/long/two_minutes.mp4`` (30 segments of 4 s at 12 fps), a short clip beside it, a
    checkpoint of the oracle tested with 2 clips of 8 frames per window, and the segment labels."""
    monkeypatch.setitem(registry.MODELS, "motion_oracle", MotionOracle)
    rng = np.random.default_rng(0)
    labels = [DIRECTIONS[i] for i in rng.integers(0, 4, SEGMENTS)]
    segments = [render_video(label, rng, frames=FPS * SEGMENT_S, width=SIZE, height=SIZE, distractors=0) for label in labels]
    folder = tmp_path / "videos"
    (folder / "long").mkdir(parents=True)
    write_video(folder / "long" / "two_minutes.mp4", np.concatenate(segments), FPS, keyint=FPS)
    write_video(folder / "short.mp4", segments[0], FPS)
    cfg = load_config(None, ["model.name=motion_oracle", "data.frames=8", "data.sampling_rate=2", f"data.crop={SIZE}",
                             "eval.clips=2", "eval.crops=1", "train.device=cpu"])
    ckpt = tmp_path / "oracle.pt"
    torch.save({"model": MotionOracle().state_dict(), "config": config_to_dict(cfg), "classes": DIRECTIONS,
                "task": "classification"}, ckpt)
    return folder, ckpt, labels


def test_window_starts_cover_the_video_at_the_stride():
    assert window_starts(100, 40, 20) == [0, 20, 40, 60]
    assert window_starts(30, 40, 20) == [0]
    assert window_starts(40, 40, 7) == [0]


@pytest.mark.slow
def test_timeline_of_a_two_minute_video_matches_its_segments(long_video, tmp_path, capsys):
    folder, ckpt, labels = long_video
    out = tmp_path / "timelines"
    args = ["predict", str(folder), "--checkpoint", str(ckpt), "--window", "4", "--stride", "2", "--top", "2"]
    assert main([*args, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    doc = json.loads((out / "two_minutes.timeline.json").read_text())
    assert doc["duration_s"] == pytest.approx(120, abs=0.1) and doc["views"] == 2
    windows = doc["windows"]
    assert [(w["start"], w["end"]) for w in windows] == [(2.0 * k, 2.0 * k + 4) for k in range(59)]
    for k, w in enumerate(windows):
        first, last = labels[k // 2], labels[(k + 1) // 2]  # even k: inside segment k/2; odd: across two
        if first == last:
            assert w["top"][0]["class"] == first, (k, w)
        else:
            assert {t["class"] for t in w["top"]} == {first, last}, (k, w)
    rows = list(csv.DictReader((out / "two_minutes.timeline.csv").open()))
    assert len(rows) == 59 * 2 and rows[0]["start"] == "0.0" and rows[0]["rank"] == "1"
    assert rows[0]["class"] == windows[0]["top"][0]["class"]
    assert (out / "two_minutes.timeline.png").stat().st_size > 10_000
    assert (out / "short.timeline.json").is_file()  # the folder was searched recursively: both videos
    assert "2 videos in" in captured.err and "60 windows" in captured.err and "windows/s" in captured.err
    assert f"0.00-    4.00 s  {labels[0]}" in captured.out


def test_predict_on_a_folder_lists_every_video(long_video, capsys):
    folder, ckpt, labels = long_video
    assert main(["predict", str(folder), "--checkpoint", str(ckpt), "--json", "--top", "1"]) == 0
    captured = capsys.readouterr()
    videos = [p["video"] for p in json.loads(captured.out)["predictions"]]
    assert videos == [str(folder / "long" / "two_minutes.mp4"), str(folder / "short.mp4")]
    assert "2 videos in" in captured.err and "videos/s" in captured.err


@pytest.mark.parametrize("args, message", [
    (["--stride", "2"], "--stride: sliding windows need --window"),
    (["--window", "0"], "--window 0.0 --stride 0.0: expected seconds > 0"),
])
def test_bad_window_options_are_one_line(long_video, capsys, args, message):
    folder, ckpt, _ = long_video
    assert main(["predict", str(folder / "short.mp4"), "--checkpoint", str(ckpt), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {message}") and "\n" not in err


def test_a_folder_without_videos_is_one_line(tmp_path, long_video, capsys):
    _, ckpt, _ = long_video
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--checkpoint", str(ckpt)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'empty'}: no videos in this folder")
