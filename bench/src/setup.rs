//! Setting a sale up through seckill's admin and sale API, before a load run:
//! the item, users with sessions, and each user's captcha-gated sale path.
//!
//! Everything here speaks the public contract (`/admin/*` with the admin
//! bearer token, `/api/*` with each user's session token), so the bench still
//! depends on no seckill crate. The per-user steps run over several keep-alive
//! connections at once, one thread each: 10,000 users take a few seconds.

use crate::client::{Client, ClientError, Reply};
use crate::target::Target;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The most users one `POST /admin/users/bulk` may create (the server's cap).
pub const BULK_CHUNK_MAX: usize = 100_000;
/// Upper bound on the setup's parallel connections (one thread each).
pub const SETUP_CONNECTIONS_MAX: usize = 256;

/// Why setting the sale up failed.
#[derive(Debug)]
pub enum SetupError {
    Client {
        what: String,
        error: ClientError,
    },
    /// The server answered, but not with the expected status.
    Status {
        what: String,
        status: u16,
        body: String,
    },
    /// The answer's JSON did not have the expected shape.
    Json {
        what: String,
        error: String,
    },
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Client { what, error } => write!(f, "{what}: {error}"),
            SetupError::Status { what, status, body } => write!(f, "{what}: HTTP {status} {body}"),
            SetupError::Json { what, error } => write!(f, "{what}: unexpected answer: {error}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// The item to put on sale.
#[derive(Debug, Clone)]
pub struct ItemSpec {
    pub id: u64,
    pub stock: u64,
    pub per_user_limit: u32,
    pub start_ms: u64,
    pub end_ms: u64,
}

impl ItemSpec {
    /// An item whose sale opened a second ago and closes in an hour.
    pub fn open_now(id: u64, stock: u64, per_user_limit: u32) -> ItemSpec {
        let now = now_ms();
        ItemSpec { id, stock, per_user_limit, start_ms: now - 1_000, end_ms: now + 3_600_000 }
    }
}

/// A user with a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub token: String,
}

/// A user ready to buy: their session and their sale path for the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    pub user: User,
    pub path: String,
}

/// `GET /admin/items/{id}/stats`, counted in units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct ItemStats {
    pub stock_total: u64,
    pub stock_left: u64,
    pub pending_payment: u64,
    pub paid: u64,
    pub cancelled: u64,
    pub expired: u64,
}

impl ItemStats {
    /// Units that ever went into an order, whatever became of it.
    pub fn ordered(&self) -> u64 {
        self.pending_payment + self.paid + self.cancelled + self.expired
    }
}

/// ORDER as `GET /admin/items/{id}/orders` lists it (the fields the checks need).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct StoredOrder {
    pub id: String,
    pub user_id: u64,
    pub quantity: u64,
    /// `pending_payment`, `paid`, `cancelled` or `expired`.
    pub status: String,
    /// When an unpaid order expires, on the server's clock (ms since 1970).
    #[serde(default)]
    pub pay_deadline_ms: u64,
    /// The request id of the buy that made it (null without one, or from a
    /// server that does not list it).
    #[serde(default)]
    pub request_id: Option<String>,
}

impl StoredOrder {
    /// Whether its units are sold (pending payment or paid), not returned.
    pub fn is_live(&self) -> bool {
        self.status == "pending_payment" || self.status == "paid"
    }
}

/// The admin listing's page size (the server's maximum).
const ORDERS_PAGE_MAX: usize = 1000;

/// The admin side of the API, on one keep-alive connection.
#[derive(Debug)]
pub struct Admin {
    client: Client,
    token: String,
}

impl Admin {
    pub fn new(target: &Target, token: &str) -> Result<Admin, SetupError> {
        let client = Client::new(target).map_err(|error| SetupError::Client { what: "admin".into(), error })?;
        Ok(Admin { client, token: token.to_string() })
    }

    /// `PUT /admin/items/{id}`: creates or replaces the item.
    pub fn put_item(&mut self, item: &ItemSpec) -> Result<(), SetupError> {
        let body = serde_json::json!({
            "name": format!("bench item {}", item.id),
            "description": "created by seckill-bench",
            "price_cents": 100,
            "stock": item.stock,
            "per_user_limit": item.per_user_limit,
            "start_ms": item.start_ms,
            "end_ms": item.end_ms,
        });
        let path = format!("/admin/items/{}", item.id);
        let what = format!("PUT {path}");
        let reply = call(&mut self.client, "PUT", &path, Some(&self.token), Some(&body), &what)?;
        expect(&reply, 200, &what)
    }

