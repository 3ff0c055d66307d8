"""The streaming planner (``planning.stream.StreamPlan``, a pipe read once) hands out exactly the windows
``windows.plan`` makes for the same number of frames, each as soon as the frames it reads have arrived."""
from __future__ import annotations

import pytest

from stvsr.export.graphs import base_metadata
from stvsr.metadata import ModelMetadata
from stvsr.runtime.planning.stream import StreamPlan
from stvsr.runtime.planning.windows import PlanError, plan

NAMES = ("zsm", "stvun", "starnet", "fmu", "tmnet")
CUTS = [(), (1,), (2, 3), (4, 9, 10, 13), (0, 6, 40)]  # 0 and past the end are ignored


def _metas():
    for name in NAMES:
        for tiled in (False, True):
            yield f"{name}-{'tiled' if tiled else 'whole'}", base_metadata(name, tiled)
    # test networks (tests.test_runtime): fixed outputs inside a 2-frame window, one output per gap
    yield "fixed-blend", ModelMetadata(model="f", window=2, output_positions=[0.0, 0.5, 1.0], scale=4, size_multiple=4)
    yield "two-of-three", ModelMetadata(model="f", window=2, output_positions=[0.0, 0.5], scale=4, size_multiple=4)
    yield "times-blend", ModelMetadata(model="t", window=3, output_positions=[1.0], scale=4, size_multiple=4, time_gap=1,
                                       inputs={"frames": "frames", "times": "times"})


def _streamed(meta, n, factor, dense, cuts):
    """The windows a stream of ``n`` frames gets, and the frames arrived when each was handed out."""
    sp = StreamPlan(meta, factor, dense, cuts=cuts)
    got = []
    for m in range(1, n + 1):
        got += [(w, m) for w in sp.add()]
        assert sp.needed_from() <= m  # frames a pending window may read are never dropped
    got += [(w, n) for w in sp.end()]
    return sp, got


@pytest.mark.parametrize("label,meta", list(_metas()), ids=[m[0] for m in _metas()])
def test_stream_plan_equals_file_plan(label, meta):
    for factor in ((1, 3) if meta.takes_times else (None,)):
        for dense in (False, True):
            for n in [*range(1, 15), 21]:
                for cuts in CUTS:
                    want = plan(meta, n, factor, dense, cuts=cuts)
                    sp, got = _streamed(meta, n, factor, dense, cuts)
                    assert [w for w, _ in got] == want.windows, (label, factor, dense, n, cuts)
                    assert sp.repeats == want.repeats and sp.total == want.total and sp.times == want.times
                    for w, arrived in got:  # handed out when its frames were there, and no sooner needed
                        assert max(w.frames) < arrived
                    # streaming is useful: on a long shot, windows come out long before the end
                    if n > 20 and not cuts:
                        early = [(w, arrived) for w, arrived in got if arrived < n]
                        assert len(early) >= len(got) // 2, (label, n)
                        assert all(arrived - 1 - max(w.frames) <= 2 * meta.window for w, arrived in early)


def test_stream_plan_drops_frames_no_window_needs():
    meta = base_metadata("zsm", True)
    sp = StreamPlan(meta)
    for m in range(1, 200):
        sp.add()
        assert sp.needed_from() >= m - 4 * meta.window  # bounded memory on a long stream
    sp.end()


def test_stream_plan_refuses_an_empty_stream():
    with pytest.raises(PlanError, match="no frames"):
        StreamPlan(base_metadata("zsm", True)).end()
