"""The self-description every exported model carries (ONNX ``metadata_props`` key ``stvsr``).

A runtime needs nothing else to drive a model: which inputs to feed, how many frames a window
takes, where in time each output frame lies, the spatial scale and the size multiple.

Time positions are in units of input-frame index inside one window: with a 4-frame window,
position 1.5 is halfway between the window's second and third frames. A model with a
``times`` input also renders one frame at ``g + t`` for every ``t`` fed in ``times`` in each of
its gaps ``g`` (the index of the frame that starts the gap). ``output_layout`` says where those
frames are among the outputs, e.g. ``[0.0, {"gap": 0}, 1.0]``: frame 0, the frames at the times
in gap 0, frame 1 (TMNet on 2 frames). Without a layout, ``time_gap`` names the one gap whose
frames follow the fixed outputs (stvun, fmu; schema 1).
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence, TypeVar

METADATA_KEY = "stvsr"
SCHEMA_VERSION = 2          # written when output_layout is used (an older reader would ignore it), else 1
READ_SCHEMAS = (1, 2)
GAP = "gap"                 # output_layout entry {"gap": g}: one output per time, at g + t
MAX_WINDOW, MAX_SCALE, MAX_MULTIPLE = 64, 16, 1024   # sanity bounds checked when metadata is read

# Graph convention shared by every exported network.
FRAMES_INPUT = "frames"     # float32 [B, N, 3, H, W], RGB in [0, 1]
TIMES_INPUT = "times"       # float32 [T], values in (0, 1)
OUTPUT = "frames_out"       # float32 [B, M, 3, scale*H, scale*W], RGB in [0, 1] (not clamped)


Time = TypeVar("Time")       # float or fractions.Fraction


class MetadataError(ValueError):
    """A model file without (valid) stvsr metadata."""


@dataclass
class ModelMetadata:
    model: str                               # network name, informational only for runtimes
    window: int                              # input frames per window (N)
    output_positions: list[float]            # time positions of the fixed outputs, in window index units
    scale: int                               # spatial upscaling factor
    size_multiple: int                       # H and W must be multiples of this (pad, then crop)
    time_gap: int | None = None              # with a times input: outputs at time_gap + t follow the fixed ones
    output_layout: list = field(default_factory=list)  # or: every output group in graph order (module docstring)
    flow_inputs: list[str] = field(default_factory=list)  # e.g. ["flow_fwd", "flow_bwd"]
    flow_pairs: list[list[int]] = field(default_factory=list)  # per flow input: [from, to] frame indices
    flow_units: str = "pixels"              # flows are fed in LR pixels, (dx, dy) channel order
    precision: str = "fp32"                 # fp32 | fp16 | int8
    int8_target: str = ""                   # int8 only: cpu (uint8 activations, ONNX Runtime) | tensorrt
    plugins: str = "none"                   # none (portable ONNX) | native | stvsr
    weights_source: str = ""                # official file name/path, or "random"
    weights_sha256: str = ""
    random_weights: bool = False
    exporter: str = ""                      # "stvsr <version>"
    opset: int = 0
    inputs: dict[str, str] = field(default_factory=lambda: {"frames": FRAMES_INPUT})
    output: str = OUTPUT
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = 1                          # written by to_json: 2 with an output_layout, else 1

    @property
    def takes_times(self) -> bool:
        return bool(self.time_gaps())

    def layout(self) -> list:
        """Every output group in graph order: a number (one fixed output at that position) or
        ``{"gap": g}`` (one output per time at ``g + t``)."""
        if self.output_layout:
            return list(self.output_layout)
        return list(self.output_positions) + ([{GAP: self.time_gap}] if self.time_gap is not None else [])

    def time_gaps(self) -> list[int]:
        """The gaps in which the model renders the fed times, in graph order."""
        return [e[GAP] for e in self.layout() if isinstance(e, dict)]

    def output_count(self, times: int) -> int:
        """Frames in the graph's output when ``times`` times are fed (0 for a model without times)."""
        return len(self.output_positions) + len(self.time_gaps()) * times

    def positions(self, fixed: Sequence[Time], times: Sequence[Time]) -> list[Time]:
        """Time position of every output in graph order, given the fixed positions (``output_positions``
        as floats or exact fractions) and the fed ``times``."""
        fixed_iter, out = iter(fixed), []
        for entry in self.layout():
            out.extend([entry[GAP] + t for t in times] if isinstance(entry, dict) else [next(fixed_iter)])
        return out

    def to_json(self) -> str:
        data = asdict(self)
        data["schema"] = SCHEMA_VERSION if self.output_layout else 1
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelMetadata":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetadataError(f"stvsr metadata is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") not in READ_SCHEMAS:
            raise MetadataError(f"unsupported stvsr metadata schema {data.get('schema') if isinstance(data, dict) else '?'}"
                                f" (this stvsr reads schemas {', '.join(map(str, READ_SCHEMAS))}); re-export the model "
                                "with this stvsr, or use the stvsr that wrote it")
        known = {f for f in cls.__dataclass_fields__}
        try:
            meta = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise MetadataError(f"incomplete stvsr metadata: {exc}") from None
        meta.validate()
        return meta

    def validate(self) -> None:
        """Check types and ranges (a runtime trusts these numbers); ``MetadataError`` names the first problem."""
        def bad(what: str) -> MetadataError:
            return MetadataError(f"invalid stvsr metadata: {what}; re-export the model")

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v) -> bool:
            return (is_int(v) or isinstance(v, float)) and math.isfinite(v)

        if not is_int(self.window) or not 1 <= self.window <= MAX_WINDOW:
            raise bad(f"window must be an integer from 1 to {MAX_WINDOW}, not {self.window!r}")
        if (not isinstance(self.output_positions, list) or not self.output_positions
                or not all(is_num(p) and 0 <= p <= self.window - 1 for p in self.output_positions)):
            raise bad(f"output_positions must be a non-empty list of numbers from 0 to {self.window - 1}, "
                      f"not {self.output_positions!r}")
        if any(b <= a for a, b in zip(self.output_positions, self.output_positions[1:])):
            raise bad(f"output_positions must be strictly increasing (the graph's outputs in time order, each "
                      f"time once), not {self.output_positions!r}")
        if not is_int(self.scale) or not 1 <= self.scale <= MAX_SCALE:
            raise bad(f"scale must be an integer from 1 to {MAX_SCALE}, not {self.scale!r}")
        if not is_int(self.size_multiple) or not 1 <= self.size_multiple <= MAX_MULTIPLE:
            raise bad(f"size_multiple must be an integer from 1 to {MAX_MULTIPLE}, not {self.size_multiple!r}")
        if self.time_gap is not None and (not is_int(self.time_gap) or not 0 <= self.time_gap <= self.window - 2):
            if self.window < 2:
                raise bad(f"time_gap must be null for a window of 1 frame (no gap between frames), "
                          f"not {self.time_gap!r}")
            gaps = ("0 (a window of 2 frames has one gap, between its frames 0 and 1)" if self.window == 2 else
                    f"the index of the frame that starts the gap, 0 to {self.window - 2} (a window of "
                    f"{self.window} frames has {self.window - 1} gaps)")
            raise bad(f"time_gap must be null or {gaps}, not {self.time_gap!r}")
        self._validate_layout(bad, is_num)
        if not isinstance(self.flow_inputs, list) or not all(isinstance(f, str) and f for f in self.flow_inputs):
            raise bad(f"flow_inputs must be a list of input names, not {self.flow_inputs!r}")
        pairs_ok = isinstance(self.flow_pairs, list) and len(self.flow_pairs) == len(self.flow_inputs) and all(
            isinstance(p, list) and len(p) == 2 and all(is_int(i) and 0 <= i < self.window for i in p)
            for p in self.flow_pairs)
        if not pairs_ok:
            raise bad(f"flow_pairs must hold one [from, to] pair of frame indices per flow input, not {self.flow_pairs!r}")
        if (not isinstance(self.inputs, dict) or not isinstance(self.inputs.get("frames"), str)
                or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in self.inputs.items())):
            raise bad(f"inputs must map 'frames' (and 'times') to input names, not {self.inputs!r}")
        if self.takes_times and not isinstance(self.inputs.get("times", TIMES_INPUT), str):
            raise bad("a model with a times input (time_gap or gaps in output_layout) needs a times input name")
        for name in ("model", "output", "flow_units", "precision", "plugins", "weights_source", "weights_sha256",
                     "exporter"):
            if not isinstance(getattr(self, name), str):
                raise bad(f"{name} must be a string, not {getattr(self, name)!r}")
        if not self.output:
            raise bad("output must name the graph's output")
        if not isinstance(self.random_weights, bool) or not is_int(self.opset) or not isinstance(self.extra, dict):
            raise bad("random_weights must be a boolean, opset an integer and extra an object")


    def _validate_layout(self, bad, is_num) -> None:
        layout = self.output_layout
        if not isinstance(layout, list):
            raise bad(f"output_layout must be a list, not {layout!r}")
        if not layout:
            return
        if self.time_gap is not None:
            raise bad("give either time_gap or output_layout, not both (output_layout names its gaps)")
        numbers = [e for e in layout if not isinstance(e, dict)]
        gaps = [e for e in layout if isinstance(e, dict)]
        if not all(is_num(e) for e in numbers) or numbers != list(self.output_positions):
            raise bad(f"the numbers in output_layout must be output_positions in the same order "
                      f"({self.output_positions!r}), not {numbers!r}")
        valid_gap = lambda e: (set(e) == {GAP} and isinstance(e[GAP], int)  # noqa: E731
                               and not isinstance(e[GAP], bool) and 0 <= e[GAP] <= self.window - 2)
        if not gaps or not all(valid_gap(e) for e in gaps):
            raise bad(f"output_layout needs at least one gap entry, each {{\"{GAP}\": g}} with g from 0 to "
                      f"{self.window - 2} (the frame that starts the gap), not {layout!r}")
        if len({e[GAP] for e in gaps}) != len(gaps):
            raise bad(f"output_layout names a gap twice: {layout!r}")


