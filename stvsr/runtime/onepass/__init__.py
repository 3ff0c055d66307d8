"""One pass over a video (or over one segment of it): the frames decoded, the windows computed on the
backend, the outputs encoded, in three overlapped threads (``pipeline.upscale_video``).

``compute`` is the window executor (inputs, tile, run, check, outputs to global indices) with no
threads or queues, for any caller that has the frames; ``threads`` holds the reader and writer;
``flow`` the optical flow of models that take it; ``pipeline`` the options, the plan of a run
(``plan_video``: the cuts resolved, then ``planning.plan_job``) and ``upscale_video``.
"""
from stvsr.runtime.onepass.compute import Pending, WindowCompute
from stvsr.runtime.onepass.pipeline import RunOptions, RunReport, announce, output_colour, plan_video, run_writer, \
    upscale_video

__all__ = ["Pending", "RunOptions", "RunReport", "WindowCompute", "announce", "output_colour", "plan_video",
           "run_writer", "upscale_video"]
