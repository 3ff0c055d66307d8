"""Long jobs: a video in one pass or in segments (parts in a resumable work folder, computed here or
as Ray tasks, joined by stream copy), and several videos in a batch.

``driver.run_video`` decides and drives; ``part.run_part`` is what one segment computes (the
driver's loop and a Ray task alike); ``distributed`` runs segments as Ray tasks and receives what it
runs (it never imports the driver); ``workdir`` owns the work folder and its manifest; ``batch``
plans and runs several inputs.
"""
from stvsr.runtime.jobs.driver import LongRunOptions, check_long_options, run_video
from stvsr.runtime.jobs.part import ModelSource, run_part

__all__ = ["LongRunOptions", "ModelSource", "check_long_options", "run_part", "run_video"]
