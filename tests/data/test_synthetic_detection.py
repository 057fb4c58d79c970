"""``vidgrid synth --task detection``: AVA-format files that load, multi-label actors, keyframes once a
second, proposals near the true boxes, reproducible from the seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidgrid.cli import main
from vidgrid.data.annotations import load_annotations
from vidgrid.data.formats.ava import ProposalSettings, box_iou, read_proposals
from vidgrid.data.synthetic_detection import ACTIONS, render_actors, write_detection_dataset


def test_actors_have_one_or_more_actions_and_boxes_in_the_frame():
    for seed in range(6):
        frames, actors = render_actors(np.random.default_rng(seed), frames=20, width=96, height=72)
        assert frames.shape == (20, 72, 96, 3) and 1 <= len(actors) <= 3
        for actions, boxes in actors:
            assert actions and set(actions) <= set(ACTIONS)
            assert boxes.shape == (20, 4) and (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_dataset_loads_as_ava_and_is_reproducible(tmp_path: Path, capsys):
    assert main(["synth", str(tmp_path / "a"), "--task", "detection", "--train-per-class", "3", "--val-per-class", "2",
                 "--seed", "5", "--workers", "1"]) == 0
    assert "AVA formats" in capsys.readouterr().out
    write_detection_dataset(tmp_path / "b", seed=5, train_videos=3, val_videos=2, workers=1)
    write_detection_dataset(tmp_path / "c", seed=6, train_videos=3, val_videos=2, workers=1)
    a, b, c = ((tmp_path / x / "train.csv").read_text() for x in "abc")
    assert a == b and a != c
    data = tmp_path / "a"
    settings = ProposalSettings(data / "train_proposals.csv", None, train_iou=0.9, min_score=0.8)
    ann = load_annotations(data / "train.csv", root=data / "videos", proposals=settings)
    assert ann.classes == list(ACTIONS)
    assert sorted({s.keyframe.time_s for s in ann.samples}) == [1.0, 2.0]
    assert all(s.path.is_file() for s in ann.samples)
    assert any(len(labels) > 1 for s in ann.samples for _, labels in s.keyframe.truth)
    # every true box has a confident proposal near it
    proposals = read_proposals(data / "train_proposals.csv")
    for sample in ann.samples:
        near = proposals[(sample.path.stem, sample.keyframe.time_s)]
        for box, _ in sample.keyframe.truth:
            assert max(box_iou(box, p) for p, score in near if score > 0.8) > 0.5


def test_classification_flags_are_refused(tmp_path: Path, capsys):
    assert main(["synth", str(tmp_path), "--task", "detection", "--boxes"]) == 2
    assert capsys.readouterr().err.startswith("error: synth --task detection: --boxes applies to classification data only")
