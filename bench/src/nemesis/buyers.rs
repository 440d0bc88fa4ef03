//! The nemesis's buyers: people, not a load test. Each buy carries a
//! request id and is retried with it, as the contract tells clients, while
//! the answer is of unknown outcome (a 5xx, a lost connection, a timeout);
//! buys are spread over the sale so that every fault meets some. Every
//! outcome goes on its user's account as the promise check counts it.

use crate::client::{Client, Reply};
use crate::promises::{Observations, RefusedBuy, Replay, UserObservations};
use crate::setup::{Buyer, buy_body_with_request_id};
use crate::target::Target;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How one sale's buyers behave.
#[derive(Debug, Clone, Copy)]
pub struct BuyerSettings {
    /// Buying connections (one thread each) through the balancer.
    pub connections: usize,
    /// Buys per user, each with its own request id (the first may be
    /// refused by the per-user limit only if an earlier one succeeded).
    pub buys_per_user: usize,
    /// The span the buys are spread over.
    pub buying: Duration,
    /// Longest wait for one answer before the attempt counts as unanswered.
    pub request_timeout: Duration,
    /// Attempts of one buy (the first and its retries).
    pub attempts_max: usize,
    /// Wait between attempts.
    pub retry_backoff: Duration,
}

/// How a buy ended, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200, with the order id.
    Acknowledged(String),
    /// Another final answer (409 `limit_reached`, 410 `sold_out`, …).
    Refused(u16),
    /// Every attempt answered 5xx or lost: the order may exist.
    Unknown,
}

/// One buy: who, with which request id, how it ended.
#[derive(Debug, Clone)]
pub struct BuyRecord {
    /// The buyer's index in the sale's list.
    pub buyer: usize,
    pub request_id: String,
    pub outcome: Outcome,
    /// Whether an attempt before the last was of unknown outcome (a 5xx) or
    /// got no answer: that attempt may have made the order the last one
    /// refuses, so the buy counts as unknown too.
    pub earlier_unknown: bool,
    pub earlier_unanswered: bool,
    pub attempts: usize,
    /// Attempts answered 5xx, and attempts that got no answer.
    pub answers_5xx: usize,
    pub unanswered: usize,
}

#[derive(Deserialize)]
struct Success {
    order_id: String,
}

/// Runs every buyer's buys against `target` and returns them, in no order.
pub fn buy_all(
    target: &Target,
    item_id: u64,
    sale: usize,
    buyers: &[Buyer],
    settings: BuyerSettings,
) -> Vec<BuyRecord> {
    let connections = settings.connections.clamp(1, buyers.len().max(1));
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|thread| {
                scope.spawn(move || buy_slice(target, item_id, sale, buyers, settings, thread, connections, started))
            })
            .collect();
        // A panic in a buyer thread is a bug: pass it on.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

/// The buys of buyers `thread`, `thread + stride`, …: every user's first buy,
/// then every user's second, each due at its share of the buying span.
#[allow(clippy::too_many_arguments)] // one thread's slice of one sale; a struct would only rename them
fn buy_slice(
    target: &Target,
    item_id: u64,
    sale: usize,
    buyers: &[Buyer],
    settings: BuyerSettings,
    thread: usize,
    stride: usize,
    started: Instant,
) -> Vec<BuyRecord> {
    let mine: Vec<usize> = (thread..buyers.len()).step_by(stride).collect();
    let total = mine.len() * settings.buys_per_user;
    let interval = settings.buying / total.max(1) as u32;
    let mut records = Vec::with_capacity(total);
    let Ok(mut client) = Client::with_read_timeout(target, settings.request_timeout) else {
        return records;
    };
    for round in 0..settings.buys_per_user {
        for (k, &buyer) in mine.iter().enumerate() {
            let due = started + interval * (round * mine.len() + k) as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let request_id = format!("s{sale}-u{}-b{round}", buyers[buyer].user.id);
            records.push(buy(&mut client, item_id, buyer, &buyers[buyer], request_id, settings));
        }
    }
    records
}

fn buy(
    client: &mut Client,
    item_id: u64,
    index: usize,
    buyer: &Buyer,
    request_id: String,
    settings: BuyerSettings,
) -> BuyRecord {
    let url = format!("/api/seckill/{}", buyer.path);
    let body = buy_body_with_request_id(item_id, &request_id);
    let mut record = BuyRecord {
        buyer: index,
        request_id,
        outcome: Outcome::Unknown,
        earlier_unknown: false,
        earlier_unanswered: false,
        attempts: 0,
        answers_5xx: 0,
        unanswered: 0,
    };
    for _ in 0..settings.attempts_max.max(1) {
        record.attempts += 1;
        match client.request("POST", &url, Some(&buyer.user.token), Some(&body)) {
            Ok(reply) if reply.status == 200 => {
                record.outcome = acknowledged(&reply);
                return record;
            }
            // 429: the per-user rate limit; no order was made, try again.
            Ok(reply) if reply.status == 429 => {}
            Ok(reply) if reply.status >= 500 => {
                record.earlier_unknown = true;
                record.answers_5xx += 1;
            }
            Ok(reply) => {
                record.outcome = Outcome::Refused(reply.status);
                return record;
            }
            Err(_) => {
                record.earlier_unanswered = true;
                record.unanswered += 1;
            }
        }
        std::thread::sleep(settings.retry_backoff);
    }
    record
}

