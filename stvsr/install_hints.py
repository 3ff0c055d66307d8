"""Install commands named in error messages; the README gives the same ones (tests/test_install_docs.py checks)."""

# README "TensorRT engines": TensorRT, cuda-python, Polygraphy and Triton from the gpu extra (NVIDIA's index).
GPU_INSTALL = 'pip install -e ".[gpu]" --extra-index-url https://pypi.nvidia.com'