    /// `GET /admin/items/{id}/stats`.
    pub fn stats(&mut self, item_id: u64) -> Result<ItemStats, SetupError> {
        let path = format!("/admin/items/{item_id}/stats");
        let reply = call(&mut self.client, "GET", &path, Some(&self.token), None, &path)?;
        expect(&reply, 200, &path)?;
        json(&reply, &path)
    }

    /// `GET /admin/items/{id}/orders`, every page (oldest first), at most
    /// `orders_max` orders: more is an error rather than unbounded memory.
    pub fn orders(&mut self, item_id: u64, orders_max: usize) -> Result<Vec<StoredOrder>, SetupError> {
        #[derive(Deserialize)]
        struct Page {
            orders: Vec<StoredOrder>,
            next: Option<String>,
        }
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let path = format!("/admin/items/{item_id}/orders?limit={ORDERS_PAGE_MAX}&after={after}");
            let reply = call(&mut self.client, "GET", &path, Some(&self.token), None, &path)?;
            expect(&reply, 200, &path)?;
            let page: Page = json(&reply, &path)?;
            out.extend(page.orders);
            if out.len() > orders_max {
                let error = format!("more than {orders_max} orders");
                return Err(SetupError::Json { what: path, error });
            }
            match page.next {
                Some(next) => after = next,
                None => return Ok(out),
            }
        }
    }

    /// `GET /api/items/{id}`: the item's `start_ms` minus the server's clock,
    /// in milliseconds (negative once the sale has opened).
    pub fn ms_until_start(&mut self, item_id: u64) -> Result<i64, SetupError> {
        #[derive(Deserialize)]
        struct Item {
            start_ms: i64,
            server_time_ms: i64,
        }
        let path = format!("/api/items/{item_id}");
        let reply = call(&mut self.client, "GET", &path, None, None, &path)?;
        expect(&reply, 200, &path)?;
        let item: Item = json(&reply, &path)?;
        Ok(item.start_ms - item.server_time_ms)
    }

    /// `POST /admin/users/bulk` with sessions, in chunks of at most
    /// [`BULK_CHUNK_MAX`]: users `{prefix}{chunk}_{i}`, in order.
    pub fn bulk_users(&mut self, prefix: &str, count: usize, password: &str) -> Result<Vec<User>, SetupError> {
        self.bulk_users_in_chunks(prefix, count, password, BULK_CHUNK_MAX)
    }

    /// [`Admin::bulk_users`] with chunks of `chunk_max` users (at most [`BULK_CHUNK_MAX`]).
    pub fn bulk_users_in_chunks(
        &mut self,
        prefix: &str,
        count: usize,
        password: &str,
        chunk_max: usize,
    ) -> Result<Vec<User>, SetupError> {
        let chunk_max = chunk_max.clamp(1, BULK_CHUNK_MAX);
        #[derive(Deserialize)]
        struct Bulk {
            tokens: Vec<String>,
            user_ids: Vec<u64>,
        }
        let mut users = Vec::with_capacity(count);
        for (chunk, first) in (0..count).step_by(chunk_max).enumerate() {
            let n = (count - first).min(chunk_max);
            let body = serde_json::json!({
                "prefix": format!("{prefix}{chunk}_"),
                "count": n,
                "password": password,
                "sessions": true,
            });
            let what = "POST /admin/users/bulk";
            let reply = call(&mut self.client, "POST", "/admin/users/bulk", Some(&self.token), Some(&body), what)?;
            expect(&reply, 200, what)?;
            let bulk: Bulk = json(&reply, what)?;
            if bulk.tokens.len() != n || bulk.user_ids.len() != n {
                let error = format!("{n} users asked, {} tokens and {} ids", bulk.tokens.len(), bulk.user_ids.len());
                return Err(SetupError::Json { what: what.into(), error });
            }
            users.extend(bulk.user_ids.into_iter().zip(bulk.tokens).map(|(id, token)| User { id, token }));
        }
        Ok(users)
    }
}