def write_onnx_metadata(model_proto, meta: ModelMetadata) -> None:
    """Store ``meta`` in an ``onnx.ModelProto`` (replacing an earlier entry)."""
    props = [p for p in model_proto.metadata_props if p.key != METADATA_KEY]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(props)
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()


_METADATA_PROPS = 14   # ModelProto.metadata_props: repeated StringStringEntryProto (1: key, 2: value)
_MAX_ENTRY = 1 << 24   # bytes: a metadata entry larger than this is not stvsr's


def _varint(f) -> int:
    value = shift = 0
    while shift < 64:
        byte = f.read(1)
        if not byte:
            break
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    raise ValueError("not a protobuf varint")


def _fields(f, end: int, wanted: set[int]) -> Iterator[tuple[int, bytes]]:
    """``(field number, payload)`` of the length-delimited fields in ``wanted`` of the protobuf
    message from ``f``'s position to ``end``; every other field is skipped by seeking."""
    while f.tell() < end:
        key = _varint(f)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _varint(f)
        elif wire in (1, 5):
            f.seek(8 if wire == 1 else 4, 1)
        elif wire == 2:
            size = _varint(f)
            if number in wanted and size <= _MAX_ENTRY:
                yield number, f.read(size)
            else:
                f.seek(size, 1)
        else:
            raise ValueError(f"protobuf wire type {wire}")
    if f.tell() != end:
        raise ValueError("a protobuf field runs past the end")


