//! The MySQL/MariaDB schema, versioned by the one row of `schema_version`.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to `i + 1`. DDL commits
//! on its own in MySQL, so a step cannot be one transaction as in SQLite:
//! instead every statement of a step is idempotent (`IF NOT EXISTS`), a step
//! is re-run whole if a crash interrupted it, and the version is bumped after
//! its last statement. Start-ups racing on one database are serialised by a
//! named lock (`GET_LOCK`), held while migrating. Migrations are append-only.
//!
//! Encodings (all integers BIGINT, signed, like SQLite's):
//! - order ids are u64 stored order-preservingly (`mysql_sql::order_id_to_sql`);
//! - user and item ids, times, money and counts are checked to fit in i64;
//! - `orders.status`: 0 pending_payment, 1 paid, 2 cancelled, 3 expired;
//! - `orders.closed_ms`: when it was cancelled or expired; 0 (NULL in rows
//!   from before version 3) while it is not;
//! - text is utf8mb4 with binary collation: usernames and request ids
//!   compare byte for byte, case-sensitively, as in SQLite.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::StoreError;
use super::mysql_sql::{Fail, select_one, server_code};

/// "Can't DROP …; check that it exists".
const ER_CANT_DROP_FIELD_OR_KEY: u16 = 1091;
/// "Duplicate column name": an ADD COLUMN already done.
const ER_DUP_FIELDNAME: u16 = 1060;

