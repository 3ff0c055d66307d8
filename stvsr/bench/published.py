"""Figures published by the papers (and as reprinted by TMNet/RSTT), shown beside our measurements.

Every entry names its source. Published runtimes were measured on the authors' GPUs and are not
directly comparable with a CPU run; ratios between methods measured in one run are.
"""
from __future__ import annotations

PUBLISHED: dict[str, dict] = {
    "zsm": {
        "params_m": 11.10, "fps": 16.50, "vid4_psnr": 26.31, "vid4_ssim": 0.7976,
        "source": "Zooming Slow-Mo (CVPR 2020), table as reprinted by TMNet; fps on Vid4 720x576 output, GPU",
    },
    "stvun": {
        "params_m": 30.9, "seconds_per_frame_960x540": 0.98,
        "speedup_vs_vsr_then_fi": 7.0, "speedup_vs_fi_then_vsr": 1.7,
        "source": "STVUN (ECCV 2020) Table 1; Titan X, includes PWC-Net",
    },
    "starnet": {
        "params_m": 111.61, "fps": 14.08, "vid4_psnr": 26.06, "vid4_ssim": 0.8046,
        "source": "STARnet (CVPR 2020), table as reprinted by TMNet; GPU",
    },
    "fmu": {
        "params_m": 20.09,
        "source": "Dutta et al. (CVPRW 2021); parameter count of the released checkpoint",
    },
    "tmnet": {
        "params_m": 12.26, "fps": 14.69, "vid4_psnr": 26.43, "vid4_ssim": 0.8016,
        "source": "TMNet (CVPR 2021), its comparison table (PSNR, SSIM, fps, parameters; zsm 16.50 and "
                  "starnet 14.08 fps in the same table); fps on Vid4, GPU",
    },
}

# Test sizes of the papers' runtime tables, as LR input (width, height).
PAPER_LR_SIZE: dict[str, tuple[int, int]] = {
    "zsm": (180, 144),      # Vid4: 720x576 output
    "starnet": (180, 144),  # Vid4
    "stvun": (240, 135),    # 960x540 output (padded to the size multiple before inference)
    "fmu": (180, 144),      # no runtime published; Vid4 size for comparison
    "tmnet": (180, 144),    # Vid4
}
