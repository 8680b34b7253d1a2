"""Loss and RFC 3550 interarrival jitter against known sequences (media.rtp.stats)."""

import pytest

from media.rtp.stats import ReceiveStats


def feed(stats, packets, ssrc=1):
    for seq, ts, arrival in packets:
        stats.add(ssrc, seq % 65536, ts % 2**32, 160, arrival)


def test_it_counts_no_loss_and_no_jitter_for_a_perfect_stream():
    stats = ReceiveStats(8000)
    feed(stats, [(100 + i, 160 * i, 0.02 * i) for i in range(50)])
    assert (stats.packets, stats.bytes, stats.lost) == (50, 8000, 0)
    assert stats.jitter == pytest.approx(0, abs=1)


def test_it_counts_gaps_as_loss_across_a_sequence_wrap():
    stats = ReceiveStats(8000)
    seqs = [65530 + i for i in range(12) if i not in (3, 7, 8)]
    feed(stats, [(s, 160 * (s - 65530), 0.02 * (s - 65530)) for s in seqs])
    assert stats.expected == 12
    assert stats.lost == 3


def test_it_computes_jitter_per_rfc3550():
    # Every other packet arrives 10 ms late: |D| alternates 80 samples, J += (|D| - J) / 16.
    stats = ReceiveStats(8000)
    packets = [(i, 160 * i, 0.02 * i + (0.01 if i % 2 else 0)) for i in range(200)]
    feed(stats, packets)
    expected = 0.0
    for _ in range(199):
        expected += (80 - expected) / 16
    assert stats.jitter == pytest.approx(expected, abs=1)
    assert stats.jitter_ms == pytest.approx(expected / 8, abs=0.2)


def test_it_keeps_loss_across_an_ssrc_change():
    stats = ReceiveStats(8000)
    feed(stats, [(i, 160 * i, 0.02 * i) for i in range(10) if i != 4], ssrc=1)
    feed(stats, [(5000 + i, 160 * i, 1 + 0.02 * i) for i in range(10) if i != 2], ssrc=2)
    assert stats.lost == 2
    assert stats.packets == 18
