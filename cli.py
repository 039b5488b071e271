"""Flask CLI commands: `flask --app app <command>`. See the README for each one."""
from __future__ import annotations

import json
import logging
import signal
import sys
import time
import uuid
from pathlib import Path

import click
import redis
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from extensions import db


def register_cli(app):
    app.cli.add_command(create_admin)
    app.cli.add_command(tokens)
    app.cli.add_command(settings)
    app.cli.add_command(emit)
    app.cli.add_command(worker)
    app.cli.add_command(scheduler)
    app.cli.add_command(demo)


@click.command("create-admin")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def create_admin(username: str, password: str):
    """Create an admin account (or set a new password for an existing one)."""
    from models import User

    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    user = db.session.scalar(db.select(User).filter_by(username=username))
    created = user is None
    if created:
        user = User(username=username)
        db.session.add(user)
    user.set_password(password)
    db.session.commit()
    click.echo(f"Admin {username!r} {'created' if created else 'password updated'}.")


tokens = AppGroup("tokens", help="API tokens for the events API.")


@tokens.command("create")
@click.argument("name")
def tokens_create(name: str):
    """Create a token; it is printed once, on the last line."""
    from models import ApiToken

    token, plain = ApiToken.issue(name)
    db.session.add(token)
    db.session.commit()
    click.echo(f"Token {token.id} ({name}) created. It is shown only now:", err=True)
    click.echo(plain)


@tokens.command("list")
def tokens_list():
    from models import ApiToken

    for token in db.session.scalars(db.select(ApiToken).order_by(ApiToken.id)):
        state = "revoked" if token.revoked_at else "active"
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        click.echo(f"{token.id}\t{token.name}\t{token.hint}…\t{state}\tlast used {used}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int):
    from models import ApiToken
    from models.base import utcnow

    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"no token with id {token_id}")
    token.revoked_at = token.revoked_at or utcnow()
    db.session.commit()
    click.echo(f"Token {token_id} revoked.")


settings = AppGroup("settings", help="Export and import the channels and subscriptions as JSON.")


@settings.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--include-secrets", is_flag=True, help="Include secrets and passwords in the file.")
def settings_export(file: str, include_secrets: bool):
    """Write the settings to FILE ('-' for standard output)."""
    from notify import settings_io

    text = json.dumps(settings_io.export(include_secrets=include_secrets), indent=2, ensure_ascii=False) + "\n"
    if file == "-":
        click.echo(text, nl=False)
    else:
        Path(file).write_text(text, encoding="utf-8")
        click.echo(f"Settings written to {file}" + ("" if include_secrets else " (without secrets)."), err=True)


@settings.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--replace", is_flag=True, help="Delete channels that are not in the file.")
def settings_import(file: str, replace: bool):
    """Read settings from FILE: channels are matched by kind and target (robots by their credential),
    updated or added; the channels it replaces or deletes are listed."""
    from notify import settings_io

    raw = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    try:
        summary = settings_io.import_(raw, replace=replace)
    except settings_io.ImportError_ as exc:
        raise click.ClickException("the file was not imported, nothing changed:\n" + "\n".join(
            f"  - {problem}" for problem in exc.problems)) from None
    click.echo(f"Imported: {summary['created']} added, {summary['updated']} updated, "
               f"{summary['deleted']} deleted.")
    for title, key in (("Updated (their settings replaced by the file's):", "updated_channels"),
                       ("Deleted:", "deleted_channels"),
                       ("Left as they are (masked in a file from an older version, which does not say which robot "
                        "it means; export again, or with --include-secrets):", "skipped_channels")):
        if summary[key]:
            click.echo(title)
            for shown in summary[key]:
                click.echo(f"  - {shown['kind']} {shown['target']}"
                           + (f" ({shown['description']})" if shown["description"] else ""))


