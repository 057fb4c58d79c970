"""The classes of ``vidgrid synth``: how each is rendered, the named class sets, their mirror images.

Every video is one bright target (random colour, brightest channel 200-255) on a static dark random
gradient, with up to ``distractors`` small dim dots, each drifting (bouncing off the borders) with
probability ``moving_distractors``. Two other styles (:data:`STYLES`) draw the same classes in
another look: ``negative`` turns every frame into its photographic negative (a dark target on a
light gradient), ``soft`` blurs the target's edge over :data:`SOFT_EDGE_PX` pixels (out of focus).
Sizes scale with the short side ``side = min(width, height)``;
motion is counted per frame, so a clip sampled every τ frames sees the same steps at any fps.

- ``slide_left``, ``slide_right``, ``slide_up``, ``slide_down``: a disc, ring or cross (radius
  0.12-0.18 side) crosses the frame at 0.6-1.4 px per frame (at side 64).
- ``grow``, ``shrink``: a static disc, ring or cross whose radius goes linearly from 0.07-0.10 to
  0.18-0.24 side (or back). ``approach``, ``recede``: the same sizes, and the opacity rises from 0.3
  to 1 (or falls), so size and contrast change together, as for an object coming closer.
- ``still_disc``, ``still_ring``, ``still_cross``, ``still_square``, ``still_triangle``: a static
  shape (radius 0.16-0.24 side); only its form tells them apart.
- ``blink``, ``fade_in``, ``fade_out``, ``pulse``: a static disc, ring or cross of the stills' sizes
  whose opacity follows a pattern in time: on/off runs of 3-7 frames; a linear ramp 0 -> 1 over the
  video; 1 -> 0; ``0.5 - 0.5 cos(2 pi t / period + phase)`` with a period of 12-20 frames.
- ``rotate_cw``, ``rotate_ccw``: a bar with a knob at one end (half-length 0.20-0.28 side) turning
  about its centre by 5-10 degrees per frame, clockwise or counter-clockwise on screen, from a random
  angle: one frame cannot tell the sense, and a horizontal flip turns one class into the other.

The first ten classes are the demo's; their random draws are in the demo's original order, so a seed
gives the demo the same videos it always had.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from vidgrid.errors import VidgridError

DEMO_CLASSES = (
    "slide_left",
    "slide_right",
    "slide_up",
    "slide_down",
    "grow",
    "shrink",
    "blink",
    "still_disc",
    "still_ring",
    "still_cross",
)
CLASSES = DEMO_CLASSES + (
    "still_square",
    "still_triangle",
    "approach",
    "recede",
    "fade_in",
    "fade_out",
    "pulse",
    "rotate_cw",
    "rotate_ccw",
)
"""Every class; a class's position here keys its random stream, so new classes are only appended."""

PRESETS: dict[str, tuple[str, ...]] = {
    "demo": DEMO_CLASSES,
    "appearance": ("still_disc", "still_ring", "still_cross", "still_square", "still_triangle"),
    "direction": ("slide_left", "slide_right", "slide_up", "slide_down"),
    "rotation": ("rotate_cw", "rotate_ccw"),
    "timing": ("blink", "fade_in", "fade_out", "pulse"),
    "motion": ("slide_left", "slide_right", "approach", "recede", "blink", "rotate_cw"),
}
HORIZONTAL_MIRROR = {
    "slide_left": "slide_right",
    "slide_right": "slide_left",
    "rotate_cw": "rotate_ccw",
    "rotate_ccw": "rotate_cw",
}
"""The class a horizontally flipped video of each class belongs to; every other class is its own mirror."""

COARSE_PRESETS: dict[str, str] = {
    "demo": "horizontal=slide_left+slide_right,vertical=slide_up+slide_down,size=grow+shrink,blink=blink,"
            "still=still_disc+still_ring+still_cross",
    "motion": "sideways=slide_left+slide_right,depth=approach+recede,blink=blink,turn=rotate_cw",
}
"""Coarse class sets (``vidgrid synth --coarse``) over the fine presets of the same name: each coarse
class merges the fine classes after its ``=``."""

SHAPES = ("disc", "ring", "cross")
"""Shapes of the moving, scaling and timed targets (drawn at random per video)."""
STILL_SHAPES = SHAPES + ("square", "triangle")

