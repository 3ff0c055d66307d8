"""stvsr as a VapourSynth filter: ``stvsr(clip, model, ...)`` returns the clip a model makes of ``clip``.

A thin adapter, and the only module of stvsr that imports ``vapoursynth`` (nothing else imports it):
the windows come from the same planner as ``stvsr-run`` (``planning.job.plan_job`` on a description
of the clip), they run on the same window executor (``onepass.compute.WindowCompute``) and backend
(``backends.open_backend``: ONNX Runtime on CPU or CUDA, a TensorRT ``.plan``), so frame N of the
returned clip is frame N of ``stvsr-run``'s output for the same model, frames and options.

How frames are produced: output frame ``n`` belongs to one window (``Window.keep``). A
``std.FrameEval`` hands VapourSynth a ``std.ModifyFrame`` node whose source clips are that
window's input frames, so VapourSynth itself fetches them (its own dependency mechanism: no
``get_frame`` inside a callback, so no deadlock whatever ``core.num_threads`` or ``vspipe -r``).
The ModifyFrame callback takes the window's lock, computes the window if it is not in the cache of
finished windows (at most ``cache_windows``, least recently used dropped), and copies output
``n`` out. One lock per window means two threads never compute the same window; one lock around
the backend means windows run one at a time on the one backend made for the clip (ONNX Runtime
and TensorRT use the whole device for one window already).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np
import vapoursynth as vs

from stvsr.runtime.backends import BackendError, open_backend, peek_model
from stvsr.runtime.media.colour import _guess_matrix
from stvsr.runtime.media.probe import MediaInfo
from stvsr.runtime.onepass.compute import WindowCompute
from stvsr.runtime.onepass.flow import flow_provider
from stvsr.runtime.planning.job import VideoJob, plan_job
from stvsr.runtime.planning.memory import MemoryBudgetError, parse_size
from stvsr.runtime.planning.shots import _DETECT_WIDTH, AUTO, OFF, CutsError, detect_cuts_in, read_cut_file
from stvsr.runtime.planning.tiling import pad_frames
from stvsr.runtime.planning.windows import PlanError, check_factor

__all__ = ["stvsr", "clip_cuts"]

core = vs.core
_PREV, _NEXT = "_SceneChangePrev", "_SceneChangeNext"
_NEW_RANGE = hasattr(vs, "Range")   # the range property is ``_Range`` (``_ColorRange`` deprecated, R74+)


def stvsr(clip: vs.VideoNode, model: str, factor: int | None = None, tile: int | None = None, tile_overlap: int = 16,
          backend: str = "auto", providers: Sequence[str] | None = None, threads: int = 0,
          scene_cuts: str | Sequence[int] = AUTO, dense: bool = False, flow: str = "farneback",
          max_memory: str | int | None = "auto", rgbs: bool = False, cache_windows: int = 4) -> vs.VideoNode:
    """``clip`` through the model file ``model`` (``.onnx`` or a TensorRT ``.plan``), as ``stvsr-run`` would.

    - ``factor``: new frames per gap (None: the model's default), ``tile``/``tile_overlap``/``max_memory``
      (bytes or "auto", "8G", ...; None: whole frames unless ``tile``), ``dense`` (``--dense-windows``),
      ``flow``: as the ``stvsr-run`` options of those names.
    - ``backend``: "auto" (by file extension), "onnxruntime" or "tensorrt"; ``providers``: ONNX Runtime
      execution providers (default CPU; e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]``);
      ``threads``: ONNX Runtime intra-op threads (0: all cores). The backend is made once, here.
    - ``scene_cuts``: shots are planned apart (no window reads across a cut). If the clip's first frame
      has ``_SceneChangePrev``/``_SceneChangeNext`` (misc.SCDetect, vs-rife's convention) those
      properties of every frame give the cuts; else "auto" (PySceneDetect, as ``stvsr-run``), "off",
      a cut file or a list of cut frames. Reading properties or "auto" read the whole clip once, here,
      before the clip is returned (auto: the frames scaled to about 256 pixels wide by ``core.resize``,
      where ``stvsr-run`` uses FFmpeg's scaler, so a borderline cut may differ: pass a list to be sure).
    - Formats: RGBS in and out directly; RGBH and integer RGB are converted to RGBS and back; YUV and
      GRAY with ``core.resize`` using each frame's ``_Matrix``, ``_Range`` (``_ColorRange`` before R74), ``_ChromaLocation``
      where set (``prefer_props``), else the defaults ``stvsr-run`` uses for untagged video: the matrix
      from ``_Primaries`` or by size (HD: BT.709, SD: BT.601), limited range; the output goes back to
      the input's format with the first frame's matrix and range (``rgbs=True``: RGBS out). No
      transfer or primaries conversion happens (the networks see the coded signal); ``_Primaries``,
      ``_Transfer`` and the other properties of each output's input frame are carried to it
      (``_DurationNum``/``_DurationDen`` divided by ``factor + 1``; the scene-change flags kept only
      on the outputs at the shot's edges).
    - ``cache_windows``: finished windows kept (each holds its outputs as float32 RGB at full size;
      ``max_memory`` counts them, so where it picks a tile that tile may differ from ``stvsr-run``'s:
      give ``tile`` to get the same frames on inputs that large).

    The output has ``N + (N - 1) * factor`` frames at ``fps * (factor + 1)``; values are clipped to
    [0, 1] as ``stvsr-run`` writes them.
    """
    if not isinstance(clip, vs.VideoNode):
        raise vs.Error("stvsr: clip must be a VideoNode")
    if clip.format is None or clip.width == 0 or clip.height == 0:
        raise vs.Error("stvsr: the clip must have a constant format and frame size")
    fmt = clip.format
    first = clip.get_frame(0)
    matrix, rng = _input_colour(first, clip.width, clip.height)
    rgb = _to_rgbs(clip)

    try:
        peeked = peek_model(model, backend)   # a factor the model cannot make: refused before the clip is read
        if peeked is not None:
            check_factor(peeked.metadata, factor, peeked.max_factor)
        memory = parse_size(max_memory) if isinstance(max_memory, str) else max_memory
        cuts = clip_cuts(clip, scene_cuts, first)
        runner = open_backend(model, backend, list(providers) if providers else None, threads)
        try:
            fps = Fraction(clip.fps.numerator, clip.fps.denominator) if clip.fps.denominator else Fraction(0)
            info = MediaInfo("<vapoursynth clip>", clip.width, clip.height, fps, clip.num_frames, {}, 0)
            job = plan_job(info, runner.metadata, factor, dense, None, getattr(runner, "max_factor", None), cuts)
            compute = WindowCompute(runner, job.windows, job.times, tile=tile, tile_overlap=tile_overlap,
                                    max_memory=memory, flows=flow_provider(flow) if runner.metadata.flow_inputs else None,
                                    held_frames=max(1, cache_windows) * job.outputs)   # the cache, in the budget
        except BaseException:
            runner.close()
            raise
    except (BackendError, PlanError, CutsError, MemoryBudgetError) as exc:
        raise vs.Error(f"stvsr: {exc}") from None
    out = _Producer(rgb, job, compute, max(1, cache_windows)).clip()
    if rgbs or (fmt.color_family == vs.RGB and fmt.sample_type == vs.FLOAT and fmt.bits_per_sample == 32):
        return out
    return _from_rgbs(out, fmt, matrix, rng, first.props.get("_ChromaLocation", 0))


def clip_cuts(clip: vs.VideoNode, scene_cuts: str | Sequence[int] = AUTO, first: vs.VideoFrame | None = None) -> list[int]:
    """The cuts (first frame of each new shot) of ``clip``: its ``_SceneChangePrev``/``_SceneChangeNext``
    properties when its first frame has them, else ``scene_cuts`` ("auto", "off", a file, frame numbers)."""
    n = clip.num_frames
    first = first if first is not None else clip.get_frame(0)
    if _PREV in first.props or _NEXT in first.props:
        cuts = set()
        for i, frame in enumerate(clip.frames(close=True)):
            if frame.props.get(_PREV, 0) and i > 0:
                cuts.add(i)
            if frame.props.get(_NEXT, 0) and i + 1 < n:
                cuts.add(i + 1)
        return sorted(cuts)
    if isinstance(scene_cuts, str) and scene_cuts == OFF or scene_cuts is None:
        return []
    if isinstance(scene_cuts, str) and scene_cuts == AUTO:
        fps = Fraction(clip.fps.numerator, clip.fps.denominator) if clip.fps.denominator else Fraction(25)
        return detect_cuts_in(_thumbnails(clip), fps)
    cuts = read_cut_file(scene_cuts, n, "the clip") if isinstance(scene_cuts, str) else sorted({int(c) for c in scene_cuts})
    if cuts and cuts[-1] >= n:
        raise vs.Error(f"stvsr: a cut at frame {cuts[-1]} is past the end of the clip ({n} frames, counted from 0)")
    return [c for c in cuts if 0 < c < n]


def _thumbnails(clip: vs.VideoNode):
    """The clip's frames as uint8 BGR ``[h, w, 3]`` about 256 pixels wide (what PySceneDetect takes)."""
    shrink = max(1, clip.width // _DETECT_WIDTH)
    small = _to_rgbs(clip)
    small = core.resize.Bilinear(small, max(1, clip.width // shrink), max(1, clip.height // shrink), format=vs.RGB24)
    for frame in small.frames(close=True):
        yield np.ascontiguousarray(np.stack([np.asarray(frame[p]) for p in (2, 1, 0)], axis=-1))


def _input_colour(frame: vs.VideoFrame, width: int, height: int) -> tuple[int, str]:
    """(matrix, range name) of the first frame: its own where set, else ``stvsr-run``'s defaults for
    untagged video (matrix from the primaries or by size, limited range for YUV/GRAY)."""
    props, family = frame.props, frame.format.color_family
    matrix = int(props.get("_Matrix", 2))
    if matrix == 2 or (family == vs.YUV and matrix == 0):
        matrix = _guess_matrix(width, height, int(props.get("_Primaries", 2)))
    if "_Range" in props:          # VapourSynth R74 and later: 0 limited, 1 full (zimg's numbering)
        rng = "full" if int(props["_Range"]) == 1 else "limited"
    elif "_ColorRange" in props:   # before: 0 full, 1 limited
        rng = "full" if int(props["_ColorRange"]) == 0 else "limited"
    else:
        rng = "full" if family == vs.RGB or frame.format.sample_type == vs.FLOAT else "limited"
    return matrix, rng


def _to_rgbs(clip: vs.VideoNode) -> vs.VideoNode:
    """``clip`` as RGBS: YUV and GRAY by ``core.resize`` reading each frame's colour properties (the
    untagged ones get ``_input_colour``'s defaults first)."""
    fmt = clip.format
    if fmt.color_family == vs.RGB:
        return clip if fmt.id == vs.RGBS else core.resize.Point(clip, format=vs.RGBS)
    clip = core.std.ModifyFrame(clip, clip, _tagged)
    if fmt.color_family == vs.GRAY:
        grey = core.resize.Point(clip, format=vs.GRAYS)
        return core.std.ShufflePlanes([grey] * 3, [0, 0, 0], vs.RGB).std.SetFrameProps(_Matrix=0)
    return core.resize.Bicubic(clip, format=vs.RGBS)


def _tagged(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
    """``f`` with ``_Matrix`` and ``_ColorRange`` set where it has none (``_input_colour``'s defaults)."""
    props = f.props
    if props.get("_Matrix", 2) not in (2, 0) and ("_Range" in props or "_ColorRange" in props):
        return f
    matrix, rng = _input_colour(f, f.width, f.height)
    out = f.copy()
    out.props["_Matrix"] = matrix
    if _NEW_RANGE:
        out.props["_Range"] = 1 if rng == "full" else 0
    else:
        out.props["_ColorRange"] = 0 if rng == "full" else 1
    return out


def _from_rgbs(clip: vs.VideoNode, fmt: vs.VideoFormat, matrix: int, rng: str, chromaloc: int) -> vs.VideoNode:
    if fmt.color_family == vs.RGB:
        return core.resize.Point(clip, format=fmt.id)
    if fmt.color_family == vs.GRAY:   # the luma of the input's matrix, in the input's range
        yuv = core.resize.Point(clip, format=vs.YUV444PS, matrix=matrix)
        grey = core.std.ShufflePlanes(yuv, 0, vs.GRAY)
        return core.resize.Point(grey, format=fmt.id, range_s=rng)
    return core.resize.Bicubic(clip, format=fmt.id, matrix=matrix, range_s=rng, chromaloc=chromaloc)


class _Producer:
    """The output clip of one planned run: windows computed once, on demand, from any thread."""

    def __init__(self, rgb: vs.VideoNode, job: VideoJob, compute: WindowCompute, cache_windows: int):
        self.rgb, self.job, self.compute, self.limit = rgb, job, compute, cache_windows
        self.owner: dict[int, int] = {g: k for k, w in enumerate(job.windows) for _, g in w.keep}
        self.steps = job.factor + 1
        self.done: OrderedDict[int, dict[int, np.ndarray]] = OrderedDict()   # window -> {output: frame}
        self.locks: dict[int, threading.Lock] = {}   # one per window asked for (kept: a few bytes each)
        self.guard = threading.Lock()      # the cache, the lock table and the node cache
        self.running = threading.Lock()    # the backend: one window at a time
        self.nodes: OrderedDict[int, vs.VideoNode] = OrderedDict()
        h, w = job.out_size
        num, den = (job.fps_out.numerator, job.fps_out.denominator) if job.fps_out else (0, 1)
        self.blank = core.std.BlankClip(width=w, height=h, format=vs.RGBS, length=job.total, fpsnum=num, fpsden=den,
                                        keep=True)

    def clip(self) -> vs.VideoNode:
        return core.std.FrameEval(self.blank, self._node)

    def _node(self, n: int) -> vs.VideoNode:
        """A node whose frame ``n`` is output ``n``: its window's input frames are its source clips."""
        k = self.owner[n]
        with self.guard:
            node = self.nodes.get(k)
            if node is not None:
                self.nodes.move_to_end(k)
                return node
        window = self.job.windows[k]
        sources = [self.rgb[i] * self.job.total for i in window.frames]
        node = core.std.ModifyFrame(self.blank, [self.blank] + sources,
                                    lambda n, f, k=k: self._frame(k, n, f))
        with self.guard:
            self.nodes[k] = node
            while len(self.nodes) > 64:
                self.nodes.popitem(last=False)
        return node

    def _frame(self, k: int, n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        window = self.job.windows[k]
        image = self._outputs(k, f[1:])[n]
        out = f[0].copy()   # a blank RGBS frame of the output size, with the output rate's duration
        for p in range(3):   # clipped to [0, 1] as stvsr-run's writer does, straight into the frame
            np.clip(image[p], 0.0, 1.0, out=np.asarray(out[p]))
        i, j = divmod(n, self.steps)
        source = f[1 + window.frames.index(i)] if i in window.frames else f[1]   # output n's input frame
        self._carry(out.props, source.props, j)
        return out

    def _carry(self, props, source, j: int) -> None:
        """``source``'s properties on an output frame (``j``: its place in its gap): durations divided by
        ``factor + 1``, the scene-change flags only at a shot's edges."""
        duration = {key: props[key] for key in ("_DurationNum", "_DurationDen") if key in props}
        props.update({key: value for key, value in source.items() if key not in duration})
        if source.get("_DurationNum") and source.get("_DurationDen"):
            d = Fraction(int(source["_DurationNum"]), int(source["_DurationDen"])) / self.steps
            props["_DurationNum"], props["_DurationDen"] = d.numerator, d.denominator
        if j > 0 and _PREV in props:
            props[_PREV] = 0
        if j < self.steps - 1 and _NEXT in props:
            props[_NEXT] = 0

    def _outputs(self, k: int, frames: list[vs.VideoFrame]) -> dict[int, np.ndarray]:
        with self.guard:
            lock = self.locks.setdefault(k, threading.Lock())
        with lock:
            with self.guard:
                if k in self.done:
                    self.done.move_to_end(k)
                    return self.done[k]
            multiple = self.compute.meta.size_multiple
            x = np.stack([pad_frames(np.stack([np.asarray(f[p]) for p in range(3)]), multiple) for f in frames])[None]
            sh, sw = self.job.out_size
            with self.running:
                outputs = {g: image[:, :sh, :sw]
                           for g, image in self.compute.run(self.job.windows[k], np.ascontiguousarray(x))}
            with self.guard:
                self.done[k] = outputs
                while len(self.done) > self.limit:
                    self.done.popitem(last=False)
            return outputs
