//! Instances, users and sessions on MySQL: the same semantics as
//! `sqlite.rs`, with rows sent as multi-row statements (`mysql_sql`).

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Pool, Value};

use super::mysql_sql::{
    ER_DUP_ENTRY, ER_NO_REFERENCED_ROW, Fail, execute, in_lists, insert_rows, int, read, refuse, select, select_one,
    server_code, write,
};
use super::{EXPIRED_SESSIONS_PER_CALL_MAX, SessionRecord, StoreError, TokenHash, UserId, UserRecord};

/// A bulk creation larger than this is refused: the ids are returned in one Vec.
const BULK_USERS_MAX: u32 = 1_000_000;
const USER_COLUMNS: &str = "id, username, password_hash, created_ms";
const SESSION_COLUMNS: &str = "token_hash, user_id, created_ms, expires_ms";

type UserRow = (UserId, String, String, u64);
type SessionRow = (Vec<u8>, UserId, u64, u64);

fn user_from_row((id, username, password_hash, created_ms): UserRow) -> UserRecord {
    UserRecord { id, username, password_hash, created_ms }
}

fn session_from_row((token, user_id, created_ms, expires_ms): SessionRow) -> Result<SessionRecord, StoreError> {
    let token_hash: TokenHash =
        token.try_into().map_err(|_| StoreError::Internal("a session token hash is not 32 bytes".into()))?;
    Ok(SessionRecord { token_hash, user_id, created_ms, expires_ms })
}

/// The §5 settings as the server reports them, plus whether they make a
/// COMMIT durable (printed at start-up and by the benchmark).
pub(super) async fn durability_settings(pool: &Pool) -> Result<Vec<(String, String)>, StoreError> {
    read(pool, async |conn| {
        let row: Option<(String, String, String, String)> = select_one(
            conn,
            "SELECT VERSION(), CAST(@@innodb_flush_log_at_trx_commit AS CHAR), CAST(@@sync_binlog AS CHAR),
                    IF(@@log_bin, 'ON', 'OFF')",
            Vec::new(),
        )
        .await?;
        let Some((version, flush, sync_binlog, log_bin)) = row else {
            return refuse(StoreError::Internal("no durability settings".into()));
        };
        let durable = flush == "1" && (log_bin == "OFF" || sync_binlog == "1");
        Ok(vec![
            ("store".to_owned(), "mysql".to_owned()),
            ("version".to_owned(), version),
            ("innodb_flush_log_at_trx_commit".to_owned(), flush),
            ("sync_binlog".to_owned(), sync_binlog),
            ("log_bin".to_owned(), log_bin),
            ("durable_commits".to_owned(), if durable { "yes" } else { "NO" }.to_owned()),
        ])
    })
    .await
}

pub(super) async fn allocate_instance_id(pool: &Pool, now_ms: u64) -> Result<u32, StoreError> {
    let started = int(now_ms, "now_ms")?;
    let id = write(pool, async |tx| {
        tx.exec_drop("INSERT INTO instances (started_ms) VALUES (?)", (started,)).await?;
        tx.last_insert_id().ok_or_else(|| Fail::Refused(StoreError::Internal("no instance id was generated".into())))
    })
    .await?;
    u32::try_from(id).map_err(|_| StoreError::Internal(format!("instance id {id} exhausted the u32 space")))
}

pub(super) async fn create_user(
    pool: &Pool,
    username: &str,
    password_hash: &str,
    now_ms: u64,
) -> Result<UserId, StoreError> {
    let created = int(now_ms, "now_ms")?;
    write(pool, async |tx| {
        let inserted = tx
            .exec_drop(
                "INSERT INTO users (username, password_hash, created_ms) VALUES (?, ?, ?)",
                (username, password_hash, created),
            )
            .await;
        match inserted {
            Err(e) if server_code(&e) == Some(ER_DUP_ENTRY) => refuse(StoreError::UsernameTaken),
            Err(e) => Err(Fail::Db(e)),
            Ok(()) => tx.last_insert_id().ok_or_else(|| Fail::Refused(StoreError::Internal("no user id".into()))),
        }
    })
    .await
}

