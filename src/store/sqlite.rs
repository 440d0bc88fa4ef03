//! [`SqliteStore`]: the embedded default, one SQLite file in WAL mode.
//!
//! One writer connection behind a mutex serialises every write; that is what
//! SQLite allows anyway, and it makes each write method a plain transaction
//! with no retry loop. Reads go to a small pool of reader connections: in WAL
//! mode a reader sees the last committed state and never blocks the writer,
//! so `GET /api/orders` does not wait for a group commit's fsync.
//!
//! Every write transaction is `BEGIN IMMEDIATE` (the write lock is taken up
//! front, so a transaction never fails half-way on a lock upgrade) and every
//! COMMIT fsyncs the WAL (`synchronous=FULL`), which is the contract's
//! "durable" (§5). Statements are prepared once per connection and cached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, ffi};

use super::schema;
use super::{
    CancelError, CancelOutcome, EXPIRED_SESSIONS_PER_CALL_MAX, Holding, ItemId, ItemRecord, ItemStats, NewOrder,
    OrderId, OrderOutcome, OrderRecord, OrderStatus, PAGE_ROWS_MAX, PayError, PendingOrder, ReconcileReport,
    ReleasedUnits, SessionRecord, StockRow, Store, StoreError, TokenHash, UserId, UserRecord,
};

/// Reader connections: enough for the worker pool's concurrent reads; each
/// holds its own page cache and statement cache, so more is not free.
const READERS: usize = 4;
/// How long a connection waits for a lock held by another process (a second
/// server started on the same file, or an operator's `sqlite3`) before the
/// call fails with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The writer's page cache, negative = KiB (SQLite's convention): 64 MiB.
const WRITER_CACHE_KIB: i64 = -65_536;
/// WAL pages before the writer checkpoints inside a commit (SQLite's default
/// is 1,000). Under a sale the order writer checkpoints between batches
/// ([`Store::checkpoint`]) long before this; it bounds the WAL (~40 MiB) when
/// only other writes come.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;
/// The WAL file is cut back to this size when it restarts, and otherwise
/// kept: frames written over an existing part of the file sync several times
/// faster than frames that grow it (measured here: 0.3–0.7 ms against 2.2 ms).
const WAL_SIZE_LIMIT_BYTES: i64 = 64 << 20;
/// Distinct SQL texts in this file fit in it, so no statement is ever re-prepared.
const STATEMENT_CACHE_CAPACITY: usize = 64;
/// A bulk creation larger than this is refused: the ids are returned in one Vec.
const BULK_USERS_MAX: u32 = 1_000_000;

const ORDER_COLUMNS: &str = "id, item_id, user_id, quantity, status, created_ms, pay_deadline_ms, paid_ms, request_id";
const STATUS_PENDING: i64 = 0;
const STATUS_PAID: i64 = 1;
const STATUS_CANCELLED: i64 = 2;
const STATUS_EXPIRED: i64 = 3;

/// The embedded store. Cheap to share behind an `Arc`; see the module doc.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Box<[Mutex<Connection>]>,
    next_reader: AtomicUsize,
    /// Write transactions committed with changes, i.e. WAL fsyncs (checkpoints
    /// aside). Benchmarks divide it by the orders written.
    commits: AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("readers", &self.readers.len()).finish()
    }
}

impl SqliteStore {
    /// Opens (creating the file and its parent directory if needed) and
    /// migrates the database to the current schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_at_version(path, schema::MIGRATIONS.len())
    }

    /// Opens and migrates only up to `version`: for tests of the migrations.
    pub(super) fn open_at_version(path: &Path, version: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut writer = open_connection(path, OpenFlags::SQLITE_OPEN_CREATE)?;
        // WAL is a property of the file (it persists); read it back because
        // SQLite silently keeps another mode where WAL is impossible.
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(format!("journal_mode is {mode}, WAL is required")));
        }
        schema::migrate(&mut writer, version)?;
        // A group commit of 1,000 orders from distinct users dirties a page per
        // user in the per-user index and in holdings: keep them all in memory
        // rather than re-reading them for every batch.
        writer.pragma_update(None, "cache_size", WRITER_CACHE_KIB).map_err(map_err)?;
        // The same hot pages are rewritten by every batch; checkpointing less
        // often writes each of them back to the main file once per many batches.
        writer.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES).map_err(map_err)?;
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES).map_err(map_err)?;
        let readers = (0..READERS)
            .map(|_| {
                let conn = open_connection(path, OpenFlags::empty())?;
                // The readers must never write: all writes go through the one writer.
                conn.pragma_update(None, "query_only", true).map_err(map_err)?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: readers.into_boxed_slice(),
            next_reader: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
        })
    }

    /// Write transactions committed with changes since open (one WAL fsync each).
    pub fn write_commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        schema::version(&self.writer.lock())
    }

    /// Runs `f` on a reader connection: a free one if any, else waits for one.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        let free = (0..n).find_map(|i| self.readers[(start + i) % n].try_lock());
        let conn = match free {
            Some(conn) => conn,
            None => self.readers[start % n].lock(),
        };
        f(&conn).map_err(map_err)
    }

    /// Runs `f` in one IMMEDIATE transaction on the writer and commits if it
    /// returns `Ok` (rolls back otherwise). `Ok` means durable.
    fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E> {
        let mut conn = self.writer.lock();
        let before = conn.total_changes();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
        let value = f(&tx)?;
        tx.commit().map_err(map_err)?;
        // A transaction that changed nothing writes no WAL frame and syncs nothing.
        if conn.total_changes() != before {
            self.commits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(value)
    }
}

