"""Issue 14, item 15: wrong upload-password guesses are limited per client address
across the process, with exponential backoff (the page side is in test_hardening_app)."""

from __future__ import annotations

from explain.guesses import GuessLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_guess_limiter_backs_off_per_address_across_sessions():
    clock = Clock()
    limiter = GuessLimiter(free=5, base_delay=30, max_delay=600, clock=clock)
    assert [limiter.failed("1.2.3.4") for _ in range(4)] == [0.0] * 4
    assert limiter.wait_seconds("1.2.3.4") == 0.0
    assert limiter.failed("1.2.3.4") == 30  # the fifth wrong guess starts the backoff
    assert limiter.wait_seconds("1.2.3.4") == 30 and limiter.wait_seconds("5.6.7.8") == 0.0
    clock.now += 30
    assert limiter.wait_seconds("1.2.3.4") == 0.0
    assert [limiter.failed("1.2.3.4") for _ in range(6)] == [60, 120, 240, 480, 600, 600]  # doubling, capped
    limiter.succeeded("1.2.3.4")
    assert limiter.wait_seconds("1.2.3.4") == 0.0 and limiter.failed("1.2.3.4") == 0.0


def test_guess_limiter_forgets_idle_addresses_to_stay_bounded():
    clock = Clock()
    limiter = GuessLimiter(free=1, base_delay=1, max_delay=10, forget_after=60, max_clients=100, clock=clock)
    for i in range(100):
        limiter.failed(f"10.0.0.{i}")
    clock.now += 61
    limiter.failed("blocked")
    assert len(limiter._records) == 1  # the idle ones went
    for i in range(500):
        limiter.failed(f"10.1.{i}")
    assert len(limiter._records) <= 100
