#!/usr/bin/env python3
"""Differential run of the conformance table against Debian's nginx.

    apt-get install -y nginx          # only if /usr/sbin/nginx is missing
    cargo run -q -p seckill-protocol --features conformance --example dump_cases \
        | python3 protocol/differential/nginx_diff.py

Options: --nginx PATH (default /usr/sbin/nginx), --timeout SECONDS (per case
read budget, default 1.0), --jobs N (parallel connections, default 32),
--cases FILE (JSON lines instead of stdin), --read-body (see below).

Starts nginx with a generated config in a temp dir (worker_processes 1,
listen 127.0.0.1:<free port>, error_log/pid/temp paths in the temp dir,
access_log off, `location = /healthz` and `location = /readyz` answering
`return 200 "ok"`; every other path is nginx's 404) and stops it at exit.

For every case: a fresh TCP connection, the input sent whole, reads for up to
--timeout seconds or until nginx closes, then the FIRST final response's
status (a `1xx` interim such as `100 Continue` is skipped and flagged `+100`).
nginx's verdict:
  accept    2xx/3xx/404/405 (any status < 400, or 404/405): the request
            reached routing;
  reject    any other 4xx/5xx (400/408/411/413/414/431/501/505 are the
            framing ones; nginx's own 494 goes out as 400);
  noanswer  no status line at all within the budget.
`closed` says whether nginx closed the connection within the budget.

Caveat: a `return` location answers before nginx has read the body, so body
framing errors (bad chunks, oversize bodies) mostly show as `200 open`. With
--read-body, /healthz and /readyz are proxy_pass'ed to a second server block
in the same nginx, so nginx reads (and de-chunks) the whole body first; the
oversize-body cases then become "no answer" (nginx waits for bytes that never
come). nginx 1.22 still answers 200 to most malformed-chunk cases either way:
its chunked parser tolerates bare LF, odd extensions and bad trailers.

Ours come from dump_cases (`accepted` = our first outcome is a Request or a
Continue, `status` = our reject status). `closes` and `note` are not in the
dump, so they are read from protocol/src/conformance.rs by case name.

Prints a summary (agree / we reject & nginx accepts / we accept & nginx
rejects / nginx no answer), then the "we accept, nginx rejects" cases (those
need a justification in the case's note) with both statuses and the note, then
"we reject, nginx accepts" and "nginx no answer" cases. Figures, not checks:
exit status is 0 whenever the run completed.
"""

import argparse
import atexit
import base64
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFORMANCE_RS = os.path.join(HERE, "..", "src", "conformance.rs")

CONFIG = """\
worker_processes 1;
{user}
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};
        server_name _;
{locations}
    }}
{backend}}}
"""

RETURN_LOCATIONS = """\
        location = /healthz {{ return 200 "ok"; }}
        location = /readyz {{ return 200 "ok"; }}"""

# --read-body: the front reads (and de-chunks) the whole body before
# proxying, so body framing errors show up as nginx's own 400.
PROXY_LOCATIONS = """\
        location = /healthz {{ proxy_pass http://127.0.0.1:{bport}; }}
        location = /readyz {{ proxy_pass http://127.0.0.1:{bport}; }}"""

BACKEND = """\
    server {{
        listen 127.0.0.1:{bport};
        location / {{ return 200 "ok"; }}
    }}
"""

