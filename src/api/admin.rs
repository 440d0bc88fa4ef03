//! Administration (Bearer admin token): items, their stats, bulk users for
//! load tests, and the captcha-answer hook. Everything runs on workers:
//! these are rare requests that touch the store.

use seckill_protocol::Status;
use serde::Deserialize;

use std::sync::Arc;

use super::orders::{ADMIN_PAGE_MAX, page_json, page_query};
use super::{owned_json_body, query_param};
use crate::api_error::ApiError;
use crate::app::App;
use crate::auth::validate::{password_ok, username_ok};
use crate::auth::{bearer, constant_time_eq};
use crate::cache::CacheEvent;
use crate::catalogue::Item;
use crate::handler::{Call, LoopHandler, Outcome, Pool};
use crate::reply::Reply;
use crate::stock::{Seeding, StockError};
use crate::store::{ItemRecord, ItemStats, STOCK_MAX, StoreError};

/// The most users one bulk call may create.
const BULK_USERS_MAX: u32 = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutItem {
    name: String,
    #[serde(default)]
    description: String,
    price_cents: u64,
    stock: u64,
    per_user_limit: u32,
    start_ms: u64,
    end_ms: u64,
}

#[derive(Deserialize)]
struct BulkUsers {
    prefix: String,
    count: u32,
    password: String,
    #[serde(default)]
    sessions: bool,
}

pub(crate) fn stats_json(stats: &ItemStats) -> serde_json::Value {
    serde_json::json!({
        "item_id": stats.item_id,
        "stock_total": stats.stock_total,
        "stock_left": stats.stock_left,
        "pending_payment": stats.pending_payment,
        "paid": stats.paid,
        "cancelled": stats.cancelled,
        "expired": stats.expired,
    })
}

/// Puts `record` in the catalogue, its stock in the stock table when the
/// item is new or its total changed (the store allows that only while it
/// has no orders), and the live stock left in the item. `seeding`: whether
/// this instance made the change (`Replace` the shared pool) or heard of it
/// (`IfAbsent`: the instance that made it seeded the pool already).
pub(crate) fn publish_item(
    app: &App,
    record: ItemRecord,
    stats: &ItemStats,
    seeding: Seeding,
) -> Result<Arc<Item>, ApiError> {
    let item_id = record.id;
    let before = app.catalogue.get(item_id).map(|item| item.spec.stock_total);
    if before != Some(record.stock_total) || app.sale.stock.slot(item_id).is_none() {
        app.sale.restock(item_id, stats.stock_left, seeding).map_err(|e| match e {
            StockError::TableFull { .. } => ApiError::Overloaded,
            StockError::SourceUnavailable => ApiError::Unavailable,
        })?;
    }
    app.sale.note_store_left(item_id, stats.stock_left);
    // Renders the item's page and the list page anew (issue 11).
    let item = app.catalogue.put(record, app.sale.left(item_id));
    Ok(item)
}

/// Reloads item `item_id` from the store after another instance changed it
/// (or its stock): catalogue, and stock when its total changed.
pub(crate) fn reload_item(app: &App, item_id: u64) -> Result<(), ApiError> {
    let Some(record) = app.store.item(item_id)? else { return Ok(()) };
    let stats = app.store.item_stats(item_id)?;
    publish_item(app, record, &stats, Seeding::IfAbsent).map(drop)
}

