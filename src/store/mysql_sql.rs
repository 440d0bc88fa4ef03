//! What every MySQL operation shares: error classification, the write
//! transaction with its retry on deadlock, multi-row statements of a few
//! fixed sizes, and the conversions between our types and BIGINT columns.
//!
//! **Statement texts are few on purpose.** mysql_async prepares each distinct
//! text once per connection and caches it (binary protocol, no escaping). A
//! multi-row statement for exactly `n` rows would be a new text for every
//! batch size, so rows are sent in chunks of [`CHUNK_ROWS`] sizes, and
//! `IN (…)` lists are padded to one of [`IN_LIST_SIZES`] by repeating their
//! last key (which changes nothing in a lookup).

use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, Pool, Row, Transaction, TxOpts, Value};

use super::StoreError;

/// Multi-row statements carry this many rows each (greedy, largest first):
/// 1,000 rows go as 512 + 3×128 + 3×32 + 8, eight statements of four texts.
/// 512 rows × 8 columns stay far below the protocol's 65,535 placeholders and
/// a few hundred KiB, well under the default `max_allowed_packet` (16 MiB).
pub(super) const CHUNK_ROWS: [usize; 5] = [512, 128, 32, 8, 1];
/// `IN (…)` lists are padded up to one of these lengths.
pub(super) const IN_LIST_SIZES: [usize; 4] = [1, 8, 64, 512];
/// A write transaction killed by a deadlock or a lock-wait timeout is run
/// again from the start this many times in all before the call fails.
const ATTEMPTS_MAX: u32 = 4;

// Server error codes we act on (MySQL and MariaDB share them).
pub(super) const ER_DUP_ENTRY: u16 = 1062;
pub(super) const ER_NO_REFERENCED_ROW: u16 = 1452;
pub(super) const ER_BAD_DB: u16 = 1049;
/// A CHECK constraint refused a row (MariaDB; MySQL 8 says 3819).
pub(super) const ER_CONSTRAINT_FAILED: u16 = 4025;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;
const ER_WARN_DATA_OUT_OF_RANGE: u16 = 1264;

/// Why a step inside an operation stopped.
#[derive(Debug)]
pub(super) enum Fail<E> {
    /// The database refused or could not be reached; classified by [`map_err`].
    Db(mysql_async::Error),
    /// A concurrent transaction got there first (e.g. the same request id
    /// from another instance): run the whole transaction again.
    Retry(&'static str),
    /// The operation's own answer (not found, refused, a bug caught by a check).
    Refused(E),
    /// COMMIT was sent and no answer came back (the connection broke): the
    /// transaction may or may not have committed.
    Unknown(mysql_async::Error),
}

impl<E> From<mysql_async::Error> for Fail<E> {
    fn from(e: mysql_async::Error) -> Self {
        Fail::Db(e)
    }
}

impl<E: From<StoreError>> Fail<E> {
    pub(super) fn into_error(self) -> E {
        match self {
            Fail::Db(e) => map_err(e).into(),
            Fail::Retry(why) => StoreError::Unavailable(format!("{why}: still conflicting after retries")).into(),
            Fail::Refused(e) => e,
            Fail::Unknown(e) => StoreError::OutcomeUnknown(format!("connection lost during COMMIT: {e}")).into(),
        }
    }
}

/// Shorthand for a step's own error.
pub(super) fn refuse<T, E: From<StoreError>>(e: StoreError) -> Result<T, Fail<E>> {
    Err(Fail::Refused(e.into()))
}

pub(super) fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// Classifies a driver error by who is at fault: anything about reaching the
/// server, or the server being busy, is the backend's (503, retry later, and
/// the pool reconnects by itself); the rest is a bug of ours.
pub(super) fn map_err(e: mysql_async::Error) -> StoreError {
    use mysql_async::{DriverError, Error};
    match &e {
        Error::Io(_) => StoreError::Unavailable(e.to_string()),
        Error::Driver(DriverError::ConnectionClosed | DriverError::PoolDisconnected) => {
            StoreError::Unavailable(e.to_string())
        }
        Error::Server(s) => match s.code {
            ER_WARN_DATA_OUT_OF_RANGE => StoreError::OutOfRange("integer above 2^63-1"),
            // Too many connections, shutting down, read-only, access denied,
            // lock waits and deadlocks past our retries, connection killed,
            // disk or table full, statement time-out.
            1021 | 1040 | 1045 | 1053 | 1114 | 1205 | 1213 | 1290 | 1927 | 1969 | 3024 => {
                StoreError::Unavailable(e.to_string())
            }
            // Network errors reported by the server (read/write failures on its side).
            1152..=1161 => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        },
        _ => StoreError::Internal(e.to_string()),
    }
}

pub(super) fn is_retryable<E>(fail: &Fail<E>) -> bool {
    match fail {
        Fail::Db(e) => matches!(server_code(e), Some(ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT)),
        Fail::Retry(_) => true,
        // Not here: only the caller knows how to recognise its own earlier
        // attempt (`orders::writer` asks again with the same ids).
        Fail::Refused(_) | Fail::Unknown(_) => false,
    }
}

/// Runs `body` in one transaction and commits if it returns `Ok` (rolls back
/// otherwise). A deadlock, lock-wait timeout or [`Fail::Retry`] runs it again
/// from the start, on fresh reads, up to [`ATTEMPTS_MAX`] times in all. `Ok`
/// means committed, and durable with `innodb_flush_log_at_trx_commit=1`.
pub(super) async fn write<T, E: From<StoreError>>(
    pool: &Pool,
    mut body: impl AsyncFnMut(&mut Transaction<'static>) -> Result<T, Fail<E>>,
) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        let result = async {
            let mut tx = match pool.start_transaction(TxOpts::default()).await {
                // A pooled connection that died while idle (the database
                // restarted): nothing was done yet, so another one is safe.
                Err(e) if is_broken(&e) => pool.start_transaction(TxOpts::default()).await?,
                other => other?,
            };
            match body(&mut tx).await {
                Ok(value) => {
                    match tx.commit().await {
                        // The server answered: it did not commit (and rolled back).
                        Err(e @ mysql_async::Error::Server(_)) => return Err(Fail::Db(e)),
                        Err(e) => return Err(Fail::Unknown(e)),
                        Ok(()) => {}
                    }
                    Ok(value)
                }
                Err(fail) => {
                    // Best effort: a broken connection rolls back on its own.
                    let _ = tx.rollback().await;
                    Err(fail)
                }
            }
        }
        .await;
        match result {
            Err(fail) if attempt < ATTEMPTS_MAX && is_retryable(&fail) => attempt += 1,
            other => return other.map_err(Fail::into_error),
        }
    }
}

