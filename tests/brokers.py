"""Real servers for the bridge tests (``ringbus.bridge.testing``): a test that needs one
skips, saying why, when it is not installed (``apt-get install nats-server redis-server``;
``.ci/run`` installs both). Also what the security tests need, made offline in a temporary
directory: a throwaway CA and server certificate (the ``openssl`` CLI), nkeys and a NATS
operator with an account and a user's credentials file (``nkeys``, which nats-py uses to
sign)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, NamedTuple, Tuple

import pytest

from ringbus.bridge import testing
from ringbus.bridge.testing import Server

__all__ = ["Server", "nats_server", "redis_server", "Certs", "certs", "nkey", "Operator",
           "operator"]


def nats_server(**kw: Any) -> Server:
    try:
        return testing.nats_server(**kw)
    except testing.ServerMissing as exc:
        pytest.skip(str(exc))


def redis_server(**kw: Any) -> Server:
    try:
        return testing.redis_server(**kw)
    except testing.ServerMissing as exc:
        pytest.skip(str(exc))


class Certs(NamedTuple):
    ca: str             # the CA's certificate (what clients trust)
    cert: str           # the server's certificate for 127.0.0.1 / localhost, signed by the CA
    key: str            # its private key
    client_cert: str    # a client's certificate (mutual TLS), signed by the CA
    client_key: str


def certs(directory: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, valid for a day,
    in ``directory``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is not installed (apt-get install openssl)")
    d = Path(directory)
    ca, ca_key = d / "ca.pem", d / "ca.key"
    cert, key, csr, ext = d / "server.pem", d / "server.key", d / "server.csr", d / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "extendedKeyUsage=serverAuth\n")
    client_cert, client_key = d / "client.pem", d / "client.key"
    client_csr, client_ext = d / "client.csr", d / "client.ext"
    client_ext.write_text("extendedKeyUsage=clientAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in (
            [openssl, "req", "-x509", *ec, "-days", "1", "-subj", "/CN=ringbus test CA",
             "-keyout", ca_key, "-out", ca],
            [openssl, "req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr],
            [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", cert],
            [openssl, "req", *ec, "-subj", "/CN=ringbus bridge", "-keyout", client_key,
             "-out", client_csr],
            [openssl, "x509", "-req", "-in", client_csr, "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-days", "1", "-extfile", client_ext, "-out", client_cert]):
        subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=30)
    return Certs(str(ca), str(cert), str(key), str(client_cert), str(client_key))


def nkey(role: str = "user") -> Tuple[str, str, Any]:
    """A new nkey of ``role`` (operator, account, user): (seed, public key, key pair)."""
    nkeys = pytest.importorskip("nkeys", reason="nkeys (pip install 'nats-py[nkeys]')")
    prefix = {"operator": nkeys.PREFIX_BYTE_OPERATOR, "account": nkeys.PREFIX_BYTE_ACCOUNT,
              "user": nkeys.PREFIX_BYTE_USER}[role]
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    kp = nkeys.from_seed(bytearray(seed))
    return seed.decode(), kp.public_key.decode(), kp


def _jwt(issuer: Any, subject: str, name: str, nats: Dict[str, Any]) -> str:
    """A NATS JWT (v2) of ``subject``'s claims, signed by the nkey ``issuer``: what ``nsc``
    would write, for the claims these tests need."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    claims = {"iat": int(time.time()), "iss": issuer.public_key.decode(), "name": name,
              "sub": subject, "nats": nats}
    claims["jti"] = base64.b32encode(hashlib.sha256(
        json.dumps(claims, sort_keys=True).encode()).digest()).rstrip(b"=").decode()
    head = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(issuer.sign(f'{head}.{body}'.encode()))}"


class Operator(NamedTuple):
    config: str     # the server's configuration file (operator, memory resolver, account)
    creds: str      # a user's credentials file (its JWT and nkey seed)
    seed: str       # the user's seed (the secret in the credentials file)


def operator(directory: Path) -> Operator:
    """Decentralized auth, offline: an operator, one account (JetStream allowed) in the
    server's memory resolver, one user of it and that user's credentials file."""
    _, op_pub, op = nkey("operator")
    _, acc_pub, acc = nkey("account")
    _, sys_pub, _ = nkey("account")         # JetStream needs a system account
    user_seed, user_pub, _ = nkey("user")
    unlimited = {k: -1 for k in ("subs", "data", "payload", "imports", "exports", "conn",
                                 "leaf", "mem_storage", "disk_storage", "streams",
                                 "consumer")}
    op_jwt = _jwt(op, op_pub, "ringbus-test", {"system_account": sys_pub, "type": "operator",
                                               "version": 2})
    acc_jwt = _jwt(op, acc_pub, "bridge", {
        "limits": dict(unlimited, wildcards=True), "default_permissions": {"pub": {}, "sub": {}},
        "type": "account", "version": 2})
    no_jetstream = dict(unlimited, wildcards=True, mem_storage=0, disk_storage=0, streams=0,
                        consumer=0)
    sys_jwt = _jwt(op, sys_pub, "SYS", {"limits": no_jetstream, "type": "account",
                                        "version": 2})
    user_jwt = _jwt(acc, user_pub, "bridge-user", {
        "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user",
        "version": 2})
    d = Path(directory)
    config, creds = d / "operator.conf", d / "user.creds"
    config.write_text(f"operator: {op_jwt}\nsystem_account: {sys_pub}\nresolver: MEMORY\n"
                      f"resolver_preload: {{\n  {acc_pub}: {acc_jwt}\n  {sys_pub}: {sys_jwt}\n}}\n")
    creds.write_text(
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user_seed}\n------END USER NKEY SEED------\n")
    return Operator(str(config), str(creds), user_seed)
