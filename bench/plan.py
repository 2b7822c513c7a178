"""How much each benchmark does: the full run, `--quick`, and the smoke run the tests use."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Size:
    """One archive size: WAV channels and seconds, and recordings per measured run."""

    label: str
    channels: int
    duration: int
    count: int
    # The warm-up recording's duration when one of this size would take too long (≥ 1 GB).
    warmup_duration: int | None = None


@dataclass(frozen=True)
class Plan:
    """Durations, counts and repetitions of one benchmark run."""

    name: str
    runs: int  # measured runs per figure (the report gives their median); one warm-up precedes them
    ingest_seconds: float
    ingest_warmup_seconds: float
    connections: int
    fixed_rate: int
    fixed_seconds: float
    fixed_warmup_seconds: float
    sizes: tuple[Size, ...]
    e2e_rate: float
    e2e_seconds: float
    e2e_warmup_seconds: float
    scaling_workers: tuple[int, ...]
    scaling_count: int
    # Archive under Twilio latency: recordings per run for recvault's default worker, and for
    # the designs that archive one recording per process (slow at 0.25 s: fewer keep runs short).
    latency_count: int = 120
    latency_baseline_count: int = 30
    e2e_workers: int = 4  # worker processes for End to end when Scaling did not run first
    ingest_processes: tuple[int, ...] = (1, 2)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


ONE_MINUTE_MONO = Size("1-minute mono", 1, 60, 50)
TEN_MINUTE_DUAL = Size("10-minute dual", 2, 600, 10)
ONE_HOUR_DUAL = Size("1-hour dual", 2, 3600, 3)
# 33,600 s of 2-channel 8 kHz 16-bit audio: 1,075,200,044 bytes, just over 1 GiB.
OVER_ONE_GB = Size("9h20 dual (≥ 1 GiB)", 2, 33_600, 1, warmup_duration=3600)

FULL = Plan(
    name="full", runs=3, ingest_seconds=10, ingest_warmup_seconds=3, connections=32,
    fixed_rate=1000, fixed_seconds=10, fixed_warmup_seconds=2,
    sizes=(ONE_MINUTE_MONO, TEN_MINUTE_DUAL, ONE_HOUR_DUAL, OVER_ONE_GB),
    e2e_rate=50, e2e_seconds=20, e2e_warmup_seconds=5,
    scaling_workers=(1, 2, 4), scaling_count=60,
)

QUICK = Plan(
    name="quick", runs=1, ingest_seconds=3, ingest_warmup_seconds=1, connections=32,
    fixed_rate=1000, fixed_seconds=3, fixed_warmup_seconds=1,
    sizes=(Size("1-minute mono", 1, 60, 10), Size("10-minute dual", 2, 600, 3), Size("1-hour dual", 2, 3600, 1)),
    e2e_rate=50, e2e_seconds=5, e2e_warmup_seconds=2,
    scaling_workers=(1, 2, 4), scaling_count=20, latency_count=60, latency_baseline_count=10,
)

SMOKE = Plan(
    name="smoke", runs=1, ingest_seconds=1, ingest_warmup_seconds=1, connections=4,
    fixed_rate=100, fixed_seconds=1, fixed_warmup_seconds=0.5,
    sizes=(Size("1-minute mono", 1, 60, 2),),
    e2e_rate=5, e2e_seconds=1, e2e_warmup_seconds=0.5,
    scaling_workers=(1, 2), scaling_count=4, ingest_processes=(1,), latency_count=4, latency_baseline_count=2,
)

PLANS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}
