"""The latency histogram: bounded relative error, exact max, conservative percentiles."""

from __future__ import annotations

import pytest

from drl_trading.common.latency import LatencyHistogram


def test_percentiles_within_precision_and_never_below_the_true_value() -> None:
    h = LatencyHistogram(precision=0.01)
    for ms in range(1, 1001):
        h.record(ms / 1000.0)
    snap = h.snapshot()
    assert snap.count == 1000 and snap.max == 1.0
    assert snap.mean == pytest.approx(0.5005)
    for value, true in ((snap.p50, 0.5), (snap.p90, 0.9), (snap.p99, 0.99)):
        assert true <= value <= true * 1.01
    assert h.percentile(100) == 1.0 and h.percentile(0) == pytest.approx(0.001, rel=0.01)


def test_empty_out_of_range_and_reset() -> None:
    h = LatencyHistogram(lowest=1e-6, highest=1.0)
    assert h.snapshot().p99 == 0.0
    h.record(-1.0)  # a clock stepping back counts as zero
    h.record(float("nan"))
    h.record(50.0)  # beyond the range: bucketed at the top, max still exact
    assert h.count == 3 and h.snapshot().max == 50.0
    assert h.percentile(100) == 50.0 and h.percentile(50) == 1e-6
    h.reset()
    assert h.count == 0 and h.snapshot().max == 0.0
    with pytest.raises(ValueError, match="percentile"):
        h.percentile(101)


def test_time_context_uses_the_injected_timer() -> None:
    ticks = iter([10.0, 10.25])
    h = LatencyHistogram(timer=lambda: next(ticks))
    with pytest.raises(RuntimeError), h.time():
        raise RuntimeError("recorded anyway")
    assert h.count == 1 and h.snapshot().max == 0.25


def test_stage_latency_follows_the_chain_of_stamps() -> None:
    from drl_trading.common.latency import StageLatency, stamp

    seen: list[tuple[str, float]] = []
    lat = StageLatency(lambda stage, seconds: seen.append((stage, seconds)))
    stages = {"received": 100.0, "ingest": 100.001, "preprocess": 100.003}
    stages = stamp(stamp(stages, "inference", 100.004), "execution", 100.0045)
    lat.record(stages)
    snap = lat.snapshot()
    assert snap["ingest"].max == pytest.approx(0.001, rel=0.02)
    assert snap["preprocess"].max == pytest.approx(0.002, rel=0.02)
    assert snap["inference"].max == pytest.approx(0.001, rel=0.02)
    assert snap["execution"].max == pytest.approx(0.0005, rel=0.02)
    assert snap["total"].max == pytest.approx(0.0045, rel=0.02)
    # the observer (a Prometheus histogram in a service) gets the same measurements
    assert [name for name, _ in seen] == ["ingest", "preprocess", "inference", "execution", "total"]
    assert dict(seen)["total"] == pytest.approx(0.0045, rel=1e-6)
    # a chain without its start (an event from an older producer) records what it can
    lat.record({"inference": 1.0, "execution": 1.002})
    assert lat.snapshot()["execution"].count == 2
    assert lat.snapshot()["total"].count == 1
    assert stamp({}, "x")["x"] > 0
