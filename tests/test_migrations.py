"""The migrations build exactly the schema the models describe."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_upgrade_on_an_empty_database_matches_the_models(tmp_path, monkeypatch):
    db_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {"DATABASE_URL": db_url, "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "x",
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app import create_app
    from extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url})
    with app.app_context(), db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert diff == []


def test_repeated_attempt_numbers_are_renumbered_before_the_unique_index(tmp_path):
    """A worker that outlived its lease could write an attempt number twice (before claim tokens):
    the upgrade keeps every attempt, numbered 1, 2, … in the order they were made."""
    import sqlite3

    db_path = tmp_path / "old.db"
    env = {"DATABASE_URL": f"sqlite:///{db_path}", "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "x",
           "PATH": "/usr/bin:/bin"}

    def upgrade(*revision):
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade", *revision], cwd=ROOT,
                                env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    upgrade("faf9d785aa1d")
    with sqlite3.connect(db_path) as connection:
        connection.execute("INSERT INTO events (id, hook, data, source, is_test, created_at) "
                           "VALUES ('evt_1', 'order_pay_hook', '{}', 'api', 0, '2026-11-01 00:00:00')")
        connection.execute("INSERT INTO deliveries (id, event_id, channel_kind, target, status, attempt_count, "
                           "max_attempts, created_at, updated_at) VALUES ('dlv_1', 'evt_1', 'webhook', '', 'retrying', "
                           "2, 8, '2026-11-01 00:00:00', '2026-11-01 00:00:00')")
        for number, started in [(1, "00:00:01"), (2, "00:00:30"), (2, "00:00:20")]:
            connection.execute("INSERT INTO attempts (delivery_id, number, started_at, duration_ms, request_method, "
                               "request_url, request_headers, request_body, outcome) VALUES ('dlv_1', ?, ?, 0, 'POST', "
                               "'', '{}', '', 'transient')", (number, f"2026-11-01 {started}"))
    upgrade()
    with sqlite3.connect(db_path) as connection:
        rows = connection.execute("SELECT number, started_at FROM attempts ORDER BY number").fetchall()
        count = connection.execute("SELECT attempt_count FROM deliveries").fetchone()[0]
    assert [(n, s[-8:]) for n, s in rows] == [(1, "00:00:01"), (2, "00:00:20"), (3, "00:00:30")]
    assert count == 3


def test_events_learn_their_order_number_from_their_data(tmp_path):
    """The upgrade fills `events.order_no` as `dispatch.order_number` would, and leaves it empty for
    events without one, or whose stored data it cannot read."""
    import sqlite3

    db_path = tmp_path / "old.db"
    env = {"DATABASE_URL": f"sqlite:///{db_path}", "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "x",
           "PATH": "/usr/bin:/bin"}

    def upgrade(*revision):
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade", *revision], cwd=ROOT,
                                env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    upgrade("b7c1e2d3a4f5")
    data = {"paid": '{"order": {"order_no": " AP2026 ", "amount": "1.00"}}', "digits": '{"order": {"order_no": 42}}',
            "long": '{"order": {"order_no": "' + "x" * 150 + '"}}', "alarm": '{"product": {"path": "vpn"}}',
            "list": '{"order": {"order_no": ["A"]}}', "chinese": '{"order": {"order_no": "\\u8ba2\\u53551"}}',
            "surrogate": '{"order": {"order_no": "A\\ud800"}}', "broken": '{"order": {"order_no": "A1"',
            "empty": '{"order": {"order_no": "  "}}', "nul": '{"order": {"order_no": "A\\u0000"}}',
            "scalar": '"not an object"'}
    with sqlite3.connect(db_path) as connection:
        for event_id, payload in data.items():
            connection.execute("INSERT INTO events (id, hook, data, source, is_test, created_at) "
                               "VALUES (?, 'order_pay_hook', ?, 'api', 0, '2026-11-01 00:00:00')", (event_id, payload))
    upgrade()
    with sqlite3.connect(db_path) as connection:
        found = dict(connection.execute("SELECT id, order_no FROM events"))
    assert found == {"paid": "AP2026", "digits": "42", "long": "x" * 100, "alarm": None, "list": None,
                     "chinese": "订单1", "surrogate": None, "broken": None, "empty": None, "nul": None, "scalar": None}
