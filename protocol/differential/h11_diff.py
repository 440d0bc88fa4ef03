#!/usr/bin/env python3
"""Differential run of the conformance table against h11 (a strict HTTP/1.1
parser from PyPI), server side.

    pip install h11
    cargo run -q -p seckill-protocol --features conformance --example dump_cases \
        | python3 protocol/differential/h11_diff.py

For each case the input is fed whole to a fresh h11.Connection(our_role=SERVER).
h11 "accepts" when the first request gets through to EndOfMessage (head and
body), as our Outcome::Request means the whole request; it "rejects" when it
raises RemoteProtocolError first; "incomplete" when it wants more bytes.
Prints the disagreements and a summary. Not part of CI: figures, not checks.
"""

import base64
import json
import sys

import h11


def h11_verdict(data: bytes):
    conn = h11.Connection(our_role=h11.SERVER)
    try:
        conn.receive_data(data)
        saw_request = False
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                saw_request = True
            elif isinstance(event, h11.EndOfMessage):
                return "accept", ""
            elif event is h11.NEED_DATA:
                return ("incomplete", "head parsed, body incomplete" if saw_request else "head incomplete")
            elif event is h11.PAUSED:
                return "accept", "paused"
    except h11.RemoteProtocolError as e:
        return "reject", f"{e.error_status_hint}: {e}"


def main():
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    counts = {"agree": 0, "we_accept_h11_rejects": 0, "we_reject_h11_accepts": 0, "h11_incomplete": 0}
    disagreements = []
    for row in rows:
        data = base64.b64decode(row["input_b64"])
        verdict, detail = h11_verdict(data)
        ours = "accept" if row["accepted"] else f"reject {row['status']}"
        if verdict == "incomplete":
            counts["h11_incomplete"] += 1
            disagreements.append((row["name"], row["rfc"], ours, f"h11 incomplete ({detail})"))
        elif (verdict == "accept") == row["accepted"]:
            counts["agree"] += 1
        elif row["accepted"]:
            counts["we_accept_h11_rejects"] += 1
            disagreements.append((row["name"], row["rfc"], ours, f"h11 rejects ({detail})"))
        else:
            counts["we_reject_h11_accepts"] += 1
            disagreements.append((row["name"], row["rfc"], ours, "h11 accepts"))
    width = max((len(d[0]) for d in disagreements), default=4)
    print(f"h11 {h11.__version__}: {len(rows)} cases")
    for name, rfc, ours, theirs in sorted(disagreements, key=lambda d: (d[3].split(" (")[0], d[0])):
        print(f"  {name:<{width}}  {rfc:<18}  ours: {ours:<11} {theirs}")
    print("summary: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
