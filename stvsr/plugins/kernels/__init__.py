"""Triton kernels of the stvsr TensorRT plugins (compiled to PTX by :mod:`stvsr.plugins.aot`)."""
from .deform_conv import deform_conv2d_kernel
from .warp import backward_warp_kernel

__all__ = ["deform_conv2d_kernel", "backward_warp_kernel"]
