"""Resolution profiles of TensorRT engines.

A named preset names the **output** resolution a user wants (``1080p`` = up to 1920x1080 out);
engines are built for the matching **LR input** range: output / scale, rounded up to the model's
size multiple. Explicit sizes are LR input sizes: ``WxH`` (fixed) or ``WxH:WxH:WxH`` (min:opt:max).

One engine per profile (bucket), not one engine with several optimization profiles: a video has
one resolution, so one engine is loaded at a time; adding a bucket never rebuilds the others;
each engine's tactics are timed at its own opt shape; the cache key stays one shape range.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

PRESETS: dict[str, tuple[int, int]] = {   # output (width, height)
    "360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080),
    "1440p": (2560, 1440), "4k": (3840, 2160),
}
MAX_TIMES = 8  # largest number of times per window an engine accepts (temporal factor 8)
# The times length TensorRT tunes its kernels for (the optimization profile's opt): factor 3, a 4x
# frame rate (e.g. 30 -> 120 fps), the usual target; 1..MAX_TIMES all run.
OPT_TIMES = 3


def engine_max_factor(takes_times: bool) -> int | None:
    """The largest --factor an engine serves: MAX_TIMES with a times input, else None (fixed outputs)."""
    return MAX_TIMES if takes_times else None


class ProfileError(ValueError):
    """A profile that cannot be parsed or served."""


@dataclass(frozen=True)
class Profile:
    name: str
    min: tuple[int, int]   # LR (height, width)
    opt: tuple[int, int]
    max: tuple[int, int]

    def contains(self, h: int, w: int) -> bool:
        return self.min[0] <= h <= self.max[0] and self.min[1] <= w <= self.max[1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        return cls(d["name"], tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))


def _round_up(v: int, multiple: int) -> int:
    return -(-v // multiple) * multiple


def _size(text: str, multiple: int) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower())
    if not m:
        raise ProfileError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 480x272)")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0:
        raise ProfileError(f"size {text!r} must be positive")
    return _round_up(h, multiple), _round_up(w, multiple)


def parse_profile(text: str, scale: int, multiple: int) -> Profile:
    """A preset name, ``WxH`` or ``WxH:WxH:WxH`` (LR input sizes, rounded up to ``multiple``)."""
    key = text.strip().lower()
    if key in PRESETS:
        ow, oh = PRESETS[key]
        top = (_round_up(-(-oh // scale), multiple), _round_up(-(-ow // scale), multiple))
        names = list(PRESETS)
        below = PRESETS[names[names.index(key) - 1]] if names.index(key) else None
        low = (multiple, multiple) if below is None else \
            (min(top[0], _round_up(-(-below[1] // scale), multiple)), min(top[1], _round_up(-(-below[0] // scale), multiple)))
        return Profile(key, low, top, top)
    parts = text.split(":")
    if len(parts) == 1:
        s = _size(parts[0], multiple)
        return Profile(text, s, s, s)
    if len(parts) != 3:
        raise ProfileError(f"profile {text!r}: use a preset ({', '.join(PRESETS)}), WxH, or WxH:WxH:WxH")
    lo, opt, hi = (_size(p, multiple) for p in parts)
    if not (lo[0] <= opt[0] <= hi[0] and lo[1] <= opt[1] <= hi[1]):
        raise ProfileError(f"profile {text!r}: need min <= opt <= max in both dimensions")
    return Profile(text, lo, opt, hi)


def select_profile(profiles: list[Profile], h: int, w: int) -> Profile:
    """The smallest profile that holds an LR frame of ``h`` x ``w``."""
    fits = [p for p in profiles if p.contains(h, w)]
    if not fits:
        have = ", ".join(f"{p.name} (LR up to {p.max[1]}x{p.max[0]})" for p in profiles) or "none"
        raise ProfileError(f"no engine profile holds {w}x{h} LR frames (have: {have}); "
                           "use --tile or build a larger --profile")
    return min(fits, key=lambda p: p.max[0] * p.max[1])