def peek_onnx_metadata(path: str | os.PathLike) -> ModelMetadata | None:
    """The stvsr metadata of the ONNX file ``path``, read by walking the file's top-level protobuf
    fields and seeking over the graph and its weights: milliseconds and no memory at any size,
    where ``onnx.load`` parses every weight (0.3-0.5 s and 350 MB for a 160 MB file). For checks
    before a model loads; None when the file cannot be walked or has no valid stvsr entry
    (``read_onnx_metadata`` then says why)."""
    try:
        with open(path, "rb") as f:
            for _, payload in _fields(f, os.fstat(f.fileno()).st_size, {_METADATA_PROPS}):
                entry = dict(_fields(io.BytesIO(payload), len(payload), {1, 2}))
                if entry.get(1) == METADATA_KEY.encode():
                    return ModelMetadata.from_json(entry.get(2, b"").decode("utf-8"))
    except (OSError, ValueError):   # MetadataError and UnicodeDecodeError are ValueErrors
        return None
    return None


def read_onnx_metadata(path_or_proto) -> ModelMetadata:
    """Read the metadata of an ONNX file (path) or ``onnx.ModelProto`` without loading weights."""
    import onnx

    proto = path_or_proto
    if not hasattr(proto, "metadata_props"):
        try:
            proto = onnx.load(str(path_or_proto), load_external_data=False)
        except Exception as exc:
            raise MetadataError(f"{path_or_proto}: not a readable ONNX file ({type(exc).__name__})") from None
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            return ModelMetadata.from_json(p.value)
    raise MetadataError(f"{path_or_proto if isinstance(path_or_proto, str) else 'model'} has no stvsr metadata; "
                        "export it with stvsr-export")