fn open_connection(path: &Path, extra: OpenFlags) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra;
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
    // FULL: the WAL is fsynced at every commit, so a committed transaction
    // survives power loss, not only a process crash (contract §5).
    conn.pragma_update(None, "synchronous", "FULL").map_err(map_err)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(conn)
}

/// Classifies a SQLite error by who is at fault. Lock timeouts and I/O
/// failures are the backend's (503, retry later); the rest is a bug of ours.
pub(super) fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::OutOfMemory => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        },
        rusqlite::Error::ToSqlConversionFailure(_) => StoreError::OutOfRange("integer above 2^63-1"),
        _ => StoreError::Internal(e.to_string()),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        map_err(e)
    }
}

fn is_constraint(e: &rusqlite::Error, extended_code: i32) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == extended_code)
}

/// Order ids use all 64 bits, SQLite integers are i64. Flipping the top bit
/// maps u64 onto i64 bijectively *and monotonically* (0 → i64::MIN,
/// u64::MAX → i64::MAX), so `ORDER BY id` and the cursors stay in u64 order
/// even for ids at or above 2^63; a plain `as i64` cast would sort those first.
pub(super) fn order_id_to_sql(id: OrderId) -> i64 {
    (id ^ (1 << 63)) as i64
}

pub(super) fn order_id_from_sql(v: i64) -> OrderId {
    (v as u64) ^ (1 << 63)
}

fn status_to_sql(status: OrderStatus) -> i64 {
    match status {
        OrderStatus::PendingPayment => STATUS_PENDING,
        OrderStatus::Paid => STATUS_PAID,
        OrderStatus::Cancelled => STATUS_CANCELLED,
        OrderStatus::Expired => STATUS_EXPIRED,
    }
}

fn status_from_sql(v: i64) -> rusqlite::Result<OrderStatus> {
    match v {
        STATUS_PENDING => Ok(OrderStatus::PendingPayment),
        STATUS_PAID => Ok(OrderStatus::Paid),
        STATUS_CANCELLED => Ok(OrderStatus::Cancelled),
        STATUS_EXPIRED => Ok(OrderStatus::Expired),
        other => Err(rusqlite::Error::IntegralValueOutOfRange(4, other)),
    }
}

fn order_from_row(row: &Row<'_>) -> rusqlite::Result<OrderRecord> {
    Ok(OrderRecord {
        id: order_id_from_sql(row.get(0)?),
        item_id: row.get(1)?,
        user_id: row.get(2)?,
        quantity: row.get(3)?,
        status: status_from_sql(row.get(4)?)?,
        created_ms: row.get(5)?,
        pay_deadline_ms: row.get(6)?,
        paid_ms: row.get(7)?,
        request_id: row.get(8)?,
    })
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord { id: row.get(0)?, username: row.get(1)?, password_hash: row.get(2)?, created_ms: row.get(3)? })
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        token_hash: row.get(0)?,
        user_id: row.get(1)?,
        created_ms: row.get(2)?,
        expires_ms: row.get(3)?,
    })
}

fn item_from_row(row: &Row<'_>) -> rusqlite::Result<ItemRecord> {
    Ok(ItemRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        price_cents: row.get(3)?,
        stock_total: row.get(4)?,
        per_user_limit: row.get(5)?,
        start_ms: row.get(6)?,
        end_ms: row.get(7)?,
    })
}

const ITEM_COLUMNS: &str = "id, name, description, price_cents, stock_total, per_user_limit, start_ms, end_ms";

fn select_order(conn: &Connection, order_id: OrderId) -> rusqlite::Result<Option<OrderRecord>> {
    conn.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"))?
        .query_row([order_id_to_sql(order_id)], order_from_row)
        .optional()
}

