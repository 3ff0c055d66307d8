"""stvsr: deploy space-time video super-resolution networks (ONNX, TensorRT, streaming runtime)."""
from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("stvsr/__init__.py").read_text(), version)

setup(
    name="stvsr",
    version=version["__version__"],
    description="Space-time video super-resolution: official networks, ONNX/TensorRT export, streaming runtime",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["stvsr", "stvsr.*"]),
    install_requires=[
        "torch==2.13.0",  # the CPU build; an unpinned torch pulls a multi-GB CUDA build
        "numpy",
        "onnx>=1.17",
        "onnxscript",
        "onnxruntime>=1.20",
        "av>=12",
        "click>=8",
        "tqdm",
        "opencv-python-headless",  # optical flow for networks that take flows (starnet)
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist", "scikit-video", "triton==3.7.1", "matplotlib"],
        "examples": ["scikit-video"],
        "plugins": ["triton==3.7.1"],
        "bench": ["matplotlib"],
        "gpu": ["tensorrt>=11", "cuda-python>=12", "polygraphy", "triton==3.7.1"],
    },
    entry_points={
        "console_scripts": [
            "stvsr-export=stvsr.export.cli:main",
            "stvsr-run=stvsr.runtime.cli:main",
            "stvsr-bench=stvsr.bench.cli:main",
        ]
    },
)
