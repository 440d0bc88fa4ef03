//! Issue 6: MariaDB stopped for 5 s during a sale. Real processes: a
//! MariaDB of the test's own (its own data directory and a free port, never
//! the shared one), the seckill binary on it, and buyers that retry a 503
//! with the same request id, as the contract tells clients to. MariaDB is
//! killed with SIGKILL mid-sale and started again on the same data 5 s later.
//!
//! Asserted: while it is down, buys are answered 503 (the confirm timeout
//! is 1 s here; a buyer's read gives up, failing the test, only after 10 s,
//! so no latency is asserted) and /readyz turns 503; the
//! sale resumes by itself once it is back; every 200 is in MySQL afterwards;
//! each buyer has exactly one order (a retry never makes a second one); and
//! no more units are sold than exist. No timing is asserted.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sale::{Shop, User, fast, poll_until};
use common::{Conn, Server, TempDir};
use serde_json::{Value, json};

const ITEM: u64 = 1;
const STOCK: u64 = 1_000;
const BUYERS: usize = 600;
const CLIENTS: usize = 4;
/// How long MariaDB stays down.
const OUTAGE: Duration = Duration::from_secs(5);
/// Generous bounds for things that must happen eventually (not timings).
const EVENTUALLY: Duration = Duration::from_secs(60);

/// A MariaDB server of this test's own, killed on drop.
struct Mariadb {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mariadb {
    /// A fresh data directory (`mariadb-install-db`) and a server on a free port.
    fn install(dir: &Path) -> Mariadb {
        let data = dir.join("mysql");
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db (tests/services installs MariaDB)");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut db = Mariadb { dir: dir.to_path_buf(), port, child: None };
        db.start();
        db
    }

