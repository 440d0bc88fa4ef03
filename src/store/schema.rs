//! The SQLite schema, versioned by `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to `i + 1`. Each runs in
//! its own transaction together with the version bump, so a crash leaves the
//! database at a whole version. Migrations are append-only: once released, a
//! migration is never edited; a change is a new entry.
//!
//! Encodings (SQLite integers are i64):
//! - order ids are u64 stored order-preservingly (see `sqlite::order_id_to_sql`);
//! - user and item ids, times, money and counts are checked to fit in i64;
//! - `orders.status`: 0 pending_payment, 1 paid, 2 cancelled, 3 expired.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;
use super::sqlite::map_err;

/// Version 1: what the pre-sale needs (issue 4). Version 2: orders (issue 5).
pub(super) const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE instances (
        id INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: an id is never reused, even after deletes
        started_ms INTEGER NOT NULL
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_expiry ON sessions(expires_ms);
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
        stock_total INTEGER NOT NULL CHECK (stock_total >= 0),
        per_user_limit INTEGER NOT NULL CHECK (per_user_limit >= 0),
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL
    );",
    // 1 -> 2
    "ALTER TABLE items ADD COLUMN sold_units INTEGER NOT NULL DEFAULT 0 CHECK (sold_units >= 0);
    CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        item_id INTEGER NOT NULL REFERENCES items(id),
        user_id INTEGER NOT NULL REFERENCES users(id),
        quantity INTEGER NOT NULL CHECK (quantity > 0),
        status INTEGER NOT NULL CHECK (status IN (0, 1, 2, 3)),
        created_ms INTEGER NOT NULL,
        pay_deadline_ms INTEGER NOT NULL,
        paid_ms INTEGER,
        closed_ms INTEGER, -- when it was cancelled or expired
        request_id TEXT
    );
    -- Idempotency: one order per (user, request id); NULL request ids are distinct.
    -- It also serves the per-user listing (a user's entries are contiguous and
    -- carry the id). A separate (user_id, id) index would cost a second page
    -- write per order in a group commit (orders of distinct users land on
    -- distinct leaf pages), for a listing that reads one user's few orders.
    CREATE UNIQUE INDEX orders_by_user ON orders(user_id, request_id);
    CREATE INDEX orders_by_item ON orders(item_id, id);
    -- Small: only pending orders are in it, so start-up and expiry scans stay cheap.
    CREATE INDEX orders_pending ON orders(pay_deadline_ms) WHERE status = 0;
    -- Live (pending + paid) units per user and item: the per-user limit's counter.
    CREATE TABLE holdings (
        user_id INTEGER NOT NULL,
        item_id INTEGER NOT NULL,
        units INTEGER NOT NULL CHECK (units >= 0),
        PRIMARY KEY (user_id, item_id)
    ) WITHOUT ROWID;",
    // 2 -> 3: the generation of the item's shared stock pool (see the MySQL schema).
    "ALTER TABLE items ADD COLUMN pool_epoch INTEGER NOT NULL DEFAULT 0;",
];

pub(super) fn version(conn: &Connection) -> Result<u32, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(map_err)
}

/// Brings the database to `target` (≤ `MIGRATIONS.len()`), one transaction per step.
/// Refuses a database newer than this code: running old code on it could corrupt it.
pub(super) fn migrate(conn: &mut Connection, target: usize) -> Result<(), StoreError> {
    let found = version(conn)? as usize;
    if found > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "database schema version {found} is newer than this build's {}",
            MIGRATIONS.len()
        )));
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().take(target).skip(found) {
        // IMMEDIATE: take the write lock up front, so two processes opening one
        // file cannot both run the same migration.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
        // Re-read under the lock: another process may have migrated meanwhile.
        if version(&tx)? as usize > step {
            continue;
        }
        tx.execute_batch(sql).map_err(map_err)?;
        tx.pragma_update(None, "user_version", (step + 1) as u32).map_err(map_err)?;
        tx.commit().map_err(map_err)?;
    }
    Ok(())
}
