"""Operators shared by the networks; export and plugins specialise these."""
from stvsr.ops.correlation import correlation
from stvsr.ops.deform_conv import deform_conv2d
from stvsr.ops.warp import backward_warp, flow_to_grid

__all__ = ["backward_warp", "correlation", "deform_conv2d", "flow_to_grid"]
from stvsr.ops.splat import forward_splat, reverse_flow  # noqa: E402

__all__ += ["forward_splat", "reverse_flow"]