/// Runs `body` on one pooled connection, outside any explicit transaction.
/// Reads change nothing, so one that fails on a connection broken while it
/// was idle in the pool is run once more, on a new connection.
pub(super) async fn read<T>(
    pool: &Pool,
    mut body: impl AsyncFnMut(&mut Conn) -> Result<T, Fail<StoreError>>,
) -> Result<T, StoreError> {
    let mut conn = pool.get_conn().await.map_err(map_err)?;
    match body(&mut conn).await {
        Err(Fail::Db(e)) if is_broken(&e) => {
            drop(conn);
            let mut conn = pool.get_conn().await.map_err(map_err)?;
            body(&mut conn).await.map_err(Fail::into_error)
        }
        other => other.map_err(Fail::into_error),
    }
}

/// The connection itself failed (as opposed to the statement): the server
/// went away, restarted or killed it.
fn is_broken(e: &mysql_async::Error) -> bool {
    use mysql_async::{DriverError, Error};
    match e {
        Error::Io(_) | Error::Driver(DriverError::ConnectionClosed) => true,
        // Server shutdown in progress, connection killed.
        Error::Server(s) => matches!(s.code, 1053 | 1927),
        _ => false,
    }
}

/// Runs a query and converts its rows without panicking (a mismatch between
/// the schema and the code is reported as `Internal`, never an abort).
pub(super) async fn select<T: FromRow, E: From<StoreError>>(
    conn: &mut impl Queryable,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<T>, Fail<E>> {
    let rows: Vec<Row> = conn.exec(sql, params).await?;
    rows.into_iter()
        .map(|row| {
            T::from_row_opt(row).map_err(|e| Fail::Refused(StoreError::Internal(format!("row of {sql}: {e}")).into()))
        })
        .collect()
}

/// The first row of [`select`], if any.
pub(super) async fn select_one<T: FromRow, E: From<StoreError>>(
    conn: &mut impl Queryable,
    sql: &str,
    params: Vec<Value>,
) -> Result<Option<T>, Fail<E>> {
    Ok(select(conn, sql, params).await?.into_iter().next())
}

/// A connection or a transaction on one: what can run a statement and then
/// say how many rows it changed.
pub(super) trait Db: Queryable {
    fn affected(&self) -> u64;
}

impl Db for Conn {
    fn affected(&self) -> u64 {
        self.affected_rows()
    }
}

impl Db for Transaction<'_> {
    fn affected(&self) -> u64 {
        self.affected_rows()
    }
}

/// Runs a statement and returns the rows it changed.
pub(super) async fn execute<E>(conn: &mut impl Db, sql: &str, params: Vec<Value>) -> Result<u64, Fail<E>> {
    conn.exec_drop(sql, params).await?;
    Ok(conn.affected())
}

/// Splits `rows` rows into chunk sizes from [`CHUNK_ROWS`], largest first.
pub(super) fn chunk_sizes(mut rows: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let size = CHUNK_ROWS.into_iter().find(|&size| size <= rows)?;
        rows -= size;
        Some(size)
    })
}

/// Runs `head VALUES (…), (…) tail` over `rows`, `columns` values per row, in
/// chunks of fixed sizes; returns the total of affected rows.
pub(super) async fn insert_rows<E>(
    conn: &mut impl Db,
    head: &str,
    tail: &str,
    columns: usize,
    rows: &[Vec<Value>],
) -> Result<u64, Fail<E>> {
    insert_rows_then(conn, head, tail, &[], columns, rows).await
}

