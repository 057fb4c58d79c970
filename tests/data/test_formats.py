"""The annotation-format registry: detection order, unknown names, a format added from outside."""

from __future__ import annotations

import dataclasses
import pkgutil
from pathlib import Path

import pytest

from vidgrid.config import load_config
from vidgrid.data import formats
from vidgrid.data.annotations import Sample, detect_format, load_annotations
from vidgrid.data.formats import registry
from vidgrid.errors import ConfigError, DataError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Formats registered by a test disappear with it."""
    monkeypatch.setattr(registry, "FORMATS", registry.FORMATS.copy())


def read_tsv(path: Path, root: Path, class_file: Path | None) -> tuple[list[Sample], list[str]]:
    """A tab-separated ``label<TAB>path`` list: the reader of the test's own format."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    names = sorted({label for label, _ in rows})
    return [Sample(root / video, names.index(label)) for label, video in rows], names


TSV = formats.AnnotationFormat(
    name="tsv", read=read_tsv, detects=lambda source: source.suffix == ".tsv", priority=25,
    class_file=None, meta={"flip_sensitive": True}, multi_label=False,
)


BUILT_IN = ["charades", "folder", "kinetics", "ssv2"]


def valid_names() -> str:
    """What an error about a format name lists: ``auto`` and every registered format."""
    return ", ".join(["auto", *formats.annotation_formats()])


def test_the_built_in_formats_are_registered() -> None:
    assert set(BUILT_IN) <= set(formats.annotation_formats())
    assert formats.annotation_formats() == sorted(formats.annotation_formats())


def test_each_format_module_registers_the_format_it_is_named_after() -> None:
    """Every format module of the package is imported (registered) by it."""
    modules = {m.name for m in pkgutil.iter_modules(formats.__path__)} - {"records", "registry"}
    assert modules == set(formats.annotation_formats())
    for name in modules:
        assert formats.get_format(name).read.__module__ == f"vidgrid.data.formats.{name}"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("Charades_v1_train.csv", "id,subject,actions,length\nA0,H1,c001 0.5 1.5,3.0\n", "charades"),
        ("charades.csv", "ID,Actions\nA0,c001 0.5 1.5\n", "charades"),
        ("train.csv", "path,label\na.mp4,0\n", "kinetics"),
        ("ids.csv", "id,label\na.mp4,0\n", "kinetics"),  # an id column alone is no Charades header
        ("actions.txt", "id,actions\nA0,c001 0.5 1.5\n", "kinetics"),  # a Charades header outside a .csv
        ("train.json", "[]", "ssv2"),
        ("VALIDATION.JSON", "[]", "ssv2"),
        ("train.txt", "a.mp4 0\n", "kinetics"),
        ("list", "a.mp4 0\n", "kinetics"),
    ],
)
def test_auto_detection_order(tmp_path: Path, name: str, text: str, expected: str) -> None:
    assert detect_format(write(tmp_path / name, text)) == expected


def test_a_folder_is_a_folder_per_class(tmp_path: Path) -> None:
    (tmp_path / "data.json").mkdir()  # a folder named like a list is still a folder
    assert detect_format(tmp_path) == "folder" and detect_format(tmp_path / "data.json") == "folder"


@pytest.mark.parametrize("name", ["foo", "AUTO", "Kinetics", ""])
def test_an_unknown_name_lists_the_registry(tmp_path: Path, name: str) -> None:
    lst = write(tmp_path / "train.txt", "a.mp4 0\n")
    with pytest.raises(ConfigError) as info:
        load_annotations(lst, format=name)
    message = str(info.value)
    assert message == f"'data.format' = {name!r}: unknown annotation format, expected one of {valid_names()}"
    assert valid_names().startswith("auto, ava, charades, folder, kinetics, ssv2")
    assert isinstance(info.value, DataError)  # callers that catch annotation errors catch it too


def test_an_unknown_name_is_reported_before_the_source_is_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'data.format' = 'foo'"):
        load_annotations(tmp_path / "missing.txt", format="foo")


def test_the_config_value_reaches_the_check(tmp_path: Path) -> None:
    """``data.format`` is any string in the config; the annotation loader names the key when it is wrong."""
    lst = write(tmp_path / "train.txt", "a.mp4 0\n")
    cfg = load_config(None, [f"data.train_list={lst}", "data.format=yaml"])
    with pytest.raises(ConfigError, match=rf"^'data\.format' = 'yaml': .*expected one of {valid_names()}$"):
        load_annotations(cfg.data.train_list, format=cfg.data.format)
    assert load_config(None, ["data.format=ssv2"]).data.format == "ssv2"


