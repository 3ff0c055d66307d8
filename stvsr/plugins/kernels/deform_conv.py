"""Triton kernel: modulated deformable 2-D convolution (DCNv2) as an implicit GEMM.

Same contract as :func:`stvsr.ops.deform_conv2d` (ONNX ``DeformConv`` layout): ``offset``
is ``[N, dg*2*KH*KW, OH, OW]`` with ``(dy, dx)`` interleaved per kernel tap and deformable
group, ``mask`` is ``[N, dg*KH*KW, OH, OW]`` (already through the sigmoid), ``weight`` is
``[O, C/groups, KH, KW]``, samples outside the input read zero.

GEMM view, per image and convolution group: ``out[o, p] = sum_r W[o, r] * cols[r, p]`` with
the reduction index ``r = (c, k)`` over the group's input channels and the kernel taps.
``cols`` is never materialised: each program owns a ``BLOCK_O x BLOCK_P`` tile of the output
and, for every tap ``k`` and every ``BLOCK_C`` channels, gathers the bilinear samples of the
input at the deformed positions straight into registers, scales them by the modulation mask
and multiplies them with the matching ``BLOCK_O x BLOCK_C`` slice of the weight (``tl.dot``,
FP32 accumulation). No im2col workspace: memory is inputs + output only.

Numerics: sampling positions and bilinear weights are FP32; for FP32 data the product runs
in IEEE FP32 (no TF32); for FP16 data the modulated samples and weights enter the tensor-core
product as FP16 with an FP32 accumulator; bias is added in FP32 and the result is rounded
once to the data type.

Argument order is TensorRT's AOT launch order: the five input pointers in ONNX ``DeformConv``
order (X, W, offset, B, mask), the int32 scalars, the output pointer; constexprs last.
Limit: one image of input, offset and output must each have fewer than 2**31 elements.

Self-contained on purpose (see :mod:`stvsr.plugins.interpret`).
"""
import triton
import triton.language as tl


@triton.jit
def deform_conv2d_kernel(
    x_ptr, w_ptr, offset_ptr, bias_ptr, mask_ptr,   # inputs
    C, H, W, OH, OW, O,                             # int32 scalars: sizes
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
    groups, deform_groups,
    out_ptr,                                        # output [N, O, OH, OW]
    KH: tl.constexpr, KW: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_C: tl.constexpr,
):
    K: tl.constexpr = KH * KW
    pid_p = tl.program_id(0)
    pid_go = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)

    c_per_group = C // groups
    o_per_group = O // groups
    c_per_dgroup = C // deform_groups
    o_blocks = (o_per_group + BLOCK_O - 1) // BLOCK_O
    g = pid_go // o_blocks
    o_local = (pid_go % o_blocks) * BLOCK_O + tl.arange(0, BLOCK_O)
    o_ok = o_local < o_per_group
    o = g * o_per_group + o_local

    ohw = OH * OW
    hw = H * W
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < ohw
    base_y = ((p // OW) * stride_h - pad_h).to(tl.float32)
    base_x = ((p % OW) * stride_w - pad_w).to(tl.float32)
    h_lim = H.to(tl.float32) + 1.0
    w_lim = W.to(tl.float32) + 1.0

    x_n = x_ptr + n * C * hw
    offset_n = offset_ptr + n * deform_groups * 2 * K * ohw
    mask_n = mask_ptr + n * deform_groups * K * ohw

    acc = tl.full((BLOCK_O, BLOCK_P), 0.0, tl.float32)  # tl.full: a builtin (see interpret.py)
    for k in range(K):      # a real loop: unrolling the taps would multiply the PTX size by K
        tap_y = (k // KW) * dil_h
        tap_x = (k % KW) * dil_w
        for c0 in range(0, c_per_group, BLOCK_C):
            c_local = c0 + tl.arange(0, BLOCK_C)
            c_ok = c_local < c_per_group
            c = g * c_per_group + c_local
            d = c // c_per_dgroup                      # deformable group of each channel
            cp_ok = c_ok[:, None] & p_ok[None, :]
            # Offsets and mask of (channel's deformable group, tap k), [BLOCK_C, BLOCK_P].
            off_row = offset_n + ((d * (2 * K) + 2 * k) * ohw)[:, None] + p[None, :]
            dy = tl.load(off_row, mask=cp_ok, other=0.0).to(tl.float32)
            dx = tl.load(off_row + ohw, mask=cp_ok, other=0.0).to(tl.float32)
            mod = tl.load(mask_n + ((d * K + k) * ohw)[:, None] + p[None, :], mask=cp_ok, other=0.0)
            sy = base_y[None, :] + tap_y + dy
            sx = base_x[None, :] + tap_x + dx
            # Beyond one pixel outside everything reads zero; clamp keeps float->int in range.
            sy = tl.minimum(tl.maximum(sy, -2.0), h_lim)
            sx = tl.minimum(tl.maximum(sx, -2.0), w_lim)
            y0f = tl.floor(sy)
            x0f = tl.floor(sx)
            ay = sy - y0f
            ax = sx - x0f
            y0 = y0f.to(tl.int32)
            x0 = x0f.to(tl.int32)
            oky0 = (y0 >= 0) & (y0 < H)
            oky1 = (y0 >= -1) & (y0 < H - 1)
            okx0 = (x0 >= 0) & (x0 < W)
            okx1 = (x0 >= -1) & (x0 < W - 1)
            src = x_n + (c * hw)[:, None] + y0 * W + x0
            v = tl.load(src, mask=cp_ok & oky0 & okx0, other=0.0).to(tl.float32) * ((1.0 - ay) * (1.0 - ax))
            v += tl.load(src + 1, mask=cp_ok & oky0 & okx1, other=0.0).to(tl.float32) * ((1.0 - ay) * ax)
            v += tl.load(src + W, mask=cp_ok & oky1 & okx0, other=0.0).to(tl.float32) * (ay * (1.0 - ax))
            v += tl.load(src + W + 1, mask=cp_ok & oky1 & okx1, other=0.0).to(tl.float32) * (ay * ax)
            v = v * mod.to(tl.float32)
            # Weight slice W[o, c_local, tap k]: [BLOCK_O, BLOCK_C].
            w_tile = tl.load(w_ptr + (o * (c_per_group * K))[:, None] + (c_local * K + k)[None, :],
                             mask=o_ok[:, None] & c_ok[None, :], other=0.0)
            if x_ptr.dtype.element_ty == tl.float32:
                acc = tl.dot(w_tile.to(tl.float32), v, acc, input_precision="ieee")
            else:
                acc = tl.dot(w_tile.to(x_ptr.dtype.element_ty), v.to(x_ptr.dtype.element_ty), acc)

    bias = tl.load(bias_ptr + o, mask=o_ok, other=0.0).to(tl.float32)
    acc += bias[:, None]
    out_n = out_ptr + n * O * ohw
    dst = out_n + (o * ohw)[:, None] + p[None, :]
    tl.store(dst, acc.to(out_ptr.dtype.element_ty), mask=o_ok[:, None] & p_ok[None, :])
