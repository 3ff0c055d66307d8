#!/usr/bin/env python
"""Benchmark the stvsr plugin kernels against TensorRT's built-ins and PyTorch, on a GPU.

    python benchmarks/plugins_gpu.py                  # 540p and 1080p features, FP32 and FP16
    python benchmarks/plugins_gpu.py --check-only     # small sizes, correctness only (exit 1 on mismatch)
    python benchmarks/plugins_gpu.py --out results.json --sizes 540p --dtypes fp16
    python benchmarks/plugins_gpu.py --require-tensorrt   # TensorRT missing or failing = exit 1 (after the
                                                          # Triton rows, which run and are reported first)

Needs a CUDA GPU, torch with CUDA and triton; the TensorRT rows also need ``tensorrt`` (>= 10.9,
for AOT plugins). Without a GPU it prints why and exits with status 2.

Operators, on zsm-like features (64 channels, batch 1):

* deformable conv 3x3, stride 1, pad 1, 8 deformable groups, 64 -> 64 channels:
  - ``torch``: :func:`stvsr.ops.deform_conv2d` (grid_sample per tap + einsum, materialises columns)
  - ``triton``: our implicit-GEMM kernel launched from Python (JIT path)
  - ``trt-native``: ONNX ``DeformConv`` through TensorRT's built-in plugin (im2col + GEMM)
  - ``trt-stvsr``: the same node rewritten to ``stvsr::DeformConv2d`` (AOT PTX in the engine)
* backward warp of a 64-channel feature by a pixel flow (border padding):
  - ``torch``: :func:`stvsr.ops.backward_warp` (flow -> grid -> grid_sample)
  - ``triton``: our warp kernel, flow in directly
  - ``trt-native``: ONNX flow->grid arithmetic + native ``GridSample`` as ``stvsr-export`` writes it: opset 19,
    ``mode="bilinear"`` (TensorRT's ONNX parser reads opset 20's ``"linear"`` as nearest), and in FP16 runs the
    sampling in an FP32 island (x cast to FP32 and back, the grid FP32), as ``stvsr.export.precision.to_fp16`` does
  - ``trt-stvsr``: ``stvsr::BackwardWarp`` (flow FP32 also in FP16 engines)

Per row: median time over ``--iters`` runs (CUDA events), device memory (torch/triton: peak
``max_memory_allocated`` above what was allocated before the call, output included;
TensorRT allocates outside torch's view, so its rows report the engine's activation memory
``engine_device_mib`` instead), and the error against the FP32 PyTorch reference. Every measured row's error
is bounded (``CHECK_TOL``), the TensorRT built-ins' too: a row over its bound makes the exit status 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from stvsr.timing import cuda_median_ms  # noqa: E402 (after the path set-up)

SIZES = {"540p": (540, 960), "1080p": (1080, 1920), "check": (37, 53)}
CHANNELS, DGROUPS, KSIZE = 64, 8, 3


def _need_gpu() -> None:
    try:
        import torch
    except ImportError:
        print("plugins_gpu: torch is not installed", file=sys.stderr)
        sys.exit(2)
    if not torch.cuda.is_available():
        print("plugins_gpu: no CUDA GPU available; this benchmark only runs on a GPU machine "
              "(nothing was measured)", file=sys.stderr)
        sys.exit(2)
    try:
        import triton  # noqa: F401
    except ImportError:
        print("plugins_gpu: triton is not installed (pip install -e \".[plugins]\": Triton 3.6 to 3.8)", file=sys.stderr)
        sys.exit(2)


def _device_name() -> str:
    import torch

    return f"{torch.cuda.get_device_name()}  torch {torch.__version__}"


def _have_tensorrt() -> str | None:
    try:
        import tensorrt  # noqa: F401
        import tensorrt.plugin  # noqa: F401
    except ImportError as e:
        return f"tensorrt unavailable ({e})"
    return None


# ----------------------------------------------------------------------------- inputs

def make_inputs(h: int, w: int, dtype, device="cuda", seed=0) -> dict:
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    k = KSIZE * KSIZE

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device)

    x = rnd(1, CHANNELS, h, w)
    return {
        "x": x.to(dtype),
        "offset": rnd(1, DGROUPS * 2 * k, h, w, scale=2.0).to(dtype),
        "mask": torch.rand(1, DGROUPS * k, h, w, generator=g).to(device).to(dtype),
        "weight": rnd(CHANNELS, CHANNELS, KSIZE, KSIZE, scale=1.0 / (CHANNELS * k) ** 0.5).to(dtype),
        "bias": rnd(CHANNELS, scale=0.1).to(dtype),
        "flow": rnd(1, 2, h, w, scale=8.0),           # always FP32
    }


# ----------------------------------------------------------------------------- ONNX graphs

def dcn_onnx(dtype_name: str, weight, bias):
    """Portable ONNX: x, offset, mask -> DeformConv (weights as initializers)."""
    from onnx import TensorProto, helper, numpy_helper

    et = TensorProto.FLOAT16 if dtype_name == "fp16" else TensorProto.FLOAT
    k = KSIZE * KSIZE
    inits = [numpy_helper.from_array(weight.detach().cpu().numpy(), "w"),
             numpy_helper.from_array(bias.detach().cpu().numpy(), "b")]
    node = helper.make_node("DeformConv", ["x", "w", "offset", "b", "mask"], ["y"], kernel_shape=[KSIZE, KSIZE],
                            pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1, offset_group=DGROUPS)
    graph = helper.make_graph(
        [node], "dcn",
        [helper.make_tensor_value_info("x", et, [1, CHANNELS, "h", "w"]),
         helper.make_tensor_value_info("offset", et, [1, DGROUPS * 2 * k, "h", "w"]),
         helper.make_tensor_value_info("mask", et, [1, DGROUPS * k, "h", "w"])],
        [helper.make_tensor_value_info("y", et, [1, CHANNELS, "h", "w"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model


def warp_onnx_native(dtype_name: str, h: int, w: int):
    """Portable ONNX of backward_warp: grid = (base + flow) * scale - 1, GridSample(bilinear, align_corners=1,
    border) at opset 19; FP16 data is sampled in FP32 (the FP32 island of stvsr's FP16 graphs)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    et = TensorProto.FLOAT16 if dtype_name == "fp16" else TensorProto.FLOAT
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    base = np.stack([xs, ys])[None]                                   # [1, 2, h, w] (x, y)
    scale = np.array([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], np.float32).reshape(1, 2, 1, 1)
    inits = [numpy_helper.from_array(base, "base"), numpy_helper.from_array(scale, "scale"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    nodes = [helper.make_node("Add", ["flow", "base"], ["pos"]),
             helper.make_node("Mul", ["pos", "scale"], ["pos_s"]),
             helper.make_node("Sub", ["pos_s", "one"], ["grid_nchw"]),
             helper.make_node("Transpose", ["grid_nchw"], ["grid32"], perm=[0, 2, 3, 1])]
    x, y = "x", "y"
    if dtype_name == "fp16":   # the FP32 island: data in and out cast, the grid never FP16
        nodes.append(helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT))
        x, y = "x32", "y32"
    nodes.append(helper.make_node("GridSample", [x, "grid32"], [y], mode="bilinear", padding_mode="border",
                                  align_corners=1))
    if dtype_name == "fp16":
        nodes.append(helper.make_node("Cast", ["y32"], ["y"], to=TensorProto.FLOAT16))
    graph = helper.make_graph(
        nodes, "warp",
        [helper.make_tensor_value_info("x", et, [1, CHANNELS, h, w]),
         helper.make_tensor_value_info("flow", TensorProto.FLOAT, [1, 2, h, w])],
        [helper.make_tensor_value_info("y", et, [1, CHANNELS, h, w])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model


def warp_onnx_plugin(dtype_name: str, h: int, w: int):
    from onnx import TensorProto, helper

    from stvsr.plugins import onnx_nodes

    et = TensorProto.FLOAT16 if dtype_name == "fp16" else TensorProto.FLOAT
    node = onnx_nodes.backward_warp_node("x", "flow", "y", padding_mode="border", aot=True)
    graph = helper.make_graph(
        [node], "warp_plugin",
        [helper.make_tensor_value_info("x", et, [1, CHANNELS, h, w]),
         helper.make_tensor_value_info("flow", TensorProto.FLOAT, [1, 2, h, w])],
        [helper.make_tensor_value_info("y", et, [1, CHANNELS, h, w])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20),
                                                    helper.make_opsetid(onnx_nodes.DOMAIN, 1)])
    model.ir_version = 9
    return model


# ----------------------------------------------------------------------------- timing


def peak_extra_mib(fn) -> float:
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


class TrtEngine:
    """Engine built from an ONNX model with one profile fixed at the feed shapes."""

    def __init__(self, model, feeds: dict, precision: str):
        import tensorrt as trt
        import torch

        from stvsr.engines.builder import configure_builder
        from stvsr.engines.cache import BuildSettings

        self.trt, self.torch = trt, torch
        logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(logger, "")
        builder = trt.Builder(logger)
        # Our nodes say aot=1; the flag also settles plugins that carry both implementations.
        flag = getattr(trt.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS", None)
        network = builder.create_network(0 if flag is None else 1 << int(flag))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model.SerializeToString()):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"ONNX parse failed: {errs}")
        config = builder.create_builder_config()
        configure_builder(trt, config, BuildSettings(precision, "stvsr", workspace_mb=2048), b"")  # FP32: no TF32
        profile = builder.create_optimization_profile()
        for name, t in feeds.items():
            profile.set_shape(name, t.shape, t.shape, t.shape)
        config.add_optimization_profile(profile)
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise RuntimeError("TensorRT engine build failed")
        self.engine_bytes = len(blob)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(blob)
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.feeds = feeds
        self.outputs = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                if not self.context.set_input_shape(name, tuple(feeds[name].shape)):
                    raise RuntimeError(f"TensorRT refused input {name} of shape {tuple(feeds[name].shape)}")
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = {trt.float32: torch.float32, trt.float16: torch.float16}[self.engine.get_tensor_dtype(name)]
                self.outputs[name] = torch.empty(shape, dtype=dtype, device="cuda")
        for name, t in {**feeds, **self.outputs}.items():
            if not self.context.set_tensor_address(name, t.data_ptr()):
                raise RuntimeError(f"TensorRT refused the address of tensor {name}")

    @property
    def device_memory_mib(self) -> float:
        size = getattr(self.engine, "device_memory_size_v2", None)
        if size is None:
            size = self.engine.device_memory_size
        return size / 2**20

    def __call__(self):
        # The feeds were written on the caller's stream: TensorRT's stream must not start before that work.
        caller = self.torch.cuda.current_stream()
        self.stream.wait_stream(caller)
        with self.torch.cuda.stream(self.stream):
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
        caller.wait_stream(self.stream)
        return self.outputs["y"]


# ----------------------------------------------------------------------------- runs

def _err(out, ref) -> dict:
    d = (out.float() - ref.float()).abs()
    return {"max_abs": float(d.max()), "max_rel": float(d.max() / ref.float().abs().max().clamp_min(1e-12))}


def run_case(size: str, dtype_name: str, iters: int, trt_reason: str | None) -> list[dict]:
    import torch

    from stvsr import ops
    from stvsr.plugins import launch, onnx_nodes

    h, w = SIZES[size]
    dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype_name]
    t = make_inputs(h, w, dtype)
    t32 = {k: v.float() for k, v in t.items()}
    ref_dcn = ops.deform_conv2d(t32["x"], t32["offset"], t32["mask"], t32["weight"], t32["bias"], 1, 1)
    ref_warp = ops.backward_warp(t32["x"], t32["flow"], "border")
    rows = []

    def add(op, impl, fn, ref, extra=None):
        row = {"op": op, "impl": impl, "size": size, "hw": [h, w], "dtype": dtype_name}
        try:
            out = fn()
            torch.cuda.synchronize()
            row.update(_err(out, ref))
            row["ms"] = cuda_median_ms(fn, iters, 3)
            # TensorRT allocates its activation memory itself (engine_device_mib), outside torch's view.
            row["peak_extra_mib"] = None if impl.startswith("trt") else peak_extra_mib(fn)
            row.update(extra or {})
        except Exception as e:  # noqa: BLE001 - one failing backend must not hide the others
            row["error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
        print(json.dumps(row), flush=True)

    dcn_args = (t["x"], t["offset"], t["mask"], t["weight"], t["bias"])
    add("deform_conv2d", "torch", lambda: ops.deform_conv2d(*dcn_args, 1, 1), ref_dcn)
    add("deform_conv2d", "triton", lambda: launch.deform_conv2d(*dcn_args, 1, 1), ref_dcn)
    add("backward_warp", "torch", lambda: ops.backward_warp(t["x"], t["flow"], "border"), ref_warp)
    add("backward_warp", "triton", lambda: launch.backward_warp(t["x"], t["flow"], "border"), ref_warp)

    if trt_reason:
        for op in ("deform_conv2d", "backward_warp"):
            for impl in ("trt-native", "trt-stvsr"):
                rows.append({"op": op, "impl": impl, "size": size, "dtype": dtype_name, "skipped": trt_reason})
        return rows

    import stvsr.plugins.trt  # noqa: F401  (registers the stvsr plugins)

    dcn_feeds = {"x": t["x"], "offset": t["offset"], "mask": t["mask"]}
    portable = dcn_onnx(dtype_name, t["weight"], t["bias"])
    plugin, _ = onnx_nodes.rewrite_to_plugins(portable, aot=True)
    for impl, model in (("trt-native", portable), ("trt-stvsr", plugin)):
        try:
            eng = TrtEngine(model, dcn_feeds, dtype_name)
            add("deform_conv2d", impl, eng, ref_dcn,
                {"engine_device_mib": eng.device_memory_mib, "engine_mib": eng.engine_bytes / 2**20})
        except Exception as e:  # noqa: BLE001
            rows.append({"op": "deform_conv2d", "impl": impl, "size": size, "dtype": dtype_name,
                         "error": f"{type(e).__name__}: {e}"})
            print(json.dumps(rows[-1]), flush=True)
    warp_feeds = {"x": t["x"], "flow": t["flow"]}
    for impl, model in (("trt-native", warp_onnx_native(dtype_name, h, w)),
                        ("trt-stvsr", warp_onnx_plugin(dtype_name, h, w))):
        try:
            eng = TrtEngine(model, warp_feeds, dtype_name)
            add("backward_warp", impl, eng, ref_warp,
                {"engine_device_mib": eng.device_memory_mib, "engine_mib": eng.engine_bytes / 2**20})
        except Exception as e:  # noqa: BLE001
            rows.append({"op": "backward_warp", "impl": impl, "size": size, "dtype": dtype_name,
                         "error": f"{type(e).__name__}: {e}"})
            print(json.dumps(rows[-1]), flush=True)
    return rows


# Error bounds of every measured row, ours and TensorRT's built-ins alike (relative to the reference's largest
# magnitude): a nearest-sampled warp (a GridSample mode TensorRT misreads) is off by a large part of the signal.
CHECK_TOL = {"fp32": 1e-4, "fp16": 1e-2}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="540p,1080p", help="comma list of 540p,1080p")
    ap.add_argument("--dtypes", default="fp32,fp16")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", type=Path, help="write all rows as JSON here")
    ap.add_argument("--check-only", action="store_true", help="small size, correctness only")
    ap.add_argument("--require-tensorrt", action="store_true",
                    help="fail (exit 1) when TensorRT is missing or any TensorRT row fails, instead of skipping")
    ap.add_argument("--dry-run", action="store_true", help="print the cases that would run; use no GPU")
    args = ap.parse_args(argv)
    if args.dry_run:
        sizes = ["check"] if args.check_only else args.sizes.split(",")
        unknown = [s for s in sizes if s not in SIZES] + [d for d in args.dtypes.split(",") if d not in CHECK_TOL]
        if unknown:
            print(f"plugins_gpu: unknown size/dtype {', '.join(unknown)}", file=sys.stderr)
            return 2
        print(f"plugins_gpu: no GPU (dry run): would run sizes {sizes} x dtypes {args.dtypes.split(',')}: torch, "
              f"triton, trt-native and trt-stvsr rows" + (" (TensorRT required)" if args.require_tensorrt else ""))
        return 0
    _need_gpu()

    trt_reason = _have_tensorrt()
    if trt_reason:
        # The Triton rows are the one result a GPU without TensorRT gives: measure them, fail at the end.
        print(f"plugins_gpu: TensorRT rows skipped: {trt_reason}"
              + ("; --require-tensorrt: the Triton rows run first, then the run fails" if args.require_tensorrt else ""),
              file=sys.stderr)
    sizes = ["check"] if args.check_only else args.sizes.split(",")
    iters = 3 if args.check_only else args.iters
    device = _device_name()
    print(f"device: {device}", flush=True)
    rows = []
    for size in sizes:
        for dt in args.dtypes.split(","):
            rows += run_case(size, dt, iters, trt_reason)
    if args.out:
        args.out.write_text(json.dumps({"device": device, "tensorrt": trt_reason or "ok", "rows": rows}, indent=1))
    print(f"\n{'op':14} {'impl':11} {'size':6} {'dtype':5} {'ms':>9} {'extraMiB':>9} {'engMiB':>8} {'max_rel':>9}")
    bad = []
    for r in rows:
        if "skipped" in r or "error" in r:
            print(f"{r['op']:14} {r['impl']:11} {r['size']:6} {r['dtype']:5} {r.get('skipped') or r.get('error')}")
            if "error" in r and (r["impl"] in ("triton", "trt-stvsr") or args.require_tensorrt):
                bad.append(r)
            continue
        extra = r["peak_extra_mib"] if r["peak_extra_mib"] is not None else float("nan")
        print(f"{r['op']:14} {r['impl']:11} {r['size']:6} {r['dtype']:5} {r['ms']:9.3f} {extra:9.1f} "
              f"{r.get('engine_device_mib', float('nan')):8.1f} {r['max_rel']:9.2e}")
        if r["impl"] != "torch" and r["max_rel"] > CHECK_TOL[r["dtype"]]:
            bad.append(r)
    if bad:
        print(f"\n{len(bad)} rows failed or exceeded the error bounds {CHECK_TOL}: "
              + ", ".join(f"{r['op']} {r['impl']} {r['size']} {r['dtype']}" for r in bad), file=sys.stderr)
    if args.require_tensorrt and trt_reason:
        print(f"plugins_gpu: --require-tensorrt: failing, TensorRT is unavailable ({trt_reason}); "
              f"the {len(rows)} rows above were still measured", file=sys.stderr)
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
