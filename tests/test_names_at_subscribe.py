"""Names are registered only by event_type(): a str given to subscribe/on must already be
registered, or ValueError naming the close matches; a str with a '*' or '>' token is a topic
pattern, not a name, and event_type() refuses names containing either (issue 9)."""
import pytest

import ringbus


def test_a_registered_name_subscribes():
    bus = ringbus.Bus()
    T = bus.event_type("md.tick")
    seen = []
    bus.subscribe("md.tick", seen.append)
    bus.emit(T, 1)
    assert seen == [1]


def test_a_typo_is_refused_with_close_matches_and_registers_nothing():
    bus = ringbus.Bus()
    t = bus.event_type("md.tick")
    with pytest.raises(ValueError, match=r"'md.tik' is not a registered.*did you mean 'md.tick'"):
        bus.subscribe("md.tik", print)
    with pytest.raises(ValueError, match="not a registered"):
        bus.on("md.tik")(print)
    assert bus.event_types == {"md.tick": t}


def test_unknown_name_without_close_match_says_how_to_register():
    bus = ringbus.Bus()
    with pytest.raises(ValueError, match=r"bus.event_type\('orders'\)"):
        bus.subscribe("orders", print)


@pytest.mark.parametrize("pattern", ["md.*", "md.>", "*", ">"])
def test_patterns_are_not_names(pattern):
    bus = ringbus.Bus()
    # subscribe() takes patterns (issue 13: tests/test_patterns.py); event_type() does not.
    with pytest.raises(ValueError, match=r"'\*' or '>'"):
        bus.event_type(pattern)