fn select_order_by_request(
    conn: &Connection,
    user_id: UserId,
    request_id: &str,
) -> rusqlite::Result<Option<OrderRecord>> {
    conn.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ?1 AND request_id = ?2"))?
        .query_row(rusqlite::params![user_id, request_id], order_from_row)
        .optional()
}

/// Units per status of one item's orders; `None` if the item does not exist.
fn stats_on(conn: &Connection, item_id: ItemId) -> rusqlite::Result<Option<ItemStats>> {
    let Some(stock_total) = conn
        .prepare_cached("SELECT stock_total FROM items WHERE id = ?1")?
        .query_row([item_id], |row| row.get::<_, u64>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let mut units = [0u64; 4];
    let mut stmt =
        conn.prepare_cached("SELECT status, SUM(quantity) FROM orders WHERE item_id = ?1 GROUP BY status")?;
    let mut rows = stmt.query([item_id])?;
    while let Some(row) = rows.next()? {
        let status = status_from_sql(row.get(0)?)?;
        units[status_to_sql(status) as usize] = row.get(1)?;
    }
    let [pending_payment, paid, cancelled, expired] = units;
    Ok(Some(ItemStats {
        item_id,
        stock_total,
        // Saturating: a stock cut below sold is refused, so this only guards a corrupt file.
        stock_left: stock_total.saturating_sub(pending_payment + paid),
        pending_payment,
        paid,
        cancelled,
        expired,
    }))
}

/// Moves a pending order to `status` (cancelled or expired) and gives its
/// units back to the item's sold counter and the user's holding. Returns
/// false (and changes nothing) if the order was no longer pending.
fn release(tx: &Transaction<'_>, order: &OrderRecord, status: OrderStatus, now_ms: u64) -> rusqlite::Result<bool> {
    let changed = tx
        .prepare_cached("UPDATE orders SET status = ?1, closed_ms = ?2 WHERE id = ?3 AND status = ?4")?
        .execute(rusqlite::params![status_to_sql(status), now_ms, order_id_to_sql(order.id), STATUS_PENDING])?;
    if changed == 0 {
        return Ok(false);
    }
    give_back(tx, order.item_id, order.user_id, order.quantity)?;
    Ok(true)
}

/// The counters are caches of the orders table, kept in the same transaction.
/// MAX(…, 0): should they ever drift, an expiry must still go through;
/// `reconcile` recomputes them and reports the drift.
fn give_back(tx: &Transaction<'_>, item_id: ItemId, user_id: UserId, quantity: u32) -> rusqlite::Result<()> {
    give_back_holding(tx, user_id, item_id, u64::from(quantity))?;
    give_back_item(tx, item_id, u64::from(quantity))
}

fn give_back_holding(tx: &Transaction<'_>, user_id: UserId, item_id: ItemId, units: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE holdings SET units = MAX(units - ?1, 0) WHERE user_id = ?2 AND item_id = ?3")?
        .execute(rusqlite::params![units, user_id, item_id])?;
    Ok(())
}

fn give_back_item(tx: &Transaction<'_>, item_id: ItemId, units: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE items SET sold_units = MAX(sold_units - ?1, 0) WHERE id = ?2")?
        .execute(rusqlite::params![units, item_id])?;
    Ok(())
}

/// An item as seen by one group commit: read once, its sold counter kept
/// here and written back once at the end of the batch.
struct BatchItem {
    id: ItemId,
    stock_total: u64,
    per_user_limit: u64,
    sold_units: u64,
    sold_units_at_start: u64,
    pool_epoch: u64,
}

/// Few distinct items per batch (a flash sale has a handful), so a linear
/// scan beats hashing.
fn batch_item<'a>(
    tx: &Transaction<'_>,
    items: &'a mut Vec<BatchItem>,
    item_id: ItemId,
) -> rusqlite::Result<Option<&'a mut BatchItem>> {
    if let Some(pos) = items.iter().position(|i| i.id == item_id) {
        return Ok(Some(&mut items[pos]));
    }
    let row = tx
        .prepare_cached("SELECT stock_total, per_user_limit, sold_units, pool_epoch FROM items WHERE id = ?1")?
        .query_row([item_id], |row| {
            Ok((row.get::<_, u64>(0)?, row.get::<_, u64>(1)?, row.get::<_, u64>(2)?, row.get::<_, u64>(3)?))
        })
        .optional()?;
    let Some((stock_total, per_user_limit, sold_units, pool_epoch)) = row else {
        return Ok(None);
    };
    items.push(BatchItem {
        id: item_id,
        stock_total,
        per_user_limit,
        sold_units,
        sold_units_at_start: sold_units,
        pool_epoch,
    });
    Ok(items.last_mut())
}

