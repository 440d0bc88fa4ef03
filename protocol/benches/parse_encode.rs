//! Parsing and answering a typical seckill POST, alone and pipelined 16
//! deep. Reported per request (criterion's "elements").
//!
//! `cargo bench -p seckill-protocol --bench parse_encode -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use seckill_protocol::{ContentType, DateHeader, Limits, Parse, RequestParser, ResponseWriter, Status};

const SECKILL_POST: &[u8] =
    b"POST /api/seckill/3f8a9c2e7b1d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a HTTP/1.1\r\n\
Host: shop.example.com\r\n\
Cookie: session=u42.1732240000.9f8e7d6c5b4a39281706f5e4d3c2b1a0\r\n\
Content-Type: application/json\r\n\
Content-Length: 47\r\n\
\r\n\
{\"item_id\":1,\"quantity\":1,\"request_id\":\"r-123\"}";

/// About 80 bytes, like the sale's success answer.
const RESPONSE: &[u8] =
    b"{\"status\":\"success\",\"order_id\":\"1234567890123456789\",\"pay_deadline_ms\":1732240600000}";

/// Parses and answers every request in `input`, as one read would.
fn serve(parser: &mut RequestParser, input: &[u8], out: &mut Vec<u8>, date: &DateHeader) -> usize {
    out.clear();
    let (mut at, mut served) = (0, 0);
    while let Parse::Complete(request) = parser.parse(&input[at..]) {
        black_box((request.path, request.headers.cookie, request.body));
        at += request.wire_len();
        served += 1;
        ResponseWriter::new(out, date, request.info(), Status::OK).body(ContentType::Json, RESPONSE);
    }
    served
}

fn bench(c: &mut Criterion) {
    let date = DateHeader::new(UNIX_EPOCH + Duration::from_secs(1_732_240_000));
    let mut group = c.benchmark_group("parse_encode");
    for (name, input, requests) in
        [("seckill_post", SECKILL_POST.to_vec(), 1), ("pipelined_16", SECKILL_POST.repeat(16), 16)]
    {
        let mut parser = RequestParser::new(Limits::default());
        let mut out = Vec::with_capacity(4096);
        assert_eq!(serve(&mut parser, &input, &mut out, &date), requests);
        group.throughput(Throughput::Elements(requests as u64));
        group.bench_function(name, |b| b.iter(|| serve(&mut parser, black_box(&input), &mut out, &date)));
    }
    // A reference measured in the same run (the machine is shared and
    // noisy): httparse alone on the same head, no framing, no response.
    let mut headers = [httparse::EMPTY_HEADER; 16];
    group.throughput(Throughput::Elements(1));
    group.bench_function("httparse_head_only_reference", |b| {
        b.iter(|| {
            let mut request = httparse::Request::new(&mut headers);
            black_box(request.parse(black_box(SECKILL_POST)).is_ok())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
