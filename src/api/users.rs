//! Users and sessions: registration, login, logout, /api/me. Password
//! hashing and store writes run on workers; the loop only checks shapes,
//! limits and sessions.

use seckill_protocol::Status;
use serde::Deserialize;

use super::owned_json_body;
use crate::api_error::ApiError;
use crate::app::{App, Counters};
use crate::auth::secrets::random_token;
use crate::auth::session::{Session, TokenHash, token_hash, token_key};
use crate::auth::validate::{password_ok, username_ok};
use crate::cache::CacheEvent;
use crate::handler::{Call, LoopHandler, Outcome, Pool};
use crate::reply::Reply;
use crate::store::SessionRecord;

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// The body of `POST /api/users` and `POST /api/login`, parsed as they
/// parse it (for [`super::parse_body`]).
pub(super) fn parse_credentials(body: &[u8]) -> Result<(), ApiError> {
    owned_json_body::<Credentials>(body).map(drop)
}

/// Creates and records a session for `user_id`: its token and expiry.
pub(crate) fn open_session(app: &App, user_id: u64, now_ms: u64) -> Result<(String, u64), ApiError> {
    let sessions = open_sessions(app, &[user_id], now_ms)?;
    // One user in, one session out.
    Ok(sessions.into_iter().next().expect("one session per user"))
}

/// Creates and records one session per user, in one store transaction.
pub(crate) fn open_sessions(app: &App, user_ids: &[u64], now_ms: u64) -> Result<Vec<(String, u64)>, ApiError> {
    let expires_ms = now_ms + app.settings.session_ttl_ms;
    let tokens: Vec<String> = user_ids.iter().map(|_| random_token()).collect();
    let hashes: Vec<TokenHash> = tokens
        .iter()
        // A token we just made always has the shape of one.
        .map(|t| token_hash(&token_key(t.as_bytes()).expect("generated tokens are well formed")))
        .collect();
    let records: Vec<SessionRecord> = hashes
        .iter()
        .zip(user_ids)
        .map(|(hash, &user_id)| SessionRecord { token_hash: *hash, user_id, created_ms: now_ms, expires_ms })
        .collect();
    // Durable first: a session handed out survives a crash (contract §1).
    app.store.insert_sessions(&records)?;
    let cached: Vec<(TokenHash, Session)> =
        records.iter().map(|r| (r.token_hash, Session { user_id: r.user_id, expires_ms })).collect();
    app.cache.put_sessions(&cached).map_err(|_| ApiError::Unavailable)?;
    Ok(tokens.into_iter().map(|t| (t, expires_ms)).collect())
}

/// `session=T; HttpOnly; SameSite=Lax; Path=/` (contract §3).
fn session_cookie(token: &str) -> String {
    format!("session={token}; HttpOnly; SameSite=Lax; Path=/")
}

impl LoopHandler {
    pub(crate) fn register(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        self.limit_ip(call)?;
        let Credentials { username, password } = owned_json_body(call.request.body)?;
        if !username_ok(&username) {
            return Err(ApiError::InvalidInput("username: 3 to 32 of A-Z a-z 0-9 _ . -"));
        }
        if !password_ok(&password) {
            return Err(ApiError::InvalidInput("password: 8 to 128 printable ASCII characters"));
        }
        let now_ms = call.now_ms;
        self.offload(call, Pool::Hashing, move |app| {
            let hash = app.hasher.hash(&password);
            let user_id = app.store.create_user(&username, &hash, now_ms)?;
            Counters::bump(&app.counters.registrations);
            Ok(Reply::json_value(Status::CREATED, &serde_json::json!({ "user_id": user_id })))
        })
    }

    pub(crate) fn login(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        self.limit_ip(call)?;
        let Credentials { username, password } = owned_json_body(call.request.body)?;
        let now_ms = call.now_ms;
        self.offload(call, Pool::Hashing, move |app| {
            let user = if username_ok(&username) { app.store.user_by_name(&username)? } else { None };
            // Verify against something even for an unknown user, so that
            // timing does not tell which usernames exist.
            let stored = user.as_ref().map_or(app.dummy_password_hash.as_str(), |u| u.password_hash.as_str());
            let matches = app.hasher.verify(&password, stored);
            let Some(user) = user.filter(|_| matches) else {
                Counters::bump(&app.counters.logins_failed);
                return Err(ApiError::BadCredentials);
            };
            let (token, expires_ms) = open_session(app, user.id, now_ms)?;
            Counters::bump(&app.counters.logins_ok);
            let body = serde_json::json!({ "token": token, "user_id": user.id, "expires_ms": expires_ms });
            Ok(Reply::json_value(Status::OK, &body).header("Set-Cookie", session_cookie(&token)))
        })
    }

    pub(crate) fn logout(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (token, _) = self.session(call)?;
        // Gone from this loop at once; the worker makes it gone everywhere
        // before the answer leaves.
        self.sessions.remove(&token);
        self.offload(call, Pool::General, move |app| {
            let hash = token_hash(&token);
            app.store.delete_session(&hash)?;
            app.cache.remove_session(&hash).map_err(|_| ApiError::Unavailable)?;
            app.revocations.revoke(token);
            // Every other instance's loops forget it too (within a pub/sub
            // hop). If this fails the client may retry; the session is gone
            // from the store and the cache already.
            app.cache.announce(&CacheEvent::Revoked(token)).map_err(|_| ApiError::Unavailable)?;
            Counters::bump(&app.counters.logouts);
            Ok(Reply::empty(Status::NO_CONTENT)
                .header("Set-Cookie", "session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"))
        })
    }

    pub(crate) fn me(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (_, session) = self.session(call)?;
        self.offload(call, Pool::General, move |app| {
            let user = app.store.user_by_id(session.user_id)?.ok_or(ApiError::Unauthenticated)?;
            Ok(Reply::json_value(Status::OK, &serde_json::json!({ "user_id": user.id, "username": user.username })))
        })
    }
}