/// A 200 whose body names no order is of unknown outcome to the checker.
fn acknowledged(reply: &Reply) -> Outcome {
    match serde_json::from_slice::<Success>(&reply.body) {
        Ok(success) => Outcome::Acknowledged(success.order_id),
        Err(_) => Outcome::Unknown,
    }
}

/// The buyers' records as the promise check counts them.
pub fn observe(records: &[BuyRecord], buyers: &[Buyer]) -> Observations {
    let mut users: BTreeMap<u64, UserObservations> =
        buyers.iter().map(|b| (b.user.id, UserObservations::default())).collect();
    for record in records {
        let seen = users.entry(buyers[record.buyer].user.id).or_default();
        seen.requests += 1;
        match &record.outcome {
            Outcome::Acknowledged(id) => {
                seen.acknowledged += 1;
                seen.order_ids.push(id.clone());
                continue;
            }
            Outcome::Refused(410) => seen.sold_out += 1,
            Outcome::Refused(_) => {}
            Outcome::Unknown if !record.earlier_unknown && record.earlier_unanswered => seen.unanswered += 1,
            Outcome::Unknown => seen.unknown += 1,
        }
        // A refusal after an attempt of unknown outcome does not say that
        // attempt made no order.
        if matches!(record.outcome, Outcome::Refused(_)) {
            if record.earlier_unknown {
                seen.unknown += 1;
            } else if record.earlier_unanswered {
                seen.unanswered += 1;
            }
        }
    }
    Observations { quantity: 1, users }
}

/// The buys whose last answer refused them, for the promise check: none of
/// their request ids may have made an order.
pub fn refused(records: &[BuyRecord], buyers: &[Buyer]) -> Vec<RefusedBuy> {
    records
        .iter()
        .filter_map(|record| match record.outcome {
            Outcome::Refused(status) => Some(RefusedBuy {
                user_id: buyers[record.buyer].user.id,
                request_id: record.request_id.clone(),
                status,
            }),
            _ => None,
        })
        .collect()
}

/// Sends every acknowledged buy again with its request id (promise 5: the
/// same order comes back), a few attempts each while the answer is a 5xx.
pub fn replay_acknowledged(
    target: &Target,
    item_id: u64,
    records: &[BuyRecord],
    buyers: &[Buyer],
    settings: BuyerSettings,
) -> Vec<Replay> {
    let Ok(mut client) = Client::with_read_timeout(target, settings.request_timeout) else {
        return Vec::new();
    };
    let mut replays = Vec::new();
    for record in records {
        let Outcome::Acknowledged(order_id) = &record.outcome else { continue };
        let buyer = &buyers[record.buyer];
        let url = format!("/api/seckill/{}", buyer.path);
        let body = buy_body_with_request_id(item_id, &record.request_id);
        let mut replay = Replay {
            user_id: buyer.user.id,
            request_id: record.request_id.clone(),
            order_id: order_id.clone(),
            status: 503,
            replayed_order_id: None,
        };
        for _ in 0..settings.attempts_max.max(1) {
            if let Ok(reply) = client.request("POST", &url, Some(&buyer.user.token), Some(&body)) {
                replay.status = reply.status;
                replay.replayed_order_id = match acknowledged(&reply) {
                    Outcome::Acknowledged(id) if reply.status == 200 => Some(id),
                    _ => None,
                };
                if !matches!(reply.status, 429 | 502..=504) {
                    break;
                }
            }
            std::thread::sleep(settings.retry_backoff);
        }
        replays.push(replay);
    }
    replays
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::User;

    fn buyers(n: u64) -> Vec<Buyer> {
        (0..n).map(|id| Buyer { user: User { id, token: format!("t{id}") }, path: format!("p{id}") }).collect()
    }

    fn record(buyer: usize, outcome: Outcome, earlier_unknown: bool, earlier_unanswered: bool) -> BuyRecord {
        BuyRecord {
            buyer,
            request_id: format!("r{buyer}"),
            outcome,
            earlier_unknown,
            earlier_unanswered,
            attempts: 1,
            answers_5xx: 0,
            unanswered: 0,
        }
    }

    #[test]
    fn outcomes_go_on_their_users_account() {
        let buyers = buyers(4);
        let records = [
            record(0, Outcome::Acknowledged("10".into()), true, false),
            record(0, Outcome::Refused(409), false, false),
            record(1, Outcome::Refused(410), true, false),
            record(2, Outcome::Unknown, false, true),
            record(3, Outcome::Unknown, true, true),
        ];
        let seen = observe(&records, &buyers);
        let user = |id: u64| seen.users[&id].clone();
        assert_eq!((user(0).requests, user(0).acknowledged, user(0).order_ids.clone()), (2, 1, vec!["10".into()]));
        assert_eq!((user(0).unknown, user(0).unanswered), (0, 0), "a 200 settles its earlier attempts");
        assert_eq!((user(1).sold_out, user(1).unknown), (1, 1), "a 410 after a 503 may hide an order");
        assert_eq!((user(2).unknown, user(2).unanswered), (0, 1));
        assert_eq!((user(3).unknown, user(3).unanswered), (1, 0));
    }
}
