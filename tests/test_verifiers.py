"""The copyable verifiers in receiver_demo/examples (Java, PHP, Node, Go), each run with its real
toolchain: against the shared vectors, and against requests the product's worker really sent to a
loopback receiver, with wrong secrets, tampered bodies, stale timestamps and malformed headers
made from them. Each verifier must give what receiver_demo/verify.py gives, reason for reason.

One process per language and command (the vectors are batched). Where a toolchain is missing
the tests are skipped with a loud message, unless MN_REQUIRE_TOOLCHAINS=1 (CI sets it through
.ci/run): then they fail. `make test` installs the toolchains where it can (`make toolchains`)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from notify import signing
from receiver_demo import verify as reference

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "receiver_demo" / "examples"
VECTORS = json.loads((EXAMPLES / "vectors.json").read_text(encoding="utf-8"))
# How each file is run, exactly as its README line says.
COMMANDS = {
    "java": ["java", "receiver_demo/examples/java/ApsdaiSignature.java"],
    "php": ["php", "receiver_demo/examples/php/apsdai_signature.php"],
    "node": ["node", "receiver_demo/examples/node/apsdai-signature.js"],
    "go": ["go", "run", "receiver_demo/examples/go/apsdai_signature.go"],
}
PACKAGES = {"java": "default-jdk-headless", "php": "php-cli", "node": "nodejs", "go": "golang-go"}
# What shows a toolchain is there: a JRE has `java` but cannot run a source file without javac's module.
PROBES = {"java": "javac", "php": "php", "node": "node", "go": "go"}

SECRET = "whsec_密钥🔑 ünï"  # signature-mode channels; the verifier's argument is UTF-8
OLD_SECRET = "SECtest-old"
PASSWORD = "pässwörd"  # Latin-1 letters: the product sends them as single bytes (http.client)


@pytest.fixture(scope="module")
def toolchain_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("toolchain-home")
    # Java decodes its arguments (the secrets) by the locale; Go needs a writable cache and must
    # not reach for a network toolchain or module proxy (standard library only).
    return dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8", HOME=str(home), GOCACHE=str(home / "gocache"),
                GOTOOLCHAIN="local", GOPROXY="off", GOFLAGS="")


def needs(language: str) -> None:
    if shutil.which(PROBES[language]):
        return
    missing = f"{PROBES[language]} is not installed (Debian: apt-get install {PACKAGES[language]}; or make toolchains)"
    if os.environ.get("MN_REQUIRE_TOOLCHAINS") == "1":
        pytest.fail(f"the {language} verifier's test is required here but cannot run: {missing}")
    warnings.warn(f"VERIFIER TESTS SKIPPED ({language}): {missing}")
    pytest.skip(f"VERIFIER TESTS SKIPPED ({language}): {missing}")


def run(language: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    needs(language)
    return subprocess.run(COMMANDS[language] + list(args), cwd=ROOT, env=env, capture_output=True, timeout=120)


def test_the_vectors_are_the_products_own_signatures():
    tokens = VECTORS["tokens"]
    assert {"secret": "SECtest", "timestamp_ms": "1700000000000",
            "token": "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"}.items() <= tokens[0].items()
    for vector in tokens:
        assert signing.sign_base64(vector["secret"], vector["timestamp_ms"]) == vector["base64"]
        assert signing.sign(vector["secret"], vector["timestamp_ms"]) == vector["token"]
        assert reference.compute_signature(vector["secret"], vector["timestamp_ms"]) == vector["token"]
    # The vectors exercise each character the URL-encoding changes, and secrets beyond ASCII and the BMP.
    assert all(any(code in v["token"] for v in tokens) for code in ("%2B", "%2F", "%3D"))
    assert any(any(ord(ch) > 0xFFFF for ch in v["secret"]) for v in tokens)
    for vector in VECTORS["body_signatures"]:
        body = vector["body"].encode("utf-8")
        assert signing.body_signature(vector["secret"], int(vector["timestamp_ms"]), body) == vector["signature"]
        assert reference.body_signature(vector["secret"], vector["timestamp_ms"], body) == vector["signature"]


@pytest.mark.parametrize("language", COMMANDS)
def test_sign_prints_the_token_of_every_vector(language, toolchain_env):
    pairs = [arg for v in VECTORS["tokens"] for arg in (v["secret"], v["timestamp_ms"])]
    result = run(language, toolchain_env, "sign", *pairs)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == [v["token"] for v in VECTORS["tokens"]]
    # The README's line, as an integrator types it.
    result = run(language, toolchain_env, "sign", "SECtest", "1700000000000")
    assert result.stdout == b"aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D\n"


@pytest.mark.parametrize("language", COMMANDS)
def test_a_bad_command_line_is_a_usage_error(language, toolchain_env):
    result = run(language, toolchain_env, "sign", "only-a-secret")
    # `go run` turns any exit status of the program into 1 (and says "exit status 2").
    assert result.returncode == (1 if language == "go" else 2)
    assert b"usage:" in result.stderr and result.stdout == b""


class Capture:
    """An HTTP receiver on loopback that keeps every request as it arrived: the request line,
    the header lines and the body's exact bytes."""

    def __init__(self):
        requests = self.requests = {}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                # http.server decodes header bytes as ISO-8859-1: encoding back gives the bytes sent.
                head = self.requestline + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
                requests[self.path] = head.encode("latin-1") + b"\r\n" + body
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def parse(raw: bytes) -> tuple[dict, bytes]:
    """A request file as the verifiers read it: lower-cased names (repeated ones joined), the body."""
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    end, gap = (crlf, 4) if crlf >= 0 and (lf < 0 or crlf < lf) else (lf, 2)
    head, body = (raw, b"") if end < 0 else (raw[:end], raw[end + gap:])
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\n"):
        line = line.removesuffix("\r")
        name, colon, value = line.partition(":")
        if not colon or not name or " " in name:
            continue
        name, value = name.lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers, body


