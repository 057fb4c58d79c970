"""``vidgrid export``: a trained model out of vidgrid, into a folder a serving runtime reads.

Every format writes ``model.json`` (the sidecar: model name and options, classes, task, the test
preprocessing and the input shape) and ``model_card.md`` beside the model file:

- ``safetensors``: ``model.safetensors``, the weights alone; :func:`vidgrid.models.load_exported`
  rebuilds the model from it and the sidecar without unpickling anything;
- ``onnx``: ``model.onnx`` from ``torch.onnx.export`` (the dynamo exporter), batch dimension dynamic;
- ``pt2``: ``model.pt2`` from ``torch.export`` (reload with ``torch.export.load``), batch dynamic and the
  frames too where the model's graph does not fix them (X3D; SlowFast's and MViT's do).

Each export is checked before the command succeeds: the written model runs on an input of another
batch size than it was traced with, and its output must equal the PyTorch model's within 1e-4 of the
largest output magnitude (printed).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from vidgrid.config import Config
from vidgrid.engine.build import load_split
from vidgrid.engine.model_card import CardFacts, config_spec, test_views, write_model_card
from vidgrid.engine.weights import Weights, load_weights, model_from_weights
from vidgrid.errors import CheckpointError, VidgridError
from vidgrid.models.exported import SIDECAR, WEIGHTS, load_exported
from vidgrid.tasks import Task

Format = Literal["safetensors", "onnx", "pt2"]
FORMATS: tuple[str, ...] = ("safetensors", "onnx", "pt2")
MODEL_FILES = {"safetensors": WEIGHTS, "onnx": "model.onnx", "pt2": "model.pt2"}
TOLERANCE = 1e-4
"""Largest |Δ| allowed between the exported and the PyTorch model, relative to the largest |output|."""
TRACE_BATCH, CHECK_BATCH = 2, 3
"""Batch sizes of the example input an export traces and of the input it is checked on (dynamic batch)."""


def require_onnx() -> None:
    """The optional export dependencies, or a one-line error naming the extra that installs them."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise VidgridError(
            f"--format onnx needs onnx, onnxscript and onnxruntime ({e.name} is missing): pip install 'vidgrid[export]'"
        ) from None


def model_spec(weights: Weights, task: Task) -> dict[str, Any]:
    """The :func:`create_model` arguments that rebuild the weights' model: name, outputs, options."""
    if weights.config is None:
        return {"name": weights.model_name, "num_classes": task.num_outputs, "options": dict(weights.options)}
    return config_spec(weights.config, num_outputs=task.num_outputs)


def sidecar(spec: dict[str, Any], task: Task, cfg: Config, *, fmt: str, dynamic: list[str], source: Path) -> dict[str, Any]:
    """``model.json``: what rebuilds the model and what its input must look like."""
    clips, crops, crop = test_views(cfg)
    return {
        "model": spec,
        "task": task.name,
        "classes": task.classes,
        "preprocessing": {
            "frames": cfg.data.frames, "sampling_rate": cfg.data.sampling_rate,
            "short_side": cfg.eval.short_side or crop, "crop": crop,
            "mean": list(cfg.data.mean), "std": list(cfg.data.std),
            "views": {"clips": clips, "crops": crops},
        },
        "input": {"layout": "float32 (B, C, T, H, W): RGB pixels / 255, standardised by mean and std",
                  "shape": [None, *example_shape(cfg, 1)[1:]], "dynamic": dynamic},
        "format": fmt,
        "file": MODEL_FILES[fmt],
        "source": str(source),
    }


def example_shape(cfg: Config, batch: int) -> tuple[int, int, int, int, int]:
    """(B, C, T, H, W) of a test view batch."""
    crop = test_views(cfg)[2]
    return batch, 3, cfg.data.frames, crop, crop


def relative_error(got: Tensor, want: Tensor) -> tuple[float, float]:
    """(max |got - want|, that over max |want|)."""
    delta = float((got.float() - want.float()).abs().max())
    return delta, delta / max(float(want.abs().max()), 1e-12)


def check_export(fmt: str, got: Tensor, want: Tensor) -> str:
    """A line with the largest difference; an error when it exceeds :data:`TOLERANCE` (relative)."""
    delta, relative = relative_error(got, want)
    line = f"{fmt}: max |Δ| {delta:.2e} (relative {relative:.2e}, limit {TOLERANCE:.0e}) at batch {got.shape[0]}"
    if not relative <= TOLERANCE:
        raise CheckpointError(f"{line}: the exported model does not reproduce the PyTorch model")
    return line


def write_safetensors(model: nn.Module, folder: Path, x: Tensor) -> Tensor:
    """``model.safetensors`` (contiguous copies; shared tensors stored once each); returns the output of
    the model rebuilt by :func:`load_exported` on ``x`` (the sidecar must be written first)."""
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, folder / WEIGHTS)
    with torch.inference_mode():
        return load_exported(folder)(x)


