"""Fixtures: a fresh database and a private queue per test, a real Redis, real workers, and the
receiver demo running as a real server on loopback.

Redis: TEST_REDIS_URL, else REDIS_URL, else 127.0.0.1:6379 when it answers, else an embedded one.
Database: TEST_DATABASE_URL (CI runs the suite once more with PostgreSQL), else SQLite per test.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if not url:
        try:
            if redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping():
                url = "redis://127.0.0.1:6379/0"
        except redis.RedisError:
            pass
    if url:
        yield url
        return
    from notify import embedded_redis

    directory = tmp_path_factory.mktemp("redis")
    url = embedded_redis.ensure_running(directory)
    yield url
    embedded_redis.stop(directory)


@pytest.fixture
def queue_name():
    return f"mn-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def database_url(tmp_path):
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def app_env(tmp_path, redis_url, database_url, queue_name, monkeypatch):
    """The environment a process of this test's app runs with (the web app, a worker subprocess, …)."""
    env = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RQ_QUEUE": queue_name,
        # Short retries, so a test sees a retry without waiting minutes.
        "DELIVERY_RETRY_SCHEDULE": "0.3,0.3,0.3",
        "DELIVERY_CONNECT_TIMEOUT": "2",
        "DELIVERY_READ_TIMEOUT": "2",
        "LOG_LEVEL": "WARNING",
        # The receivers and fake services of the tests listen on loopback.
        "ALLOW_PRIVATE_TARGETS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def app(app_env, redis_url, queue_name):
    from app import create_app
    from extensions import db

    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False})
    with app.app_context():
        db.drop_all()
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    connection = redis.Redis.from_url(redis_url)
    keys = list(connection.scan_iter(f"rq:*{queue_name}*")) + list(connection.scan_iter(f"merchant-notify:{queue_name}:*"))
    if keys:
        connection.delete(*keys)


def lose_redis_work(app) -> None:
    """Forget every piece of work Redis carries for this app, as a Redis restarted without its data."""
    from notify.queue import get_queue, get_redis

    with app.app_context():
        queue = get_queue()
        queue.empty()
        connection = get_redis()
        keys = list(connection.scan_iter(f"merchant-notify:{app.config['RQ_QUEUE']}:*"))
        if keys:
            connection.delete(*keys)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def admin(app):
    from extensions import db
    from models import User

    with app.app_context():
        user = User(username="merchant")
        user.set_password("correct horse")
        db.session.add(user)
        db.session.commit()
    return {"username": "merchant", "password": "correct horse"}


@pytest.fixture
def login(client, admin):
    response = client.post("/login", data=admin)
    assert response.status_code == 302
    return client


@pytest.fixture
def api_token(app):
    from extensions import db
    from models import ApiToken

    with app.app_context():
        token, plain = ApiToken.issue("test shop")
        db.session.add(token)
        db.session.commit()
    return plain


def run_worker(app, until=None, timeout: float = 10.0) -> None:
    """Run a real RQ worker (the product's own class and queue) in burst mode until the queue is
    drained, and, with `until`, again until `until()` is true: retries are delayed jobs that the
    worker's scheduler moves onto the queue when due."""
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from notify.queue import get_queue

    deadline = time.monotonic() + timeout
    with app.app_context():
        queue = get_queue()
        while True:
            SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(
                burst=True, with_scheduler=True, logging_level="WARNING")
            if until is None or until():
                return
            if time.monotonic() > deadline:
                raise AssertionError("the worker did not reach the expected state in time")
            time.sleep(0.1)


@pytest.fixture
def worker(app):
    return lambda **kwargs: run_worker(app, **kwargs)


class ReceiverDemo:
    """The receiver demo as a real server process on a free loopback port."""

    def __init__(self, tmp_path: Path, secret: str, mode: str = "signature"):
        self.port = free_port()
        self.secret = secret
        self.mode = mode
        self.log = tmp_path / f"received-{self.port}.jsonl"
        self.url = f"http://127.0.0.1:{self.port}/webhook"
        self.process: subprocess.Popen | None = None

    def start(self) -> "ReceiverDemo":
        env = dict(os.environ, RECEIVER_SECRET=self.secret, RECEIVER_MODE=self.mode, RECEIVER_PORT=str(self.port),
                   RECEIVER_LOG=str(self.log), RECEIVER_HOST="127.0.0.1")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "receiver_demo" / "receiver.py")], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=0.5).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the receiver demo did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)

    def events(self) -> list[dict]:
        return requests.get(f"http://127.0.0.1:{self.port}/events.json", timeout=5).json()["events"]


