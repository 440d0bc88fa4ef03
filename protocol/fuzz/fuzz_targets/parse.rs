//! Feeds arbitrary bytes to the request parser in an arbitrary split and
//! checks: no panic, never more consumed than buffered, and the same
//! requests and errors as when the bytes arrive all at once.
//!
//! Input layout: byte 0 picks the limits (the defaults, or tiny ones that
//! make every limit reachable) and the kind of split, bytes 1–2 seed the
//! split, the rest is the stream a client sends, where each byte 0xE0–0xFE
//! stands for a fragment of HTTP (so that the fuzzer reaches past the
//! request line without a corpus) and 0xFF escapes the next byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use seckill_protocol::{Limits, Parse, RequestParser};

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Request { method: String, path: String, query: String, body: Vec<u8>, keep_alive: bool },
    Reject(u16),
}

/// Feeds `input` in pieces ending at `cuts`, like a connection would.
fn run(limits: Limits, input: &[u8], cuts: &[usize]) -> Vec<Seen> {
    let mut parser = RequestParser::new(limits);
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let mut fed = 0;
    for &cut in cuts.iter().chain([input.len()].iter()) {
        let cut = cut.clamp(fed, input.len());
        buf.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            match parser.parse(&buf) {
                Parse::Complete(request) => {
                    let used = request.wire_len();
                    assert!(used > 0 && used <= buf.len(), "consumed {used} of {}", buf.len());
                    assert!(request.body.len() <= limits.body_bytes_max);
                    // Exercise the lookup over the raw head.
                    let _ = request.header("host");
                    seen.push(Seen::Request {
                        method: request.method_token.to_owned(),
                        path: request.path.to_owned(),
                        query: request.query.to_owned(),
                        body: request.body.to_vec(),
                        keep_alive: request.keep_alive(),
                    });
                    let keep_alive = request.keep_alive();
                    buf.drain(..used);
                    if !keep_alive {
                        return seen;
                    }
                }
                Parse::Partial { .. } => break,
                Parse::Error(error) => {
                    seen.push(Seen::Reject(error.status().0));
                    return seen;
                }
            }
        }
    }
    seen
}

/// Fragments the fuzzer can use as single bytes.
const FRAGMENTS: &[&[u8]] = &[
    b"GET /healthz HTTP/1.1\r\n",
    b"POST /p?q=1 HTTP/1.1\r\n",
    b"GET http://h:8/x HTTP/1.0\r\n",
    b"OPTIONS * HTTP/1.1\r\n",
    b"CONNECT h:443 HTTP/1.1\r\n",
    b" HTTP/1.1\r\n",
    b" HTTP/1.2\r\n",
    b" HTTP/2.0\r\n",
    b"Host: h\r\n",
    b"Host: [::1]:80\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: ",
    b"chunked",
    b"gzip, ",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"X-A: b\r\n",
    b"\r\n",
    b"\r\n\r\n",
    b"0\r\n\r\n",
    b"5\r\nhello\r\n",
    b";ext=\"v\\\"\"",
    b"Trailer: t\r\n",
    b"16",
    b"ffffffffffffffffff",
    b"99999999999999999999",
    b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    b"X-Long: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n",
    b", ",
    b"\t",
];

fn expand(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() * 4);
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            0xff => out.extend(bytes.next()),
            0xe0..=0xfe => out.extend_from_slice(FRAGMENTS[usize::from(b - 0xe0) % FRAGMENTS.len()]),
            _ => out.push(b),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [choice, seed_low, seed_high, raw @ ..] = data else { return };
    let input = &expand(raw)[..];
    let limits = if choice & 1 == 0 {
        Limits::default()
    } else {
        Limits { head_bytes_max: 96, uri_bytes_max: 24, header_count_max: 3, body_bytes_max: 40 }
    };
    // The split: byte by byte, or a few cuts from a xorshift seeded by the input.
    let mut state = u64::from(u16::from_le_bytes([*seed_low, *seed_high])) | 1 << 32;
    let cuts: Vec<usize> = if choice & 2 == 0 {
        (1..input.len()).collect()
    } else {
        let mut cuts: Vec<usize> = (0..(state % 8 + 1))
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % (input.len() as u64 + 1)) as usize
            })
            .collect();
        cuts.sort_unstable();
        cuts
    };
    let whole = run(limits, input, &[]);
    let split = run(limits, input, &cuts);
    assert_eq!(whole, split, "split {cuts:?}");
});