@contextlib.contextmanager
def _quiet_exporter():
    """The exporters' progress lines and warnings about absent torchvision operators go unseen."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def write_onnx(model: nn.Module, folder: Path, example: Tensor, x: Tensor) -> Tensor:
    """``model.onnx`` (dynamo exporter, opset of the installed onnxscript, dynamic batch), run by ONNX
    Runtime on ``x``."""
    require_onnx()
    import onnxruntime

    path = folder / MODEL_FILES["onnx"]
    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False)
        program.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


def export_program(model: nn.Module, example: Tensor) -> tuple[torch.export.ExportedProgram, list[str]]:
    """``torch.export`` with the batch dynamic, and the frames too when the graph allows it (a model
    whose layers fix the clip length, e.g. by a pooling kernel of that length, keeps them static)."""
    batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames")
    try:
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch, 2: frames},)), ["batch", "frames"]
    except torch._dynamo.exc.UserError:  # a constraint violation: the graph specialises the frames
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), ["batch"]


def write_pt2(model: nn.Module, folder: Path, example: Tensor, x: Tensor) -> tuple[Tensor, list[str]]:
    """``model.pt2``, reloaded with ``torch.export.load`` and run on ``x``; also the dynamic dims."""
    path = folder / MODEL_FILES["pt2"]
    program, dynamic = export_program(model, example)
    torch.export.save(program, path)
    with torch.inference_mode():
        return torch.export.load(path).module()(x), dynamic


def export_model(weights: Weights, fmt: str, out: Path) -> dict[str, Any]:
    """Write the export folder ``out`` of ``weights`` in ``fmt``; returns ``{"file", "bytes", "seconds",
    "check", "dynamic"}``."""
    if fmt not in FORMATS:
        raise VidgridError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        require_onnx()  # before any work
    model, task, cfg = model_from_weights(weights)
    if task.box_inputs:
        raise VidgridError(f"{weights.path}: the {task.name} task's network also takes person boxes; export handles "
                           "networks of clips only")
    if fmt == "safetensors" and type(task).attach is not Task.attach:
        raise VidgridError(f"{weights.path}: the {task.name} task adds heads of its own, and load_exported rebuilds the "
                           "backbone's network alone; export it with --format pt2 or onnx")
    spec = model_spec(weights, task)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    example, x = (torch.randn(example_shape(cfg, b), generator=generator) for b in (TRACE_BATCH, CHECK_BATCH))
    with torch.inference_mode():
        want = model(x)
    start = time.perf_counter()
    dynamic = ["batch"]
    _write_json(out / SIDECAR, sidecar(spec, task, cfg, fmt=fmt, dynamic=dynamic, source=weights.path))
    if fmt == "safetensors":
        got = write_safetensors(model, out, x)  # reads the sidecar back
    elif fmt == "onnx":
        got = write_onnx(model, out, example, x)
    else:
        got, dynamic = write_pt2(model, out, example, x)
        _write_json(out / SIDECAR, sidecar(spec, task, cfg, fmt=fmt, dynamic=dynamic, source=weights.path))
    seconds = time.perf_counter() - start
    check = check_export(fmt, got, want)
    write_model_card(out, card_facts(weights, spec, task, cfg))
    path = out / MODEL_FILES[fmt]
    return {"file": str(path), "bytes": path.stat().st_size, "seconds": round(seconds, 2), "check": check, "dynamic": dynamic}


def card_facts(weights: Weights, spec: dict[str, Any], task: Task, cfg: Config) -> CardFacts:
    """The card of an exported file: a checkpoint's training counters and metrics (its ``train.state``),
    the videos of the recipe's lists where they can still be read."""
    state = weights.train_state
    best = {"metric": task.best_metric, **state["best"]} if state.get("best") else {}
    training = ({"wall_time_s": state["wall_time_s"], "iterations": state["iteration"], "epochs": state["epoch"],
                 "clips_seen": state["clips_seen"]} if state else {})
    return CardFacts(spec, cfg, task.name, task.classes, str(weights.path), data=readable_splits(weights),
                     metrics=dict(state.get("val", {})), best=best, training=training)


def readable_splits(weights: Weights) -> dict[str, int]:
    """Videos of the checkpoint recipe's train and val lists, those that can still be read."""
    counts = {}
    for split in ("train", "val") if weights.config is not None else ():
        try:
            counts[split] = len(load_split(weights.config, split).samples)
        except VidgridError:
            continue
    return counts


def _write_json(path: Path, tree: dict[str, Any]) -> None:
    path.write_text(json.dumps(tree, indent=2) + "\n")


def export_command(checkpoint: Path, fmt: str, out: Path | None) -> int:
    """Export ``checkpoint`` (a training checkpoint or a converted file) to ``out`` (default: beside it,
    ``<name>-<format>/``) and print the file, its size, the time taken and the output check."""
    weights = load_weights(checkpoint)
    out = out if out is not None else checkpoint.parent / f"{checkpoint.stem}-{fmt}"
    result = export_model(weights, fmt, out)
    print(f"{result['file']}: {result['bytes'] / 1e6:.2f} MB in {result['seconds']:.1f} s "
          f"(dynamic: {', '.join(result['dynamic'])})")
    print(result["check"])
    print(f"sidecar: {out / SIDECAR}; model card: {out / 'model_card.md'}")
    return 0
