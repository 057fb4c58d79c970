"""``vidgrid data check`` and ``vidgrid data prepare`` end to end on tiny videos."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from tests.data.conftest import read_index
from vidgrid.cli import main
from vidgrid.data.annotations import load_annotations
from vidgrid.data.check import check_video
from vidgrid.data.decode import decode_frames, probe_video
from vidgrid.data.prepare import output_size


@pytest.fixture
def broken_dataset(tmp_path: Path, make_index_video) -> Path:
    """``train.txt`` with two good videos, a short one, a missing, an empty and a garbage file."""
    make_index_video("videos/good1.mp4", frames=24, keyint=None)
    make_index_video("videos/good2.mp4", frames=30, size=48)
    make_index_video("videos/short.mp4", frames=4)
    (tmp_path / "videos/empty.mp4").write_bytes(b"")
    (tmp_path / "videos/garbage.mp4").write_bytes(b"not a video" * 50)
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    (tmp_path / "meta.json").write_text('{"flip_sensitive": true}')
    lines = ["videos/good1.mp4 0", "videos/good2.mp4 2", "videos/short.mp4 1", "videos/missing.mp4 1",
             "videos/empty.mp4 0", "videos/garbage.mp4 2", "videos/good1.mp4 0"]
    return _write(tmp_path / "train.txt", "\n".join(lines) + "\n")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_check_reports_every_problem(broken_dataset: Path, tmp_path: Path, capsys) -> None:
    clean = tmp_path / "out" / "clean.txt"
    code = main(["data", "check", str(broken_dataset), "--min-frames", "8", "--workers", "2",
                 "--json", "--write-clean", str(clean)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["videos"] == 6 and report["ok"] == 2
    assert report["problems"] == {"missing": 1, "zero-length": 1, "undecodable": 1, "too-short": 1}
    reasons = {Path(bad["path"]).name: (bad["problem"], bad["reason"]) for bad in report["bad"]}
    assert reasons["missing.mp4"] == ("missing", "missing file")
    assert reasons["empty.mp4"] == ("zero-length", "zero-length file")
    assert reasons["garbage.mp4"][0] == "undecodable" and "container" in reasons["garbage.mp4"][1]
    assert reasons["short.mp4"] == ("too-short", "4 frames, fewer than 8")
    assert report["resolutions"] == {"32x32": 1, "48x48": 1} and report["fps"] == {"30": 2}
    assert report["duration_s"] == pytest.approx(54 / 30, abs=0.1)
    # the clean list keeps the good samples (duplicates too), the classes and the metadata
    cleaned = load_annotations(clean)
    assert [(s.path.name, s.label) for s in cleaned.samples] == [("good1.mp4", 0), ("good2.mp4", 2), ("good1.mp4", 0)]
    assert cleaned.classes == ["a", "b", "c"] and cleaned.meta == {"flip_sensitive": True}


def test_check_text_report_and_clean_exit(tmp_path: Path, make_index_video, capsys) -> None:
    make_index_video("data/walk/a.mp4", frames=10)
    make_index_video("data/run/b.mp4", frames=12)
    assert main(["data", "check", str(tmp_path / "data"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 videos: 2 ok, no problems" in out and "resolution: 32x32 ×2" in out


def test_check_finds_truncated_stream(tmp_path: Path) -> None:
    """A header that promises more frames than the file holds: the last frame does not decode."""
    path = tmp_path / "cut.mp4"
    # a fragment-free MP4 with its index first, then cut: the header still lists every frame
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype="uint8"), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    report = check_video(path)
    assert report.problem == "undecodable", report


def test_output_size() -> None:
    assert output_size(1280, 720, 320) == (568, 320)
    assert output_size(256, 340, 320) == (256, 340)  # never upscaled
    assert output_size(341, 257, 128) == (170, 128)


def test_prepare_end_to_end_and_resume(broken_dataset: Path, tmp_path: Path, capsys) -> None:
    dst = tmp_path / "prepared"
    assert main(["data", "prepare", str(broken_dataset), str(dst), "--short-side", "24", "--keyint", "4",
                 "--workers", "2"]) == 1  # three unreadable inputs are listed, not fatal
    out = capsys.readouterr().out
    assert out.count("unreadable") == 3 + 1 and "missing.mp4: missing file" in out
    ann = load_annotations(dst / "train.txt")
    assert [(s.path, s.label) for s in ann.samples] == [
        (dst / "videos/good1.mp4", 0), (dst / "videos/good2.mp4", 2), (dst / "videos/short.mp4", 1), (dst / "videos/good1.mp4", 0),
    ]
    assert ann.classes == ["a", "b", "c"] and ann.meta == {"flip_sensitive": True}
    info = probe_video(dst / "videos/good2.mp4")
    assert (info.width, info.height, info.num_frames, info.fps) == (24, 24, 30, 30.0)
    assert read_index(decode_frames(dst / "videos/good2.mp4", [29, 3, 17])) == [29, 3, 17]
    with av.open(str(dst / "videos/good1.mp4")) as container:
        keyframes = [p.pts for p in container.demux(video=0) if p.is_keyframe]
    assert len(keyframes) >= 24 // 4
    assert not list(dst.rglob("*.part"))

    # resume: finished outputs are kept as they are, nothing is re-encoded
    stamp = (dst / "videos/good1.mp4").stat().st_mtime_ns
    main(["data", "prepare", str(broken_dataset), str(dst), "--short-side", "24", "--keyint", "4", "--workers", "1"])
    assert "6 videos, 3 already prepared, 3 to encode" in capsys.readouterr().err
    assert (dst / "videos/good1.mp4").stat().st_mtime_ns == stamp


def test_prepare_ssv2_webm_to_mp4_list(tmp_path: Path, make_index_video) -> None:
    """Non-list sources get a ``<stem>.txt`` Kinetics-style list of the new ``.mp4`` files."""
    make_index_video("clips/7.webm.src.mp4", frames=8)
    (tmp_path / "clips/7.webm.src.mp4").rename(tmp_path / "clips/7.webm")  # an MP4 named .webm is fine for FFmpeg
    (tmp_path / "labels.json").write_text('{"Holding something": "0"}')
    (tmp_path / "train.json").write_text('[{"id": "7", "template": "Holding [something]"}]')
    dst = tmp_path / "out"
    assert main(["data", "prepare", str(tmp_path / "train.json"), str(dst), "--root", str(tmp_path / "clips"),
                 "--workers", "1"]) == 0
    ann = load_annotations(dst / "train.txt")
    assert ann.samples[0].path == dst / "7.mp4" and ann.classes == ["Holding something"]
    assert probe_video(dst / "7.mp4").num_frames == 8
