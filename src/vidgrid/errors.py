"""User-facing errors.

Anything a user can get wrong (a config key, an annotation line, a missing file, a checkpoint for
another model) raises :class:`VidgridError` with a one-line message naming the file or field and
what was expected. The CLI prints it as ``error: <message>`` and exits with code 2; ``--debug``
shows the traceback instead.
"""

import errno


def one_line(error: BaseException) -> str:
    """The user-facing line of ``error``: a DataLoader worker's error arrives re-raised with "Caught X
    in DataLoader worker process N" and the worker's traceback in its message; only the original
    message, the traceback's last line, is kept."""
    text = str(error)
    if "\nOriginal Traceback (most recent call last):" in text:
        last = text.rstrip().splitlines()[-1]  # "vidgrid.errors.DataError: <message>"
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def first_line(error: BaseException, message: str | None = None) -> str:
    """A foreign error (torch's, a collective's, the OS's) in a few words: the first non-empty line of
    its message (or of ``message``, a part of it), at most 200 characters; its class name when empty."""
    lines = [line.strip() for line in (str(error) if message is None else message).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__


NO_SPACE = "no space left on device"


def no_space(error: BaseException) -> bool:
    """Whether ``error`` is a full disk or an exceeded quota."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(error: OSError) -> str | None:
    """``PATH: no space left on device`` for a full disk (or quota), None for any other OSError."""
    if not no_space(error):
        return None
    return f"{error.filename or 'writing a file'}: {NO_SPACE}"


class VidgridError(Exception):
    """A problem with user input, reported as one line (exit code 2)."""


class ConfigError(VidgridError):
    """A bad config file, key or value."""


class DataError(VidgridError):
    """A bad annotation file, data root or video list."""


class CheckpointError(VidgridError):
    """A missing, truncated or mismatched checkpoint."""


class ModelError(VidgridError):
    """A model name or model option the registry cannot build; ``option`` names the option at fault
    (None for an unknown model name)."""

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option
