"""User-facing errors.

Anything a user can get wrong (a config key, an annotation line, a missing file, a checkpoint for
another model) raises :class:`VidgridError` with a one-line message naming the file or field and
what was expected. The CLI prints it as ``error: <message>`` and exits with code 2; ``--debug``
shows the traceback instead.
"""


class VidgridError(Exception):
    """A problem with user input, reported as one line (exit code 2)."""


class ConfigError(VidgridError):
    """A bad config file, key or value."""


class DataError(VidgridError):
    """A bad annotation file, data root or video list."""


class CheckpointError(VidgridError):
    """A missing, truncated or mismatched checkpoint."""
