"""The bridges' compiled wire paths (ringbus._wire): the NATS exporter's HPUB framing and
PubAck parsing (PubWindow), the Redis exporter's XADD framing and reply counting. No
server: the bytes are checked against the protocols as written, and every parser is fed
split reads at each byte boundary, garbage and error lines, which must end in a clear
ValueError or a stop for more bytes, never a crash or a wrong count."""
import collections
import inspect
import random

import pytest

pytest.importorskip("msgspec")

from ringbus._wire import PubWindow, XaddFramer, count_replies  # noqa: E402
from ringbus.bridge.base import Export  # noqa: E402
from ringbus.bridge.codec import Codec, Producer  # noqa: E402
from ringbus.bridge.natslink import PublishLink  # noqa: E402
from stress import SCALE  # noqa: E402

INBOX = b"_INBOX.abc."
ONE = Export(1, "md.tick", None)
BY_SYM = Export(1, "md.tick.{sym}", None)


def _window():
    return PubWindow(INBOX, b"Nats-Msg-Id", b"Ringbus-Codec")


def _hpubs(frames):
    """(subject, reply, headers dict, data) of each HPUB in ``frames``, parsed here by the
    protocol's rules."""
    out, pos = [], 0
    while pos < len(frames):
        eol = frames.index(b"\r\n", pos)
        verb, subject, reply, hlen, total = frames[pos:eol].split(b" ")
        assert verb == b"HPUB"
        body = frames[eol + 2:eol + 2 + int(total)]
        assert frames[eol + 2 + int(total):eol + 4 + int(total)] == b"\r\n"
        head, data = body[:int(hlen)], body[int(hlen):]
        lines = head.split(b"\r\n")
        assert lines[0] == b"NATS/1.0" and head.endswith(b"\r\n\r\n")
        headers = dict(line.split(b": ", 1) for line in lines[1:] if line)
        out.append((subject, reply, headers, data))
        pos = eol + 4 + int(total)
    return out


def _ack(seq, data=b'{"stream":"S","seq":1}', reply=b""):
    subject = INBOX + b"%d" % seq
    mid = b" " + reply + b" " if reply else b"  "    # nats-server 2.9: two spaces, no reply
    return b"MSG " + subject + b" 1" + mid + b"%d\r\n" % len(data) + data + b"\r\n"


def test_a_batch_is_framed_as_hpubs_with_ids_codec_and_a_reply_per_sequence():
    w, producer, failed = _window(), Producer(), []
    producer.count = 41
    outbox = collections.deque([(ONE, b"raw"), (BY_SYM, {"sym": "X", "p": 1}),
                                (ONE, bytearray(b"ba"))])
    frames = w.take(outbox, 10, Codec("msgpack"), producer, 7.5, failed)
    assert not outbox and not failed
    got = _hpubs(frames)
    assert [g[0] for g in got] == [b"md.tick", b"md.tick.X", b"md.tick"]
    assert [g[1] for g in got] == [INBOX + b"1", INBOX + b"2", INBOX + b"3"]
    name = producer.name.encode()
    assert [g[2][b"Nats-Msg-Id"] for g in got] == [name + b":42", name + b":43", name + b":44"]
    assert [g[2][b"Ringbus-Codec"] for g in got] == [b"bytes", b"msgpack", b"bytes"]
    assert got[0][3] == b"raw" and got[2][3] == b"ba"
    assert Codec("msgpack").decode("msgpack", got[1][3]) == {"sym": "X", "p": 1}
    assert producer.count == 44 and len(w) == 3 and w.next_seq == 4
    assert w.oldest_sent_at == 7.5


def test_events_that_cannot_be_carried_are_handed_back_and_use_no_id():
    w, producer, failed = _window(), Producer(), []
    unencodable = object()
    outbox = collections.deque([(BY_SYM, {"nosym": 1}), (ONE, unencodable), (ONE, b"ok"),
                                (BY_SYM, {"sym": "a.b"})])
    frames = w.take(outbox, 10, Codec("msgpack"), producer, 0.0, failed)
    assert [(spec, type(exc)) for spec, _, exc in failed] == [
        (BY_SYM, KeyError), (ONE, TypeError), (BY_SYM, ValueError)]
    assert failed[1][1] is unencodable
    (one,) = _hpubs(frames)
    assert one[2][b"Nats-Msg-Id"].endswith(b":1") and one[1] == INBOX + b"1"
    assert producer.count == 1 and len(w) == 1
    # Nothing carried at all: no bytes, no sequence used.
    assert w.take(collections.deque([(BY_SYM, {})]), 5, Codec("json"), producer, 0.0,
                  failed) == b""
    assert w.next_seq == 2 and w.take(collections.deque(), 5, Codec("json"), producer, 0.0,
                                      failed) == b""