def build(headers: dict, body: bytes, *, crlf: bool = True) -> bytes:
    end = "\r\n" if crlf else "\n"
    head = "POST /webhook HTTP/1.1" + end + "".join(f"{k}: {v}{end}" for k, v in headers.items())
    return head.encode("latin-1") + end.encode() + body


def resigned(headers: dict, body: bytes, secret: str, timestamp_ms: int) -> dict:
    """The product's signatures of this body for another moment, as its transport would send them."""
    return dict(headers, **{"x-apsdai-timestamp": str(timestamp_ms), "x-apsdai-token": signing.sign(secret, timestamp_ms),
                            "x-apsdai-signature-256": signing.body_signature(secret, timestamp_ms, body)})


def without(headers: dict, name: str) -> dict:
    return {k: v for k, v in headers.items() if k != name}


@pytest.fixture
def captured(app, make_webhook, worker):
    """Requests the product's worker sent for one order_pay_hook event: to a signature-mode
    WebHook, one rotating its secret, one with another secret, and two in password mode."""
    from datetime import timedelta

    from extensions import db
    from models import Channel
    from models.base import utcnow
    from notify import hooks
    from notify.dispatch import record_event

    capture = Capture()
    try:
        make_webhook(f"{capture.url}/a", SECRET)
        rotating = make_webhook(f"{capture.url}/b", SECRET)
        make_webhook(f"{capture.url}/w", "whsec_someone_else")
        make_webhook(f"{capture.url}/p", PASSWORD, auth_mode="password")
        make_webhook(f"{capture.url}/q", "another password", auth_mode="password")
        with app.app_context():
            channel = db.session.get(Channel, rotating)
            channel.previous_secret, channel.previous_secret_until = OLD_SECRET, utcnow() + timedelta(hours=1)
            record_event("order_pay_hook", hooks.get("order_pay_hook").sample)
            db.session.commit()
        worker(until=lambda: len(capture.requests) == 5)
        return {path.strip("/"): parse(raw) for path, raw in capture.requests.items()}
    finally:
        capture.close()


