"""The bridges' security options against real servers, one per way in: nats-server with a
token, with a user and password, with TLS, with an nkey user and with an operator whose
user's credentials file the bridge is given (decentralized JWT auth, made offline by
tests/brokers.py); redis-server with requirepass, with an ACL user, and with TLS. For each:
events go out and come back in; the server restarted, the bridge reconnects and carries on;
wrong credentials fail ``running()`` at once with an exception naming the problem; and no
secret (password, token, seed) shows in the bridge's repr, str, stats, an exception, or any
log record of connect, failure and reconnect (DEBUG, every logger)."""
from __future__ import annotations

import logging
import secrets
import ssl
import time
from typing import Any, Callable, List, Optional

import pytest

import brokers
import ringbus
from bridge_cases import wait_for

pytestmark = pytest.mark.servers

SECRET = "Sx-" + secrets.token_hex(8)       # in every password and token below


class Mode:
    """One way of authenticating: its server, a bridge that gets in, one that does not (and
    what its exception must say), and the secrets that must never show."""

    def __init__(self, name: str, engine: str, server: brokers.Server,
                 make: Callable[..., Any], wrong: Callable[..., Any], says: str,
                 hidden: List[str], anonymous: Optional[Callable[..., Any]] = None) -> None:
        self.name, self.engine, self.server = name, engine, server
        self.make, self.wrong, self.says, self.hidden = make, wrong, says, hidden
        self.anonymous = anonymous      # mutual TLS: a bridge without a client certificate
        # Refused credentials: PermissionError; a certificate not trusted: ConnectionError.
        self.error = ConnectionError if "certificate" in says else PermissionError

    def import_(self, bridge: Any, event_type: Any, subject: str, name: str) -> Any:
        if self.engine == "nats":
            return bridge.import_(event_type, subject=subject, durable=name)
        return bridge.import_(event_type, subject=subject, group=name)