def test_take_stops_at_n_and_json_is_encoded_as_json():
    w, producer = _window(), Producer()
    outbox = collections.deque([(ONE, {"i": i}) for i in range(5)])
    got = _hpubs(w.take(outbox, 3, Codec("json"), producer, 0.0, []))
    assert [g[3] for g in got] == [b'{"i":0}', b'{"i":1}', b'{"i":2}']
    assert {g[2][b"Ringbus-Codec"] for g in got} == {b"json"} and len(outbox) == 2


def _filled(n, now=1.0):
    w, producer = _window(), Producer()
    outbox = collections.deque([(ONE, b"m%d" % i) for i in range(n)])
    frames = w.take(outbox, n, Codec("msgpack"), producer, now, [])
    return w, frames


def test_pubacks_release_their_messages_and_the_rest_go_again_in_first_order():
    w, frames = _filled(5)
    buf = _ack(2) + _ack(4, reply=b"x") + _ack(99) + _ack(2)     # 99: not ours; 2: twice
    assert w.feed(buf, 0) == len(buf)
    assert w.acked == 2 and len(w) == 3
    again = _hpubs(w.unacked(9.0))
    assert [g[1] for g in again] == [INBOX + b"1", INBOX + b"3", INBOX + b"5"]
    assert [g[3] for g in again] == [b"m0", b"m2", b"m4"]
    assert w.oldest_sent_at == 9.0
    # The frames written again are the first ones, byte for byte.
    first = {g[1]: g for g in _hpubs(frames)}
    assert all(first[g[1]] == g for g in again)
    w.feed(_ack(1) + _ack(3) + _ack(5), 0)
    assert len(w) == 0 and w.oldest_sent_at is None and w.unacked(0.0) == b""


def test_a_puback_with_an_error_keeps_its_message_and_is_reported():
    w, _ = _filled(2)
    err = b'{"error":{"code":503,"description":"no responders"}}'
    w.feed(_ack(1, err) + _ack(2), 0)
    assert w.acked == 1 and w.errors == [(1, err)] and len(w) == 1


def test_the_window_grows_past_its_first_capacity_and_keeps_the_order():
    w, producer = _window(), Producer()
    for _ in range(6):                  # 3,000 unacked, the first one held throughout
        w.take(collections.deque([(ONE, b"x")] * 500), 500, Codec("msgpack"), producer,
               0.0, [])
    w.feed(b"".join(_ack(s) for s in range(2, 3001, 2)), 0)
    assert len(w) == 1500
    seqs = [int(g[1][len(INBOX):]) for g in _hpubs(w.unacked(0.0))]
    assert seqs == list(range(1, 3000, 2))
    w.feed(b"".join(_ack(s) for s in range(1, 3001, 2)), 0)
    assert len(w) == 0
    assert w.take(collections.deque([(ONE, b"y")]), 1, Codec("msgpack"), producer, 0.0,
                  []) and w.next_seq == 3002


def _feed_split(w, stream, cut):
    """What PublishLink._read does with reads cut at ``cut``: the whole acks counted."""
    acked, buf = 0, b""
    for chunk in (stream[:cut], stream[cut:]):
        buf += chunk
        pos = w.feed(buf, 0)
        acked += w.acked
        buf = buf[pos:]
    return acked, buf


def test_pubacks_split_at_every_byte_boundary_count_once():
    stream = b"".join(_ack(s, reply=b"r" if s % 2 else b"") for s in range(1, 9))
    for cut in range(len(stream) + 1):
        w, _ = _filled(8)
        acked, rest = _feed_split(w, stream, cut)
        assert (acked, rest, len(w)) == (8, b"", 0), cut


def test_feed_stops_at_a_line_that_is_not_a_msg_and_at_a_partial_one():
    w, _ = _filled(3)
    buf = _ack(1) + b"PING\r\n" + _ack(2) + b"-ERR 'Stale Connection'\r\n" + _ack(3)[:10]
    pos = w.feed(buf, 0)
    assert buf.startswith(b"PING", pos) and w.acked == 1
    pos = w.feed(buf, pos + 6)
    assert buf.startswith(b"-ERR", pos) and w.acked == 1
    pos = w.feed(buf, buf.index(b"\r\n", pos) + 2)
    assert pos == len(buf) - 10 and w.acked == 0
    assert w.feed(b"MS", 0) == 0 and w.feed(b"", 0) == 0
    assert w.feed(b"MSG\r\n", 0) == 0                # not "MSG ": the caller's line


