#!/usr/bin/env python3
"""Issue 4's figures on the embedded default, against the release binary:

  * bulk creation of 10,000 users with sessions (POST /admin/users/bulk),
  * one login's latency (median of 20 sequential logins),
  * logins per second with every hash worker busy, and per core.

Usage: bench/front-figures.py [--seconds 5] [--server target/release/seckill]
The server runs in a temporary directory with its default argon2 parameters
(printed). Loopback only; bounded in time; stops by itself.
"""
import argparse, http.client, json, os, re, statistics, subprocess, sys, tempfile, threading, time


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers=headers or {})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, payload


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--server", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "seckill"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        server = subprocess.Popen([os.path.abspath(args.server), "--listen", "127.0.0.1:0",
                                   "--set", "limits.per_ip_rps=0"],
                                  cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline()
            port = int(re.search(r":(\d+)$", line.strip()).group(1))
            token = open(os.path.join(work, "data", "admin_token")).read().strip()
            admin = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            config = subprocess.run([os.path.abspath(args.server), "--print-config"], capture_output=True, text=True).stdout
            params = {k: re.search(rf"^{k} = (\S+)", config, re.M).group(1)
                      for k in ("argon2_memory_kib", "argon2_iterations", "argon2_parallelism", "hash_workers")}
            print(f"argon2id: memory {params['argon2_memory_kib']} KiB, iterations {params['argon2_iterations']}, "
                  f"parallelism {params['argon2_parallelism']}; hash_workers {params['hash_workers']} (0 = one per core: {os.cpu_count()})")

            started = time.perf_counter()
            status, payload = request(port, "POST", "/admin/users/bulk",
                                      {"prefix": "bulk", "count": 10000, "password": "password-hash-1", "sessions": True}, admin)
            took = time.perf_counter() - started
            assert status == 200, (status, payload)
            tokens = json.loads(payload)["tokens"]
            print(f"bulk: 10,000 users with sessions in {took:.2f} s ({len(tokens)} tokens)")

            status, _ = request(port, "POST", "/api/users", {"username": "alice", "password": "password-hash-1"})
            assert status == 201, status
            latencies = []
            for _ in range(20):
                t = time.perf_counter()
                status, _ = request(port, "POST", "/api/login", {"username": "alice", "password": "password-hash-1"})
                latencies.append(time.perf_counter() - t)
                assert status == 200, status
            print(f"login latency: median {statistics.median(latencies)*1e3:.1f} ms, "
                  f"min {min(latencies)*1e3:.1f} ms, max {max(latencies)*1e3:.1f} ms (20 sequential)")

            workers = int(params["hash_workers"]) or os.cpu_count()
            done = [0]
            lock = threading.Lock()
            deadline = time.perf_counter() + args.seconds

            def hammer():
                while time.perf_counter() < deadline:
                    status, _ = request(port, "POST", "/api/login", {"username": "alice", "password": "password-hash-1"})
                    if status == 200:
                        with lock:
                            done[0] += 1

            threads = [threading.Thread(target=hammer) for _ in range(workers * 2)]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            elapsed = time.perf_counter() - t
            rate = done[0] / elapsed
            print(f"logins: {rate:.1f}/s with {workers} hash workers busy = {rate / workers:.1f}/s per core "
                  f"({done[0]} in {elapsed:.1f} s, {workers * 2} clients)")
        finally:
            server.terminate()
            server.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