def cases(captured: dict) -> dict[str, list[tuple[str, bytes, bool]]]:
    """(name, request file, accepted?) for each verify command line: signature mode with the old
    secret given (a rotation), signature mode without it, password mode."""
    now = int(time.time() * 1000)
    a, a_body = captured["a"]
    b, b_body = captured["b"]
    p, p_body = captured["p"]
    assert b["x-apsdai-token"] == signing.sign(OLD_SECRET, b["x-apsdai-timestamp"])  # the product is rotating
    assert b["x-apsdai-signature-256"].count("sha256=") == 2
    tampered = a_body.replace(b'"test":false', b'"test":true ')
    assert tampered != a_body
    first, second = b["x-apsdai-signature-256"].split(", ")
    rotation_as_two_lines = build(without(b, "x-apsdai-signature-256"), b_body).replace(
        b"\r\n\r\n", f"\r\nX-Apsdai-Signature-256: {first}\r\nx-apsdai-signature-256:\t{second}\r\n\r\n".encode(), 1)
    signature = [
        ("delivered", build(a, a_body), True),
        ("delivered during a rotation (the token is the old secret's)", build(*captured["b"]), True),
        ("another channel's secret", build(*captured["w"]), False),
        ("a tampered body", build(a, tampered), False),
        ("no body signature (a seed sender)", build(without(a, "x-apsdai-signature-256"), a_body), True),
        ("LF line endings and upper-case names", build({k.upper(): v for k, v in a.items()}, a_body, crlf=False), True),
        ("the rotation's body signatures on two header lines", rotation_as_two_lines, True),
        ("signed 200 s ago", build(resigned(a, a_body, SECRET, now - 200_000), a_body), True),
        ("signed 240 s ahead", build(resigned(a, a_body, SECRET, now + 240_000), a_body), True),
        ("a stale timestamp", build(resigned(a, a_body, SECRET, now - 400_000), a_body), False),
        ("a timestamp in the future", build(resigned(a, a_body, SECRET, now + 400_000), a_body), False),
        ("the timestamp changed", build(dict(a, **{"x-apsdai-timestamp": str(int(a["x-apsdai-timestamp"]) + 1)}), a_body), False),
        ("no token", build(without(a, "x-apsdai-token"), a_body), False),
        ("an empty token", build(dict(a, **{"x-apsdai-token": ""}), a_body), False),
        ("the token in lower-case %xx", build(dict(a, **{"x-apsdai-token": a["x-apsdai-token"].replace("%3D", "%3d")}), a_body), False),
        ("the token decoded (Base64, not URL-encoded)", build(dict(a, **{"x-apsdai-token": signing.sign_base64(SECRET, a["x-apsdai-timestamp"])}), a_body), False),
        ("no timestamp", build(without(a, "x-apsdai-timestamp"), a_body), False),
        ("a timestamp in seconds with a fraction", build(dict(a, **{"x-apsdai-timestamp": "1700000000.5"}), a_body), False),
        ("a 16-digit timestamp", build(dict(a, **{"x-apsdai-timestamp": "1" + a["x-apsdai-timestamp"].zfill(15)}), a_body), False),
        ("a garbled body signature", build(dict(a, **{"x-apsdai-signature-256": "sha256=zz"}), a_body), False),
        ("an empty body signature", build(dict(a, **{"x-apsdai-signature-256": ""}), a_body), False),
        ("the body signature in upper-case hex", build(dict(a, **{"x-apsdai-signature-256": a["x-apsdai-signature-256"].upper()}), a_body), False),
        ("no headers at all", b"POST /webhook HTTP/1.1\r\n\r\n" + a_body, False),
    ]
    no_previous = [
        ("delivered", build(a, a_body), True),
        ("delivered during a rotation, the old secret not given", build(*captured["b"]), False),
    ]
    password = [
        ("delivered", build(p, p_body), True),
        ("another password", build(*captured["q"]), False),
        ("a tampered body", build(p, p_body + b" "), False),
        ("a day-old timestamp (not signed in this mode)", build(resigned(p, p_body, PASSWORD, now - 86_400_000)
                                                                | {"x-apsdai-token": p["x-apsdai-token"]}, p_body), True),
        ("no timestamp, no body signature", build(without(without(p, "x-apsdai-timestamp"), "x-apsdai-signature-256"), p_body), True),
        ("a body signature but no timestamp", build(without(p, "x-apsdai-timestamp"), p_body), False),
        ("a timestamp that is not digits", build(dict(p, **{"x-apsdai-timestamp": "now"}), p_body), False),
        ("the password in UTF-8 bytes instead of Latin-1", build(p, p_body).replace(
            p["x-apsdai-token"].encode("latin-1"), PASSWORD.encode("utf-8")), False),
    ]
    return {("signature", SECRET, OLD_SECRET): signature, ("signature", SECRET, ""): no_previous,
            ("password", PASSWORD, ""): password}