MODES = ["nats-token", "nats-user", "nats-tls", "nats-nkey", "nats-creds", "redis-password",
         "redis-acl", "redis-tls"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tmp_path_factory.mktemp("security")


def _nats(bus: Any, url: str, **kw: Any) -> Any:
    from ringbus.bridge import NatsBridge
    return NatsBridge(bus, servers=url, stream="sec", ack_wait=1.0, **kw)


def _redis(bus: Any, url: str, **kw: Any) -> Any:
    from ringbus.bridge import RedisBridge
    return RedisBridge(bus, url=url, stream="sec", ack_wait=1.0, **kw)


def _start(name: str, files: Any) -> Mode:
    pytest.importorskip("msgspec", reason="the bridges' codec")
    if name.startswith("nats"):
        pytest.importorskip("nats", reason="nats-py (pip install 'ringbus[nats]')")
    else:
        pytest.importorskip("redis", reason="redis-py (pip install 'ringbus[redis]')")
    if name == "nats-token":
        srv = brokers.nats_server(token=SECRET)
        url = f"nats://127.0.0.1:{srv.port}"
        return Mode(name, "nats", srv, lambda bus: _nats(bus, url, token=SECRET),
                    lambda bus: _nats(bus, url, token="wrong-" + SECRET),
                    "(?i)authorization violation", [SECRET])
    if name == "nats-user":
        srv = brokers.nats_server(user="bridge", password=SECRET)
        url = f"nats://127.0.0.1:{srv.port}"
        # The right password inside the URL (the lean links read it there too); the wrong
        # one as arguments.
        return Mode(name, "nats", srv,
                    lambda bus: _nats(bus, f"nats://bridge:{SECRET}@127.0.0.1:{srv.port}"),
                    lambda bus: _nats(bus, url, user="bridge", password="wrong-" + SECRET),
                    "(?i)authorization violation", [SECRET])
    if name == "nats-tls":
        c = brokers.certs(files)
        # Mutual TLS: the server asks for a client certificate of the test CA.
        srv = brokers.nats_server(tls=(c.cert, c.key), tls_verify=c.ca, token=SECRET)
        url = f"tls://127.0.0.1:{srv.port}"
        return Mode(name, "nats", srv,
                    lambda bus: _nats(bus, url, tls=_context(c, trust=True), token=SECRET),
                    # The system's CAs do not know the test CA.
                    lambda bus: _nats(bus, url, tls=_context(c, trust=False), token=SECRET),
                    "(?i)certificate verify failed", [SECRET],
                    anonymous=lambda bus: _nats(bus, url, token=SECRET,
                                                tls=_context(c, trust=True, mine=False)))
    if name == "nats-nkey":
        seed, pub, _ = brokers.nkey("user")
        (files / "user.nk").write_text(seed + "\n")
        other, _, _ = brokers.nkey("user")
        (files / "other.nk").write_text(other + "\n")
        conf = files / "nkey.conf"
        conf.write_text(f"authorization {{\n  users = [ {{ nkey: {pub} }} ]\n}}\n")
        srv = brokers.nats_server(config=str(conf))
        url = f"nats://127.0.0.1:{srv.port}"
        return Mode(name, "nats", srv,
                    lambda bus: _nats(bus, url, nkeys_seed=str(files / "user.nk")),
                    lambda bus: _nats(bus, url, nkeys_seed=str(files / "other.nk")),
                    "(?i)authorization violation", [seed, other])
    if name == "nats-creds":
        (files / "good").mkdir()
        (files / "bad").mkdir()
        good = brokers.operator(files / "good")
        # A user of another operator's account: a valid file the server does not trust.
        bad = brokers.operator(files / "bad")
        srv = brokers.nats_server(config=good.config)
        url = f"nats://127.0.0.1:{srv.port}"
        return Mode(name, "nats", srv, lambda bus: _nats(bus, url, creds=good.creds),
                    lambda bus: _nats(bus, url, creds=bad.creds),
                    "(?i)authorization violation", [good.seed, bad.seed])
    if name == "redis-password":
        srv = brokers.redis_server(password=SECRET)
        return Mode(name, "redis", srv,
                    lambda bus: _redis(bus, f"redis://:{SECRET}@127.0.0.1:{srv.port}/0"),
                    lambda bus: _redis(bus, f"redis://127.0.0.1:{srv.port}/0",
                                       password="wrong-" + SECRET),
                    "(?i)WRONGPASS|invalid password|invalid username-password", [SECRET])
    if name == "redis-acl":
        # Its keys: sec.* only (the tests' streams and the dead letters, sec.dead).
        srv = brokers.redis_server(args=["--user", "default", "off", "--user", "bridge", "on",
                                         f">{SECRET}", "~sec.*", "&*", "+@all"])
        url = f"redis://127.0.0.1:{srv.port}/0"
        return Mode(name, "redis", srv,
                    lambda bus: _redis(bus, url, username="bridge", password=SECRET),
                    lambda bus: _redis(bus, f"redis://bridge:wrong-{SECRET}@127.0.0.1:"
                                            f"{srv.port}/0"),
                    "(?i)WRONGPASS|invalid username-password", [SECRET])
    assert name == "redis-tls"
    c = brokers.certs(files)
    srv = brokers.redis_server(tls=(c.cert, c.key, c.ca), tls_clients=True, password=SECRET)
    url = f"rediss://127.0.0.1:{srv.port}/0"
    mine = dict(ssl_certfile=c.client_cert, ssl_keyfile=c.client_key)
    return Mode(name, "redis", srv,
                lambda bus: _redis(bus, url, password=SECRET, ssl_ca_certs=c.ca, **mine),
                lambda bus: _redis(bus, url, password=SECRET, **mine),  # the system's CAs
                "(?i)certificate verify failed", [SECRET],
                anonymous=lambda bus: _redis(bus, url, password=SECRET, ssl_ca_certs=c.ca))


def _context(c: brokers.Certs, trust: bool, mine: bool = True) -> ssl.SSLContext:
    """A client's TLS context: trusting the test CA (or only the system's), with the
    client certificate (or none)."""
    ctx = ssl.create_default_context(cafile=c.ca if trust else None)
    if mine:
        ctx.load_cert_chain(c.client_cert, c.client_key)
    return ctx


@pytest.fixture(scope="module", params=MODES)
def mode(request, files):
    m = _start(request.param, files)
    yield m
    m.server.stop()


@pytest.fixture
def everything_logged(caplog):
    """Every record of every logger, DEBUG and up (nats-py's, redis-py's, asyncio's)."""
    caplog.set_level(logging.DEBUG)
    return caplog


def _shown(bridge: Any, exc: Optional[BaseException] = None) -> str:
    """What a bridge (and an exception with its causes) would print."""
    out = [repr(bridge), str(bridge), repr(bridge.stats()), repr(vars(bridge).keys())]
    while exc is not None:
        out += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


def _assert_hidden(mode: Mode, text: str) -> None:
    for s in mode.hidden:
        assert s not in text, f"{mode.name}: a secret shows"


def test_round_trip_and_reconnect(mode, everything_logged):
    bus = ringbus.Bus()
    T, IN = bus.event_type("sec"), bus.event_type("sec.in")
    got: List[Any] = []
    bus.subscribe(IN, got.append)
    bridge = mode.make(bus)
    bridge.export(T, subject="sec.out.{k}")
    mode.import_(bridge, IN, "sec.out.*", "reader")
    _assert_hidden(mode, _shown(bridge))
    if mode.engine == "nats":
        assert bridge.publish_link      # the lean links, with every security option
    with bus.running(), bridge.running():
        bus.publish_many(T, [{"k": "a", "i": i} for i in range(50)])
        wait_for(lambda: len(got) == 50, what=lambda: f"50 back, got {len(got)}")
        # The server restarted on the same port and store: the bridge gets back in with
        # the same credentials and goes on.
        mode.server.stop(keep_store=True)
        wait_for(lambda: not bridge.stats()["connected"] or bridge.stats()["stalled"]
                 or bridge.stats()["reconnects"], timeout=5, what="the loss noticed")
        mode.server.start()
        bus.publish_many(T, [{"k": "b", "i": i} for i in range(50, 100)])
        wait_for(lambda: len({p["i"] for p in got}) == 100, timeout=20,
                 what=lambda: f"100 back after the restart, got {len(got)}: "
                              f"{bridge.stats()}")
        _assert_hidden(mode, _shown(bridge))
    assert sorted({p["i"] for p in got}) == list(range(100))
    assert bridge.stats()["reconnects"] >= 1
    _assert_hidden(mode, _shown(bridge) + everything_logged.text)


def test_wrong_credentials_fail_running_at_once(mode, everything_logged):
    bus = ringbus.Bus()
    bridge = mode.wrong(bus)
    bridge.export(bus.event_type("sec"), subject="sec.out.x")
    t0 = time.monotonic()
    with pytest.raises(mode.error) as info:
        with bridge.running(timeout=10):
            pass
    took = time.monotonic() - t0
    # Not the end of the 10 s connect timeout: the server's refusal itself is the answer.
    assert took < 8, f"{mode.name}: failed only after {took:.1f} s"
    assert info.match(mode.says) and info.match("refused")
    _assert_hidden(mode, _shown(bridge, info.value) + everything_logged.text)
    assert not bridge.stats()["connected"]


def test_no_client_certificate_fails_running_at_once(mode, everything_logged):
    if mode.anonymous is None:
        pytest.skip("mutual TLS: the TLS modes")
    bus = ringbus.Bus()
    bridge = mode.anonymous(bus)
    bridge.export(bus.event_type("sec"), subject="sec.out.x")
    t0 = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        with bridge.running(timeout=10):
            pass
    assert time.monotonic() - t0 < 8
    assert info.match("(?i)refused the connection: TLS: .*certificate")
    _assert_hidden(mode, _shown(bridge, info.value) + everything_logged.text)


def test_a_stream_key_the_acl_denies_fails_running_at_once(mode, everything_logged):
    if mode.name != "redis-acl":
        pytest.skip("an ACL user's key patterns: Redis")
    for export, imported in (("denied.out", None), ("sec.ok", "denied.in")):
        bus = ringbus.Bus()
        bridge = mode.make(bus)
        bridge.export(bus.event_type("t"), subject=export)
        if imported:
            mode.import_(bridge, bus.event_type("in"), imported, "g")
        with pytest.raises(PermissionError, match=f"refused the stream key "
                                                  f"'{imported or export}'"):
            with bridge.running(timeout=10):
                pass
    _assert_hidden(mode, everything_logged.text)


def test_an_acl_change_while_running_is_said_and_outlived(mode, everything_logged):
    """The user's keys taken away while the bridge runs (ACL SETUSER): the importer says so
    and goes on; given back, it delivers what came meanwhile."""
    if mode.name != "redis-acl":
        pytest.skip("an ACL user's key patterns: Redis")
    import redis
    admin = redis.Redis(port=mode.server.port, username="bridge", password=SECRET)
    bus = ringbus.Bus()
    IN = bus.event_type("in")
    got: List[Any] = []
    bus.subscribe(IN, got.append)
    bridge = mode.make(bus)
    mode.import_(bridge, IN, "sec.acl", "g")
    try:
        with bus.running(), bridge.running():
            admin.execute_command("ACL", "SETUSER", "bridge", "resetkeys", "~none.*")
            wait_for(lambda: "NoPermissionError" in everything_logged.text, timeout=10)
            admin.execute_command("ACL", "SETUSER", "bridge", "resetkeys", "~sec.*")
            admin.xadd("sec.acl", {"d": b"\x07", "c": b"msgpack"})
            wait_for(lambda: got == [7], timeout=10, what=lambda: f"got {got}")
    finally:
        admin.execute_command("ACL", "SETUSER", "bridge", "resetkeys", "~sec.*")
        admin.close()
    _assert_hidden(mode, everything_logged.text)


def test_a_pattern_s_denied_stream_is_tried_again_once_allowed(mode, everything_logged):
    """A stream a pattern import finds but the ACL denies is skipped, said once, and taken
    up once the ACL allows it (the key was left out for good before)."""
    if mode.name != "redis-acl":
        pytest.skip("an ACL user's key patterns: Redis")
    import redis
    admin = redis.Redis(port=mode.server.port, username="bridge", password=SECRET)
    bus = ringbus.Bus()
    IN = bus.event_type("in.p")
    got: List[Any] = []
    bus.subscribe(IN, got.append)
    admin.xadd("sec.p.b", {"d": b"\x05", "c": b"msgpack"})
    admin.execute_command("ACL", "SETUSER", "bridge", "resetkeys", "~sec.p.a")
    bridge = mode.make(bus)
    mode.import_(bridge, IN, "sec.p.*", "gp")
    try:
        with bus.running(), bridge.running():
            wait_for(lambda: "skips the stream sec.p.b" in everything_logged.text, timeout=10)
            admin.execute_command("ACL", "SETUSER", "bridge", "resetkeys", "~sec.*")
            wait_for(lambda: got == [5], timeout=10, what=lambda: f"got {got}")
    finally:
        admin.execute_command("ACL", "SETUSER", "bridge", "resetkeys", "~sec.*")
        admin.close()
    assert everything_logged.text.count("skips the stream sec.p.b") == 1


def test_nats_py_paths_too(mode, everything_logged):
    """publish_link=False: nats-py publishes and fetches, with the same options."""
    if mode.engine != "nats" or mode.name not in ("nats-tls", "nats-creds"):
        pytest.skip("one TLS and one credentials-file run cover nats-py's paths")
    bus = ringbus.Bus()
    T, IN = bus.event_type("sec2"), bus.event_type("sec2.in")
    got: List[Any] = []
    bus.subscribe(IN, got.append)
    bridge = mode.make(bus)
    bridge.publish_link = False
    bridge.export(T, subject="sec.py.x")
    mode.import_(bridge, IN, "sec.py.x", "py")
    with bus.running(), bridge.running():
        bus.publish_many(T, list(range(20)))
        wait_for(lambda: len(got) == 20)
    assert got == list(range(20))
    _assert_hidden(mode, _shown(bridge) + everything_logged.text)
