"""Throwaway local servers for the bridges' tests and benchmarks: Debian's ``nats-server``
(JetStream) and ``redis-server``, each on 127.0.0.1 on a free port with a temporary store
directory, in its own session, stopped by its PID. ``kill()`` (SIGKILL), ``pause()`` /
``resume()`` (SIGSTOP / SIGCONT) and ``start()`` again on the same port and store make the
faults the tests need. Not for production use."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

__all__ = ["ServerMissing", "Server", "free_port", "nats_server", "redis_server", "NATS",
           "REDIS"]


def _which(name: str, fallback: str) -> Optional[str]:
    return shutil.which(name) or (fallback if os.path.exists(fallback) else None)


NATS = _which("nats-server", "/usr/sbin/nats-server")
REDIS = _which("redis-server", "/usr/bin/redis-server")


class ServerMissing(RuntimeError):
    """The server's program is not installed (the message says how to install it)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One server process on ``port`` with its store in ``store`` (removed by stop)."""

    def __init__(self, argv: List[str], port: int, store: Path, what: str) -> None:
        self.argv, self.port, self.store, self.what = argv, port, store, what
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log = store / "server.log"

    def start(self, timeout: float = 10.0) -> "Server":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited with {self.proc.returncode} at start "
                                   f"(its log: {self.log})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop(keep_store=True)
                    raise RuntimeError(f"{self.what} did not listen on {self.port} within "
                                       f"{timeout} s") from None
                time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL, as a crash: the store stays for start()."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def pause(self, timeout: float = 5.0) -> None:
        """SIGSTOP, and wait until the kernel shows every thread stopped (a signal is
        delivered, not obeyed, when kill() returns: a busy server may still answer)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        task = Path(f"/proc/{self.proc.pid}/task")
        while time.monotonic() < deadline:
            try:
                states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0]
                          for t in task.iterdir()]
            except OSError:
                return                      # no /proc: the signal has to do
            if all(st in ("T", "t") for st in states):
                return
            time.sleep(0.001)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, keep_store: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not keep_store:
            shutil.rmtree(self.store, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<{self.what} on 127.0.0.1:{self.port}>"


def nats_server(*, user: Optional[str] = None, password: Optional[str] = None,
                token: Optional[str] = None, tls: Optional[Tuple[str, str]] = None,
                tls_verify: Optional[str] = None, config: Optional[str] = None,
                args: Sequence[str] = ()) -> Server:
    """A started ``nats-server -js`` (JetStream, file store in a temporary directory).
    Security as the server's own flags: ``user``/``password``, ``token``, ``tls`` (the
    server's certificate and key files: TLS required), ``tls_verify`` (a CA file: client
    certificates signed by it required), ``config`` (a configuration file,
    e.g. nkey users or an operator with its accounts), ``args`` (more flags)."""
    if NATS is None:
        raise ServerMissing("nats-server is not installed (apt-get install nats-server)")
    store = Path(tempfile.mkdtemp(prefix="ringbus-nats-"))
    port = free_port()
    argv = [NATS, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    if config is not None:
        argv += ["-c", config]
    if user is not None:
        argv += ["--user", user, "--pass", password or ""]
    if token is not None:
        argv += ["--auth", token]
    if tls is not None:
        argv += ["--tls", "--tlscert", tls[0], "--tlskey", tls[1]]
    if tls_verify is not None:
        argv += ["--tlsverify", "--tlscacert", tls_verify]
    return Server(argv + list(args), port, store, "nats-server").start()


def redis_server(*, password: Optional[str] = None, fsync: str = "always",
                 tls: Optional[Tuple[str, str, str]] = None, tls_clients: bool = False,
                 args: Sequence[str] = ()) -> Server:
    """A started ``redis-server`` with an append-only file in a temporary directory,
    ``appendfsync`` = ``fsync`` ("always": what it acknowledged survives a kill -9, as the
    fault tests need; "everysec": Redis's usual setting, the benchmarks'). Security:
    ``password`` (requirepass), ``tls`` (certificate, key and CA files: the port speaks TLS
    only), ``tls_clients`` (client certificates of that CA required), ``args`` (more
    options, e.g. ``--user`` ACL rules)."""
    if REDIS is None:
        raise ServerMissing("redis-server is not installed (apt-get install redis-server)")
    store = Path(tempfile.mkdtemp(prefix="ringbus-redis-"))
    port = free_port()
    listen = ["--port", str(port)] if tls is None else [
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", tls[0], "--tls-key-file",
        tls[1], "--tls-ca-cert-file", tls[2], "--tls-auth-clients",
        "yes" if tls_clients else "no"]
    argv = [REDIS, *listen, "--bind", "127.0.0.1", "--dir", str(store),
            "--save", "", "--appendonly", "yes", "--appendfsync", fsync,
            "--daemonize", "no", "--protected-mode", "no"]
    if password is not None:
        argv += ["--requirepass", password]
    return Server(argv + list(args), port, store, "redis-server").start()
