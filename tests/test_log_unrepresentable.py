"""on_error="log": the handler's error and traceback reach the log even when the payload
(or anything else the record names) cannot be repr'd."""
import logging

import ringbus


class Unrepresentable:
    def __repr__(self):
        raise RuntimeError("no repr for you")


def test_log_keeps_handler_error_when_payload_repr_raises(caplog):
    bus = ringbus.Bus()
    t = bus.event_type("log.unrepr")

    def handler(payload):
        raise ValueError("the handler's own error")

    bus.subscribe(t, handler)
    with caplog.at_level(logging.ERROR, logger="ringbus"):
        bus.emit(t, Unrepresentable())
    records = [r for r in caplog.records if r.name == "ringbus"]
    assert len(records) == 1
    rec = records[0]
    message = rec.getMessage()          # must not raise
    assert "<unrepresentable Unrepresentable object>" in message
    assert rec.exc_info is not None
    assert isinstance(rec.exc_info[1], ValueError)
    assert "the handler's own error" in str(rec.exc_info[1])
    assert rec.exc_info[2] is not None          # the traceback
    assert "handler" in caplog.text and "ValueError" in caplog.text
