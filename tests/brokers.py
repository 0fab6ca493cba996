"""Real servers for the bridge tests: Debian's ``nats-server`` (JetStream) and
``redis-server``, each started on 127.0.0.1 on a free port with a temporary store directory,
in its own session, and stopped by its PID (``kill -9`` / SIGSTOP / restart on the same store
for the fault tests). Tests that need one skip, saying why, when it is not installed
(``apt-get install nats-server redis-server``; ``.ci/run`` installs both)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import pytest

NATS = shutil.which("nats-server") or ("/usr/sbin/nats-server"
                                        if os.path.exists("/usr/sbin/nats-server") else None)
REDIS = shutil.which("redis-server") or ("/usr/bin/redis-server"
                                          if os.path.exists("/usr/bin/redis-server") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


class Server:
    """One server process; ``kill()`` (SIGKILL), ``pause()``/``resume()`` (SIGSTOP/SIGCONT),
    ``start()`` again on the same port and store, ``stop()`` (always from the fixture)."""

    def __init__(self, argv: List[str], port: int, store: Path, what: str) -> None:
        self.argv, self.port, self.store, self.what = argv, port, store, what
        self.proc: Optional[subprocess.Popen] = None
        self.log = store / "server.log"

    def start(self) -> "Server":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        _wait_port(self.port, self.proc, self.what)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def nats_server(store: Path, *, user: Optional[str] = None,
                password: Optional[str] = None) -> Server:
    if NATS is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    port = free_port()
    argv = [NATS, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    if user is not None:
        argv += ["--user", user, "--pass", password or ""]
    return Server(argv, port, store, "nats-server").start()


def redis_server(store: Path, *, password: Optional[str] = None) -> Server:
    if REDIS is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    argv = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(store),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--daemonize", "no", "--protected-mode", "no"]
    if password is not None:
        argv += ["--requirepass", password]
    return Server(argv, port, store, "redis-server").start()


def temp_store(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
