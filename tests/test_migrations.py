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
