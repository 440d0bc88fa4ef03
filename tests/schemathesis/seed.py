"""Seeds a fresh seckill for the schemathesis run and prints what the run
needs as shell assignments: an item on sale (id 1), a user with a session,
a second session for the logout operation, and one order of that user.

Usage: python3 seed.py BASE_URL ADMIN_TOKEN
Standard library only: it runs before (and without) the venv.
"""

import json
import sys
import time
import urllib.error
import urllib.request

BASE, ADMIN = sys.argv[1], sys.argv[2]
PASSWORD = "0123456789abcdef0123456789abcdef"


def call(method, path, token=None, body=None, expect=200, as_json=True):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    if status != expect:
        sys.exit(f"seed: {method} {path} answered {status}, not {expect}: {payload!r}")
    return json.loads(payload) if as_json else payload


now_ms = int(time.time() * 1000)
item = {
    "name": "Schemathesis phone",
    "description": "on sale for the run",
    "price_cents": 100,
    "stock": 1_000_000,
    "per_user_limit": 1_000_000,
    "start_ms": now_ms - 1000,
    "end_ms": now_ms + 3_600_000,
}
call("PUT", "/admin/items/1", ADMIN, item)
users = call("POST", "/admin/users/bulk", ADMIN, {"prefix": "fuzzer", "count": 2, "password": PASSWORD, "sessions": True})
(user_id, _), (session, logout_session) = users["user_ids"], users["tokens"]

call("GET", "/api/items/1/captcha", session, as_json=False)
answer = call("GET", f"/admin/items/1/captcha-answer?user_id={user_id}", ADMIN)["answer"]
path = call("POST", "/api/items/1/path", session, {"captcha": answer})["path"]
order = call("POST", f"/api/seckill/{path}", session, {"item_id": 1, "quantity": 1, "request_id": "seed"})

print(f"SECKILL_SESSION={session}")
print(f"SECKILL_LOGOUT_SESSION={logout_session}")
print(f"SECKILL_USER_ID={user_id}")
print(f"SECKILL_ORDER_ID={order['order_id']}")
