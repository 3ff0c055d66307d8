"""``stvsr-run``: a video through an exported model. Torch-free: it reads ONNX or TensorRT files
and the model's metadata (``stvsr.metadata``), never the networks. The folders are its data path,
and imports go one way only, downwards (``tests/test_runtime_layout.py`` checks it):

``cli`` (``stvsr-run``): the options checked (output, encoder, ``--factor`` against the model's
metadata, the input probed once: ``media.probe``) before the model loads, then one input
(``jobs.run_video``) or a batch (``jobs.batch``). Thin: no planning or I/O of its own.

``jobs``: long jobs. ``driver.run_video`` plans the whole video once and runs it in one pass or in
segments (``part.run_part``, here or as Ray tasks in ``distributed``, which receives what it runs),
keeps the finished parts in a resumable work folder (``workdir``) and joins them
(``media.join_parts``); ``batch`` runs several inputs with the model loaded once.

``onepass``: one pass over a video or one segment of it (``pipeline.upscale_video``, the unit a
segment runs): a reader thread decodes (``media.iter_frames``), the window executor
(``compute``: inputs, tile, run, check, outputs to global indices; no threads, so callers with
their own frames can use it) runs the backend, a writer thread encodes (``media.VideoWriter``).

``planning``: pure functions of the probed input (``media.MediaInfo``) and the model's metadata:
windows, scene cuts (the cut detector's decode is the only I/O), the ``VideoJob``, segments,
tiles, the memory budget.

``backends``: the exported model behind one interface (``open_backend``): ONNX Runtime for
``.onnx``, TensorRT for ``.plan``/``.engine``; used by onepass and jobs.

``media``: everything PyAV (the only place in stvsr that imports it): ``probe`` describes the
input from one open (streams, timing, picture, damage); decode to float RGB, encode from it,
the audio/subtitle passthrough, frame ranges, the stream-copy join of parts.

The input's walk: ``cli`` probes it (open 1) -> ``jobs.driver`` plans over that ``MediaInfo``
(``planning``; ``--scene-cuts auto`` decodes it once more, open 2) -> ``onepass.pipeline`` plans the
passthrough streams (open 3, kept for the copy) and starts the reader (open 4) and the writer,
which copies the audio from open 3 -> the output is renamed into place (``stvsr.outfile``).
"""
