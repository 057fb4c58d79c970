"""Annotation readers: every format, good and broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidgrid.data.annotations import Sample, load_annotations, write_annotations
from vidgrid.errors import DataError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- Kinetics lists


def test_kinetics_space_list_relative_to_list_folder(tmp_path: Path) -> None:
    lst = write(tmp_path / "lists" / "train.txt", "a/x.mp4 0\n\nb/y y.mp4 2\n/abs/z.mp4 1\n")
    ann = load_annotations(lst)
    assert [s.path for s in ann.samples] == [tmp_path / "lists/a/x.mp4", tmp_path / "lists/b/y y.mp4", Path("/abs/z.mp4")]
    assert [s.label for s in ann.samples] == [0, 2, 1]
    assert ann.classes == ["0", "1", "2"] and ann.num_classes == 3
    assert not ann.multi_label and ann.meta == {}


def test_kinetics_csv_with_header_classes_meta_and_root(tmp_path: Path) -> None:
    lst = write(tmp_path / "train.csv", "path,label\nv/1.mp4,1\nv/2,3.mp4,walk\n")
    write(tmp_path / "classes.txt", "run\nwalk\n\n")
    write(tmp_path / "meta.json", '{"flip_sensitive": true}')
    ann = load_annotations(lst, root=tmp_path / "videos")
    assert [s.path for s in ann.samples] == [tmp_path / "videos/v/1.mp4", tmp_path / "videos/v/2,3.mp4"]
    assert [s.label for s in ann.samples] == [1, 1]
    assert ann.classes == ["run", "walk"]
    assert ann.meta == {"flip_sensitive": True}


def test_explicit_classes_file(tmp_path: Path) -> None:
    lst = write(tmp_path / "l.txt", "a.mp4 2\n")
    names = write(tmp_path / "other" / "names.txt", "a\nb\nc\n")
    assert load_annotations(lst, classes=names).classes == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "classes", "message"),
    [
        ("a.mp4 0\nb.mp4\n", None, "line 2: expected 'path label'"),
        ("a.mp4 0\nb.mp4 cat\n", None, "line 2: expected an integer label or a class name"),
        ("a.mp4 0\nb.mp4 -1\n", None, "line 2: label -1 outside the class range"),
        ("a.mp4 0\n\nb.mp4 2\n", "x\ny\n", "line 3: label 2 outside the class range 0..1"),
        ("path label\n", None, "no samples"),
    ],
)
def test_kinetics_broken_lines(tmp_path: Path, text: str, classes: str | None, message: str) -> None:
    lst = write(tmp_path / "train.txt", text)
    if classes:
        write(tmp_path / "classes.txt", classes)
    with pytest.raises(DataError, match=message) as info:
        load_annotations(lst)
    assert str(lst) in str(info.value) and "\n" not in str(info.value)


def test_bad_meta_and_classes_files(tmp_path: Path) -> None:
    lst = write(tmp_path / "train.txt", "a.mp4 0\n")
    write(tmp_path / "meta.json", "{oops")
    with pytest.raises(DataError, match="meta.json: line 1: invalid JSON"):
        load_annotations(lst)
    (tmp_path / "meta.json").unlink()
    write(tmp_path / "classes.txt", "a\na\n")
    with pytest.raises(DataError, match="'a' appears more than once"):
        load_annotations(lst)
    with pytest.raises(DataError, match="not found"):
        load_annotations(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="unknown annotation format"):
        load_annotations(lst, format="yaml")  # type: ignore[arg-type]
    (tmp_path / "classes.txt").unlink()
    lst.write_bytes(b"a.mp4 0\nb\xe9.mp4 0\n")
    with pytest.raises(DataError, match="line 2: expected UTF-8 text"):
        load_annotations(lst)


# --------------------------------------------------------------------------- folder per class


def test_folder_per_class(tmp_path: Path) -> None:
    for name in ("zebra/1.mp4", "ant/2.webm", "ant/1.MP4", "ant/notes.txt", ".hidden/3.mp4"):
        write(tmp_path / "data" / name, "")
    ann = load_annotations(tmp_path / "data")
    assert ann.classes == ["ant", "zebra"]
    assert [(s.path.name, s.label) for s in ann.samples] == [("1.MP4", 0), ("2.webm", 0), ("1.mp4", 1)]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no class folders"):
        load_annotations(tmp_path)
    write(tmp_path / "cls" / "readme.txt", "")
    with pytest.raises(DataError, match="no videos"):
        load_annotations(tmp_path)
    with pytest.raises(DataError, match="needs an annotation file"):
        load_annotations(tmp_path, format="kinetics")


# --------------------------------------------------------------------------- Something-Something v2


def ssv2_files(tmp_path: Path, entries: list) -> Path:
    write(tmp_path / "labels.json", json.dumps({"Pushing something from left to right": "1", "Holding something": "0"}))
    return write(tmp_path / "train.json", json.dumps(entries))


def test_ssv2(tmp_path: Path) -> None:
    lst = ssv2_files(tmp_path, [
        {"id": "78687", "label": "pushing a cup", "template": "Pushing [something] from left to right", "placeholders": ["a cup"]},
        {"id": "42", "template": "Holding [something]"},
    ])
    ann = load_annotations(lst, root=tmp_path / "videos")
    assert ann.classes == ["Holding something", "Pushing something from left to right"]
    assert ann.samples == [Sample(tmp_path / "videos/78687.webm", 1), Sample(tmp_path / "videos/42.webm", 0)]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"id": "1", "template": "Holding [something]"}, {"id": "2"}], "entry 2: expected an object with 'id' and 'template'"),
        ([{"id": "1", "template": "Dropping [something]"}], "entry 1: template 'Dropping something' is not in"),
        ({"id": "1"}, "expected a JSON list"),
    ],
)
def test_ssv2_broken(tmp_path: Path, entries: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_annotations(ssv2_files(tmp_path, entries))  # type: ignore[arg-type]


def test_ssv2_bad_json_and_labels(tmp_path: Path) -> None:
    lst = write(tmp_path / "validation.json", '[{"id": "1",\n "template": }]')
    write(tmp_path / "labels.json", '{"Holding something": "0"}')
    with pytest.raises(DataError, match="validation.json: line 2: invalid JSON"):
        load_annotations(lst)
    write(tmp_path / "labels.json", '{"Holding something": "3"}')
    with pytest.raises(DataError, match="class ids must be 0..0"):
        load_annotations(lst)


# --------------------------------------------------------------------------- Charades


CHARADES_HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def test_charades_multi_hot_with_segments(tmp_path: Path) -> None:
    lst = write(tmp_path / "Charades_v1_train.csv", CHARADES_HEADER
                + '46GP8,HR43,Kitchen,6,7,Yes,"A person, cooking",food,"text",c092 11.90 21.20;c147 0.00 12.60,24.83\n'
                + "XYZ12,HR43,Hall,6,7,Yes,walks,door,text,,10.0\n")
    ann = load_annotations(lst)
    assert ann.multi_label and ann.num_classes == 157
    first, second = ann.samples
    assert first.path == tmp_path / "46GP8.mp4" and first.label == -1
    assert first.labels == (92, 147)
    assert first.segments == ((92, 11.9, 21.2), (147, 0.0, 12.6))
    assert second.labels == () and second.segments == ()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("A1,c092 11.90\n", "line 3: expected actions like"),
        ("A1,c157 1.0 2.0\n", "line 3: action class c157 outside the class range c000..c156"),
        (",c001 1.0 2.0\n", "line 3: expected a video id"),
    ],
)
def test_charades_broken(tmp_path: Path, row: str, message: str) -> None:
    lst = write(tmp_path / "charades.csv", "id,actions\nA0,c001 0.5 1.5\n" + row)
    with pytest.raises(DataError, match=message):
        load_annotations(lst)


def test_charades_needs_actions_column(tmp_path: Path) -> None:
    lst = write(tmp_path / "c.csv", "id,labels\nA0,c001\n")
    with pytest.raises(DataError, match="line 1: expected a CSV header with 'id' and 'actions'"):
        load_annotations(lst, format="charades")


# --------------------------------------------------------------------------- writing lists back


def test_write_annotations_round_trip(tmp_path: Path) -> None:
    lst = write(tmp_path / "src" / "train.csv", "a.mp4,1\n/abs/b.mp4,0\n")
    write(tmp_path / "src" / "classes.txt", "run\nwalk\n")
    write(tmp_path / "src" / "meta.json", '{"flip_sensitive": true}')
    ann = load_annotations(lst)
    write_annotations(tmp_path / "out" / "clean.csv", ann)
    again = load_annotations(tmp_path / "out" / "clean.csv")
    assert again.samples == ann.samples and again.classes == ann.classes and again.meta == ann.meta
    assert (tmp_path / "out" / "clean.csv").read_text() == f"{(tmp_path / 'src' / 'a.mp4').resolve()},1\n/abs/b.mp4,0\n"
    write_annotations(tmp_path / "src" / "clean.txt", ann)  # beside the source: same classes.txt is fine
    assert load_annotations(tmp_path / "src" / "clean.txt").samples == ann.samples
    # a .txt list is space separated, and its paths are relative to its folder where they can be
    assert (tmp_path / "src" / "clean.txt").read_text() == "a.mp4 1\n/abs/b.mp4 0\n"
    write(tmp_path / "other" / "classes.txt", "x\n")
    with pytest.raises(DataError, match="already exists with different content"):
        write_annotations(tmp_path / "other" / "clean.txt", ann)


def test_write_charades_round_trip(tmp_path: Path) -> None:
    lst = write(tmp_path / "charades.csv", "id,actions\nsub/A0,c001 0.50 1.50;c003 1.00 2.00\n")
    ann = load_annotations(lst)
    write_annotations(tmp_path / "out.csv", ann)
    again = load_annotations(tmp_path / "out.csv")
    assert again.samples == ann.samples and again.multi_label and again.num_classes == 157
    assert (tmp_path / "out.csv").read_text() == "id,actions\nsub/A0,c001 0.50 1.50;c003 1.00 2.00\n"  # Charades' own layout