@click.command("emit")
@click.argument("hook")
@click.option("--data", "data_json", required=True, help="The event's data as a JSON object.")
@click.option("--test", "is_test", is_flag=True, help='A test event ("test": true), as the API\'s "test": true.')
@with_appcontext
def emit(hook: str, data_json: str, is_test: bool):
    """Emit an event from the shell, as the events API would."""
    from notify import dispatch

    try:
        data = json.loads(data_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
    try:
        event = dispatch.emit(hook, data, source="cli", is_test=is_test)
    except dispatch.InvalidEvent as exc:
        raise click.BadParameter(exc.message, param_hint=exc.field) from None
    click.echo(f"{event.id}: {len(event.delivery_ids)} deliveries queued")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Drain the queue and exit.")
@click.option("--name", default=None, help="Worker name (default: host and pid).")
@click.option("--metrics-port", type=int, default=None,
              help="Serve this worker's Prometheus metrics on this port (for workers on other machines).")
@with_appcontext
def worker(burst: bool, name: str | None, metrics_port: int | None):
    """Run a delivery worker (non-forking RQ worker with the scheduler for delayed retries)."""
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    from notify.queue import get_queue, get_redis

    # `kill -USR1 <pid>` prints every thread's stack to stderr: for a worker that seems stuck.
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)

    from config import lease_warning
    from notify import jobs

    warning = lease_warning(current_app.config)
    if warning:
        click.echo(f"worker: {warning}", err=True)

    class DeliveryWorker(SimpleWorker):
        def request_stop(self, signum, frame):
            jobs.STOP.set()  # the drain in progress winds down instead of running to its budget
            super().request_stop(signum, frame)

    logging.getLogger("rq.worker").setLevel(logging.INFO)
    while True:
        worker_name = name or uuid.uuid4().hex
        shared = get_queue()
        # A queue of its own, listened to first: a drain at its time limit hands its requests in
        # flight on to the next drain in this process through it (notify/jobs.py).
        own = Queue(f"{shared.name}.worker.{worker_name}", connection=get_redis(), serializer=JSONSerializer)
        jobs.OWN_QUEUE = own.name
        w = DeliveryWorker([own, shared], connection=get_redis(), serializer=JSONSerializer, name=worker_name)
        try:
            w.work(burst=burst, with_scheduler=True, logging_level="INFO")
        except redis.RedisError as exc:
            click.echo(f"worker: Redis failed ({exc})", err=True)
        try:
            own.delete(delete_jobs=True)  # a drain left there is not needed: any drain here adopts
        except redis.RedisError:
            pass
        if burst or jobs.STOP.is_set():
            jobs.OWN_QUEUE = None
            jobs.collect_carried()  # requests handed on to a drain that will not run now
            return
        # RQ quits when Redis goes away in the middle of a job (a restart, a failover). Nothing is
        # lost (the sweeper finds what that job held); the worker starts again once Redis answers.
        click.echo("worker: stopped on an error, not on request; starting again in 2 s", err=True)
        time.sleep(2)


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Enqueue every periodic job once and exit.")
@with_appcontext
def scheduler(once: bool):
    """Enqueue the periodic jobs (the sweeper, …) on time. Several may run: each slot is taken once."""
    from notify import periodic

    stop = {"now": False}

    def _stop(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"scheduler: {', '.join(t.name for t in periodic.tasks(current_app.config))}", err=True)
    while True:
        periodic.run_due(current_app.config)
        if once or stop["now"]:
            break
        for _ in range(10):  # wake often enough to stop promptly on Ctrl-C
            if stop["now"]:
                break
            time.sleep(0.1)
        if stop["now"]:
            break


demo = AppGroup("demo", help="A demo shop that makes every hook fire.")


@demo.command("seed")
def demo_seed():
    """Create a few products and an order in each state (their events are sent)."""
    from shop import demo as demo_shop

    result = demo_shop.seed()
    click.echo(f"{result['products']} products and {result['orders']} orders created")


@demo.command("traffic")
@click.option("--rate", default=2.0, show_default=True, help="API calls a second.")
@click.option("--duration", default=60.0, show_default=True, help="Seconds to play.")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="Where the admin listens.")
@click.option("--token", envvar="MN_API_TOKEN", help="An API token; without one, a token named demo-traffic is made.")
def demo_traffic(rate: float, duration: float, url: str, token: str | None):
    """Play customers against the shop API over HTTP: orders, payments, cancellations, refunds,
    keys running out and restocked."""
    from models import ApiToken
    from shop import demo as demo_shop

    if not token:
        row, token = ApiToken.issue("demo-traffic")
        db.session.add(row)
        db.session.commit()
        click.echo(f"made API token {row.hint}… (demo-traffic); revoke it under Settings › API tokens", err=True)
    counts = demo_shop.Traffic(url.rstrip("/"), token).run(rate, duration)
    for what, n in sorted(counts.items()):
        click.echo(f"{n:6d}  {what}")