@pytest.mark.parametrize("line", [
    b"MSG _INBOX.abc.1\r\n", b"MSG _INBOX.abc.1 1\r\n",
    b"MSG _INBOX.abc.1 1 r x 5\r\n", b"MSG _INBOX.abc.1 1 -5\r\n",
    b"MSG _INBOX.abc.1 1 5x\r\n", b"MSG _INBOX.abc.1 1 99999999999999\r\n",
    b"MSG _INBOX.abc.1 1 999999999\r\n",           # past any server's max_payload
    b"MSG _INBOX.abc.1 1 2\r\nabcd\r\n",            # the size does not end the data
])
def test_a_malformed_msg_is_a_value_error(line):
    w, _ = _filled(1)
    with pytest.raises(ValueError):
        w.feed(line + _ack(1), 0)
    assert len(w) == 1


def test_a_msg_line_without_an_end_is_refused_once_it_cannot_be_one():
    w, _ = _filled(1)
    assert w.feed(b"MSG " + b"x" * 100, 0) == 0        # may still come
    with pytest.raises(ValueError):
        w.feed(b"MSG " + b"x" * 5000, 0)
    with pytest.raises(ValueError):
        w.feed(_ack(1), -1)
    with pytest.raises(ValueError):
        w.feed(_ack(1), 10_000)


def test_random_bytes_never_crash_the_parsers():
    rng = random.Random(12)
    pieces = [_ack(1), _ack(2, reply=b"q"), b"PING\r\n", b"-ERR x\r\n", b"MSG ", b"\r\n",
              b"$5\r\nhello\r\n", b"*2\r\n", b":1\r\n", b"+OK\r\n", b"-ERR no\r\n", b"$-1\r\n"]
    for _ in range(max(300, int(3000 * SCALE))):
        buf = b"".join(rng.choice(pieces) if rng.random() < 0.7 else
                       bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
                       for _ in range(rng.randrange(8)))
        w, _ = _filled(2)
        try:
            pos = w.feed(buf, 0)
            assert 0 <= pos <= len(buf)
        except ValueError:
            pass
        try:
            pos, n, _ = count_replies(buf, 0, 100)
            assert 0 <= pos <= len(buf) and 0 <= n <= 100
        except ValueError:
            pass


def test_the_publish_link_answers_ping_logs_err_and_hands_acks_over_per_read(caplog):
    w, _ = _filled(3)
    got = []
    link = PublishLink(["nats://127.0.0.1:1"], INBOX.decode(), window=w,
                       on_ack=lambda n, errors: got.append((n, errors)), user=None,
                       password=None, token=None, on_lost=lambda: None, on_back=lambda: None)
    written = []

    class Writer:
        def write(self, data):
            written.append(data)
    link._writer = Writer()
    err = b'{"error":{"code":10077}}'
    buf = _ack(1) + b"PING\r\n" + _ack(2, err) + b"-ERR 'Permissions Violation'\r\n" + _ack(3)
    with caplog.at_level("WARNING", logger="ringbus.bridge"):
        assert link._parse(buf + _ack(3)[:7]) == len(buf)
    assert got == [(2, [(2, err)])] and written == [b"PONG\r\n"] and w.errors == []
    assert "Permissions Violation" in caplog.text


# -- Redis ------------------------------------------------------------------------------------


def _commands(packed):
    """The RESP arrays of ``packed`` as lists of bytes (parsed here)."""
    out, pos = [], 0
    while pos < len(packed):
        eol = packed.index(b"\r\n", pos)
        assert packed[pos:pos + 1] == b"*"
        n, pos, args = int(packed[pos + 1:eol]), eol + 2, []
        for _ in range(n):
            eol = packed.index(b"\r\n", pos)
            assert packed[pos:pos + 1] == b"$"
            size = int(packed[pos + 1:eol])
            args.append(packed[eol + 2:eol + 2 + size])
            assert packed[eol + 2 + size:eol + 4 + size] == b"\r\n"
            pos = eol + 4 + size
        out.append(args)
    return out


@pytest.mark.parametrize("maxlen", [None, 1000])
def test_xadds_are_framed_in_resp_with_id_codec_and_data(maxlen):
    framer, producer, failed = XaddFramer(maxlen), Producer(), []
    outbox = collections.deque([(ONE, b"raw"), (BY_SYM, {"sym": "Y"}), (BY_SYM, {})])
    packed = framer.take(outbox, 10, Codec("json"), producer, failed)
    assert framer.count == 2 and len(failed) == 1 and producer.count == 2
    trim = [] if maxlen is None else [b"MAXLEN", b"~", b"1000"]
    name = producer.name.encode()
    assert _commands(packed) == [
        [b"XADD", b"md.tick", *trim, b"*", b"id", name + b":1", b"c", b"bytes", b"d", b"raw"],
        [b"XADD", b"md.tick.Y", *trim, b"*", b"id", name + b":2", b"c", b"json", b"d",
         b'{"sym":"Y"}']]
    assert count_replies(packed, 0, 5) == (len(packed), 2, None)
    assert framer.take(collections.deque(), 3, Codec("json"), producer, failed) == b""
    assert framer.count == 0