/// Version 1: everything the SQLite schema has at its version 2 (the store
/// arrived with orders already designed, so there is no separate pre-sale step).
pub(super) const MIGRATIONS: &[&[&str]] = &[
    // 0 -> 1
    &[
        // AUTO_INCREMENT ids are never handed out twice: InnoDB persists the
        // counter (MariaDB ≥ 10.2.4, MySQL ≥ 8.0), even after deletes and restarts.
        "CREATE TABLE IF NOT EXISTS instances (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            started_ms BIGINT NOT NULL
        ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS users (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            username VARCHAR(255) NOT NULL,
            password_hash VARCHAR(1024) NOT NULL,
            created_ms BIGINT NOT NULL,
            UNIQUE KEY users_by_name (username)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS sessions (
            token_hash BINARY(32) NOT NULL PRIMARY KEY,
            user_id BIGINT NOT NULL,
            created_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL,
            KEY sessions_by_expiry (expires_ms),
            CONSTRAINT sessions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
        ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS items (
            id BIGINT NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
            stock_total BIGINT NOT NULL CHECK (stock_total >= 0),
            per_user_limit BIGINT NOT NULL CHECK (per_user_limit >= 0),
            start_ms BIGINT NOT NULL,
            end_ms BIGINT NOT NULL,
            -- Units in pending and paid orders: a cache of the orders table kept
            -- in the same transactions, and the row every batch locks and
            -- conditionally updates, which is what arbitrates stock between instances.
            sold_units BIGINT NOT NULL DEFAULT 0 CHECK (sold_units >= 0)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS orders (
            id BIGINT NOT NULL PRIMARY KEY,
            item_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            quantity INT NOT NULL CHECK (quantity > 0),
            status TINYINT NOT NULL CHECK (status IN (0, 1, 2, 3)),
            created_ms BIGINT NOT NULL,
            pay_deadline_ms BIGINT NOT NULL,
            paid_ms BIGINT NULL,
            closed_ms BIGINT NULL,
            request_id VARCHAR(64) NULL,
            -- Idempotency: one order per (user, request id); NULLs are distinct.
            -- Also serves the per-user listing (a user's few orders, sorted after).
            UNIQUE KEY orders_by_user (user_id, request_id),
            KEY orders_by_item (item_id, id),
            -- No partial indexes in MySQL: status first keeps the pending ones together.
            -- (Dropped by version 2.)
            KEY orders_pending (status, pay_deadline_ms)
            -- No foreign keys, unlike SQLite: they cost two lookups per row, a
            -- quarter of a group commit's INSERT. The batch checks its users
            -- and items itself (`mysql_batch`), under the items' row locks, and
            -- neither users nor items are ever deleted.
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        // Live (pending + paid) units per user and item: the per-user limit's counter.
        "CREATE TABLE IF NOT EXISTS holdings (
            user_id BIGINT NOT NULL,
            item_id BIGINT NOT NULL,
            units BIGINT NOT NULL CHECK (units >= 0),
            PRIMARY KEY (user_id, item_id)
        ) ENGINE=InnoDB",
    ],
    // 1 -> 2
    &[
        // Every secondary index is paid per order inserted, inside the group
        // commit; this one served only the start-up scan of pending orders
        // (now a full scan, once) and cost a fifth to a third of an INSERT.
        "ALTER TABLE orders DROP INDEX orders_pending",
    ],
    // 2 -> 3
    &[
        // An order is inserted with `closed_ms` 0, not NULL (0 = not closed;
        // rows older than this version keep their NULL). Expiring, cancelling
        // or expiring at payment sets it: from NULL the row grows by 8 bytes
        // and InnoDB cannot update it in place, which made the UPDATE of an
        // expiry batch of 1,024 orders 4 to 8 times slower (17–40 ms against
        // 4–6 ms, issue 10). Metadata only: instant, no table rebuild.
        "ALTER TABLE orders ALTER COLUMN closed_ms SET DEFAULT 0",
    ],
    // 3 -> 4
    &[
        // The generation of the item's shared stock pool (issue 7): a rebuild
        // of the pool from this table increments it in the same transaction
        // as it reads the stock left, and an order taken from an older pool
        // is refused at commit (fenced), since the rebuild counted its units
        // as unsold.
        "ALTER TABLE items ADD COLUMN pool_epoch BIGINT NOT NULL DEFAULT 0",
    ],
];

/// Per-connection scratch tables (run on every new connection): a batch's
/// rows are loaded into them with multi-row INSERTs, then applied with one
/// joined, conditional statement. MEMORY and TEMPORARY: private to the
/// connection, never logged, emptied before each use.
pub(super) const CONNECTION_SETUP: &[&str] = &[
    // Sessions' sliding expiries (`touch_sessions`).
    "CREATE TEMPORARY TABLE IF NOT EXISTS batch_touches (
        token_hash BINARY(32) NOT NULL PRIMARY KEY,
        expires_ms BIGINT NOT NULL
    ) ENGINE=MEMORY",
    // Units an expiry batch gives back, per holding (`give_back`).
    "CREATE TEMPORARY TABLE IF NOT EXISTS batch_releases (
        user_id BIGINT NOT NULL,
        item_id BIGINT NOT NULL,
        units BIGINT NOT NULL,
        PRIMARY KEY (user_id, item_id)
    ) ENGINE=MEMORY",
];

/// The named lock serialising migrations of one database (names are per server).
const MIGRATION_LOCK_TIMEOUT_S: u32 = 60;

pub(super) async fn version(conn: &mut Conn) -> Result<u32, Fail<StoreError>> {
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS schema_version (
            id TINYINT NOT NULL PRIMARY KEY CHECK (id = 1),
            version INT NOT NULL
        ) ENGINE=InnoDB",
    )
    .await?;
    conn.query_drop("INSERT IGNORE INTO schema_version (id, version) VALUES (1, 0)").await?;
    let found: Option<u32> = select_one(conn, "SELECT version FROM schema_version WHERE id = 1", Vec::new()).await?;
    Ok(found.unwrap_or(0))
}

/// Brings the database to `target` (≤ `MIGRATIONS.len()`). Refuses a
/// database newer than this code: running old code on it could corrupt it.
pub(super) async fn migrate(conn: &mut Conn, target: usize) -> Result<(), Fail<StoreError>> {
    let lock = format!("seckill_migrate_{}", conn.opts().db_name().unwrap_or(""));
    let got: Option<Option<i64>> =
        select_one(conn, "SELECT GET_LOCK(?, ?)", vec![lock.clone().into(), MIGRATION_LOCK_TIMEOUT_S.into()]).await?;
    if got.flatten() != Some(1) {
        return Err(Fail::Refused(StoreError::Unavailable(format!("could not take the migration lock {lock}"))));
    }
    let result = migrate_locked(conn, target).await;
    let _ = conn.exec_drop("SELECT RELEASE_LOCK(?)", (lock,)).await;
    result
}

async fn migrate_locked(conn: &mut Conn, target: usize) -> Result<(), Fail<StoreError>> {
    let found = version(conn).await? as usize;
    if found > MIGRATIONS.len() {
        return Err(Fail::Refused(StoreError::Internal(format!(
            "database schema version {found} is newer than this build's {}",
            MIGRATIONS.len()
        ))));
    }
    for (step, statements) in MIGRATIONS.iter().enumerate().take(target).skip(found) {
        for statement in *statements {
            match conn.query_drop(*statement).await {
                // A DROP that finds nothing to drop: a re-run of a step a
                // crash interrupted after it (portable, unlike IF EXISTS).
                // So is an ADD COLUMN that finds its column.
                Err(e) if matches!(server_code(&e), Some(ER_CANT_DROP_FIELD_OR_KEY | ER_DUP_FIELDNAME)) => {}
                other => other?,
            }
        }
        conn.exec_drop("UPDATE schema_version SET version = ? WHERE id = 1", (step + 1,)).await?;
    }
    Ok(())
}
