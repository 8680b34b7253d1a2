"""common.backoff: capped exponential delays with full jitter, drawn from an injected source."""

import pytest

from common.backoff import Backoff


def top(low: float, high: float) -> float:
    return high


def test_it_doubles_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 10.0, rand=top)
    # It should draw from [0, base * 2**attempt], never above the cap.
    assert [backoff.next() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_it_draws_from_zero_to_the_ceiling() -> None:
    drawn: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        drawn.append((low, high))
        return (low + high) / 2

    backoff = Backoff(1.0, 30.0, rand=record)
    assert [backoff.next() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert drawn == [(0.0, 1.0), (0.0, 2.0), (0.0, 4.0)]


def test_it_starts_again_after_a_reset() -> None:
    backoff = Backoff(0.5, 30.0, rand=top)
    backoff.next()
    backoff.next()
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next() == 0.5


def test_it_does_not_overflow_after_many_attempts() -> None:
    backoff = Backoff(0.5, 30.0, rand=top)
    backoff.attempt = 10_000
    assert backoff.next() == 30.0


def test_its_default_source_stays_in_the_window() -> None:
    backoff = Backoff(0.5, 2.0)
    for _ in range(200):
        ceiling = backoff.ceiling()
        assert 0.0 <= backoff.next() <= ceiling <= 2.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_it_refuses_a_bad_policy(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base, cap)


async def test_it_sleeps_the_delay_it_returns() -> None:
    backoff = Backoff(0.01, 0.02, rand=top)
    assert await backoff.sleep() == 0.01
    assert await backoff.sleep() == 0.02
    assert backoff.attempt == 2