/// For each user, over `connections` connections in parallel: draws a captcha,
/// reads its answer through the admin hook, and trades it for a sale path.
/// The buyers come back in the order of `users`.
pub fn open_paths(
    target: &Target,
    admin_token: &str,
    item_id: u64,
    users: &[User],
    connections: usize,
) -> Result<Vec<Buyer>, SetupError> {
    let answered = draw_captchas(target, admin_token, item_id, users, connections)?;
    trade_for_paths(target, item_id, &answered, connections)
}

/// What `GET /api/items/{id}/result` said to a user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct ResultSeen {
    /// `success`, `pending`, `sold_out` or `none`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

/// Every user's `/result` for the item, in parallel, in the order of `users`.
pub fn results(
    target: &Target,
    item_id: u64,
    users: &[User],
    connections: usize,
) -> Result<Vec<ResultSeen>, SetupError> {
    let url = format!("/api/items/{item_id}/result");
    in_parallel(target, users, connections, "results", |client, user| {
        let reply = call(client, "GET", &url, Some(&user.token), None, &url)?;
        expect(&reply, 200, &url)?;
        json(&reply, &url)
    })
}

/// A user holding the answer to their captcha for an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub user: User,
    pub answer: String,
}

/// For each user, in parallel: draws a captcha and reads its answer through
/// the admin hook. A captcha can be drawn for an item whose sale has not
/// started, so a flash sale does this before the start.
pub fn draw_captchas(
    target: &Target,
    admin_token: &str,
    item_id: u64,
    users: &[User],
    connections: usize,
) -> Result<Vec<Answered>, SetupError> {
    #[derive(Deserialize)]
    struct Answer {
        answer: String,
    }
    let captcha = format!("/api/items/{item_id}/captcha");
    in_parallel(target, users, connections, "captcha setup", |client, user| {
        let reply = call(client, "GET", &captcha, Some(&user.token), None, &captcha)?;
        expect(&reply, 200, &captcha)?;
        let what = format!("/admin/items/{item_id}/captcha-answer?user_id={}", user.id);
        let reply = call(client, "GET", &what, Some(admin_token), None, &what)?;
        expect(&reply, 200, &what)?;
        let answer: Answer = json(&reply, &what)?;
        Ok(Answered { user: user.clone(), answer: answer.answer })
    })
}

/// For each answered user, in parallel: trades the answer for a sale path
/// (the server checks the sale window first: this works only once it opened).
pub fn trade_for_paths(
    target: &Target,
    item_id: u64,
    answered: &[Answered],
    connections: usize,
) -> Result<Vec<Buyer>, SetupError> {
    #[derive(Deserialize)]
    struct PathReply {
        path: String,
    }
    let path_url = format!("/api/items/{item_id}/path");
    in_parallel(target, answered, connections, "sale path setup", |client, a| {
        let body = serde_json::json!({ "captcha": a.answer });
        let reply = call(client, "POST", &path_url, Some(&a.user.token), Some(&body), &path_url)?;
        expect(&reply, 200, &path_url)?;
        let path: PathReply = json(&reply, &path_url)?;
        Ok(Buyer { user: a.user.clone(), path: path.path })
    })
}

