//! Prints the conformance table as JSON lines, one case a line:
//! `{"name", "rfc", "input_b64", "accepted", "status"}`, where `accepted`
//! says whether the first outcome is a request (or a `100 Continue`) and
//! `status` is the first outcome's reject status (0 when accepted).
//!
//! `cargo run -p seckill-protocol --features conformance --example dump_cases`
//! feeds `differential/h11_diff.py`.

use seckill_protocol::conformance::{CASES, Outcome};

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    for case in CASES {
        let (accepted, status) = match case.expect[0] {
            Outcome::Request { .. } | Outcome::Continue => (true, 0),
            Outcome::Reject(status) => (false, status),
        };
        println!(
            "{{\"name\":{},\"rfc\":{},\"input_b64\":\"{}\",\"accepted\":{accepted},\"status\":{status}}}",
            json_string(case.name),
            json_string(case.rfc),
            base64(case.input),
        );
    }
}