STYLES = ("plain", "negative", "soft")
"""How the frames look: as rendered, their negative, or with the target's edge blurred."""
SOFT_EDGE_PX = 4.0
"""Width of the ``soft`` style's edge: the target's opacity ramps from 1 to 0 over this many pixels
across its outline (a sharp target's ramp is 1 pixel)."""

DEFAULT_DISTRACTORS = 2
DEFAULT_MOVING_DISTRACTORS = 0.5


def resolve_classes(spec: str | Sequence[str]) -> tuple[str, ...]:
    """The class names of ``spec``: a preset name, a comma-separated list, or a sequence of names."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [name.strip() for name in names]
    if len(names) == 1 and names[0] in PRESETS:
        return PRESETS[names[0]]
    choices = (
        f"expected a preset ({', '.join(PRESETS)}) or a comma-separated list of at least 2 of: "
        f"{', '.join(CLASSES)}"
    )
    shown = spec if isinstance(spec, str) else ",".join(spec)
    unknown = [name for name in names if name not in CLASSES]
    if unknown:
        raise VidgridError(f"synth: --classes {shown!r}: unknown name {unknown[0]!r}; {choices}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise VidgridError(f"synth: --classes {shown!r}: {repeated[0]!r} is listed twice; {choices}")
    if len(names) < 2:
        raise VidgridError(f"synth: --classes {shown!r}: one class is no classification task; {choices}")
    return tuple(names)


def resolve_coarse(spec: str) -> dict[str, tuple[str, ...]]:
    """Coarse class -> the fine classes it merges, from a preset name of :data:`COARSE_PRESETS` or
    ``coarse=fine+fine,coarse=fine`` (each fine class in one coarse class, at least 2 coarse classes)."""
    text = COARSE_PRESETS.get(spec.strip(), spec)
    expected = f"expected a preset ({', '.join(COARSE_PRESETS)}) or 'coarse=fine+fine,coarse=fine' over: {', '.join(CLASSES)}"
    groups: dict[str, tuple[str, ...]] = {}
    for item in text.split(","):
        name, sep, members = item.partition("=")
        fine = tuple(m.strip() for m in members.split("+"))
        if not sep or not name.strip() or name.strip() in groups or not all(fine):
            raise VidgridError(f"synth: --coarse {spec!r}: {item!r} is not 'coarse=fine+fine' or repeats a name; {expected}")
        unknown = [m for m in fine if m not in CLASSES]
        if unknown:
            raise VidgridError(f"synth: --coarse {spec!r}: unknown class {unknown[0]!r}; {expected}")
        groups[name.strip()] = fine
    merged = [m for fine in groups.values() for m in fine]
    if len(set(merged)) != len(merged) or len(groups) < 2:
        raise VidgridError(f"synth: --coarse {spec!r}: each fine class may be in one coarse class, and 2 or more are needed; {expected}")
    return groups


def preset_name(classes: Sequence[str]) -> str | None:
    """The name of the preset with exactly these classes in this order, or ``None``."""
    return next((name for name, members in PRESETS.items() if tuple(classes) == members), None)


def flip_sensitive(classes: Sequence[str]) -> bool:
    """Whether a horizontal flip turns a video of one of ``classes`` into another of them."""
    return coarse_flip_sensitive({name: (name,) for name in classes})


def coarse_flip_sensitive(groups: Mapping[str, Sequence[str]]) -> bool:
    """Whether a horizontal flip moves a video of one class, a group of fine classes, into another."""
    owner = {fine: name for name, members in groups.items() for fine in members}
    return any(owner.get(HORIZONTAL_MIRROR.get(fine, fine), name) != name for fine, name in owner.items())


# --------------------------------------------------------------------------------------------------
# geometry: signed distances on a (T, H, W) grid, alpha = clip(0.5 - distance) (one-pixel soft edge)


class Grid(NamedTuple):
    """Pixel centres and frame times of one video."""

    t: np.ndarray  # float (T, 1, 1): frame index, broadcasts over the image
    yy: np.ndarray  # float (H, W): row
    xx: np.ndarray  # float (H, W): column
    width: int
    height: int

    @property
    def side(self) -> int:
        return min(self.width, self.height)


def shape_distance(shape: str, dx: np.ndarray, dy: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Signed distance in pixels to a shape of outer ``radius`` centred at ``dx = dy = 0``."""
    if shape == "disc":
        return np.sqrt(dx**2 + dy**2) - radius
    if shape == "ring":  # a band 0.4 radius wide: its dark hole sets it apart from a disc
        return np.abs(np.sqrt(dx**2 + dy**2) - 0.8 * radius) - 0.2 * radius
    if shape == "square":  # axis-aligned, the disc's area: only the corners set it apart
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.5 * math.sqrt(math.pi) * radius
    if shape == "triangle":  # equilateral, apex up (rows grow downwards), in the disc's circle
        return np.maximum(dy - 0.5 * radius, math.sqrt(3) / 2 * np.abs(dx) - 0.5 * dy - 0.5 * radius)
    # cross: two bars 0.4 radius wide, thin enough not to blur into a disc at a coarse multigrid crop
    # (Chebyshev distance: exact enough for a one-pixel soft edge)
    half_width = 0.2 * radius
    horizontal = np.maximum(np.abs(dx) - radius, np.abs(dy) - half_width)
    vertical = np.maximum(np.abs(dx) - half_width, np.abs(dy) - radius)
    return np.minimum(horizontal, vertical)