def test_the_check_derives_from_the_registry(scratch_registry: None) -> None:
    before = formats.annotation_formats()
    formats.register_format(TSV)
    assert formats.annotation_formats() == sorted([*before, "tsv"])
    formats.check_format("tsv")
    with pytest.raises(ConfigError, match=f"expected one of {valid_names()}$") as info:
        formats.check_format("csv")
    assert ", tsv" in str(info.value)


def test_a_format_registered_from_outside_is_detected_and_loaded(tmp_path: Path, scratch_registry: None) -> None:
    lst = write(tmp_path / "train.tsv", "walk\tv/1.mp4\nrun\tv/2.mp4\n")
    assert detect_format(lst) == "kinetics"  # before registration: the fallback
    formats.register_format(TSV)
    assert detect_format(lst) == "tsv"
    for fmt in ("auto", "tsv"):
        ann = load_annotations(lst, format=fmt, root=tmp_path / "videos")
        assert ann.samples == [Sample(tmp_path / "videos/v/1.mp4", 1), Sample(tmp_path / "videos/v/2.mp4", 0)]
        assert ann.classes == ["run", "walk"] and not ann.multi_label
        assert ann.meta == {"flip_sensitive": True}  # what the format says about its data
    with pytest.raises(DataError, match="is a folder, but format 'tsv' needs an annotation file"):
        load_annotations(tmp_path, format="tsv")


def test_registering_a_name_twice_is_refused(scratch_registry: None) -> None:
    with pytest.raises(ValueError, match="'kinetics' is already registered"):
        formats.register_format(dataclasses.replace(TSV, name="kinetics"))
    with pytest.raises(ValueError, match="'auto' is not a format name"):
        formats.register_format(dataclasses.replace(TSV, name="auto"))


def test_the_detectors_are_asked_from_the_highest_priority_down(tmp_path: Path, scratch_registry: None) -> None:
    lst = write(tmp_path / "c.csv", "id,actions\nA0,c001 0.5 1.5\n")
    greedy = formats.AnnotationFormat(name="greedy", read=read_tsv, detects=lambda source: True, priority=5)
    formats.register_format(greedy)
    assert detect_format(lst) == "charades" and detect_format(tmp_path / "nothing.txt") == "greedy"
    formats.register_format(formats.AnnotationFormat(name="first", read=read_tsv, detects=lambda s: True, priority=99))
    assert detect_format(lst) == "first" and detect_format(tmp_path) == "first"


def test_nothing_recognises_the_source(tmp_path: Path, scratch_registry: None) -> None:
    registry.FORMATS.pop("kinetics")
    others = ", ".join(formats.annotation_formats())
    with pytest.raises(DataError, match=rf"train\.txt: cannot tell the annotation format; set 'data\.format' to one of {others}$"):
        load_annotations(write(tmp_path / "train.txt", "a.mp4 0\n"))


@pytest.mark.parametrize(
    ("name", "multi_label", "meta"),
    [("charades", True, {}), ("folder", False, {}), ("kinetics", False, {}), ("ssv2", False, {"flip_sensitive": True})],
)
def test_what_each_format_says_about_its_data(name: str, multi_label: bool, meta: dict) -> None:
    fmt = formats.get_format(name)
    assert fmt.multi_label is multi_label and fmt.meta == meta


def test_a_file_given_to_a_folder_format(tmp_path: Path) -> None:
    lst = write(tmp_path / "train.txt", "a.mp4 0\n")
    with pytest.raises(DataError, match=r"train\.txt: is a file, but format 'folder' needs a folder$"):
        load_annotations(lst, format="folder")


def test_default_class_files(tmp_path: Path) -> None:
    kinetics, ssv2, folder = (formats.get_format(n) for n in ("kinetics", "ssv2", "folder"))
    assert kinetics.default_class_file(tmp_path) is None  # optional and absent
    assert ssv2.default_class_file(tmp_path) == tmp_path / "labels.json"  # required: its reader says it is missing
    write(tmp_path / "classes.txt", "a\n")
    assert kinetics.default_class_file(tmp_path) == tmp_path / "classes.txt"
    assert folder.default_class_file(tmp_path) is None
    with pytest.raises(DataError, match=r"labels\.json: file not found"):
        load_annotations(write(tmp_path / "train.json", "[]"))
