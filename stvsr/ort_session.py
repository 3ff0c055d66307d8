"""ONNX Runtime CPU session options under which an INT8 graph computes what it says, on every x86 CPU:
used by the runtime's ONNX Runtime backend and by export verification alike (no onnx, no torch).

On x86 ONNX Runtime runs a QDQ ``Conv``/``MatMul`` as one integer kernel with uint8 activations and
int8 weights (int8 activations are shifted to uint8 with zero point 128 first). On CPUs without VNNI
(AVX2 or AVX-512 without VNNI: AMD Zen 1-3, Intel before Cascade Lake) that kernel multiplies with
``VPMADDUBSW``, which adds each pair of products into a saturating int16: 255 * 127 * 2 = 64770 is
clipped to 32767. A TensorRT-target graph (int8 activations, full-range int8 weights) then reads
23% off its FP32 graph there (1.1% on a VNNI CPU or on TensorRT, which sum in int32); a CPU-target graph
6% (1.2%). The session option ``session.x64quantprecision`` makes ONNX Runtime use its U8U8 kernels,
which do not saturate; on a VNNI CPU it changes no result but costs about 4x in speed, so it is set only
where a probe shows this CPU's kernels saturating (``u8s8_saturates``).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

PRECISION_KEY = "session.x64quantprecision"  # ONNX Runtime's kOrtSessionOptionsAvx2PrecisionMode
PROBE = Path(__file__).parent / "data" / "u8s8_saturation_probe.onnx"
PROBE_CHANNELS = 16


def saturation_probe() -> tuple[bytes, dict[str, np.ndarray], float]:
    """(graph, input, exact output value): a QDQ 1x1 Conv whose every product pair is 127 * 127 * 2 in
    int8 (255 * 127 * 2 once shifted to uint8), so every output is ``PROBE_CHANNELS`` when summed exactly
    and far less where int16 pair sums saturate. The graph is a committed file of 551 bytes (package
    data), so the probe needs no onnx; ``tests/test_ort_session.py`` checks it against the graph the
    onnx helpers build."""
    feed = {"x": np.ones((1, PROBE_CHANNELS, 2, 2), np.float32)}
    return PROBE.read_bytes(), feed, float(PROBE_CHANNELS)


@lru_cache(maxsize=1)
def u8s8_saturates() -> bool:
    """Whether ONNX Runtime's default integer kernels on this CPU saturate (probed once per process)."""
    import onnxruntime as ort

    model, feed, exact = saturation_probe()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    out = session.run(None, feed)[0]
    return not np.allclose(out, exact, rtol=0.01)


def exact_int8(opts):
    """``opts`` (an ``onnxruntime.SessionOptions``) with int8 products summed without saturation here."""
    if u8s8_saturates():
        opts.add_session_config_entry(PRECISION_KEY, "1")
    return opts
