"""Triton kernel: backward warping (bilinear gather) of an ``[N, C, H, W]`` tensor.

Two ways to give the sampling positions, chosen at compile time by ``COORDS``
(names in :data:`stvsr.plugins.configs.WARP_COORDS`):

* ``COORDS == 0``: a pixel flow ``[N, 2, OH, OW]`` (``OH, OW == H, W``), the contract of
  :func:`stvsr.ops.backward_warp`: output ``(i, j)`` samples ``x`` at ``(j + flow_x, i + flow_y)``
  (a size-1 axis always samples index 0, as ``grid_sample(align_corners=True)`` does);
* ``COORDS == 1`` / ``2``: a normalised ``grid_sample`` grid ``[N, OH, OW, 2]`` (x, y) with
  ``align_corners=True`` / ``False``, the contract of ONNX ``GridSample`` (bilinear), so that a
  portable graph's GridSample nodes can be replaced one for one.

``BORDER`` selects border padding (position clamped to the image) instead of zeros padding
(each out-of-image corner reads 0). Positions and bilinear weights are FP32 whatever the
data type of ``x`` or of the coordinates; the taps are blended in FP32 and rounded once.

One program handles ``BLOCK_P`` output pixels of one image: it reads the coordinates and
computes corners and weights once, then loops over the channels ``BLOCK_C`` at a time.

Argument order is TensorRT's AOT launch order: input pointers, int32 scalars, output
pointer (constexprs are baked into the PTX). Limit: one image of ``x`` and of the output must
have fewer than 2**31 elements; batch offsets are int64.

Self-contained on purpose (see :mod:`stvsr.plugins.interpret`).
"""
import triton
import triton.language as tl


@triton.jit
def backward_warp_kernel(
    x_ptr, coord_ptr,           # inputs: x [N, C, H, W]; flow [N, 2, OH, OW] or grid [N, OH, OW, 2]
    C, H, W, OH, OW,            # int32 scalars
    out_ptr,                    # output [N, C, OH, OW], dtype of x
    COORDS: tl.constexpr, BORDER: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_p = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    hw = H * W
    ohw = OH * OW
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < ohw
    w_max = (W - 1).to(tl.float32)
    h_max = (H - 1).to(tl.float32)

    coord_n = coord_ptr + n * 2 * ohw
    if COORDS == 0:
        fx = tl.load(coord_n + p, mask=p_ok, other=0.0).to(tl.float32)
        fy = tl.load(coord_n + ohw + p, mask=p_ok, other=0.0).to(tl.float32)
        sx = (p % OW).to(tl.float32) + fx
        sy = (p // OW).to(tl.float32) + fy
        sx = tl.where(W > 1, sx, 0.0)
        sy = tl.where(H > 1, sy, 0.0)
    else:
        gx = tl.load(coord_n + 2 * p, mask=p_ok, other=0.0).to(tl.float32)
        gy = tl.load(coord_n + 2 * p + 1, mask=p_ok, other=0.0).to(tl.float32)
        if COORDS == 1:
            sx = (gx + 1.0) * 0.5 * w_max
            sy = (gy + 1.0) * 0.5 * h_max
        else:
            sx = ((gx + 1.0) * W.to(tl.float32) - 1.0) * 0.5
            sy = ((gy + 1.0) * H.to(tl.float32) - 1.0) * 0.5
    if BORDER:
        sx = tl.minimum(tl.maximum(sx, 0.0), w_max)
        sy = tl.minimum(tl.maximum(sy, 0.0), h_max)
    else:
        # Anything further than one pixel outside reads zeros anyway; clamping keeps the
        # float->int conversion below in range for huge coordinates.
        sx = tl.minimum(tl.maximum(sx, -2.0), w_max + 2.0)
        sy = tl.minimum(tl.maximum(sy, -2.0), h_max + 2.0)

    x0f = tl.floor(sx)
    y0f = tl.floor(sy)
    ax = sx - x0f           # weight of the right column
    ay = sy - y0f           # weight of the lower row
    x0 = x0f.to(tl.int32)
    y0 = y0f.to(tl.int32)
    okx0 = (x0 >= 0) & (x0 < W)
    okx1 = (x0 >= -1) & (x0 < W - 1)
    oky0 = (y0 >= 0) & (y0 < H)
    oky1 = (y0 >= -1) & (y0 < H - 1)
    w00 = (1.0 - ay) * (1.0 - ax)
    w01 = (1.0 - ay) * ax
    w10 = ay * (1.0 - ax)
    w11 = ay * ax
    i00 = y0 * W + x0
    m00 = p_ok & oky0 & okx0
    m01 = p_ok & oky0 & okx1
    m10 = p_ok & oky1 & okx0
    m11 = p_ok & oky1 & okx1

    x_n = x_ptr + n * C * hw
    out_n = out_ptr + n * C * ohw
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_ok = c[:, None] < C
        src = x_n + (c * hw)[:, None] + i00[None, :]
        v = tl.load(src, mask=c_ok & m00[None, :], other=0.0).to(tl.float32) * w00[None, :]
        v += tl.load(src + 1, mask=c_ok & m01[None, :], other=0.0).to(tl.float32) * w01[None, :]
        v += tl.load(src + W, mask=c_ok & m10[None, :], other=0.0).to(tl.float32) * w10[None, :]
        v += tl.load(src + W + 1, mask=c_ok & m11[None, :], other=0.0).to(tl.float32) * w11[None, :]
        dst = out_n + (c * ohw)[:, None] + p[None, :]
        tl.store(dst, v.to(out_ptr.dtype.element_ty), mask=c_ok & p_ok[None, :])
