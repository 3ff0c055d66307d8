"""Engine profiles, cache keys, plan metadata and the double-buffering schedule (no GPU needed).

``RecordingDevice`` is a test double that records the order of operations; it checks the
schedule's logic and is not GPU validation. Tests that need TensorRT and a GPU skip with the reason.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from stvsr.engines.cache import (BuildSettings, CodeInfo, EngineMismatch, MachineInfo, PlanMetadata, cache_key,
                                 check_plan, check_plan_file, read_sidecar, write_sidecar)
from stvsr.engines.builder import input_shapes
from stvsr.engines.profiles import ProfileError, parse_profile, select_profile
from stvsr.export.graphs import base_metadata
from stvsr.runtime.backends.tensorrt import COMPUTE, COPY, DoubleBufferSchedule

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_presets_name_output_resolution_and_round_to_multiple():
    p = parse_profile("1080p", scale=4, multiple=16)
    assert p.max == (272, 480)             # 1080/4 = 270 -> 272, 1920/4 = 480
    assert p.min == (192, 320)             # just above the 720p bucket
    assert parse_profile("360p", 4, 4).min == (4, 4)
    assert parse_profile("480x270", 4, 16).max == (272, 480)
    q = parse_profile("64x64:320x180:640x360", 4, 4)
    assert (q.min, q.opt, q.max) == ((64, 64), (180, 320), (360, 640))
    for bad in ("1080", "axb", "640x360:320x180:64x64", "1x2:3x4"):
        with pytest.raises(ProfileError):
            parse_profile(bad, 4, 4)


def test_profile_selection_picks_smallest_fitting():
    profiles = [parse_profile(p, 4, 4) for p in ("540p", "1080p", "360p")]
    assert select_profile(profiles, 136, 240).name == "540p"
    assert select_profile(profiles, 270, 480).name == "1080p"
    assert select_profile(profiles, 80, 160).name == "360p"
    with pytest.raises(ProfileError, match="use --tile"):
        select_profile(profiles, 1000, 1000)


def test_input_shapes_follow_metadata():
    prof = parse_profile("540p", 4, 16)
    shapes = input_shapes(base_metadata("stvun"), prof)
    assert shapes["frames"][2] == (1, 7, 3, 144, 240)
    assert shapes["times"] == ((1,), (3,), (8,))          # tuned for factor 3, serves 1..MAX_TIMES
    assert input_shapes(base_metadata("stvun"), prof, opt_times=1)["times"][1] == (1,)
    with pytest.raises(ValueError):
        input_shapes(base_metadata("stvun"), prof, opt_times=9)
    assert set(input_shapes(base_metadata("starnet"), prof)) == {"frames", "flow_fwd", "flow_bwd"}


MACHINE = MachineInfo("11.4.0", "NVIDIA H100 80GB HBM3", "9.0")
CODE = CodeInfo("0.1.0", "p" * 64, "3.7.1", "c" * 64)


def test_cache_key_changes_with_every_invalidating_field():
    prof = parse_profile("540p", 4, 4)
    settings = BuildSettings("fp16", "native")
    base = cache_key("a" * 64, prof, settings, MACHINE, CODE)
    variants = [
        cache_key("b" * 64, prof, settings, MACHINE, CODE),
        cache_key("a" * 64, parse_profile("720p", 4, 4), settings, MACHINE, CODE),
        cache_key("a" * 64, prof, dataclasses.replace(settings, precision="int8"), MACHINE, CODE),
        cache_key("a" * 64, prof, dataclasses.replace(settings, plugins="stvsr"), MACHINE, CODE),
        cache_key("a" * 64, prof, dataclasses.replace(settings, workspace_mb=1024), MACHINE, CODE),
        cache_key("a" * 64, prof, dataclasses.replace(settings, opt_times=1), MACHINE, CODE),
        cache_key("a" * 64, prof, settings, dataclasses.replace(MACHINE, tensorrt="11.5.0"), CODE),
        cache_key("a" * 64, prof, settings, dataclasses.replace(MACHINE, gpu="NVIDIA L4", compute_capability="8.9"),
                  CODE),
        # the code in the plan: stvsr's version, plugin PTX, the Triton that compiled it, kernel configs
        cache_key("a" * 64, prof, settings, MACHINE, dataclasses.replace(CODE, stvsr="0.1.1")),
        cache_key("a" * 64, prof, settings, MACHINE, dataclasses.replace(CODE, plugin_ptx="q" * 64)),
        cache_key("a" * 64, prof, settings, MACHINE, dataclasses.replace(CODE, triton="3.8.0")),
        cache_key("a" * 64, prof, settings, MACHINE, dataclasses.replace(CODE, plugin_configs="d" * 64)),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert base == cache_key("a" * 64, prof, settings, MACHINE, CODE)


def test_sidecar_round_trip_and_refusal_of_other_machines(tmp_path):
    plan = tmp_path / "zsm.plan"
    plan.write_bytes(b"plan")
    meta = PlanMetadata(base_metadata("zsm"), parse_profile("540p", 4, 4), BuildSettings("fp16", "stvsr"), MACHINE,
                        "c" * 64, "k" * 64, code=CODE)
    write_sidecar(plan, meta)
    back = read_sidecar(plan)
    assert back.model.window == 4 and back.profile == meta.profile and back.machine == MACHINE
    assert back.code == CODE and back.settings.opt_times == 3
    check_plan(back, MACHINE)
    with pytest.raises(EngineMismatch, match=r"TensorRT 11.4.0 \(this machine: 10.9.0\).*--profile 540p"):
        check_plan(back, dataclasses.replace(MACHINE, tensorrt="10.9.0"))
    with pytest.raises(EngineMismatch, match="sm_89"):
        check_plan(back, MachineInfo("11.4.0", "NVIDIA L4", "8.9"))
    with pytest.raises(EngineMismatch, match="no other.plan.json"):
        read_sidecar(tmp_path / "other.plan")


def test_plan_file_must_match_its_sidecar(tmp_path):
    import hashlib

    plan = tmp_path / "zsm.plan"
    plan.write_bytes(b"engine bytes")
    meta = PlanMetadata(base_metadata("zsm"), parse_profile("64x64", 4, 4), BuildSettings("fp32", "none"), MACHINE,
                        "c" * 64, "k" * 64, hashlib.sha256(b"engine bytes").hexdigest())
    write_sidecar(plan, meta)
    back = read_sidecar(plan)
    assert back.plan_sha256 == meta.plan_sha256
    check_plan_file(plan, back)
    plan.write_bytes(b"engine bytes, truncated or replaced")
    with pytest.raises(EngineMismatch, match="does not match its zsm.plan.json.*rebuild"):
        check_plan_file(plan, back)


class RecordingDevice:
    """Test double (not a GPU): records operations and fakes events as integers."""

    def __init__(self):
        self.log: list[tuple] = []
        self.events = 0
        self.live: set[int] = set()
        self.outputs: dict[int, np.ndarray] = {}

    def upload(self, slot, inputs):
        self.log.append(("upload", slot, float(inputs["frames"].mean())))

    def execute(self, slot, shapes):
        self.log.append(("execute", slot))
        self.outputs[slot] = np.full((1, 1), self.log[-2][2] if self.log[-2][0] == "wait" else 0.0)
        return (1, 1)

    def download(self, slot, shape):
        self.log.append(("download", slot))

    def record(self, stream):
        self.events += 1
        self.live.add(self.events)
        self.log.append(("record", stream, self.events))
        return self.events

    def elapsed_ms(self, start, end):
        assert start in self.live and end in self.live
        return float(end - start)

    def release(self, event):
        assert event in self.live, f"event {event} released twice"
        self.live.remove(event)
        self.log.append(("release", event))

    def wait(self, stream, event):
        self.log.append(("wait", stream, event))

    def synchronize(self, event):
        self.log.append(("sync", event))

    def host_output(self, slot, shape):
        return np.zeros(shape) + slot


def test_double_buffer_schedule_order():
    dev = RecordingDevice()
    sched = DoubleBufferSchedule(dev)
    tickets = [sched.submit({"frames": np.full((1, 2), float(k))}) for k in range(2)]
    ops = [(o[0], o[1]) for o in dev.log if o[0] in ("upload", "execute", "download")]
    # Window 1 is uploaded before window 0 is downloaded: the upload overlaps inference on window 0.
    assert ops == [("upload", 0), ("execute", 0), ("upload", 1), ("download", 0), ("execute", 1)]
    assert [t.slot for t in tickets] == [0, 1]
    # Compute waits for the upload's event; the copy stream waits for execution before downloading.
    up0 = next(o[2] for o in dev.log if o[0] == "record" and o[1] == COPY)
    assert ("wait", COMPUTE, up0) in dev.log
    ex0 = tickets[0].executed
    assert dev.log.index(("wait", COPY, ex0)) < dev.log.index(("download", 0))
    # Reusing slot 0 for window 2 first waits until window 0's download completed (and was collected).
    sched.collect(tickets[0])
    sched.submit({"frames": np.zeros((1, 2))})
    assert dev.log.index(("sync", tickets[0].downloaded)) < max(i for i, o in enumerate(dev.log) if o[:2] == ("upload", 0))
    out = sched.collect(tickets[1])
    assert out.shape == (1, 1) and ("download", 1) in [(o[0], o[1]) for o in dev.log]


def test_double_buffer_schedule_streams_many_windows_without_leaking_events():
    """Steady state with two windows in flight (as stvsr-run drives it): every slot reuse waits for the
    download of the window that last used it, compute timing comes from events, no event leaks."""
    dev = RecordingDevice()
    sched = DoubleBufferSchedule(dev)
    tickets, collected = [sched.submit({"frames": np.zeros((1, 2))})], []
    for k in range(1, 6):
        tickets.append(sched.submit({"frames": np.full((1, 2), float(k))}))
        collected.append(sched.collect(tickets[k - 1]))
    collected.append(sched.collect(tickets[-1]))
    sched.close()
    assert len(collected) == 6 and all(t.gpu_ms == 1.0 for t in tickets)  # started/executed are consecutive events
    assert not dev.live, f"events never released: {sorted(dev.live)}"
    uploads = [i for i, o in enumerate(dev.log) if o[0] == "upload"]
    downloads = [i for i, o in enumerate(dev.log) if o[0] == "download"]
    for k in range(2, 6):   # window k reuses slot k % 2: window k-2's download was waited for by the host
        done = tickets[k - 2].downloaded
        assert dev.log.index(("sync", done)) < uploads[k]
    for k in range(1, 6):   # upload of window k is enqueued before the download of window k-1
        assert uploads[k] < downloads[k - 1]


def test_double_buffer_schedule_refuses_to_overwrite_an_uncollected_result():
    """A third submit before the first collect would reuse slot 0 while window 0's result is still
    there: refused before anything is enqueued, and window 0 still collects its own result."""
    from stvsr.runtime.backends.base import BackendError

    dev = RecordingDevice()
    sched = DoubleBufferSchedule(dev)
    first, second = (sched.submit({"frames": np.full((1, 2), float(k))}) for k in range(2))
    logged = len(dev.log)
    with pytest.raises(BackendError, match="overwrite the result of window 0, which has not been collected"):
        sched.submit({"frames": np.full((1, 2), 2.0)})
    assert len(dev.log) == logged                      # nothing uploaded, recorded or executed
    assert sched.collect(first)[0, 0] == 0.0           # slot 0 still holds window 0
    third = sched.submit({"frames": np.full((1, 2), 2.0)})
    assert third.index == 2 and third.slot == 0
    with pytest.raises(BackendError, match="already collected"):
        sched.collect(first)
    sched.collect(second)
    sched.collect(third)
    sched.close()
    assert not dev.live


def test_export_cli_refuses_profiles_without_tensorrt(tmp_path):
    if HAS_TRT:
        pytest.skip("tensorrt is installed here")
    res = subprocess.run([sys.executable, "-m", "stvsr.export.cli", "--model", "zsm", "--random-weights",
                          "--profile", "540p", "-o", str(tmp_path / "z.onnx")], capture_output=True, text=True)
    assert res.returncode == 1 and "needs TensorRT" in res.stderr and not (tmp_path / "z.onnx").exists()


@pytest.mark.skipif(not HAS_TRT, reason="TensorRT is not installed (it cannot be installed on these machines); "
                                        "run benchmarks/validate_gpu.py on a GPU machine")
def test_build_and_run_engine_on_gpu(tmp_path):
    from stvsr.engines.builder import build_engines
    from stvsr.export.api import export_model
    from stvsr.runtime.backends import open_backend

    onnx_path = export_model("stvun", random_weights=True, precision="fp16", output=tmp_path / "s.onnx").path
    plan = build_engines(str(onnx_path), [parse_profile("64x64", 4, 16)], BuildSettings("fp16", "native"), tmp_path)[0]
    with open_backend(str(plan)) as backend:
        out = backend.run({"frames": np.random.rand(1, 7, 3, 64, 64).astype(np.float32),
                           "times": np.array([0.5], np.float32)})
    assert out.shape == (1, 2, 3, 256, 256)