def knob_bar_distance(dx: np.ndarray, dy: np.ndarray, angle: np.ndarray, half_length: float) -> np.ndarray:
    """Signed distance to a bar from ``-half_length`` to ``+half_length`` along ``angle`` (radians,
    clockwise on screen from the +x axis) with a knob at its ``+`` end: no rotation maps it onto itself."""
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    bar = np.maximum(np.abs(along) - half_length, np.abs(across) - 0.12 * half_length)
    knob = np.sqrt((along - half_length) ** 2 + across**2) - 0.35 * half_length
    return np.minimum(bar, knob)


def paint(canvas: np.ndarray, distance: np.ndarray, colour: np.ndarray, opacity: np.ndarray | float = 1.0) -> None:
    """Composite ``colour`` over float (T, H, W, 3) ``canvas`` where ``distance`` (T, H, W) < 0, times
    ``opacity`` (a number or (T, 1, 1)). Only the frames, rows and columns the shape touches are
    computed: elsewhere alpha is 0 and compositing would leave the canvas exactly as it is."""
    alpha = np.clip(0.5 - distance, 0.0, 1.0) * opacity  # (T, H, W)
    touched = alpha > 0
    box = tuple(_span(touched.any(axis=others)) for others in ((1, 2), (0, 2), (0, 1)))  # frames, rows, columns
    alpha, region = alpha[box][..., None], canvas[box]  # region: a view into the canvas
    region *= 1.0 - alpha
    region += alpha * colour


def _span(flags: np.ndarray) -> slice:
    """The slice from the first to the last true entry of bool (N,) ``flags`` (empty if none)."""
    where = np.flatnonzero(flags)
    return slice(where[0], where[-1] + 1) if len(where) else slice(0, 0)