FRAMING_REJECTS = {400, 408, 411, 413, 414, 431, 501, 505}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(binary, read_body=False):
    if not os.path.exists(binary):
        sys.exit(f"{binary} missing: apt-get install -y nginx")
    tmp = tempfile.mkdtemp(prefix="nginx-diff-")
    os.chmod(tmp, 0o755)
    port = free_port()
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        if read_body:
            bport = free_port()
            locations = PROXY_LOCATIONS.format(bport=bport)
            backend = BACKEND.format(bport=bport)
        else:
            locations, backend = RETURN_LOCATIONS.format(), ""
        f.write(CONFIG.format(tmp=tmp, port=port, user=user, locations=locations, backend=backend))
    proc = subprocess.Popen(
        [binary, "-p", tmp, "-c", conf, "-e", os.path.join(tmp, "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )

    def stop():
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(stop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"nginx exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return port
        except OSError:
            time.sleep(0.05)
    sys.exit("nginx did not start listening")


def first_status(buf):
    """Status of the first final response in buf, and whether a 1xx came first."""
    interim = False
    while True:
        m = re.match(rb"HTTP/\d\.\d (\d{3})", buf)
        if not m:
            return None, interim
        status = int(m.group(1))
        if status >= 200:
            return status, interim
        interim = True
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None, interim
        buf = buf[end + 4:]


def probe(port, data, budget):
    """Send data whole, read until close or budget; (status, interim, closed, raw)."""
    buf = b""
    closed = False
    deadline = time.monotonic() + budget
    with socket.create_connection(("127.0.0.1", port), timeout=budget) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # nginx may close before reading all; read what it said
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
    status, interim = first_status(buf)
    return status, interim, closed, buf


def verdict(status):
    if status is None:
        return "noanswer"
    if status < 400 or status in (404, 405):
        return "accept"
    return "reject"


def load_meta():
    """name -> (closes, note) from conformance.rs (one Case a line)."""
    meta = {}
    try:
        src = open(CONFORMANCE_RS, encoding="utf-8").read()
    except OSError:
        return meta
    pat = re.compile(
        r'Case \{ name: "([^"]+)".*?closes: (true|false), note: "((?:[^"\\]|\\.)*)"'
    )
    for m in pat.finditer(src):
        meta[m.group(1)] = (m.group(2) == "true", m.group(3).replace('\\"', '"'))
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=32)
    ap.add_argument("--cases")
    ap.add_argument("--read-body", action="store_true",
                    help="proxy /healthz and /readyz to a second server block so nginx reads the body")
    args = ap.parse_args()

    src = open(args.cases) if args.cases else sys.stdin
    rows = [json.loads(line) for line in src if line.strip()]
    meta = load_meta()
    version = subprocess.run([args.nginx, "-v"], capture_output=True, text=True).stderr.strip()
    port = start_nginx(args.nginx, args.read_body)

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(
            lambda r: probe(port, base64.b64decode(r["input_b64"]), args.timeout), rows))

    counts = {"agree": 0, "we_reject_nginx_accepts": 0, "we_accept_nginx_rejects": 0,
              "nginx_no_answer": 0}
    close_mismatch = 0
    lists = {k: [] for k in counts}
    for row, (status, interim, closed, raw) in zip(rows, results):
        v = verdict(status)
        closes, note = meta.get(row["name"], (None, ""))
        ours = "accept" if row["accepted"] else f"reject {row['status']}"
        theirs = ("-" if status is None else str(status)) + ("+100" if interim else "")
        theirs += " closed" if closed else " open"
        entry = (row["name"], row["rfc"], ours, theirs, note, raw)
        if v == "noanswer":
            key = "nginx_no_answer"
        elif (v == "accept") == row["accepted"]:
            key = "agree"
            if closes is not None and closes != closed:
                close_mismatch += 1
                lists.setdefault("close_differs", []).append(entry)
        elif row["accepted"]:
            key = "we_accept_nginx_rejects"
        else:
            key = "we_reject_nginx_accepts"
        counts[key] += 1
        lists[key].append(entry)

    mode = "read-body (proxy_pass)" if args.read_body else "return"
    print(f"{version}: {len(rows)} cases, port {port}, budget {args.timeout}s, locations: {mode}")
    print()
    print(f"  {'agree':<28}{counts['agree']:>5}")
    print(f"  {'we reject & nginx accepts':<28}{counts['we_reject_nginx_accepts']:>5}")
    print(f"  {'we accept & nginx rejects':<28}{counts['we_accept_nginx_rejects']:>5}")
    print(f"  {'nginx no answer':<28}{counts['nginx_no_answer']:>5}")
    print(f"  (agreeing cases where close/keep-open differs: {close_mismatch})")

    def show(title, key, with_note):
        items = lists[key]
        print()
        print(f"{title} ({len(items)}):")
        width = max((len(e[0]) for e in items), default=4)
        for name, rfc, ours, theirs, note, raw in items:
            line = f"  {name:<{width}}  {rfc:<18}  ours: {ours:<11} nginx: {theirs}"
            if with_note:
                line += f"\n  {'':<{width}}  note: {note}"
            print(line)

    show("we accept, nginx rejects -- need a justification", "we_accept_nginx_rejects", True)
    show("we reject, nginx accepts", "we_reject_nginx_accepts", False)
    show("nginx no answer", "nginx_no_answer", False)
    lists.setdefault("close_differs", [])
    show("agree on accept/reject, differ on whether the connection closes", "close_differs", True)
    print()
    print("summary: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