@pytest.mark.parametrize("maxlen", [0, -1, True, 1.5, "5"])
def test_a_bad_maxlen_is_refused(maxlen):
    with pytest.raises(ValueError, match="maxlen"):
        XaddFramer(maxlen)


REPLIES = (b"$15\r\n1700000000000-0\r\n-ERR wrong type\r\n:3\r\n+OK\r\n$-1\r\n*-1\r\n"
           b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n$0\r\n\r\n-ERR second\r\n")


def test_replies_are_counted_with_the_first_error():
    assert count_replies(REPLIES, 0, 100) == (len(REPLIES), 9, "ERR wrong type")
    pos, n, err = count_replies(REPLIES, 0, 2)
    assert n == 2 and err == "ERR wrong type" and REPLIES[pos:].startswith(b":3")
    assert count_replies(REPLIES, pos, 100)[1:] == (7, "ERR second")


def test_resp3_replies_are_counted_and_its_pushes_skipped():
    buf = (b"_\r\n,1.5\r\n#t\r\n(123\r\n!3\r\nERR\r\n=7\r\ntxt:abc\r\n%1\r\n+k\r\n:1\r\n"
           b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n~2\r\n:1\r\n:2\r\n")
    assert count_replies(buf, 0, 100) == (len(buf), 8, None)
    assert count_replies(buf[:-4], 0, 100)[1] == 7       # the set not all here yet


def test_replies_split_at_every_byte_boundary_count_once():
    for cut in range(len(REPLIES) + 1):
        pos, n, _ = count_replies(REPLIES[:cut], 0, 100)
        buf = REPLIES[pos:cut] + REPLIES[cut:]
        pos2, n2, _ = count_replies(buf, 0, 100)
        assert (n + n2, pos2) == (9, len(buf)), cut


@pytest.mark.parametrize("buf", [b"?\r\n", b"$x\r\nab\r\n", b"$2\r\nabcd\r\n", b"*a\r\n",
                                 b"*1\r\n!\r\n", b"*1\r\n" * 20 + b":1\r\n",
                                 b"$1234567890\r\n"])
def test_bytes_that_are_not_resp_are_a_value_error(buf):
    with pytest.raises(ValueError):
        count_replies(buf, 0, 10)


def test_a_resp_line_without_an_end_is_refused_once_it_cannot_be_one():
    assert count_replies(b"+" + b"x" * 100, 0, 1) == (0, 0, None)
    with pytest.raises(ValueError):
        count_replies(b"+" + b"x" * 5000, 0, 1)
    with pytest.raises(ValueError):
        count_replies(b"+OK\r\n", 7, 1)


def test_the_window_refuses_a_bad_inbox():
    for inbox in (b"", b"a b.", b"a\r\n"):
        with pytest.raises(ValueError, match="inbox"):
            PubWindow(inbox, b"Nats-Msg-Id", b"Ringbus-Codec")
    assert inspect.signature(PubWindow).parameters.keys() == {
        "inbox", "id_header", "codec_header"}
    assert str(inspect.signature(XaddFramer)) == "(maxlen=None)"


def test_redis_replies_are_read_from_the_stream_as_they_come():
    pytest.importorskip("redis")
    import asyncio

    from ringbus.bridge.redis import _replies

    async def read(pieces, n, eof=False):
        stream = asyncio.StreamReader()

        async def feed():
            for piece in pieces:
                await asyncio.sleep(0)
                stream.feed_data(piece)
            if eof:
                stream.feed_eof()
        feeder = asyncio.ensure_future(feed())
        try:
            return await _replies(stream, n)
        finally:
            await feeder
    cuts = [REPLIES[i:i + 3] for i in range(0, len(REPLIES), 3)]
    assert asyncio.run(read(cuts, 9)) == "ERR wrong type"
    assert asyncio.run(read([b"$1\r\na\r\n", b":1\r\n"], 2)) is None
    with pytest.raises(ConnectionError, match="closed"):
        asyncio.run(read([b"$1\r\na\r\n"], 2, eof=True))
    with pytest.raises(ConnectionError, match="more than 1"):
        asyncio.run(read([b":1\r\n:2\r\n"], 1))
    with pytest.raises(ValueError):
        asyncio.run(read([b"?garbage\r\n"], 1))