def _reflect(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Positions bouncing between ``low`` and ``high`` (a triangle wave)."""
    span = max(high - low, 1e-6)
    phase = np.mod(x - low, 2 * span)
    return low + span - np.abs(phase - span)


# --------------------------------------------------------------------------------------------------
# the scene around the target


def background(rng: np.random.Generator, frames: int, width: int, height: int) -> np.ndarray:
    """Float (T, H, W, 3): a static dark random colour gradient with a faint texture."""
    start = rng.uniform(0, 110, 3)
    end = np.clip(start + rng.uniform(-40, 40, 3), 0, 120)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width]
    xx, yy = xx / max(width - 1, 1), yy / max(height - 1, 1)
    ramp = (math.cos(angle) * (xx - 0.5) + math.sin(angle) * (yy - 0.5)) / math.sqrt(2) + 0.5  # in [0, 1]
    image = start + ramp[..., None] * (end - start) + rng.normal(0, 4, (height, width, 3))
    return np.repeat(image[None], frames, axis=0)


def bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A random saturated-to-pale bright colour (brightest channel 200-255), visible on any background."""
    colour = rng.uniform(0, 255, 3)
    return colour * rng.uniform(200, 255) / max(colour.max(), 1.0)


def _distractors(canvas: np.ndarray, rng: np.random.Generator, grid: Grid, most: int, moving: float) -> None:
    """0 to ``most`` small dots in dim random colours, each drifting with probability ``moving``."""
    t, side = grid.t, grid.side
    for _ in range(rng.integers(0, most + 1)):
        radius = rng.uniform(0.02, 0.035) * side
        velocity = rng.uniform(-1, 1, 2) * side / 64 * (rng.random() < moving)
        x = _reflect(rng.uniform(radius, grid.width - radius) + velocity[0] * t, radius, grid.width - radius)
        y = _reflect(rng.uniform(radius, grid.height - radius) + velocity[1] * t, radius, grid.height - radius)
        paint(canvas, np.sqrt((grid.xx - x) ** 2 + (grid.yy - y) ** 2) - radius, rng.uniform(60, 200, 3))


# --------------------------------------------------------------------------------------------------
# the target of each class family: (signed distance (T, H, W), opacity (T, 1, 1))

Target = tuple[np.ndarray, np.ndarray]


def _random_shape(rng: np.random.Generator) -> str:
    return SHAPES[rng.integers(len(SHAPES))]


def _centre(rng: np.random.Generator, grid: Grid, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """A random static centre at least ``reach`` + 1 px from every border, as (T, 1, 1) arrays."""
    cx = np.full_like(grid.t, rng.uniform(reach + 1, grid.width - reach - 1))
    cy = np.full_like(grid.t, rng.uniform(reach + 1, grid.height - reach - 1))
    return cx, cy


def _slide(label: str, rng: np.random.Generator, grid: Grid) -> Target:
    """A shape crossing the frame at constant speed in the direction the label names."""
    t, frames = grid.t, len(grid.t)
    shape = _random_shape(rng)
    r = rng.uniform(0.12, 0.18) * grid.side
    horizontal = label in ("slide_left", "slide_right")
    length, breadth = (grid.width, grid.height) if horizontal else (grid.height, grid.width)
    scale = grid.side / 64
    room = length - 2 * r - 2
    speed = min(rng.uniform(0.6, 1.4) * scale, 0.95 * room / max(frames - 1, 1))
    travel = speed * (frames - 1)
    start = rng.uniform(r + 1, r + 1 + room - travel)
    along = start + speed * t if label in ("slide_right", "slide_down") else start + travel - speed * t
    across = np.full_like(t, rng.uniform(r + 1, breadth - r - 1))
    cx, cy = (along, across) if horizontal else (across, along)
    return shape_distance(shape, grid.xx - cx, grid.yy - cy, np.full_like(t, r)), np.ones_like(t)


def _scaling(label: str, rng: np.random.Generator, grid: Grid) -> Target:
    """A static shape growing or shrinking linearly; ``approach``/``recede`` also gain/lose contrast."""
    t, side = grid.t, grid.side
    shape = _random_shape(rng)
    rng.random()  # the slides' radius draw, unused: keeps the demo classes' random streams as they were
    small, big = rng.uniform(0.07, 0.10) * side, rng.uniform(0.18, 0.24) * side
    fraction = t / max(len(t) - 1, 1)
    rising = fraction if label in ("grow", "approach") else 1 - fraction
    radius = small + (big - small) * rising
    opacity = 0.3 + 0.7 * rising if label in ("approach", "recede") else np.ones_like(t)
    cx, cy = _centre(rng, grid, float(radius.max()))
    return shape_distance(shape, grid.xx - cx, grid.yy - cy, radius), opacity


def _steady(label: str, rng: np.random.Generator, grid: Grid) -> Target:
    """A static shape, always visible (``still_*``) or with the class's opacity pattern in time."""
    t = grid.t
    shape = label.removeprefix("still_") if label.startswith("still_") else _random_shape(rng)
    rng.random()  # the slides' radius draw, unused: keeps the demo classes' random streams as they were
    radius = np.full_like(t, rng.uniform(0.16, 0.24) * grid.side)
    opacity = _opacity_pattern(label, rng, len(t))[:, None, None]
    cx, cy = _centre(rng, grid, float(radius.max()))
    return shape_distance(shape, grid.xx - cx, grid.yy - cy, radius), opacity


def _opacity_pattern(label: str, rng: np.random.Generator, frames: int) -> np.ndarray:
    """float (T,) in [0, 1]: the target's opacity over time for a ``still_*`` or timing class."""
    ramp = np.arange(frames, dtype=np.float64) / max(frames - 1, 1)
    if label == "blink":  # alternating on/off runs of 3-7 frames, starting in a random state
        pattern, state = [], bool(rng.integers(2))
        while len(pattern) < frames:
            pattern += [state] * int(rng.integers(3, 8))
            state = not state
        return np.array(pattern[:frames], dtype=np.float64)
    if label == "fade_in":
        return ramp
    if label == "fade_out":
        return 1.0 - ramp
    if label == "pulse":  # smooth: at least 3 samples per period at the demo's stride of 4 frames
        period, phase = rng.uniform(12, 20), rng.uniform(0, 2 * math.pi)
        return 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(frames) / period + phase)
    return np.ones(frames)


def rotation_angles(label: str, rng: np.random.Generator, frames: int) -> np.ndarray:
    """float (T,): the bar's angle in radians, increasing (clockwise on screen) for ``rotate_cw``."""
    sense = 1.0 if label == "rotate_cw" else -1.0
    start, step = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(5, 10))
    return start + sense * step * np.arange(frames)


