//! Administration (Bearer admin token): items, their stats, bulk users for
//! load tests, and the captcha-answer hook. Everything runs on workers:
//! these are rare requests that touch the store.

use seckill_protocol::Status;
use serde::Deserialize;

use super::{owned_json_body, query_param};
use crate::api_error::ApiError;
use crate::app::App;
use crate::auth::validate::{password_ok, username_ok};
use crate::auth::{bearer, constant_time_eq};
use crate::catalogue::Item;
use crate::handler::{Call, LoopHandler, Outcome, Pool};
use crate::reply::Reply;
use crate::store::{ItemRecord, ItemStats, StoreError};

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

/// Puts `record` in the catalogue with its live stock from `stats`.
pub(crate) fn publish_item(app: &App, record: ItemRecord, stats: &ItemStats) -> std::sync::Arc<Item> {
    app.catalogue.put(Item::new(record, stats.stock_left))
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
            let item = publish_item(app, stored, &stats);
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