/// Applies one entry of a group commit inside the batch's transaction.
/// Outcomes follow the contract's order: idempotency, item, per-user limit,
/// stock; between the item and the limit, an order of an older stock pool
/// generation is fenced.
///
/// The common case (a new order that fits) costs two statements: the order's
/// INSERT, whose unique (user, request id) index is the idempotency check,
/// and a conditional upsert of the holding, which is the limit check. The
/// rare refusals after the INSERT delete the row again, inside the same
/// transaction, so nothing of a refused order is ever committed.
fn commit_one(tx: &Transaction<'_>, items: &mut Vec<BatchItem>, order: &NewOrder) -> rusqlite::Result<OrderOutcome> {
    let Some(item) = batch_item(tx, items, order.item_id)? else {
        return duplicate_or(tx, order, OrderOutcome::NoSuchItem);
    };
    let inserted = tx
        .prepare_cached(
            "INSERT INTO orders (id, item_id, user_id, quantity, status, created_ms, pay_deadline_ms, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        )?
        .execute(rusqlite::params![
            order_id_to_sql(order.id),
            order.item_id,
            order.user_id,
            order.quantity.get(),
            STATUS_PENDING,
            order.created_ms,
            order.pay_deadline_ms,
            order.request_id,
        ]);
    // A failed statement is undone alone; the batch's transaction goes on.
    let inserted = match inserted {
        Err(e) if is_constraint(&e, ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => return Ok(OrderOutcome::NoSuchUser),
        other => other?,
    };
    if inserted == 0 {
        // The request id made an order already, or (a bug) the id is taken.
        return duplicate_or(tx, order, OrderOutcome::IdTaken);
    }
    if order.pool_epoch.is_some_and(|epoch| epoch != item.pool_epoch) {
        delete_order(tx, order.id)?;
        return Ok(OrderOutcome::Fenced);
    }
    let quantity = u64::from(order.quantity.get());
    let held = quantity <= item.per_user_limit
        && tx
            .prepare_cached(
                "INSERT INTO holdings (user_id, item_id, units) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id, item_id) DO UPDATE SET units = units + excluded.units
                 WHERE units + excluded.units <= ?4",
            )?
            .execute(rusqlite::params![order.user_id, order.item_id, quantity, item.per_user_limit])?
            == 1;
    if !held {
        delete_order(tx, order.id)?;
        return Ok(OrderOutcome::LimitReached);
    }
    if item.sold_units + quantity > item.stock_total {
        delete_order(tx, order.id)?;
        tx.prepare_cached("UPDATE holdings SET units = units - ?3 WHERE user_id = ?1 AND item_id = ?2")?
            .execute(rusqlite::params![order.user_id, order.item_id, quantity])?;
        return Ok(OrderOutcome::SoldOut);
    }
    item.sold_units += quantity;
    Ok(OrderOutcome::Committed(OrderRecord {
        id: order.id,
        item_id: order.item_id,
        user_id: order.user_id,
        quantity: order.quantity.get(),
        status: OrderStatus::PendingPayment,
        created_ms: order.created_ms,
        pay_deadline_ms: order.pay_deadline_ms,
        paid_ms: None,
        request_id: order.request_id.clone(),
    }))
}

/// The order the entry's request id already made, else `otherwise`.
fn duplicate_or(tx: &Transaction<'_>, order: &NewOrder, otherwise: OrderOutcome) -> rusqlite::Result<OrderOutcome> {
    if let Some(request_id) = &order.request_id
        && let Some(existing) = select_order_by_request(tx, order.user_id, request_id)?
    {
        return Ok(OrderOutcome::Duplicate(existing));
    }
    Ok(otherwise)
}

fn delete_order(tx: &Transaction<'_>, order_id: OrderId) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM orders WHERE id = ?1")?.execute([order_id_to_sql(order_id)])?;
    Ok(())
}

/// What a pay transaction decided; an expiry commits and is then reported as an error.
enum PayStep {
    Paid(OrderRecord),
    ExpiredNow(OrderRecord),
}

impl Store for SqliteStore {
    fn durability_settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.writer.lock();
        let journal_mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).map_err(map_err)?;
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0)).map_err(map_err)?;
        let synchronous = match synchronous {
            0 => "OFF",
            1 => "NORMAL",
            2 => "FULL",
            3 => "EXTRA",
            _ => "UNKNOWN",
        };
        Ok(vec![
            ("store".to_owned(), "sqlite".to_owned()),
            ("journal_mode".to_owned(), journal_mode),
            ("synchronous".to_owned(), synchronous.to_owned()),
        ])
    }

    /// A RESTART checkpoint on the writer: copies the WAL into the database
    /// file, then makes the next commit write the WAL from its beginning
    /// again, over the file's existing bytes. Without it a busy writer's WAL
    /// only grows (a concurrent checkpoint never catches up with it), and
    /// every commit's fsync pays for growing the file.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.writer.lock();
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())).map_err(map_err)
    }

    fn allocate_instance_id(&self, now_ms: u64) -> Result<u32, StoreError> {
        let id = self.write(|tx| {
            tx.prepare_cached("INSERT INTO instances (started_ms) VALUES (?1)")?.execute([now_ms])?;
            Ok::<_, StoreError>(tx.last_insert_rowid())
        })?;
        u32::try_from(id).map_err(|_| StoreError::Internal(format!("instance id {id} exhausted the u32 space")))
    }

    fn create_user(&self, username: &str, password_hash: &str, now_ms: u64) -> Result<UserId, StoreError> {
        self.write(|tx| {
            let mut stmt =
                tx.prepare_cached("INSERT INTO users (username, password_hash, created_ms) VALUES (?1, ?2, ?3)")?;
            match stmt.execute(rusqlite::params![username, password_hash, now_ms]) {
                Ok(_) => Ok(tx.last_insert_rowid() as UserId),
                Err(e) if is_constraint(&e, ffi::SQLITE_CONSTRAINT_UNIQUE) => Err(StoreError::UsernameTaken),
                Err(e) => Err(map_err(e)),
            }
        })
    }

    fn create_users_bulk(
        &self,
        prefix: &str,
        count: u32,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        if count > BULK_USERS_MAX {
            return Err(StoreError::OutOfRange("count"));
        }
        self.write(|tx| {
            let mut stmt =
                tx.prepare_cached("INSERT INTO users (username, password_hash, created_ms) VALUES (?1, ?2, ?3)")?;
            let mut ids = Vec::with_capacity(count as usize);
            let mut username = String::with_capacity(prefix.len() + 10);
            for i in 0..count {
                use std::fmt::Write as _;
                username.clear();
                username.push_str(prefix);
                // Writing to a String cannot fail.
                let _ = write!(username, "{i}");
                match stmt.execute(rusqlite::params![username, password_hash, now_ms]) {
                    Ok(_) => ids.push(tx.last_insert_rowid() as UserId),
                    // Returning Err drops the transaction: none of the batch is kept.
                    Err(e) if is_constraint(&e, ffi::SQLITE_CONSTRAINT_UNIQUE) => {
                        return Err(StoreError::UsernameTaken);
                    }
                    Err(e) => return Err(map_err(e)),
                }
            }
            Ok(ids)
        })
    }

    fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, username, password_hash, created_ms FROM users WHERE username = ?1")?
                .query_row([username], user_from_row)
                .optional()
        })
    }

    fn user_by_id(&self, user_id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, username, password_hash, created_ms FROM users WHERE id = ?1")?
                .query_row([user_id], user_from_row)
                .optional()
        })
    }

    fn insert_sessions(&self, sessions: &[SessionRecord]) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO sessions (token_hash, user_id, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for s in sessions {
                match stmt.execute(rusqlite::params![s.token_hash, s.user_id, s.created_ms, s.expires_ms]) {
                    Ok(_) => {}
                    Err(e) if is_constraint(&e, ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => return Err(StoreError::NotFound),
                    Err(e) => return Err(map_err(e)),
                }
            }
            Ok(())
        })
    }

    fn session(&self, token_hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT token_hash, user_id, created_ms, expires_ms FROM sessions WHERE token_hash = ?1",
            )?
            .query_row([token_hash], session_from_row)
            .optional()
        })
    }

    fn live_sessions(&self, now_ms: u64) -> Result<Vec<SessionRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT token_hash, user_id, created_ms, expires_ms FROM sessions WHERE expires_ms > ?1",
            )?
            .query_map([now_ms], session_from_row)?
            .collect()
        })
    }

    fn touch_sessions(&self, touches: &[(TokenHash, u64)]) -> Result<(), StoreError> {
        if touches.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut stmt =
                tx.prepare_cached("UPDATE sessions SET expires_ms = MAX(expires_ms, ?1) WHERE token_hash = ?2")?;
            for (token_hash, expires_ms) in touches {
                stmt.execute(rusqlite::params![expires_ms, token_hash])?;
            }
            Ok(())
        })
    }

    fn delete_session(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        self.write(|tx| {
            let deleted = tx.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?.execute([token_hash])?;
            Ok(deleted > 0)
        })
    }

    fn delete_expired_sessions(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "DELETE FROM sessions WHERE token_hash IN
                 (SELECT token_hash FROM sessions WHERE expires_ms <= ?1 LIMIT ?2)",
            )?
            .execute(rusqlite::params![now_ms, EXPIRED_SESSIONS_PER_CALL_MAX])
            .map_err(map_err)
        })
    }

    fn put_item(&self, item: &ItemRecord) -> Result<ItemRecord, StoreError> {
        super::check_stock_total(item)?;
        self.write(|tx| {
            let current: Option<u64> = tx
                .prepare_cached("SELECT stock_total FROM items WHERE id = ?1")?
                .query_row([item.id], |row| row.get(0))
                .optional()?;
            if current.is_some_and(|stock| stock != item.stock_total) {
                let has_orders = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM orders WHERE item_id = ?1)")?
                    .query_row([item.id], |row| row.get::<_, bool>(0))?;
                if has_orders {
                    return Err(StoreError::ItemHasOrders);
                }
            }
            tx.prepare_cached(
                "INSERT INTO items (id, name, description, price_cents, stock_total, per_user_limit, start_ms, end_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,
                   price_cents = excluded.price_cents, stock_total = excluded.stock_total,
                   per_user_limit = excluded.per_user_limit, start_ms = excluded.start_ms, end_ms = excluded.end_ms",
            )?
            .execute(rusqlite::params![
                item.id,
                item.name,
                item.description,
                item.price_cents,
                item.stock_total,
                item.per_user_limit,
                item.start_ms,
                item.end_ms,
            ])?;
            Ok(item.clone())
        })
    }

    fn item(&self, item_id: ItemId) -> Result<Option<ItemRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = ?1"))?
                .query_row([item_id], item_from_row)
                .optional()
        })
    }

    fn items(&self) -> Result<Vec<ItemRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY id"))?
                .query_map([], item_from_row)?
                .collect()
        })
    }

    fn adjust_stock(&self, item_id: ItemId, delta: i64) -> Result<ItemStats, StoreError> {
        self.write(|tx| {
            let row = tx
                .prepare_cached("SELECT stock_total, sold_units FROM items WHERE id = ?1")?
                .query_row([item_id], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
                .optional()?;
            let Some((stock_total, sold_units)) = row else {
                return Err(StoreError::NotFound);
            };
            let new_total = stock_total
                .checked_add(delta)
                .filter(|total| *total <= super::STOCK_MAX as i64)
                .ok_or(StoreError::OutOfRange("delta"))?;
            if new_total < sold_units {
                return Err(StoreError::StockBelowSold);
            }
            tx.prepare_cached("UPDATE items SET stock_total = ?1 WHERE id = ?2")?
                .execute(rusqlite::params![new_total, item_id])?;
            // Inside the transaction: the stats include this change.
            stats_on(tx, item_id)?.ok_or(StoreError::NotFound)
        })
    }

    fn item_stats(&self, item_id: ItemId) -> Result<ItemStats, StoreError> {
        self.read(|conn| stats_on(conn, item_id))?.ok_or(StoreError::NotFound)
    }

    fn renew_pool_epoch(&self, item_id: ItemId) -> Result<(u64, u64), StoreError> {
        self.write(|tx| {
            let epoch = tx
                .prepare_cached("UPDATE items SET pool_epoch = pool_epoch + 1 WHERE id = ?1 RETURNING pool_epoch")?
                .query_row([item_id], |row| row.get::<_, u64>(0))
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let stats = stats_on(tx, item_id)?.ok_or(StoreError::NotFound)?;
            Ok((epoch, stats.stock_left))
        })
    }

    fn commit_orders(&self, orders: &[NewOrder]) -> Result<Vec<OrderOutcome>, StoreError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let mut items = Vec::new();
            let mut outcomes = Vec::with_capacity(orders.len());
            for order in orders {
                outcomes.push(commit_one(tx, &mut items, order)?);
            }
            let mut stmt = tx.prepare_cached("UPDATE items SET sold_units = ?1 WHERE id = ?2")?;
            for item in items.iter().filter(|i| i.sold_units != i.sold_units_at_start) {
                stmt.execute(rusqlite::params![item.sold_units, item.id])?;
            }
            Ok(outcomes)
        })
    }

    fn order(&self, order_id: OrderId) -> Result<Option<OrderRecord>, StoreError> {
        self.read(|conn| select_order(conn, order_id))
    }

    fn order_by_request(&self, user_id: UserId, request_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        self.read(|conn| select_order_by_request(conn, user_id, request_id))
    }

    fn orders_of_user(
        &self,
        user_id: UserId,
        limit: u32,
        before: Option<OrderId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        // Served by the (user_id, request_id) index: a user's orders are
        // contiguous in it and the id (the rowid) is in every entry, so the
        // filter and the sort read only that user's entries (schema.rs says why
        // there is no (user_id, id) index).
        // No cursor: start at the greatest id, u64::MAX included.
        let (bound, inclusive) = match before {
            Some(id) => (order_id_to_sql(id), false),
            None => (i64::MAX, true),
        };
        let sql = if inclusive {
            format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ?1 AND id <= ?2 ORDER BY id DESC LIMIT ?3")
        } else {
            format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3")
        };
        self.read(|conn| {
            conn.prepare_cached(&sql)?
                .query_map(rusqlite::params![user_id, bound, limit.min(PAGE_ROWS_MAX)], order_from_row)?
                .collect()
        })
    }

    fn orders_of_item(
        &self,
        item_id: ItemId,
        limit: u32,
        after: Option<OrderId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let (bound, inclusive) = match after {
            Some(id) => (order_id_to_sql(id), false),
            None => (i64::MIN, true),
        };
        let sql = if inclusive {
            format!("SELECT {ORDER_COLUMNS} FROM orders WHERE item_id = ?1 AND id >= ?2 ORDER BY id ASC LIMIT ?3")
        } else {
            format!("SELECT {ORDER_COLUMNS} FROM orders WHERE item_id = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3")
        };
        self.read(|conn| {
            conn.prepare_cached(&sql)?
                .query_map(rusqlite::params![item_id, bound, limit.min(PAGE_ROWS_MAX)], order_from_row)?
                .collect()
        })
    }

    fn pay_order(&self, order_id: OrderId, user_id: UserId, now_ms: u64) -> Result<OrderRecord, PayError> {
        let step = self.write(|tx| {
            let order = select_order(tx, order_id).map_err(map_err)?;
            let Some(mut order) = order.filter(|o| o.user_id == user_id) else {
                return Err(PayError::NotFound);
            };
            match order.status {
                OrderStatus::Paid => Ok(PayStep::Paid(order)),
                OrderStatus::Cancelled => Err(PayError::Cancelled(order)),
                OrderStatus::Expired => Err(PayError::Expired { order, units_returned: false }),
                // The deadline decides, not the timer (contract §3): expire it here, atomically.
                OrderStatus::PendingPayment if now_ms >= order.pay_deadline_ms => {
                    release(tx, &order, OrderStatus::Expired, now_ms).map_err(map_err)?;
                    order.status = OrderStatus::Expired;
                    Ok(PayStep::ExpiredNow(order))
                }
                OrderStatus::PendingPayment => {
                    tx.prepare_cached("UPDATE orders SET status = ?1, paid_ms = ?2 WHERE id = ?3")
                        .and_then(|mut s| s.execute(rusqlite::params![STATUS_PAID, now_ms, order_id_to_sql(order_id)]))
                        .map_err(map_err)?;
                    order.status = OrderStatus::Paid;
                    order.paid_ms = Some(now_ms);
                    Ok(PayStep::Paid(order))
                }
            }
        })?;
        match step {
            PayStep::Paid(order) => Ok(order),
            PayStep::ExpiredNow(order) => Err(PayError::Expired { order, units_returned: true }),
        }
    }

    fn cancel_order(&self, order_id: OrderId, user_id: UserId, now_ms: u64) -> Result<CancelOutcome, CancelError> {
        self.write(|tx| {
            let order = select_order(tx, order_id).map_err(map_err)?;
            let Some(mut order) = order.filter(|o| o.user_id == user_id) else {
                return Err(CancelError::NotFound);
            };
            match order.status {
                OrderStatus::Paid => Err(CancelError::Paid(order)),
                OrderStatus::Cancelled | OrderStatus::Expired => Ok(CancelOutcome { order, units_returned: false }),
                OrderStatus::PendingPayment => {
                    // Past the deadline the order has expired, whatever the timer: record the truth.
                    let status =
                        if now_ms >= order.pay_deadline_ms { OrderStatus::Expired } else { OrderStatus::Cancelled };
                    release(tx, &order, status, now_ms).map_err(map_err)?;
                    order.status = status;
                    Ok(CancelOutcome { order, units_returned: true })
                }
            }
        })
    }

    fn expire_orders(&self, order_ids: &[OrderId], now_ms: u64) -> Result<Vec<ReleasedUnits>, StoreError> {
        if order_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let mut released = Vec::new();
            for &order_id in order_ids {
                // The status test makes this exactly-once: a second call, or a
                // racing pay or cancel, finds the order no longer pending.
                let row = tx
                    .prepare_cached(
                        "UPDATE orders SET status = ?1, closed_ms = ?2
                         WHERE id = ?3 AND status = ?4 AND pay_deadline_ms <= ?2
                         RETURNING item_id, user_id, quantity",
                    )?
                    .query_row(
                        rusqlite::params![STATUS_EXPIRED, now_ms, order_id_to_sql(order_id), STATUS_PENDING],
                        |row| Ok((row.get::<_, ItemId>(0)?, row.get::<_, UserId>(1)?, row.get::<_, u32>(2)?)),
                    )
                    .optional()?;
                if let Some((item_id, user_id, quantity)) = row {
                    released.push(ReleasedUnits { order_id, item_id, user_id, quantity });
                }
            }
            // Summed per item and per holding, as the MySQL store does: an
            // expiry batch rewrites its item's row once, not once per order.
            let mut per_item: BTreeMap<ItemId, u64> = BTreeMap::new();
            let mut per_holding: BTreeMap<(UserId, ItemId), u64> = BTreeMap::new();
            for r in &released {
                *per_item.entry(r.item_id).or_default() += u64::from(r.quantity);
                *per_holding.entry((r.user_id, r.item_id)).or_default() += u64::from(r.quantity);
            }
            for ((user_id, item_id), units) in per_holding {
                give_back_holding(tx, user_id, item_id, units)?;
            }
            for (item_id, units) in per_item {
                give_back_item(tx, item_id, units)?;
            }
            Ok(released)
        })
    }

    fn orders_with_request_ids(&self, limit: usize) -> Result<Vec<OrderRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE request_id IS NOT NULL ORDER BY id DESC LIMIT ?1");
        self.read(|conn| conn.prepare_cached(&sql)?.query_map([limit], order_from_row)?.collect())
    }

    fn pending_orders(&self) -> Result<Vec<PendingOrder>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT id, item_id, user_id, quantity, pay_deadline_ms FROM orders
                 WHERE status = 0 ORDER BY pay_deadline_ms",
            )?
            .query_map([], |row| {
                Ok(PendingOrder {
                    order_id: order_id_from_sql(row.get(0)?),
                    item_id: row.get(1)?,
                    user_id: row.get(2)?,
                    quantity: row.get(3)?,
                    pay_deadline_ms: row.get(4)?,
                })
            })?
            .collect()
        })
    }

    fn stock_snapshot(&self) -> Result<Vec<StockRow>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, stock_total, sold_units FROM items ORDER BY id")?
                .query_map([], |row| {
                    Ok(StockRow { item_id: row.get(0)?, stock_total: row.get(1)?, sold_units: row.get(2)? })
                })?
                .collect()
        })
    }

    fn holdings_snapshot(&self) -> Result<Vec<Holding>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT user_id, item_id, units FROM holdings WHERE units > 0 ORDER BY user_id, item_id",
            )?
            .query_map([], |row| Ok(Holding { user_id: row.get(0)?, item_id: row.get(1)?, units: row.get(2)? }))?
            .collect()
        })
    }

    fn reconcile(&self) -> Result<ReconcileReport, StoreError> {
        self.write(|tx| {
            let mut report = ReconcileReport::default();
            let drift: Vec<(ItemId, u64, u64)> = tx
                .prepare_cached(
                    "SELECT i.id, i.sold_units,
                       COALESCE((SELECT SUM(o.quantity) FROM orders o WHERE o.item_id = i.id AND o.status IN (0, 1)), 0)
                     FROM items i ORDER BY i.id",
                )?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            report.items_checked = drift.len() as u64;
            let mut fix = tx.prepare_cached("UPDATE items SET sold_units = ?1 WHERE id = ?2")?;
            for (item_id, recorded, actual) in drift.into_iter().filter(|(_, recorded, actual)| recorded != actual) {
                fix.execute(rusqlite::params![actual, item_id])?;
                report.sold_fixed.push((item_id, recorded, actual));
            }
            // Rows that differ either way: recorded but wrong (or stale), and live but missing.
            let holdings_wrong: u64 = tx
                .prepare_cached(
                    "WITH actual AS (SELECT user_id, item_id, SUM(quantity) AS units FROM orders
                                     WHERE status IN (0, 1) GROUP BY user_id, item_id)
                     SELECT (SELECT COUNT(*) FROM holdings h LEFT JOIN actual a USING (user_id, item_id)
                             WHERE h.units != COALESCE(a.units, 0))
                          + (SELECT COUNT(*) FROM actual a LEFT JOIN holdings h USING (user_id, item_id)
                             WHERE h.units IS NULL)",
                )?
                .query_row([], |row| row.get(0))?;
            if holdings_wrong > 0 {
                // Rewriting the table is simpler than patching it and runs only when drift was found.
                tx.execute_batch(
                    "DELETE FROM holdings;
                     INSERT INTO holdings (user_id, item_id, units)
                       SELECT user_id, item_id, SUM(quantity) FROM orders WHERE status IN (0, 1)
                       GROUP BY user_id, item_id;",
                )?;
            }
            report.holdings_fixed = holdings_wrong;
            Ok(report)
        })
    }
}