def _rotation(label: str, rng: np.random.Generator, grid: Grid) -> Target:
    """A knob-ended bar turning about its centre in the sense the label names."""
    half_length = rng.uniform(0.20, 0.28) * grid.side
    angle = rotation_angles(label, rng, len(grid.t))[:, None, None]
    cx, cy = _centre(rng, grid, 1.35 * half_length)  # the knob reaches 1.35 half-lengths out
    return knob_bar_distance(grid.xx - cx, grid.yy - cy, angle, half_length), np.ones_like(grid.t)


_FAMILY: dict[str, Callable[[str, np.random.Generator, Grid], Target]] = {
    **{name: _slide for name in ("slide_left", "slide_right", "slide_up", "slide_down")},
    **{name: _scaling for name in ("grow", "shrink", "approach", "recede")},
    **{name: _steady for name in ("blink", "fade_in", "fade_out", "pulse")},
    **{f"still_{shape}": _steady for shape in STILL_SHAPES},
    **{name: _rotation for name in ("rotate_cw", "rotate_ccw")},
}
assert set(_FAMILY) == set(CLASSES)


def render_video(label: str, rng: np.random.Generator, **options: Any) -> np.ndarray:
    """One synthetic video of class ``label``: uint8 (T, H, W, 3); ``options`` as
    :func:`render_video_and_track` takes them."""
    return render_video_and_track(label, rng, **options)[0]


def render_video_and_track(
    label: str,
    rng: np.random.Generator,
    *,
    frames: int,
    width: int,
    height: int,
    distractors: int = DEFAULT_DISTRACTORS,
    moving_distractors: float = DEFAULT_MOVING_DISTRACTORS,
    style: str = STYLES[0],
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic video of class ``label`` in ``style`` (:data:`STYLES`) and its main object's
    track: uint8 (T, H, W, 3) frames and float (T, 4) boxes (:func:`object_boxes`)."""
    if label not in _FAMILY:
        raise ValueError(f"unknown synthetic class {label!r}")
    canvas = background(rng, frames, width, height)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)  # (H, W) pixel centres
    grid = Grid(np.arange(frames, dtype=np.float64)[:, None, None], yy, xx, width, height)
    _distractors(canvas, rng, grid, distractors, moving_distractors)
    colour = bright_colour(rng)
    distance, opacity = _FAMILY[label](label, rng, grid)
    paint(canvas, distance / SOFT_EDGE_PX if style == "soft" else distance, colour, opacity)
    frames = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return (255 - frames if style == "negative" else frames), object_boxes(distance)


def object_boxes(distance: np.ndarray) -> np.ndarray:
    """float (T, 4) ``(x1, y1, x2, y2)`` per frame: the pixels a shape's signed distance (T, H, W) puts
    inside it (alpha above 1/2), whatever its opacity (a faded or blinked-off object keeps its place).
    Edges are pixel edges, so a shape covering columns 3..9 has ``x1 = 3, x2 = 10``."""
    inside = distance < 0  # (T, H, W)
    boxes = np.zeros((len(inside), 4))
    for t, mask in enumerate(inside):
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows) == 0:  # a shape thinner than a pixel centre: its nearest pixel
            y, x = np.unravel_index(np.argmin(distance[t]), mask.shape)
            rows, columns = np.array([y]), np.array([x])
        boxes[t] = columns[0], rows[0], columns[-1] + 1, rows[-1] + 1
    return boxes