    /// Starts mariadbd on the data directory and waits until it accepts
    /// connections. Durable settings, as the contract requires.
    fn start(&mut self) {
        let dir = &self.dir;
        let child = Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--skip-grant-tables", "--bind-address=127.0.0.1"])
            .args(["--innodb-flush-log-at-trx-commit=1", "--innodb-buffer-pool-size=64M"])
            .arg(format!("--datadir={}", dir.join("mysql").display()))
            .arg(format!("--socket={}", dir.join("mysql.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mysql.pid").display()))
            .arg(format!("--log-error={}", dir.join("mysql.err").display()))
            .arg(format!("--port={}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd (tests/services installs MariaDB)");
        self.child = Some(child);
        let up = poll_until(EVENTUALLY, || std::net::TcpStream::connect(("127.0.0.1", self.port)).ok());
        assert!(up.is_some(), "mariadbd did not listen on {}: {}", self.port, self.log());
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/seckill_outage", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mysql.err")).unwrap_or_default()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One buyer's answers, in order.
#[derive(Debug, Default)]
struct Answers {
    statuses: Vec<u16>,
    /// The order id of the final 200, if any.
    order_id: Option<String>,
}

/// Buys for `user` until the answer is not 503, retrying with the same
/// request id (a client's backoff of 20 ms between attempts).
fn buy_until_decided(conn: &mut Conn, user: &User, path: &str, stop: &AtomicBool) -> Answers {
    let body = json!({ "item_id": ITEM, "request_id": format!("buy-{}", user.id) });
    let mut answers = Answers::default();
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let resp = Shop::buy_on(conn, user, path, &body);
        answers.statuses.push(resp.status);
        if resp.status != 503 {
            if resp.status == 200 {
                answers.order_id = resp.json()["order_id"].as_str().map(str::to_owned);
            }
            return answers;
        }
        let code = resp.json()["code"].as_str().unwrap_or_default().to_owned();
        assert!(code == "unavailable" || code == "overloaded", "503 with code {code:?}");
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return answers;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mariadb_killed_for_5s_during_a_sale() {
    let dir = TempDir::new("mysql-outage");
    let mut db = Mariadb::install(dir.path());
    let server = Server::start_with(
        fast()
            .arg("--store")
            .arg(db.url())
            .set("sale.path_ttl_ms", 600_000)
            .set("sale.confirm_timeout_ms", 1_000)
            .set("store.command_timeout_ms", 2_000)
            // Two lanes: a batch the outage cuts may be half written (one
            // lane committed), which the writer must resolve like a lost COMMIT.
            .set("store.commit_lanes", 2),
    );
    let shop = Shop::new(&server);
    shop.put_item(ITEM, STOCK, 1);
    let users = shop.users("outage", BUYERS);
    let mut conn = server.connect();
    let buyers: Vec<(User, String)> = users
        .into_iter()
        .map(|user| {
            let path = shop.path_on(&mut conn, &user, ITEM);
            (user, path)
        })
        .collect();
    let buyers = Arc::new(buyers);

    // Clients buy through the whole outage, each user after the last, paced
    // like people rather than as fast as the loop allows.
    let decided = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<(u64, Answers)>>> = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (buyers, decided, stop, results) = (buyers.clone(), decided.clone(), stop.clone(), results.clone());
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut conn = Conn::connect(addr);
                for (user, path) in buyers.iter().skip(c).step_by(CLIENTS) {
                    let answers = buy_until_decided(&mut conn, user, path, &stop);
                    decided.fetch_add(1, Ordering::Relaxed);
                    results.lock().unwrap().push((user.id, answers));
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();

    // Mid-sale: some buyers have their answer, most do not yet.
    let started = poll_until(EVENTUALLY, || (decided.load(Ordering::Relaxed) >= 40).then_some(()));
    assert!(started.is_some(), "the sale never got going: {}", server.stderr());
    db.kill9();
    let decided_at_kill = decided.load(Ordering::Relaxed);
    let not_ready = poll_until(EVENTUALLY, || (server.get("/readyz").status == 503).then_some(()));
    assert!(not_ready.is_some(), "/readyz stayed 200 with MariaDB down");
    std::thread::sleep(OUTAGE);
    db.start();
    let ready = poll_until(EVENTUALLY, || (server.get("/readyz").status == 200).then_some(()));
    assert!(ready.is_some(), "/readyz never came back: {}", server.stderr());
    for client in clients {
        client.join().expect("a client panicked");
    }
    stop.store(true, Ordering::Relaxed);

    let results = results.lock().unwrap();
    assert_eq!(results.len(), BUYERS);
    assert!(decided_at_kill < BUYERS, "the outage came after the sale");
    let retried = results.iter().filter(|(_, a)| a.statuses.len() > 1).count();
    assert!(retried > 0, "no buy met the outage (no 503 at all)");
    for (user, answers) in results.iter() {
        assert!(answers.statuses.iter().all(|&s| s == 200 || s == 503), "user {user}: {:?}", answers.statuses);
        // The sale resumed: every buyer got an order in the end.
        assert_eq!(answers.statuses.last(), Some(&200), "user {user}: {:?}", answers.statuses);
    }

    // Nothing acknowledged is lost, nothing is sold twice or beyond the stock.
    let orders = shop.item_orders(ITEM);
    let mut acknowledged: Vec<&str> = results.iter().filter_map(|(_, a)| a.order_id.as_deref()).collect();
    acknowledged.sort_unstable();
    let mut stored: Vec<&str> = orders.iter().map(|o| o["id"].as_str().expect("order id")).collect();
    stored.sort_unstable();
    assert_eq!(stored, acknowledged, "the orders in MySQL are exactly the acknowledged ones");
    let mut owners: Vec<u64> = orders.iter().map(|o| o["user_id"].as_u64().expect("user id")).collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), orders.len(), "a buyer has two orders");
    let stats: Value = shop.stats(ITEM);
    assert!(stats["pending_payment"].as_u64().unwrap() + stats["paid"].as_u64().unwrap() <= STOCK, "{stats}");
    assert_eq!(stats["pending_payment"].as_u64(), Some(BUYERS as u64), "{stats}");
    common::sale::assert_conserved(&stats);
    drop(server);
    db.kill9();
}