/// `step` for every item, over `connections` keep-alive connections (one
/// thread each, contiguous slices); the results come back in input order.
fn in_parallel<T: Sync, R: Send>(
    target: &Target,
    items: &[T],
    connections: usize,
    what: &str,
    step: impl Fn(&mut Client, &T) -> Result<R, SetupError> + Sync,
) -> Result<Vec<R>, SetupError> {
    let slices = split(items, connections);
    std::thread::scope(|scope| {
        let handles: Vec<_> = slices
            .iter()
            .map(|slice| {
                let step = &step;
                scope.spawn(move || -> Result<Vec<R>, SetupError> {
                    let mut client =
                        Client::new(target).map_err(|error| SetupError::Client { what: what.into(), error })?;
                    slice.iter().map(|item| step(&mut client, item)).collect()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for handle in handles {
            // A panic in a setup thread is a bug: pass it on.
            out.extend(handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?);
        }
        Ok(out)
    })
}

/// `POST /api/seckill/{path}` once for each buyer, over `connections`
/// connections in parallel; returns the count of each status. Used to put an
/// item into the state a run should measure (sold out, limit reached).
pub fn buy_once_each(
    target: &Target,
    item_id: u64,
    quantity: Option<u32>,
    buyers: &[Buyer],
    connections: usize,
) -> Result<BTreeMap<u16, u64>, SetupError> {
    let body = buy_body(item_id, quantity);
    let slices = split(buyers, connections);
    std::thread::scope(|scope| {
        let handles: Vec<_> = slices
            .iter()
            .map(|slice| {
                let body = &body;
                scope.spawn(move || -> Result<BTreeMap<u16, u64>, SetupError> {
                    let mut client =
                        Client::new(target).map_err(|error| SetupError::Client { what: "buy".into(), error })?;
                    let mut counts = BTreeMap::new();
                    for buyer in *slice {
                        let url = format!("/api/seckill/{}", buyer.path);
                        let reply = client
                            .request("POST", &url, Some(&buyer.user.token), Some(body))
                            .map_err(|error| SetupError::Client { what: "POST /api/seckill/{path}".into(), error })?;
                        *counts.entry(reply.status).or_insert(0) += 1;
                    }
                    Ok(counts)
                })
            })
            .collect();
        let mut counts = BTreeMap::new();
        for handle in handles {
            // A panic in a setup thread is a bug: pass it on.
            for (status, n) in handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))? {
                *counts.entry(status).or_insert(0) += n;
            }
        }
        Ok(counts)
    })
}

/// The JSON body of a buy: `{"item_id":ID}` and the quantity when given.
pub fn buy_body(item_id: u64, quantity: Option<u32>) -> Vec<u8> {
    match quantity {
        Some(q) => format!("{{\"item_id\":{item_id},\"quantity\":{q}}}").into_bytes(),
        None => format!("{{\"item_id\":{item_id}}}").into_bytes(),
    }
}

/// The JSON body of a buy of one unit with a request id (retries with it
/// make one order and get one answer). The id is the caller's own ASCII.
pub fn buy_body_with_request_id(item_id: u64, request_id: &str) -> Vec<u8> {
    format!("{{\"item_id\":{item_id},\"request_id\":\"{request_id}\"}}").into_bytes()
}

/// A user-name prefix unlikely to be taken on a server that ran the bench
/// before: `b` and the time in milliseconds, in hexadecimal (12 characters).
pub fn fresh_prefix() -> String {
    format!("b{:x}", now_ms())
}

pub fn now_ms() -> u64 {
    // The clock is after 1970 on any machine that runs this.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `slices` contiguous parts of `items`, as even as possible, none empty.
fn split<T>(items: &[T], slices: usize) -> Vec<&[T]> {
    let slices = slices.clamp(1, items.len().max(1));
    let (base, extra) = (items.len() / slices, items.len() % slices);
    let mut out = Vec::with_capacity(slices);
    let mut start = 0;
    for i in 0..slices {
        let len = base + usize::from(i < extra);
        out.push(&items[start..start + len]);
        start += len;
    }
    out
}

fn call(
    client: &mut Client,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
    what: &str,
) -> Result<Reply, SetupError> {
    let body = body.map(serde_json::Value::to_string);
    client
        .request(method, path, bearer, body.as_deref().map(str::as_bytes))
        .map_err(|error| SetupError::Client { what: what.to_string(), error })
}

fn expect(reply: &Reply, status: u16, what: &str) -> Result<(), SetupError> {
    if reply.status == status {
        return Ok(());
    }
    let mut body = reply.text();
    body.truncate(300);
    Err(SetupError::Status { what: what.to_string(), status: reply.status, body })
}

fn json<T: DeserializeOwned>(reply: &Reply, what: &str) -> Result<T, SetupError> {
    serde_json::from_slice(&reply.body).map_err(|e| SetupError::Json { what: what.to_string(), error: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_evenly_and_in_order() {
        let items: Vec<u32> = (0..10).collect();
        let parts = split(&items, 3);
        assert_eq!(parts, vec![&items[0..4], &items[4..7], &items[7..10]]);
        assert_eq!(split(&items, 50).len(), 10, "no empty slice");
        assert_eq!(split::<u32>(&[], 4), vec![&[] as &[u32]]);
    }

    #[test]
    fn buy_bodies() {
        assert_eq!(buy_body(7, None), br#"{"item_id":7}"#);
        assert_eq!(buy_body(7, Some(2)), br#"{"item_id":7,"quantity":2}"#);
    }

    #[test]
    fn prefixes_leave_room_for_the_chunk_and_index() {
        // Usernames are at most 32 characters: prefix, chunk, `_`, index.
        assert!(fresh_prefix().len() + "9_".len() + "99999".len() <= 32);
    }
}
