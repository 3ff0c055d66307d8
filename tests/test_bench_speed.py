"""stvsr-bench --speed parts that are cheap to run: the DeformConv decomposition row at a tiny size."""
from __future__ import annotations

from stvsr.bench import speed


def test_deform_decomposition_rows_are_equal_and_timed_alike():
    cfg = speed.config(threads=1, warmup=1, repeats=1, size=(16, 16), log=lambda s: None)
    rows = speed.deform_rows(cfg)
    assert [r["size"] for r in rows] == ["16x16", "8x8", "4x4"]
    for r in rows:
        assert r["max_abs_diff"] < 1e-4  # the standard-op graph computes the same deformable conv
        assert "GridSample" in r["check"] and "MatMul" in r["check"] and "DeformConv" not in r["check"].split(":")[-1]
        assert r["ratio"] > 0 and r["wall_ratio"] > 0 and set(r["timings"]) == {"cpu", "wall"}
        for clock in r["timings"].values():  # both graphs timed alike, on both clocks
            assert set(clock) == {"ONNX DeformConv", "GridSample + MatMul"}
            assert all(t["repeats"] == 1 and t["median"] > 0 for t in clock.values())