@pytest.fixture
def receiver_demo(tmp_path):
    demos = []

    def start(secret: str = "whsec_test_secret_0123456789", mode: str = "signature", started: bool = True):
        demo = ReceiverDemo(tmp_path, secret, mode)
        demos.append(demo)
        return demo.start() if started else demo

    yield start
    for demo in demos:
        demo.stop()


@pytest.fixture
def make_channel(app):
    """Create a channel of any kind directly through the domain (the admin forms have their own tests)."""
    from extensions import db
    from models import Channel
    from notify import channels as channel_service
    from notify import hooks

    def make(kind: str, config: dict, secret: str | None = None, hooks_=None, enabled: bool = True) -> int:
        with app.app_context():
            channel = channel_service.apply(Channel(kind=kind), config=config, secret=secret,
                                            hooks_=list(hooks_ or hooks.HOOK_NAMES), enabled=enabled)
            db.session.add(channel)
            db.session.commit()
            return channel.id

    return make


@pytest.fixture
def make_webhook(make_channel):
    def make(url: str, secret: str = "whsec_test_secret_0123456789", auth_mode: str = "signature",
             hooks_=None, enabled: bool = True) -> int:
        return make_channel("webhook", {"url": url, "auth_mode": auth_mode}, secret, hooks_, enabled)

    return make


@pytest.fixture
def dingtalk():
    """The fake DingTalk robot service (tests/fakes.py) on loopback."""
    from tests.fakes import FakeDingTalk

    with FakeDingTalk() as fake:
        yield fake


@pytest.fixture
def wecom():
    from tests.fakes import FakeWeCom

    with FakeWeCom() as fake:
        yield fake


@pytest.fixture
def feishu():
    """The fake Feishu / Lark bot service (tests/fakes.py) on loopback."""
    from tests.fakes import FakeFeishu

    with FakeFeishu() as fake:
        yield fake


class SmtpServer:
    """A real SMTP server on loopback (aiosmtpd). Keeps every message it accepts; refuses with 550
    any recipient whose address starts with `refuse`."""

    def __init__(self, **controller_options):
        from aiosmtpd.controller import Controller

        self.messages = []
        server = self

        class Handler:
            async def handle_RCPT(self, _server, _session, envelope, address, _options):
                if address.startswith("refuse"):
                    return "550 5.1.1 No such user here"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, _server, _session, envelope):
                server.messages.append(envelope)
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **controller_options)
        self.controller.start()

    def parsed(self):
        """The accepted messages as `email.message.EmailMessage` objects, with their envelopes."""
        from email import message_from_bytes, policy

        return [(message_from_bytes(e.original_content, policy=policy.default), e) for e in self.messages]

    def stop(self):
        self.controller.stop()


@pytest.fixture
def smtp_server(app):
    """The SMTP server, with the app's MAIL_* settings pointing at it."""
    from extensions import mail

    server = SmtpServer()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port, MAIL_DEFAULT_SENDER="shop@example.com")
    mail.init_app(app)  # Flask-Mail reads its settings once, here
    yield server
    server.stop()


class LocalReceiver:
    """A scriptable HTTP receiver on loopback, for outcomes the receiver demo does not produce.

    `answer(path, headers)` returns `(status, headers, body, delay_seconds)`; every request's path
    and headers are recorded in `requests` on arrival, before the delay, and its body and headers
    in `received`.
    """

    def __init__(self, answer):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        requests_seen = self.requests = []
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                requests_seen.append((self.path, dict(self.headers)))
                received.append((body, dict(self.headers)))
                status, headers, body, delay = answer(self.path, self.headers)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout, a killed worker): that is the point

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SwitchableReceiver(LocalReceiver):
    """A receiver at `path` answering every POST with `self.status`, which a test may change."""

    def __init__(self, status: int = 200, path: str = "/hooks"):
        self.status = status
        super().__init__(lambda _path, _headers: (self.status, {}, b"", 0))
        self.url += path


@pytest.fixture
def local_receiver():
    receivers = []

    def start(answer) -> LocalReceiver:
        receivers.append(LocalReceiver(answer))
        return receivers[-1]

    yield start
    for receiver in receivers:
        receiver.close()
