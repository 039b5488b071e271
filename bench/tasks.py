"""RQ job functions for the plain-RQ baseline (importable as bench.tasks)."""
import requests

from bench.common import headers_for, make_body

# Module-level session: reused across jobs by a non-forking SimpleWorker; a forking
# Worker gets a fresh copy in every work horse, so it cannot keep connections alive.
SESSION = requests.Session()


def post_once(url, i):
    """POST delivery number i to exactly `url`; raise on non-2xx so RQ marks the job failed."""
    resp = SESSION.post(url, data=make_body(i), headers=headers_for(i), timeout=10)
    resp.raise_for_status()
    return resp.status_code
