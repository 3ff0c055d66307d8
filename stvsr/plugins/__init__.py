"""stvsr TensorRT plugins: Triton kernels for deformable convolution and warping.

* :mod:`stvsr.plugins.kernels`: the Triton kernels (implicit-GEMM modulated deformable conv,
  bilinear backward warp by flow or grid).
* :mod:`stvsr.plugins.launch`: launch them on torch tensors (GPU, or CPU in the interpreter,
  see :mod:`stvsr.plugins.interpret`).
* :mod:`stvsr.plugins.aot`: compile them to PTX without a GPU
  (``python -m stvsr.plugins build --arch 80,86,89,90 -o DIR``), look a kernel up for a GPU
  (prebuilt or compiled) and fingerprint the PTX that goes into an engine.
* :mod:`stvsr.plugins.cuda_device`: the current GPU's name and compute capability (cuda-bindings).
* :mod:`stvsr.plugins.ptx_launch`: TensorRT's launch layout for a kernel, and loading and launching
  the AOT PTX with cuda-bindings (the GPU check, ``benchmarks/gpu_kernels.py``).
* :mod:`stvsr.plugins.trt`: ``tensorrt.plugin`` registration (imports TensorRT; import it only
  where TensorRT is installed, or call :func:`register_tensorrt`).
* :mod:`stvsr.plugins.onnx_nodes`: plugin nodes and the portable-to-plugin graph rewrite.
* :mod:`stvsr.plugins.reference`: evaluate a plugin graph on the CPU (onnx.reference + stvsr.ops).

Importing this package imports neither triton nor tensorrt.
"""
from __future__ import annotations


def register_tensorrt() -> None:
    """Register the ``stvsr::*`` plugins with TensorRT (idempotent; needs tensorrt and triton)."""
    import importlib

    importlib.import_module("stvsr.plugins.trt")
