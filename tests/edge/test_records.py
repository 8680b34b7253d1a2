"""What the edge writes on the CDR row from a media session's stats."""

from edge.records import stats_fields


def test_it_maps_each_legs_stats_to_its_columns():
    stats = {
        "rtp": {"codec": "PCMU", "packets_received": 990, "packets_lost": 10, "jitter_ms": 2.5},
        "webrtc": {"codec": "opus", "packets_received": 1000, "packets_lost": 0},
    }
    assert stats_fields(stats) == {
        "sip_codec": "PCMU", "sip_encrypted": False, "sip_packet_loss": 1.0, "sip_jitter_ms": 2.5,
        "app_codec": "opus", "app_encrypted": True, "app_packet_loss": 0.0,
    }


def test_a_leg_without_stats_leaves_its_columns_alone():
    assert stats_fields({"rtp": {}, "webrtc": None}) == {}
    assert stats_fields({"rtp": {"codec": "PCMA"}}) == {"sip_codec": "PCMA", "sip_encrypted": False}