def expected_line(raw: bytes, mode: str, secret: str, previous: str) -> str:
    headers, body = parse(raw)
    result = reference.verify_headers(headers, mode=mode, secret=secret, previous_secret=previous, body=body)
    return "ok" if result.ok else f"refused: {result.reason}"


def same_moment(line: str) -> str:
    # The reference and the verifier read the clock a moment apart: "412 s old" may be "413 s old".
    return re.sub(r"^refused: timestamp is \d+ s", "refused: timestamp is N s", line)


@pytest.mark.processes
@pytest.mark.parametrize("language", COMMANDS)
def test_verify_gives_verify_pys_answer_for_real_deliveries_and_refuses_the_bad_ones(
        language, toolchain_env, captured, tmp_path):
    needs(language)
    for (mode, secret, previous), group in cases(captured).items():
        files = []
        for index, (name, raw, accepted) in enumerate(group):
            files.append(tmp_path / f"{mode}-{bool(previous)}-{index}.http")
            files[-1].write_bytes(raw)
        expected = [expected_line(raw, mode, secret, previous) for _, raw, _ in group]
        # The reference itself accepts exactly the good ones, so agreeing with it means something.
        assert [line == "ok" for line in expected] == [accepted for _, _, accepted in group], (mode, previous)
        result = run(language, toolchain_env, "verify", mode, secret, previous, *map(str, files))
        lines = result.stdout.decode().splitlines()
        assert result.returncode == (0 if all(a for _, _, a in group) else 1), result.stderr.decode()
        assert len(lines) == len(group), result.stderr.decode()
        for (name, _, _), line, wanted in zip(group, lines, expected):
            assert same_moment(line) == same_moment(wanted), f"{language}, {mode}, {name!r}"


@pytest.mark.parametrize("language", COMMANDS)
def test_verify_checks_the_documented_body_vectors_at_their_own_moment(language, toolchain_env, tmp_path):
    """APSDAI_NOW_MS: a request captured earlier is checked as of its own time."""
    files, wanted = [], []
    for index, vector in enumerate(VECTORS["body_signatures"]):
        body = vector["body"].encode("utf-8")
        headers = {"X-Apsdai-Token": signing.sign(vector["secret"], vector["timestamp_ms"]),
                   "X-Apsdai-Timestamp": vector["timestamp_ms"], "X-Apsdai-Signature-256": vector["signature"]}
        for suffix, sent in (("good", body), ("bad", body + b"x")):
            files.append(tmp_path / f"{index}-{suffix}.http")
            files[-1].write_bytes(build(headers, sent))
            wanted.append("ok" if suffix == "good" else
                          "refused: body signature does not match: the body was altered, or check the secret")
    # All vectors share a timestamp, each its own secret: one run per secret.
    for secret in dict.fromkeys(v["secret"] for v in VECTORS["body_signatures"]):
        mine = [i for i, v in enumerate(VECTORS["body_signatures"]) if v["secret"] == secret]
        chosen = [str(files[2 * i + k]) for i in mine for k in (0, 1)]
        result = run(language, dict(toolchain_env, APSDAI_NOW_MS="1700000000000"), "verify", "signature", secret, "", *chosen)
        assert result.stdout.decode().splitlines() == [wanted[2 * i + k] for i in mine for k in (0, 1)], result.stderr
