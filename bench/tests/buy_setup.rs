//! `buy`'s setup and report against the real `seckill` binary: the item, bulk
//! users with sessions (in chunks), captcha-checked paths over parallel
//! connections, `/metrics`, and a short `buy` run alternating with /healthz.
//!
//! The server binary is `$SECKILL_BIN`, or `seckill` built in the same target
//! directory as this test (`cargo build -p seckill` first; `cargo test
//! --workspace` builds it). The bench depends on no seckill crate, so Cargo
//! cannot build it for us.

use seckill_bench::setup::{self, Admin, ItemSpec};
use seckill_bench::{BuyConfig, Target, metrics, run_buy};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-test-password";

/// A running `seckill` in its own data directory, killed on drop.
struct Server {
    child: Child,
    dir: PathBuf,
    target: Target,
    admin_token: String,
}

fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SECKILL_BIN") {
        return PathBuf::from(bin);
    }
    // This test runs as TARGET/PROFILE/deps/buy_setup-HASH.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("TARGET/PROFILE/deps");
    let candidates = [profile_dir.join("seckill"), profile_dir.join("../release/seckill")];
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!("no seckill binary at {candidates:?}: run `cargo build -p seckill` first or set SECKILL_BIN")
    })
}

impl Server {
    fn start() -> Server {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("seckill-bench-buy-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("create the data dir");
        let mut child = Command::new(server_binary())
            .current_dir(&dir)
            .args(["--listen", "127.0.0.1:0", "--set"])
            .arg(format!("server.data_dir={}", dir.join("data").display()))
            .args(["--set", "limits.per_user_rps=100000", "--set", "limits.per_user_burst=100000"])
            .args(["--set", "limits.per_ip_rps=100000000", "--set", "limits.per_ip_burst=100000000"])
            .args(["--set", "sale.path_ttl_ms=3600000", "--set", "server.threads=2"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn seckill");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout piped");
        let err = child.stderr.take().expect("stderr piped");
        let tx2 = tx.clone();
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
        std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).for_each(|l| drop(tx2.send(l))));
        let (mut addr, mut token) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while addr.is_none() || token.is_none() {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
                let _ = child.kill();
                panic!("seckill printed no `listening on` and `admin token:` lines in 30 s");
            };
            if let Some(a) = line.strip_prefix("listening on ") {
                addr = Some(a.trim().to_string());
            } else if let Some(t) = line.split("admin token: ").nth(1) {
                token = Some(t.trim().to_string());
            }
        }
        // Both are set: the loop above ends only then.
        let target = Target::parse(&addr.expect("set")).expect("listening line is an http URL");
        Server { child, dir, target, admin_token: token.expect("set") }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn setup_gives_every_user_a_session_and_a_path() {
    let server = Server::start();
    let mut admin = Admin::new(&server.target, &server.admin_token).unwrap();
    let item = ItemSpec::open_now(3, 500, 2);
    admin.put_item(&item).unwrap();
    let stats = admin.stats(3).unwrap();
    assert_eq!((stats.stock_total, stats.stock_left, stats.ordered()), (500, 500, 0));

    // 250 users in chunks of 100: three bulk calls, users in order.
    let users = admin.bulk_users_in_chunks("t", 250, PASSWORD, 100).unwrap();
    assert_eq!(users.len(), 250);
    assert!(users.windows(2).all(|w| w[0].id < w[1].id), "ids in creation order");
    assert_eq!(users.iter().map(|u| &u.token).collect::<HashSet<_>>().len(), 250, "one session each");

    let buyers = setup::open_paths(&server.target, &server.admin_token, 3, &users, 7).unwrap();
    assert_eq!(buyers.iter().map(|b| &b.user).collect::<Vec<_>>(), users.iter().collect::<Vec<_>>());
    assert_eq!(buyers.iter().map(|b| &b.path).collect::<HashSet<_>>().len(), 250, "one path each");

    // The names are taken now: the same prefix again is refused as a whole.
    let again = admin.bulk_users_in_chunks("t", 1, PASSWORD, 100).unwrap_err();
    assert!(again.to_string().contains("409"), "{again}");
    // A wrong admin token is refused.
    let mut intruder = Admin::new(&server.target, "not-the-token").unwrap();
    assert!(intruder.put_item(&item).unwrap_err().to_string().contains("401"));
}

#[test]
fn metrics_are_read() {
    let server = Server::start();
    let mut client = seckill_bench::client::Client::new(&server.target).unwrap();
    let samples = metrics::scrape(&mut client, &["requests_total"]).unwrap();
    assert!(!samples.is_empty(), "seckill_requests_total is exposed");
    assert!(samples.keys().all(|k| k.contains("requests_total")));
}

#[test]
fn buy_alternates_with_healthz_and_counts_statuses() {
    let server = Server::start();
    let mut config = BuyConfig::new(server.target.clone(), server.admin_token.clone());
    config.item_id = 9;
    config.stock = 1;
    config.per_user_limit = 1;
    config.users = 300;
    config.prebuy = 2;
    config.setup_connections = 4;
    config.alternate_healthz = 2;
    config.run.connections = 4;
    config.run.duration = Duration::from_millis(400);
    config.run.warmup = Duration::from_millis(100);
    let report = run_buy(&config).unwrap();
    assert_eq!((report.buy.len(), report.healthz.len(), report.pairs.len()), (2, 2, 2));
    // The first pre-buy takes the only unit; the second finds it sold out.
    let prebuy: Vec<(&str, u64)> = report.prebuy.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(prebuy, vec![("200", 1), ("410", 1)]);
    for run in &report.buy {
        assert!(run.requests > 0, "{}", run.table());
        assert_eq!(run.status.values().sum::<u64>(), run.requests, "every answer counted by status");
        assert_eq!(run.errors.total(), 0, "{}", run.table());
        // Sold out: 410, and 409 for the user who holds the unit.
        assert!(run.status.keys().all(|s| s == "410" || s == "409"), "{:?}", run.status);
        assert_eq!(run.params.method, "POST");
    }
    for run in &report.healthz {
        assert_eq!(run.status.get("200"), Some(&run.requests), "{}", run.table());
    }
    let measured: u64 = report.buy.iter().map(|s| s.requests).sum();
    assert!(report.commits.status_all.values().sum::<u64>() >= measured, "warm-ups counted too");
    assert!(report.ratio_median.is_some_and(|r| r > 0.0));
    // Every 200 the bench saw is an order in the store.
    assert!(report.commits.acknowledged <= report.commits.orders);
    assert_eq!(report.commits.orders, 0, "the unit was sold before the runs");
    let table = report.table();
    for needle in ["buy / healthz req/s: median", "/healthz", "fsyncs", "pre-buys"] {
        assert!(table.contains(needle), "{needle:?} in\n{table}");
    }
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["buy"][0]["params"]["url"], format!("http://{}/api/seckill/{{path}}", server.target.authority));
    assert!(json["commits"]["status_all"].is_object());
}

