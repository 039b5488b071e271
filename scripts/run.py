"""`make run`: the whole product on one box, in one terminal; Ctrl-C stops it all.

Starts (when REDIS_URL is unset) the embedded Redis, applies the migrations, then runs the admin
(gunicorn), a delivery worker, the scheduler and the receiver demo, each line of their output
prefixed with its name. `make dev` (`--dev`) runs the same, with the admin served by
`flask run --debug` instead, which reloads on code changes.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> int:
    from dotenv import load_dotenv

    dev = "--dev" in argv
    load_dotenv(ROOT / ".env")
    instance = Path(os.environ.get("INSTANCE_PATH") or ROOT / "instance")
    instance.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, INSTANCE_PATH=str(instance), PYTHONUNBUFFERED="1")
    # The receiver demo listens on loopback: let deliveries go there (notify/guard.py).
    env.setdefault("ALLOW_PRIVATE_TARGETS", "1")
    host = env.get("MN_HOST", "127.0.0.1")
    port = env.get("MN_PORT", "5000")
    demo_port = env.get("RECEIVER_PORT", "5001")
    # Digest messages link to the admin: by default, where this box serves it (set PUBLIC_URL
    # when the merchant reaches it by another name, e.g. behind a proxy or on 0.0.0.0).
    env.setdefault("PUBLIC_URL", f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}")

    # Every process of this box writes its metrics here; the admin's /metrics adds them up.
    metrics_dir = instance / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    embedded_dir = None
    if not env.get("REDIS_URL"):
        from notify import embedded_redis

        embedded_dir = instance / "redis"
        env["REDIS_URL"] = embedded_redis.ensure_running(embedded_dir)
        print(f"Embedded Redis: {env['REDIS_URL']}")

    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True)

    # The demo's secret is made once and kept, so the WebHook configured with it keeps working.
    secret_file = instance / "receiver_demo_secret"
    if not secret_file.exists():
        from notify.signing import generate_secret

        secret_file.write_text(generate_secret())  # a Standard Webhooks secret too
        secret_file.chmod(0o600)
    demo_env = dict(env, RECEIVER_SECRET=secret_file.read_text().strip(), RECEIVER_PORT=demo_port,
                    RECEIVER_LOG=str(instance / "received_events.jsonl"), RECEIVER_HOST="127.0.0.1")
    # The admin offers a one-click WebHook to the demo, so a new merchant can try a delivery at once.
    env["RECEIVER_DEMO_URL"] = f"http://127.0.0.1:{demo_port}/webhook"
    env["RECEIVER_DEMO_SECRET"] = demo_env["RECEIVER_SECRET"]

    commands = {
        "web": ([*flask, "run", "--debug", "--host", host, "--port", port] if dev else
                [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "2",
                 "--access-logfile", "-", "app:create_app()"]),
        "worker": [*flask, "worker"],
        "scheduler": [*flask, "scheduler"],
        "receiver": [sys.executable, str(ROOT / "receiver_demo" / "receiver.py")],
    }
    processes: dict[str, subprocess.Popen] = {}
    for name, command in commands.items():
        processes[name] = subprocess.Popen(command, cwd=ROOT, env=demo_env if name == "receiver" else env,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                           start_new_session=True)
        threading.Thread(target=_relay, args=(name, processes[name]), daemon=True).start()

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(f"""
  merchant-notify is running. Press Ctrl-C to stop everything.

  Admin:          http://{shown_host}:{port}/
  Receiver demo:  http://127.0.0.1:{demo_port}/   (received WebHooks are listed there)
  To try it: open the admin, create your account, press "Add the receiver demo as a WebHook",
  then "Send test". (By hand: URL http://127.0.0.1:{demo_port}/webhook, mode "signature",
  secret {demo_env['RECEIVER_SECRET']})
""", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    exit_code = 0
    while not stopping.is_set():
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"[{name}] exited with code {process.returncode}; stopping everything", flush=True)
                exit_code = 1
                stopping.set()
        stopping.wait(0.5)

    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    if embedded_dir is not None:
        from notify import embedded_redis

        embedded_redis.stop(embedded_dir)
    print("Stopped.")
    return exit_code


def _relay(name: str, process: subprocess.Popen) -> None:
    for line in process.stdout:
        print(f"[{name:9}] {line}", end="", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