/// Tells the other instances that `item_id` changed. The change is durable
/// already; an instance that misses the news resynchronises when its
/// subscription comes back, so a failure here is logged, not answered.
fn announce_item(app: &App, item_id: u64) {
    if let Err(e) = app.cache.announce(&CacheEvent::ItemChanged(item_id)) {
        crate::log!(crate::log::Level::Warn, "item change not announced", item_id = item_id, error = e);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StockDelta {
    delta: i64,
}

/// The bodies of `PUT /admin/items/{id}`, `POST /admin/users/bulk` and
/// `POST /admin/items/{id}/stock`, parsed as those endpoints parse them
/// (for [`super::parse_body`]).
pub(super) fn parse_put_item(body: &[u8]) -> Result<(), ApiError> {
    owned_json_body::<PutItem>(body).map(drop)
}

pub(super) fn parse_bulk_users(body: &[u8]) -> Result<(), ApiError> {
    owned_json_body::<BulkUsers>(body).map(drop)
}

pub(super) fn parse_stock_delta(body: &[u8]) -> Result<(), ApiError> {
    owned_json_body::<StockDelta>(body).map(drop)
}

impl LoopHandler {
    fn require_admin(&self, call: &Call<'_, '_, '_>) -> Result<(), ApiError> {
        let presented = call.request.headers.authorization.and_then(bearer);
        match presented {
            Some(token) if constant_time_eq(token, self.app.admin_token.as_bytes()) => Ok(()),
            _ => Err(ApiError::Unauthenticated),
        }
    }

    pub(crate) fn admin_put_item(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        self.require_admin(call)?;
        let body: PutItem = owned_json_body(call.request.body)?;
        if body.name.trim().is_empty() || body.name.len() > 200 {
            return Err(ApiError::InvalidInput("name: 1 to 200 characters"));
        }
        if body.description.len() > 4000 {
            return Err(ApiError::InvalidInput("description: at most 4000 characters"));
        }
        if body.stock > STOCK_MAX {
            return Err(ApiError::InvalidInput("stock: at most 1000000000000 units"));
        }
        if body.per_user_limit < 1 {
            return Err(ApiError::InvalidInput("per_user_limit must be at least 1"));
        }
        if body.end_ms <= body.start_ms {
            return Err(ApiError::InvalidInput("end_ms must be after start_ms"));
        }
        let record = ItemRecord {
            id: call.matched.id,
            name: body.name,
            description: body.description,
            price_cents: body.price_cents,
            stock_total: body.stock,
            per_user_limit: body.per_user_limit,
            start_ms: body.start_ms,
            end_ms: body.end_ms,
        };
        let now_ms = call.now_ms;
        self.offload(call, Pool::General, move |app| {
            let stored = app.store.put_item(&record)?;
            let stats = app.store.item_stats(stored.id)?;
            let item = publish_item(app, stored, &stats, Seeding::Replace)?;
            announce_item(app, item.spec.id);
            let mut body = Vec::new();
            item.write_json(&mut body, now_ms);
            Ok(Reply::json(Status::OK, body))
        })
    }

    pub(crate) fn admin_stats(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        self.require_admin(call)?;
        let item_id = call.matched.id;
        self.offload(call, Pool::General, move |app| {
            // An id the store cannot hold (above 2^63-1) names no item: 404, not 400.
            let stats = app.store.item_stats(item_id).map_err(|e| match e {
                StoreError::OutOfRange(_) => ApiError::NoSuchItem,
                other => other.into(),
            })?;
            Ok(Reply::json_value(Status::OK, &stats_json(&stats)))
        })
    }

    pub(crate) fn admin_bulk_users(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        self.require_admin(call)?;
        let body: BulkUsers = owned_json_body(call.request.body)?;
        if !(1..=BULK_USERS_MAX).contains(&body.count) {
            return Err(ApiError::InvalidInput("count: 1 to 100000"));
        }
        let first = format!("{}0", body.prefix);
        let last = format!("{}{}", body.prefix, body.count - 1);
        if !username_ok(&first) || !username_ok(&last) {
            return Err(ApiError::InvalidInput("prefix: the usernames PREFIX0.. must be valid usernames"));
        }
        if !password_ok(&body.password) {
            return Err(ApiError::InvalidInput("password: 8 to 128 printable ASCII characters"));
        }
        let now_ms = call.now_ms;
        self.offload(call, Pool::Hashing, move |app| {
            // Users made by one call share one hash (contract §3): 10,000
            // users in seconds, not in 10,000 argon2 runs.
            let hash = app.hasher.hash(&body.password);
            let ids = app.store.create_users_bulk(&body.prefix, body.count, &hash, now_ms)?;
            let mut reply = serde_json::json!({ "created": ids.len() });
            if body.sessions {
                let sessions = super::users::open_sessions(app, &ids, now_ms)?;
                reply["tokens"] = sessions.into_iter().map(|(token, _)| serde_json::Value::String(token)).collect();
                reply["user_ids"] = ids.iter().map(|id| serde_json::Value::from(*id)).collect();
            }
            Ok(Reply::json_value(Status::OK, &reply))
        })
    }

    pub(crate) fn admin_captcha_answer(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        self.require_admin(call)?;
        let user_id: u64 = query_param(call.request.query, "user_id")
            .and_then(|v| v.parse().ok())
            .ok_or(ApiError::InvalidInput("user_id: a user id is required in the query"))?;
        let item_id = call.matched.id;
        let now_ms = call.now_ms;
        self.offload(call, Pool::General, move |app| {
            let answer = app.cache.peek_captcha(user_id, item_id, now_ms).map_err(|_| ApiError::Unavailable)?;
            let answer = answer.ok_or(ApiError::NoCaptcha)?;
            Ok(Reply::json_value(Status::OK, &serde_json::json!({ "answer": answer.to_string() })))
        })
    }
}

impl LoopHandler {
    /// `POST /admin/items/{id}/stock`: more or fewer units. A decrease is
    /// taken off sale here first, so no loop can sell a unit the store is
    /// about to remove; if the store then refuses, the units go back.
    pub(crate) fn admin_stock(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        self.require_admin(call)?;
        let StockDelta { delta } = owned_json_body(call.request.body)?;
        if delta.unsigned_abs() > STOCK_MAX {
            return Err(ApiError::InvalidInput("delta: at most 1000000000000 units either way"));
        }
        let item_id = call.matched.id;
        self.offload(call, Pool::General, move |app| {
            if app.catalogue.get(item_id).is_none() {
                return Err(ApiError::NoSuchItem);
            }
            let units = delta.unsigned_abs();
            if delta < 0 && !app.sale.withdraw_units(item_id, units) {
                return Err(ApiError::StockBelowSold);
            }
            let stats = match app.store.adjust_stock(item_id, delta) {
                Ok(stats) => stats,
                Err(error) => {
                    if delta < 0 {
                        app.sale.add_units(item_id, units).map_err(|_| ApiError::Internal)?;
                    }
                    return Err(error.into());
                }
            };
            if delta > 0 {
                app.sale.add_units(item_id, units).map_err(|_| ApiError::Internal)?;
            }
            let record = app.store.item(item_id)?.ok_or(ApiError::NoSuchItem)?;
            app.sale.note_store_left(item_id, stats.stock_left);
            app.catalogue.put(record, app.sale.left(item_id));
            announce_item(app, item_id);
            Ok(Reply::json_value(Status::OK, &stats_json(&stats)))
        })
    }

    /// `GET /admin/items/{id}/orders`: every order of the item, oldest first.
    pub(crate) fn admin_item_orders(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        self.require_admin(call)?;
        let (limit, after) = page_query(call.request.query, ADMIN_PAGE_MAX)?;
        let item_id = call.matched.id;
        self.offload(call, Pool::General, move |app| {
            if app.catalogue.get(item_id).is_none() {
                return Err(ApiError::NoSuchItem);
            }
            let orders = app.store.orders_of_item(item_id, limit, after)?;
            Ok(Reply::json_value(Status::OK, &page_json(&orders, limit)))
        })
    }

    /// `POST /admin/reconcile`: the store recomputes its counters from the
    /// orders, then each item's stock here is compared with the store's
    /// (less what is on its way to it) and corrected; a shared stock pool
    /// is rebuilt from the store (`pools_rebuilt`), and where its units (pool
    /// and leases) differed from the store's, `pool_drift` says by how
    /// much (`pool_units` null: the pool was lost). Meant for a sale at
    /// rest; under load the correction can be off by the orders admitted
    /// meanwhile, which the store's own check at commit still refuses.
    pub(crate) fn admin_reconcile(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        self.require_admin(call)?;
        self.offload(call, Pool::General, move |app| {
            let report = app.store.reconcile()?;
            let in_flight = app.sale.holdings.in_flight_by_item();
            let shared = app.sale.stock.source().is_shared();
            let mut pools_rebuilt = Vec::new();
            let mut stock_fixed = Vec::new();
            let mut pool_drift = Vec::new();
            for row in app.store.stock_snapshot()? {
                let store_left = row.stock_total.saturating_sub(row.sold_units);
                let expected = store_left.saturating_sub(in_flight.get(&row.item_id).copied().unwrap_or(0));
                if shared {
                    // Counted before the rebuild below replaces it.
                    let pool_units = app.sale.stock.source().shared_units(row.item_id);
                    if pool_units != Some(expected) {
                        pool_drift.push(serde_json::json!({
                            "item_id": row.item_id, "pool_units": pool_units, "store_left": expected
                        }));
                    }
                }
                let local = app.sale.left(row.item_id);
                if local != expected {
                    app.sale.restock(row.item_id, expected, Seeding::Replace).map_err(|_| ApiError::Internal)?;
                    stock_fixed.push(serde_json::json!({
                        "item_id": row.item_id, "local_left": local, "store_left": expected
                    }));
                } else if shared {
                    // Other instances hold parts of a shared pool, so it cannot
                    // be compared from here: it is rebuilt from the store,
                    // which fences every lease on it.
                    app.sale.restock(row.item_id, expected, Seeding::Replace).map_err(|_| ApiError::Internal)?;
                }
                if shared {
                    pools_rebuilt.push(row.item_id);
                }
                crate::sale::confirm::publish_left(app, row.item_id);
            }
            let sold_fixed: Vec<_> = report
                .sold_fixed
                .iter()
                .map(|(item_id, recorded, actual)| {
                    serde_json::json!({ "item_id": item_id, "recorded": recorded, "actual": actual })
                })
                .collect();
            let body = serde_json::json!({
                "items_checked": report.items_checked,
                "sold_fixed": sold_fixed,
                "holdings_fixed": report.holdings_fixed,
                "stock_fixed": stock_fixed,
                "pools_rebuilt": pools_rebuilt,
                "pool_drift": pool_drift,
            });
            Ok(Reply::json_value(Status::OK, &body))
        })
    }
}
