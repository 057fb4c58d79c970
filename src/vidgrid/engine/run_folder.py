"""The run folder a training run writes into (``--out``): checked before anything is built.

A folder that already holds a run (a checkpoint, logged metrics or a summary) is continued with ``--resume auto`` and never silently restarted: a fresh start there is
an error unless ``--overwrite`` asks for the old run's checkpoints and logs to be deleted first (a
new run's logs and lower-numbered checkpoints would otherwise mix with the old ones). A path that is
a file or a folder that cannot be written is one error line, not a traceback at the first write.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vidgrid.engine.checkpoint import list_checkpoints, remove_temporaries
from vidgrid.engine.logging import METRICS_FILE, SUMMARY_FILE
from vidgrid.errors import VidgridError

CHECKPOINTS = "checkpoints"


def holds_run(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a run's work: checkpoints, logged records or a summary (a config
    alone, left by a run that failed before its first step, is not)."""
    metrics = out_dir / METRICS_FILE
    return bool(list_checkpoints(out_dir / CHECKPOINTS)) or (out_dir / SUMMARY_FILE).is_file() or (
        metrics.is_file() and metrics.stat().st_size > 0
    )


def check_run_folder(out_dir: Path, *, resume: str | None, overwrite: bool) -> None:
    """Refuse a path that is a file, ``--overwrite`` with ``--resume``, and a fresh start in a folder
    that holds a run (read-only: every process of a run may call it)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise VidgridError(f"--out {out_dir}: is a file; give a folder for the run")
    if overwrite and resume is not None:
        raise VidgridError("--overwrite starts the run afresh; it cannot be combined with --resume")
    if resume is None and not overwrite and holds_run(out_dir):
        raise VidgridError(
            f"--out {out_dir}: holds a run already; continue it with --resume auto, start a new one in another "
            "--out, or replace it with --overwrite"
        )


def prepare_run_folder(out_dir: Path, *, overwrite: bool) -> None:
    """Create ``out_dir`` and check it can be written; with ``overwrite`` delete the old run's
    checkpoints, logs and summary; remove temporaries of killed checkpoint writes (rank 0 only)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".vidgrid-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise VidgridError(f"--out {out_dir}: cannot write there ({e.strerror or e}); give a writable folder") from None
    if overwrite:
        for path in list_checkpoints(out_dir / CHECKPOINTS):
            path.unlink()
        for name in (METRICS_FILE, SUMMARY_FILE):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "tb", ignore_errors=True)
    remove_temporaries(out_dir / CHECKPOINTS)
