"""What a run computes, decided before any frame is: pure functions of the probed input
(``media.MediaInfo``) and the model's metadata (``stvsr.metadata.ModelMetadata``), plus the options.

``windows`` plans the model's windows and output times; ``shots`` resolves the scene cuts (a cut
file checked against the probe, or detected: the one decode here, through ``media.iter_frames``);
``job.plan_job`` puts both into the ``VideoJob`` every run of the video shares; ``segments`` cuts
the planned windows into parts; ``tiling`` pads to the size multiple and splits a frame into
overlapping tiles; ``memory`` (+ ``memory_cache``) turns a memory budget into a tile size.
"""