#[test]
fn buy_success_path_counts_orders_and_commits() {
    let server = Server::start();
    let mut config = BuyConfig::new(server.target.clone(), server.admin_token.clone());
    config.users = 200;
    config.stock = 1_000_000;
    config.per_user_limit = 100_000;
    config.setup_connections = 4;
    config.run.connections = 8;
    config.run.duration = Duration::from_millis(500);
    config.run.warmup = Duration::from_millis(100);
    let report = run_buy(&config).unwrap();
    let run = &report.buy[0];
    assert_eq!(run.status.get("200"), Some(&run.requests), "{}", report.table());
    let c = &report.commits;
    assert!(c.acknowledged >= run.requests && c.acknowledged > 0);
    assert!(c.acknowledged <= c.orders, "every 200 is an order in the store: {c:?}");
    // In flight at the end of the last run: written, never answered to us.
    assert!(c.orders - c.acknowledged <= config.run.connections as u64, "{c:?}");
    assert!(c.series.is_some(), "/metrics has a batch counter: {:?}", c.metrics_delta);
    let per_1000 = c.commits_per_1000_orders.expect("orders were written");
    assert!(per_1000 > 0.0 && per_1000 <= 1000.0, "one commit holds one order or more: {per_1000}");
    assert!(report.healthz.is_empty() && report.ratio_median.is_none(), "no /healthz runs unless asked");
}
