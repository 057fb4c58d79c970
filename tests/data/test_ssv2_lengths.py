"""Something-Something at its real lengths: the SSv2 recipe's 64 segment-sampled frames come from
45-frame videos (the dataset's typical length), and the format turns the flip off by itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.conftest import read_index
from vidgrid.config import load_config
from vidgrid.data import sampling
from vidgrid.data.annotations import load_annotations
from vidgrid.data.dataset import VideoClipDataset
from vidgrid.engine.build import load_split, use_flip
from vidgrid.errors import DataError
from vidgrid.types import ClipShape
from vidgrid.tasks.classification import Classification

LABEL = Classification([str(k) for k in range(10)]).clip_target
"""Class-id targets for the single-label annotations of these tests."""

TEMPLATES = ["Pushing something from left to right", "Pushing something from right to left"]


@pytest.fixture
def ssv2_data(tmp_path: Path, make_index_video) -> Path:
    """``train.json`` / ``labels.json`` of four 45-frame videos named ``<id>.webm``."""
    for i in range(4):
        make_index_video(f"ssv2/{i}.webm", frames=45)
    folder = tmp_path / "ssv2"
    (folder / "labels.json").write_text(json.dumps({t: str(k) for k, t in enumerate(TEMPLATES)}))
    entries = [{"id": str(i), "template": TEMPLATES[i % 2].replace("something", "[something]")} for i in range(4)]
    (folder / "train.json").write_text(json.dumps(entries))
    return folder


def test_the_ssv2_recipe_takes_64_frames_from_45_frame_videos(ssv2_data: Path) -> None:
    cfg = load_config("ssv2_slowfast_r50", [f"data.train_list={ssv2_data / 'train.json'}", "data.crop=32",
                                            "data.min_short=32", "data.max_short=40"])
    assert cfg.data.frames == 64 and cfg.data.temporal_sampling == "segment"
    annotations = load_split(cfg, "train")
    data = VideoClipDataset(
        annotations, target=LABEL, base_frames=cfg.data.frames, sampling_rate=cfg.data.sampling_rate, base_crop=cfg.data.crop,
        temporal_sampling=cfg.data.temporal_sampling, min_short=cfg.data.min_short, max_short=cfg.data.max_short,
        flip=use_flip(cfg, annotations), max_retries=cfg.data.max_retries,
    )
    bounds = sampling.segment_bounds(45, 64)
    for index in range(4):
        for shape in (ClipShape(64, 32), ClipShape(16, 22)):  # the base and a long-cycle shape
            clip, _, served = data[(index, shape)]
            assert served == index and clip.shape == (3, shape.frames, shape.crop, shape.crop)
        frames = read_index(data[(index, ClipShape(64, 32))][0].permute(1, 2, 3, 0))  # (C, T, H, W) -> (T, H, W, C)
        assert all(b <= f < e for f, (b, e) in zip(frames, bounds)) and len(set(frames)) == 45  # every frame, some twice
    assert data.skipped() == []


def test_ssv2_is_direction_sensitive_without_a_meta_file(ssv2_data: Path) -> None:
    annotations = load_annotations(ssv2_data / "train.json")
    assert annotations.meta == {"flip_sensitive": True}
    cfg = load_config("ssv2_slowfast_r50", [f"data.train_list={ssv2_data / 'train.json'}", "data.flip=null"])
    assert use_flip(cfg, annotations) is False
    (ssv2_data / "meta.json").write_text(json.dumps({"flip_sensitive": False}))  # a meta file still decides
    assert use_flip(cfg, load_annotations(ssv2_data / "train.json")) is True


def test_stride_sampling_still_skips_videos_shorter_than_the_base_clip(ssv2_data: Path) -> None:
    annotations = load_annotations(ssv2_data / "train.json")
    data = VideoClipDataset(annotations, target=LABEL, base_frames=64, sampling_rate=1, base_crop=32, min_short=32, max_short=40,
                            max_retries=2)
    with pytest.raises(DataError, match="no decodable replacement"):
        data[(0, ClipShape(64, 32))]
    assert {reason for _, reason in data.skipped()} == {"fewer frames than the base clip"}
