//! A minimal server on the reactor for measuring it alone:
//! `cargo run --release -p seckill-reactor --example hello -- 127.0.0.1:8090 reuseport 2`
//! answers every request `200 {"status":"ok"}` until killed.

use std::time::{Duration, Instant};

use seckill_protocol::{ContentType, DateHeader, Limits, Request, RequestInfo};
use seckill_reactor::{Design, Exchange, Handler, Reactor, ReactorConfig};

#[derive(Debug)]
struct Hello;

impl Handler for Hello {
    type Completion = ();

    fn handle(&mut self, _request: &Request<'_>, exchange: &mut Exchange<'_>) {
        exchange.respond(seckill_protocol::Status::OK).body(ContentType::Json, b"{\"status\":\"ok\"}");
    }

    fn complete(
        &mut self,
        _completion: (),
        _info: RequestInfo,
        _parked_at: Instant,
        _date: &DateHeader,
        _out: &mut Vec<u8>,
    ) {
    }

    fn park_expired(&mut self, _info: RequestInfo, _parked_at: Instant, _date: &DateHeader, _out: &mut Vec<u8>) {}
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = args.get(1).map_or("127.0.0.1:8090", String::as_str).parse().map_err(std::io::Error::other)?;
    let design = match args.get(2).map(String::as_str) {
        Some("acceptor") => Design::Acceptor,
        _ => Design::ReusePort,
    };
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
    let config = ReactorConfig {
        listen,
        threads,
        design,
        limits: Limits::default(),
        head_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        connections_max: 16384,
        pipeline_depth_max: 64,
        pin_cpus: false,
    };
    let reactor: Reactor<()> = Reactor::start(config, |_| Hello)?;
    println!("listening on http://{}", reactor.local_addr());
    loop {
        std::thread::park();
    }
}
