"""Our state-dict keys parsed into (part, pathway, stage, block, layer): the common ground of the
checkpoint converters (:mod:`vidgrid.models.convert`) and 2-D → 3-D inflation
(:mod:`vidgrid.models.inflate`), which both render a parsed key in another layout's naming.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Key:
    """One of our state-dict keys, parsed."""

    part: Literal["stem", "block", "nonlocal", "fuse", "conv5", "head"]
    layer: str
    """Layer name inside the part (``conv_a``, ``se.fc1``, ``bn``, ``fc`` ...)."""
    param: str
    """``weight``, ``bias``, ``running_mean`` ..."""
    pathway: int = 0
    """0 = Slow (or the only pathway), 1 = Fast."""
    stage: int = 0
    """2..5 for res2..res5; for ``fuse`` the fusion index 0..3."""
    index: int = 0
    """Block index within the stage."""


_PATHWAY = r"(?:(?P<pw>slow|fast)\.)?"
_OUR_KEYS: tuple[tuple[str, str], ...] = (
    ("stem", _PATHWAY + r"stem\.(?P<layer>\w+)\.(?P<param>\w+)"),
    ("block", _PATHWAY + r"res(?P<stage>\d)\.(?:blocks\.)?(?P<index>\d+)\.(?P<layer>[\w.]+)\.(?P<param>\w+)"),
    ("nonlocal", r"res(?P<stage>\d)\.nonlocal_blocks\.(?P<index>\d+)\.(?P<layer>\w+)\.(?P<param>\w+)"),
    ("fuse", r"fuse\.(?P<stage>\d)\.(?P<layer>\w+)\.(?P<param>\w+)"),
    ("conv5", r"(?P<layer>conv5|conv5_bn)\.(?P<param>\w+)"),
    ("head", r"head\.(?P<layer>\w+)\.(?P<param>\w+)"),
)


def parse_key(key: str) -> Key:
    """Parse one of our state-dict keys (``slow.res3.blocks.0.conv_a.weight``) into a :class:`Key`."""
    for part, pattern in _OUR_KEYS:
        m = re.fullmatch(pattern, key)
        if m:
            g = m.groupdict()
            return Key(
                part=part, layer=g["layer"], param=g["param"], pathway=int(g.get("pw") == "fast"),
                stage=int(g.get("stage") or 0), index=int(g.get("index") or 0),
            )
    raise ValueError(f"no key-table entry for {key!r}")