/// [`insert_rows`] with `tail_params` bound to the placeholders of `tail`
/// (after every row's values), the same for every chunk.
pub(super) async fn insert_rows_then<E>(
    conn: &mut impl Db,
    head: &str,
    tail: &str,
    tail_params: &[Value],
    columns: usize,
    rows: &[Vec<Value>],
) -> Result<u64, Fail<E>> {
    let mut affected = 0;
    let mut rest = rows;
    for size in chunk_sizes(rows.len()) {
        let (chunk, after) = rest.split_at(size);
        rest = after;
        let sql = values_sql(head, tail, columns, size);
        let mut params: Vec<Value> = Vec::with_capacity(size * columns + tail_params.len());
        params.extend(chunk.iter().flatten().cloned());
        params.extend(tail_params.iter().cloned());
        affected += execute(conn, &sql, params).await?;
    }
    Ok(affected)
}

/// `head VALUES (?, ?), (?, ?) tail` for `rows` rows of `columns` placeholders.
fn values_sql(head: &str, tail: &str, columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * (row.len() + 2) + 8);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// Pads `keys` into chunks whose lengths are in [`IN_LIST_SIZES`]; each chunk
/// is `(placeholders, values)`: `placeholders` is `?, ?, …` for one key of
/// `per_key` values (`(?, ?)` if more than one), to put inside `IN (…)`.
pub(super) fn in_lists(keys: &[Vec<Value>], per_key: usize) -> Vec<(String, Vec<Value>)> {
    let largest = IN_LIST_SIZES[IN_LIST_SIZES.len() - 1];
    keys.chunks(largest)
        .map(|chunk| {
            // Cannot fail: a chunk is never longer than the largest size.
            let size = IN_LIST_SIZES.into_iter().find(|&s| s >= chunk.len()).unwrap_or(largest);
            let one = if per_key == 1 { "?".to_owned() } else { format!("({})", vec!["?"; per_key].join(", ")) };
            let mut placeholders = String::with_capacity(size * (one.len() + 2));
            let mut values = Vec::with_capacity(size * per_key);
            for i in 0..size {
                if i > 0 {
                    placeholders.push_str(", ");
                }
                placeholders.push_str(&one);
                // Padding repeats the last key: the lookup's answer is the same.
                values.extend(chunk[i.min(chunk.len() - 1)].iter().cloned());
            }
            (placeholders, values)
        })
        .collect()
}

/// Ids, times, money and counts are BIGINT (signed, like SQLite's integers):
/// a value above 2^63-1 is refused rather than wrapped.
pub(super) fn int(v: u64, field: &'static str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange(field))
}

/// Order ids use all 64 bits; flipping the top bit maps u64 onto BIGINT
/// bijectively and monotonically, so `ORDER BY id` and the cursors keep u64
/// order (the same encoding as the SQLite store).
pub(super) fn order_id_to_sql(id: u64) -> i64 {
    (id ^ (1 << 63)) as i64
}

pub(super) fn order_id_from_sql(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// Quotes an identifier we made ourselves (a database name from the URL).
pub(super) fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('`');
    for c in name.chars() {
        if c == '`' {
            quoted.push('`');
        }
        quoted.push(c);
    }
    quoted.push('`');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_use_few_sizes_and_cover_every_row() {
        for rows in [0, 1, 7, 8, 9, 511, 512, 1000, 5000] {
            let sizes: Vec<usize> = chunk_sizes(rows).collect();
            assert_eq!(sizes.iter().sum::<usize>(), rows);
            assert!(sizes.iter().all(|s| CHUNK_ROWS.contains(s)));
        }
        assert_eq!(chunk_sizes(1000).collect::<Vec<_>>(), [512, 128, 128, 128, 32, 32, 32, 8]);
    }

    #[test]
    fn in_lists_are_padded_with_the_last_key() {
        let keys: Vec<Vec<Value>> = (1..=3i64).map(|k| vec![Value::from(k)]).collect();
        let lists = in_lists(&keys, 1);
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].0, "?, ?, ?, ?, ?, ?, ?, ?");
        assert_eq!(lists[0].1.last(), Some(&Value::from(3i64)));
        let pairs: Vec<Vec<Value>> = vec![vec![Value::from(1i64), Value::from("a")]];
        assert_eq!(in_lists(&pairs, 2)[0].0, "(?, ?)");
        assert_eq!(in_lists(&vec![vec![Value::from(1i64)]; 1300], 1).len(), 3);
    }

    #[test]
    fn values_sql_has_one_group_per_row() {
        assert_eq!(values_sql("INSERT INTO t (a, b)", "", 2, 2), "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ");
    }

    #[test]
    fn order_ids_keep_their_order() {
        for id in [0, 1, i64::MAX as u64, 1 << 63, u64::MAX] {
            assert_eq!(order_id_from_sql(order_id_to_sql(id)), id);
        }
        assert!(order_id_to_sql(i64::MAX as u64) < order_id_to_sql(1 << 63));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }
}