pub(super) async fn create_users_bulk(
    pool: &Pool,
    prefix: &str,
    count: u32,
    password_hash: &str,
    now_ms: u64,
) -> Result<Vec<UserId>, StoreError> {
    if count > BULK_USERS_MAX {
        return Err(StoreError::OutOfRange("count"));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    let created = int(now_ms, "now_ms")?;
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    write(pool, async |tx| {
        let rows: Vec<Vec<Value>> =
            names.iter().map(|name| vec![name.as_str().into(), password_hash.into(), created.into()]).collect();
        match insert_rows(tx, "INSERT INTO users (username, password_hash, created_ms)", "", 3, &rows).await {
            // Returning Err rolls the whole transaction back: none of the batch is kept.
            Err(Fail::Db(e)) if server_code(&e) == Some(ER_DUP_ENTRY) => return refuse(StoreError::UsernameTaken),
            other => other?,
        };
        // Auto-increment ids of a multi-row INSERT need not be consecutive
        // (innodb_autoinc_lock_mode=2): read them back by name.
        let keys: Vec<Vec<Value>> = names.iter().map(|name| vec![name.as_str().into()]).collect();
        let mut ids: HashMap<String, UserId> = HashMap::with_capacity(names.len());
        for (list, params) in in_lists(&keys, 1) {
            let sql = format!("SELECT username, id FROM users WHERE username IN ({list})");
            ids.extend(select::<(String, UserId), StoreError>(tx, &sql, params).await?);
        }
        names
            .iter()
            .map(|name| {
                ids.get(name)
                    .copied()
                    .ok_or_else(|| Fail::Refused(StoreError::Internal(format!("user {name} not found after insert"))))
            })
            .collect()
    })
    .await
}

pub(super) async fn user_by_name(pool: &Pool, username: &str) -> Result<Option<UserRecord>, StoreError> {
    read(pool, async |conn| {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?");
        Ok(select_one::<UserRow, _>(conn, &sql, vec![username.into()]).await?.map(user_from_row))
    })
    .await
}

pub(super) async fn user_by_id(pool: &Pool, user_id: UserId) -> Result<Option<UserRecord>, StoreError> {
    let Ok(id) = int(user_id, "user_id") else {
        return Ok(None);
    };
    read(pool, async |conn| {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        Ok(select_one::<UserRow, _>(conn, &sql, vec![id.into()]).await?.map(user_from_row))
    })
    .await
}

/// Inserts or replaces (same hash) every session in one transaction;
/// `NotFound` and nothing inserted if a user does not exist.
pub(super) async fn insert_sessions(pool: &Pool, sessions: &[SessionRecord]) -> Result<(), StoreError> {
    let rows = sessions
        .iter()
        .map(|s| {
            Ok(vec![
                s.token_hash.to_vec().into(),
                int(s.user_id, "user_id")?.into(),
                int(s.created_ms, "created_ms")?.into(),
                int(s.expires_ms, "expires_ms")?.into(),
            ])
        })
        .collect::<Result<Vec<Vec<Value>>, StoreError>>()?;
    write(pool, async |tx| {
        let inserted = insert_rows(
            tx,
            "INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms)",
            "ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), created_ms = VALUES(created_ms),
             expires_ms = VALUES(expires_ms)",
            4,
            &rows,
        )
        .await;
        match inserted {
            Err(Fail::Db(e)) if server_code(&e) == Some(ER_NO_REFERENCED_ROW) => refuse(StoreError::NotFound),
            other => other.map(drop),
        }
    })
    .await
}

pub(super) async fn session(pool: &Pool, token_hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
    let row = read(pool, async |conn| {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ?");
        select_one::<SessionRow, _>(conn, &sql, vec![token_hash.to_vec().into()]).await
    })
    .await?;
    row.map(session_from_row).transpose()
}

/// Sliding-TTL write-back in one statement per chunk plus one join: the
/// expiries go to the connection's scratch table, then one UPDATE moves each
/// session's expiry forward (never back: GREATEST).
pub(super) async fn touch_sessions(pool: &Pool, touches: &[(TokenHash, u64)]) -> Result<(), StoreError> {
    // One row per token (the latest expiry), since the scratch table's key is the token.
    let mut latest: HashMap<TokenHash, u64> = HashMap::with_capacity(touches.len());
    for &(token, expires_ms) in touches {
        let e = latest.entry(token).or_insert(expires_ms);
        *e = (*e).max(expires_ms);
    }
    let rows = latest
        .into_iter()
        .map(|(token, expires_ms)| Ok(vec![token.to_vec().into(), int(expires_ms, "expires_ms")?.into()]))
        .collect::<Result<Vec<Vec<Value>>, StoreError>>()?;
    write(pool, async |tx| {
        tx.query_drop("DELETE FROM batch_touches").await?;
        insert_rows(tx, "INSERT INTO batch_touches (token_hash, expires_ms)", "", 2, &rows).await?;
        tx.query_drop(
            "UPDATE sessions s JOIN batch_touches t ON t.token_hash = s.token_hash
             SET s.expires_ms = GREATEST(s.expires_ms, t.expires_ms)",
        )
        .await?;
        Ok(())
    })
    .await
}

pub(super) async fn live_sessions(pool: &Pool, now_ms: u64) -> Result<Vec<SessionRecord>, StoreError> {
    let now = int(now_ms, "now_ms")?;
    let rows = read(pool, async |conn| {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE expires_ms > ?");
        select::<SessionRow, _>(conn, &sql, vec![now.into()]).await
    })
    .await?;
    rows.into_iter().map(session_from_row).collect()
}

pub(super) async fn delete_session(pool: &Pool, token_hash: &TokenHash) -> Result<bool, StoreError> {
    write(pool, async |tx| {
        Ok(execute(tx, "DELETE FROM sessions WHERE token_hash = ?", vec![token_hash.to_vec().into()]).await? > 0)
    })
    .await
}

pub(super) async fn delete_expired_sessions(pool: &Pool, now_ms: u64) -> Result<usize, StoreError> {
    let now = int(now_ms, "now_ms")?;
    let limit = EXPIRED_SESSIONS_PER_CALL_MAX as u64;
    let deleted: u64 = write::<_, StoreError>(pool, async |tx| {
        execute(tx, "DELETE FROM sessions WHERE expires_ms <= ? LIMIT ?", vec![now.into(), limit.into()]).await
    })
    .await?;
    Ok(deleted as usize)
}
