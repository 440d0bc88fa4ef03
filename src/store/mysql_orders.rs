//! Items, orders and stock on MySQL: the same semantics as `sqlite.rs`.
//!
//! **Lock order.** Payments, cancellations and expiries lock the order rows
//! they change, then item rows (ascending id), then holdings. A group commit
//! changes no existing order; it runs as `store.commit_lanes` concurrent
//! transactions, one per lane of users (see [`commit_orders`]). Each lane's
//! first attempt takes its item row locks *last*, with the conditional
//! `UPDATE items` just before COMMIT, so sibling lanes selling one item
//! overlap everything but that UPDATE and the COMMIT. Its careful attempt (and
//! every attempt with one lane) locks its items first, as before: batches
//! from several instances selling one item then queue on that item's row —
//! the arbitration of stock — and never deadlock with a payment or an
//! expiry. A lock-last attempt can (it holds holdings rows before the item),
//! and so can two lanes in rare interleavings; InnoDB then kills one
//! transaction and `mysql_sql::write` runs it again, carefully.

use std::collections::{BTreeMap, HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Pool, Transaction, Value};

use super::mysql_batch::{Found, ItemRow, Plan, plan};
use super::mysql_sql::{
    ER_CONSTRAINT_FAILED, ER_DUP_ENTRY, Fail, execute, in_lists, insert_rows, insert_rows_then, int, is_retryable,
    order_id_from_sql, order_id_to_sql, read, refuse, select, select_one, server_code, write,
};
use super::{
    CancelError, CancelOutcome, Holding, ItemId, ItemRecord, ItemStats, NewOrder, OrderId, OrderOutcome, OrderRecord,
    OrderStatus, PAGE_ROWS_MAX, PayError, PendingOrder, ReconcileReport, ReleasedUnits, StockRow, StoreError, UserId,
};

const ORDER_COLUMNS: &str = "id, item_id, user_id, quantity, status, created_ms, pay_deadline_ms, paid_ms, request_id";
const ITEM_COLUMNS: &str = "id, name, description, price_cents, stock_total, per_user_limit, start_ms, end_ms";
const STATUS_PENDING: i64 = 0;
const STATUS_PAID: i64 = 1;
const STATUS_CANCELLED: i64 = 2;
const STATUS_EXPIRED: i64 = 3;

type OrderRow = (i64, ItemId, UserId, u32, i64, u64, u64, Option<u64>, Option<String>);
type ItemRowRaw = (ItemId, String, String, u64, u64, u32, u64, u64);

fn status_to_sql(status: OrderStatus) -> i64 {
    match status {
        OrderStatus::PendingPayment => STATUS_PENDING,
        OrderStatus::Paid => STATUS_PAID,
        OrderStatus::Cancelled => STATUS_CANCELLED,
        OrderStatus::Expired => STATUS_EXPIRED,
    }
}

fn status_from_sql(v: i64) -> Result<OrderStatus, StoreError> {
    match v {
        STATUS_PENDING => Ok(OrderStatus::PendingPayment),
        STATUS_PAID => Ok(OrderStatus::Paid),
        STATUS_CANCELLED => Ok(OrderStatus::Cancelled),
        STATUS_EXPIRED => Ok(OrderStatus::Expired),
        other => Err(StoreError::Internal(format!("unknown order status {other}"))),
    }
}

fn order_from_row(row: OrderRow) -> Result<OrderRecord, StoreError> {
    let (id, item_id, user_id, quantity, status, created_ms, pay_deadline_ms, paid_ms, request_id) = row;
    Ok(OrderRecord {
        id: order_id_from_sql(id),
        item_id,
        user_id,
        quantity,
        status: status_from_sql(status)?,
        created_ms,
        pay_deadline_ms,
        paid_ms,
        request_id,
    })
}

fn item_from_row(row: ItemRowRaw) -> ItemRecord {
    let (id, name, description, price_cents, stock_total, per_user_limit, start_ms, end_ms) = row;
    ItemRecord { id, name, description, price_cents, stock_total, per_user_limit, start_ms, end_ms }
}

async fn select_orders<E: From<StoreError>>(
    conn: &mut impl Queryable,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<OrderRecord>, Fail<E>> {
    let rows: Vec<OrderRow> = select(conn, sql, params).await?;
    rows.into_iter().map(|row| order_from_row(row).map_err(|e| Fail::Refused(e.into()))).collect()
}

/// One order, locked for the rest of the transaction when `lock` says so.
async fn select_order<E: From<StoreError>>(
    conn: &mut impl Queryable,
    order_id: OrderId,
    lock: Lock,
) -> Result<Option<OrderRecord>, Fail<E>> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?{}", lock.sql());
    Ok(select_orders(conn, &sql, vec![order_id_to_sql(order_id).into()]).await?.into_iter().next())
}

#[derive(Clone, Copy)]
enum Lock {
    None,
    ForUpdate,
}

impl Lock {
    fn sql(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::ForUpdate => " FOR UPDATE",
        }
    }
}

/// Units per status of one item's orders; `None` if the item does not exist.
async fn stats_on<E: From<StoreError>>(conn: &mut impl Queryable, item_id: i64) -> Result<Option<ItemStats>, Fail<E>> {
    let total: Option<u64> =
        select_one(conn, "SELECT stock_total FROM items WHERE id = ?", vec![item_id.into()]).await?;
    let Some(stock_total) = total else {
        return Ok(None);
    };
    let rows: Vec<(i64, u64)> = select(
        conn,
        "SELECT status, CAST(SUM(quantity) AS SIGNED) FROM orders WHERE item_id = ? GROUP BY status",
        vec![item_id.into()],
    )
    .await?;
    let mut units = [0u64; 4];
    for (status, sum) in rows {
        let status = status_from_sql(status).map_err(|e| Fail::Refused(e.into()))?;
        units[status_to_sql(status) as usize] = sum;
    }
    let [pending_payment, paid, cancelled, expired] = units;
    Ok(Some(ItemStats {
        item_id: item_id as ItemId,
        stock_total,
        // Saturating: a stock cut below sold is refused, so this only guards corrupt data.
        stock_left: stock_total.saturating_sub(pending_payment + paid),
        pending_payment,
        paid,
        cancelled,
        expired,
    }))
}

pub(super) async fn put_item(pool: &Pool, item: &ItemRecord) -> Result<ItemRecord, StoreError> {
    super::check_stock_total(item)?;
    let params: Vec<Value> = vec![
        int(item.id, "id")?.into(),
        item.name.as_str().into(),
        item.description.as_str().into(),
        int(item.price_cents, "price_cents")?.into(),
        int(item.stock_total, "stock_total")?.into(),
        item.per_user_limit.into(),
        int(item.start_ms, "start_ms")?.into(),
        int(item.end_ms, "end_ms")?.into(),
    ];
    let id = int(item.id, "id")?;
    write(pool, async |tx| {
        let current: Option<u64> =
            select_one(tx, "SELECT stock_total FROM items WHERE id = ? FOR UPDATE", vec![id.into()]).await?;
        if current.is_some_and(|stock| stock != item.stock_total) {
            let has_orders: Option<i64> =
                select_one(tx, "SELECT 1 FROM orders WHERE item_id = ? LIMIT 1", vec![id.into()]).await?;
            if has_orders.is_some() {
                return refuse(StoreError::ItemHasOrders);
            }
        }
        execute(
            tx,
            "INSERT INTO items (id, name, description, price_cents, stock_total, per_user_limit, start_ms, end_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE name = VALUES(name), description = VALUES(description),
               price_cents = VALUES(price_cents), stock_total = VALUES(stock_total),
               per_user_limit = VALUES(per_user_limit), start_ms = VALUES(start_ms), end_ms = VALUES(end_ms)",
            params.clone(),
        )
        .await?;
        Ok(item.clone())
    })
    .await
}

pub(super) async fn item(pool: &Pool, item_id: ItemId) -> Result<Option<ItemRecord>, StoreError> {
    let Ok(id) = int(item_id, "item_id") else {
        return Ok(None);
    };
    read(pool, async |conn| {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = ?");
        Ok(select_one::<ItemRowRaw, _>(conn, &sql, vec![id.into()]).await?.map(item_from_row))
    })
    .await
}

pub(super) async fn items(pool: &Pool) -> Result<Vec<ItemRecord>, StoreError> {
    read(pool, async |conn| {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY id");
        Ok(select::<ItemRowRaw, _>(conn, &sql, Vec::new()).await?.into_iter().map(item_from_row).collect())
    })
    .await
}

pub(super) async fn adjust_stock(pool: &Pool, item_id: ItemId, delta: i64) -> Result<ItemStats, StoreError> {
    let id = int(item_id, "item_id").map_err(|_| StoreError::NotFound)?;
    write(pool, async |tx| {
        let row: Option<(i64, i64)> =
            select_one(tx, "SELECT stock_total, sold_units FROM items WHERE id = ? FOR UPDATE", vec![id.into()])
                .await?;
        let Some((stock_total, sold_units)) = row else {
            return refuse(StoreError::NotFound);
        };
        let Some(new_total) = stock_total.checked_add(delta).filter(|total| *total <= super::STOCK_MAX as i64) else {
            return refuse(StoreError::OutOfRange("delta"));
        };
        if new_total < sold_units {
            return refuse(StoreError::StockBelowSold);
        }
        execute(tx, "UPDATE items SET stock_total = ? WHERE id = ?", vec![new_total.into(), id.into()]).await?;
        // Inside the transaction: the stats include this change.
        match stats_on(tx, id).await? {
            Some(stats) => Ok(stats),
            None => refuse(StoreError::NotFound),
        }
    })
    .await
}

pub(super) async fn item_stats(pool: &Pool, item_id: ItemId) -> Result<ItemStats, StoreError> {
    let id = int(item_id, "item_id").map_err(|_| StoreError::NotFound)?;
    read(pool, async |conn| stats_on(conn, id).await).await?.ok_or(StoreError::NotFound)
}

/// A new generation of the item's shared stock pool and the stock left, in
/// one transaction (see `Store::renew_pool_epoch`). The item's row lock
/// orders it against every batch: one committed before it is counted in the
/// stock left, one after it finds the new generation.
pub(super) async fn renew_pool_epoch(pool: &Pool, item_id: ItemId) -> Result<(u64, u64), StoreError> {
    let id = int(item_id, "item_id").map_err(|_| StoreError::NotFound)?;
    write(pool, async |tx| {
        let changed = execute(tx, "UPDATE items SET pool_epoch = pool_epoch + 1 WHERE id = ?", vec![id.into()]).await?;
        if changed != 1 {
            return refuse(StoreError::NotFound);
        }
        let epoch: Option<u64> = select_one(tx, "SELECT pool_epoch FROM items WHERE id = ?", vec![id.into()]).await?;
        let stats = stats_on(tx, id).await?.ok_or(Fail::Refused(StoreError::NotFound))?;
        Ok((epoch.unwrap_or(0), stats.stock_left))
    })
    .await
}

/// One group commit as `lanes` concurrent transactions on as many pooled
/// connections, so the database works on a batch with several threads.
/// Orders are split by user (see [`lane_of`]): a user's orders, holdings
/// rows and request ids are all in one lane, so each lane decides its
/// per-user limits and duplicates alone, exactly as one transaction would;
/// lanes meet only on the item rows, where stock is arbitrated anyway. With
/// one lane this is one transaction, items locked first.
///
/// The outcomes come back in the batch's order. A lane that fails after a
/// sibling committed leaves the batch half written: that is reported as
/// `OutcomeUnknown`, and the order writer sends the whole batch again,
/// which is idempotent (the committed lane's orders come back as their own
/// duplicates or taken ids, which the writer recognises).
pub(super) async fn commit_orders(
    pool: &Pool,
    orders: &[NewOrder],
    lanes: usize,
) -> Result<Vec<OrderOutcome>, StoreError> {
    // Converted for the whole batch before any lane starts: a value that
    // does not fit fails the batch with nothing written, as in SQLite.
    let rows = order_rows(orders)?;
    if lanes <= 1 || orders.len() <= 1 {
        return commit_lane(pool, orders, &rows, ItemLocks::First).await;
    }
    let split = split_into_lanes(orders, lanes);
    let mut running = tokio::task::JoinSet::new();
    for (lane, indices) in split.iter().enumerate().filter(|(_, indices)| !indices.is_empty()) {
        let sub: Vec<NewOrder> = indices.iter().map(|&i| orders[i].clone()).collect();
        let sub_rows: Vec<Vec<Value>> = indices.iter().map(|&i| rows[i].clone()).collect();
        let pool = pool.clone();
        running.spawn_local(async move { (lane, commit_lane(&pool, &sub, &sub_rows, ItemLocks::Last).await) });
    }
    let mut results: Vec<Option<Result<Vec<OrderOutcome>, StoreError>>> = vec![None; split.len()];
    // A lane that panicked leaves its slot empty (see `merge_lanes`).
    while let Some(joined) = running.join_next().await {
        if let Ok((lane, result)) = joined {
            results[lane] = Some(result);
        }
    }
    merge_lanes(orders.len(), &split, results)
}

/// The lane of each order: a hash of its user, so a user's orders always
/// share one (also across batches, which keeps a user's holdings row in one
/// lane's hands). Returns the batch's indices per lane, in batch order.
fn split_into_lanes(orders: &[NewOrder], lanes: usize) -> Vec<Vec<usize>> {
    let mut split = vec![Vec::with_capacity(orders.len() / lanes + 1); lanes];
    for (index, order) in orders.iter().enumerate() {
        split[lane_of(order.user_id, lanes)].push(index);
    }
    split
}

/// Fibonacci hashing: consecutive user ids (bulk-created users) spread evenly.
pub(super) fn lane_of(user_id: UserId, lanes: usize) -> usize {
    ((user_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % lanes as u64) as usize
}

/// Puts every lane's outcomes back at their orders' places. If a lane
/// failed, the batch failed — with an unknown outcome if another lane wrote
/// orders (see [`commit_orders`]).
fn merge_lanes(
    len: usize,
    split: &[Vec<usize>],
    results: Vec<Option<Result<Vec<OrderOutcome>, StoreError>>>,
) -> Result<Vec<OrderOutcome>, StoreError> {
    let wrote = results.iter().flatten().flatten().any(|o| o.iter().any(|o| matches!(o, OrderOutcome::Committed(_))));
    let mut merged: Vec<Option<OrderOutcome>> = vec![None; len];
    let mut failures: Vec<StoreError> = Vec::new();
    for (indices, result) in split.iter().zip(results) {
        match result {
            Some(Ok(outcomes)) => {
                for (&index, outcome) in indices.iter().zip(outcomes) {
                    merged[index] = Some(outcome);
                }
            }
            Some(Err(e)) => failures.push(e),
            None if indices.is_empty() => {}
            // It may have committed before it ended.
            None => failures.push(StoreError::OutcomeUnknown("a commit lane ended without an answer".into())),
        }
    }
    // A lane of unknown outcome makes the whole batch's unknown.
    if let Some(unknown) = failures.iter().find(|e| matches!(e, StoreError::OutcomeUnknown(_))) {
        return Err(unknown.clone());
    }
    match failures.into_iter().next() {
        Some(e) if wrote => Err(StoreError::OutcomeUnknown(format!("a lane committed and a sibling failed: {e}"))),
        Some(e) => Err(e),
        // Every index is in exactly one lane, which answered one outcome per order.
        None => merged
            .into_iter()
            .map(|o| o.ok_or_else(|| StoreError::Internal("a lane answered too few outcomes".into())))
            .collect(),
    }
}

/// When an attempt takes its items' row locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemLocks {
    /// `SELECT … FOR UPDATE` before anything else: nothing the batch read
    /// about its items or their holdings can change before it commits.
    First,
    /// Read without a lock; the row is locked by the conditional `UPDATE
    /// items` written last, so it is held only from there to COMMIT. What
    /// was read may be stale by then: the writes are conditional, and a
    /// condition that fails sends the lane to a careful attempt
    /// (`Fail::Retry`), which locks first.
    Last,
}

/// One transaction for one lane: read what it depends on, decide every
/// entry in Rust (`mysql_batch::plan`), then write with multi-row statements
/// that are themselves conditional.
///
/// The first attempt is optimistic twice over. It locks its items `first`
/// (one lane) or last (several, see [`ItemLocks`]). And it does not look
/// order ids or request ids up: order ids are made unique by this server
/// and a request id seen before is almost always answered from memory, so
/// the primary key and the `(user_id, request_id)` unique key refuse a
/// duplicate at the INSERT. Any conflict rolls the lane back, and the next
/// attempt is careful: it locks its items first, reads the batch's request
/// ids and order ids and decides each entry. A first attempt that refuses
/// an entry reads them too before writing: a retried request id counts
/// against its own per-user limit, so its duplicate would show as
/// `LimitReached` (and a taken id would hide behind a missing user).
async fn commit_lane(
    pool: &Pool,
    orders: &[NewOrder],
    rows: &[Vec<Value>],
    first: ItemLocks,
) -> Result<Vec<OrderOutcome>, StoreError> {
    let mut careful = false;
    write(pool, async |tx| {
        let locks = if careful { ItemLocks::First } else { first };
        let attempt = async {
            let mut found = read_batch(tx, orders, locks).await?;
            if careful {
                read_duplicates(tx, orders, &mut found).await?;
            }
            let mut decided = plan(orders, found.clone());
            if !careful && decided.outcomes.iter().any(|o| !matches!(o, OrderOutcome::Committed(_))) {
                read_duplicates(tx, orders, &mut found).await?;
                decided = plan(orders, found);
            }
            write_batch(tx, rows, &decided, locks).await.map(|()| decided.outcomes)
        };
        let result = attempt.await;
        // A conflict, deadlock or lock wait time-out: run it again carefully.
        if result.as_ref().is_err_and(is_retryable) {
            careful = true;
        }
        result
    })
    .await
}

/// The INSERT parameters of every order, converted (and range-checked) once
/// before any transaction: a value that does not fit fails the batch, as in SQLite.
fn order_rows(orders: &[NewOrder]) -> Result<Vec<Vec<Value>>, StoreError> {
    orders
        .iter()
        .map(|o| {
            Ok(vec![
                order_id_to_sql(o.id).into(),
                int(o.item_id, "item_id")?.into(),
                int(o.user_id, "user_id")?.into(),
                o.quantity.get().into(),
                STATUS_PENDING.into(),
                int(o.created_ms, "created_ms")?.into(),
                int(o.pay_deadline_ms, "pay_deadline_ms")?.into(),
                o.request_id.as_deref().into(),
            ])
        })
        .collect()
}

/// What every attempt's decisions depend on: the batch's items (locked if
/// `locks` says first), then per item its users with their holdings in one
/// join, whatever the batch's size.
async fn read_batch(
    tx: &mut Transaction<'static>,
    orders: &[NewOrder],
    locks: ItemLocks,
) -> Result<Found, Fail<StoreError>> {
    let mut found = Found::default();
    let mut item_ids: Vec<ItemId> = orders.iter().map(|o| o.item_id).collect();
    item_ids.sort_unstable();
    item_ids.dedup();
    // Locked first (or not at all) and in id order (see the module doc). Items
    // are never deleted, so one read unlocked stays found. Ids above i64 cannot exist.
    let keys: Vec<Vec<Value>> =
        item_ids.iter().filter_map(|&id| i64::try_from(id).ok()).map(|id| vec![id.into()]).collect();
    let lock = match locks {
        ItemLocks::First => Lock::ForUpdate,
        ItemLocks::Last => Lock::None,
    };
    for (list, params) in in_lists(&keys, 1) {
        let sql = format!(
            "SELECT id, stock_total, per_user_limit, sold_units, pool_epoch FROM items WHERE id IN ({list}) ORDER BY id{}",
            lock.sql()
        );
        for (id, stock_total, per_user_limit, sold_units, pool_epoch) in
            select::<(ItemId, u64, u64, u64, u64), _>(tx, &sql, params).await?
        {
            found.items.insert(id, ItemRow { stock_total, per_user_limit, sold_units, pool_epoch });
        }
    }

    // Not locked. With the items locked first this read is exact: every
    // transaction that changes a holdings row of an item takes that item's
    // row lock before it commits (batches, `give_back`, `reconcile`), so
    // while this batch holds it no such change commits, and READ COMMITTED
    // reads the latest committed rows. (One in flight, not yet committed —
    // a lock-last lane of another instance waiting for the item — is not
    // seen; if this batch then writes the same row it waits for it, InnoDB
    // finds the deadlock and one of the two runs again.)
    // With the items locked last the read may be stale by the write, and
    // need not be exact either: the per-user limit is enforced by the
    // holdings upsert itself, which adds the batch's units to whatever the
    // row holds when written (under the row's own lock) and fails past the
    // limit (`CHECK (units >= 0)`); a row that appeared or vanished since
    // shows in its affected-row count. Either sends the lane to a careful
    // attempt. A stale read can only refuse `LimitReached` on what was true
    // when read. Users are never deleted. Items this batch did not find
    // need no holdings.
    let mut pairs: Vec<(ItemId, UserId)> =
        orders.iter().filter(|o| found.items.contains_key(&o.item_id)).map(|o| (o.item_id, o.user_id)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    for item_pairs in pairs.chunk_by(|a, b| a.0 == b.0) {
        let item_id = item_pairs[0].0;
        let keys: Vec<Vec<Value>> = item_pairs.iter().map(|&(_, user_id)| vec![user_id.into()]).collect();
        for (list, params) in in_lists(&keys, 1) {
            let sql = format!(
                "SELECT u.id, h.units FROM users u LEFT JOIN holdings h ON h.user_id = u.id AND h.item_id = ?
                 WHERE u.id IN ({list})"
            );
            let mut all: Vec<Value> = Vec::with_capacity(params.len() + 1);
            all.push(item_id.into());
            all.extend(params);
            for (user_id, units) in select::<(UserId, Option<u64>), _>(tx, &sql, all).await? {
                found.users.insert(user_id);
                if let Some(units) = units {
                    found.holdings.insert((user_id, item_id), units);
                }
            }
        }
    }
    // Orders of unknown items are refused for the item before their user
    // is checked, so those users need no lookup.
    Ok(found)
}

/// The orders already made under the batch's request ids, and which of its
/// order ids are taken: what a careful attempt decides duplicates by.
async fn read_duplicates(
    tx: &mut Transaction<'static>,
    orders: &[NewOrder],
    found: &mut Found,
) -> Result<(), Fail<StoreError>> {
    // Not locked: a concurrent insert of the same request id (another
    // instance) fails this batch's INSERT on the unique key, and the batch is
    // then run again and finds it here.
    let keys: Vec<Vec<Value>> =
        orders.iter().filter_map(|o| Some(vec![o.user_id.into(), o.request_id.as_deref()?.into()])).collect();
    for (list, params) in in_lists(&keys, 2) {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE (user_id, request_id) IN ({list})");
        for order in select_orders(tx, &sql, params).await? {
            if let Some(request_id) = order.request_id.clone() {
                found.requests.insert((order.user_id, request_id), order);
            }
        }
    }
    let keys: Vec<Vec<Value>> = orders.iter().map(|o| vec![order_id_to_sql(o.id).into()]).collect();
    for (list, params) in in_lists(&keys, 1) {
        let sql = format!("SELECT id FROM orders WHERE id IN ({list})");
        found.ids_taken.extend(select::<i64, _>(tx, &sql, params).await?.into_iter().map(order_id_from_sql));
    }
    Ok(())
}

/// Writes a plan. Each write is conditional on the limits it relies on, and
/// checks the rows it changed: a plan that would oversell or pass a per-user
/// limit fails the whole batch rather than being applied. With the items
/// locked first that is a bug of ours (`Internal`); locked last, it is what
/// a concurrent transaction changed since the plan was read, and the lane is
/// decided again, carefully ([`Fail::Retry`]).
async fn write_batch(
    tx: &mut Transaction<'static>,
    rows: &[Vec<Value>],
    plan: &Plan,
    locks: ItemLocks,
) -> Result<(), Fail<StoreError>> {
    let conflict = |why: &'static str, detail: String| -> Fail<StoreError> {
        match locks {
            ItemLocks::First => Fail::Refused(StoreError::Internal(format!("{why}: {detail}"))),
            ItemLocks::Last => Fail::Retry(why),
        }
    };
    if plan.inserts.is_empty() {
        return Ok(());
    }
    let inserts: Vec<Vec<Value>> = plan.inserts.iter().map(|&i| rows[i].clone()).collect();
    let inserted = insert_rows(
        tx,
        "INSERT INTO orders (id, item_id, user_id, quantity, status, created_ms, pay_deadline_ms, request_id)",
        "",
        8,
        &inserts,
    )
    .await;
    match inserted {
        // An order id or request id is taken (by an earlier batch, or by
        // another transaction since this one read): decide again, carefully.
        Err(Fail::Db(e)) if server_code(&e) == Some(ER_DUP_ENTRY) => return Err(Fail::Retry("order id or request id")),
        other => other?,
    };

    // One statement per item and chunk: a new row is inserted, an existing
    // one gains the units only within the item's limit — past it, the value
    // becomes -1, which the table's CHECK (units >= 0) refuses, failing the
    // statement and so the batch. MySQL counts 1 affected row per insert and
    // 2 per update, which is checked against the plan's view.
    for item_holdings in plan.holdings.chunk_by(|a, b| a.item_id == b.item_id) {
        let limit = item_holdings[0].limit;
        let rows: Vec<Vec<Value>> =
            item_holdings.iter().map(|h| vec![h.user_id.into(), h.item_id.into(), h.units.into()]).collect();
        let affected = match insert_rows_then(
            tx,
            "INSERT INTO holdings (user_id, item_id, units)",
            "ON DUPLICATE KEY UPDATE units = IF(units + VALUES(units) <= ?, units + VALUES(units), -1)",
            &[limit.into()],
            3,
            &rows,
        )
        .await
        {
            Err(Fail::Db(e)) if server_code(&e) == Some(ER_CONSTRAINT_FAILED) => {
                return Err(conflict("batch would pass a per-user limit", format!("limit {limit}")));
            }
            other => other?,
        };
        let existed = item_holdings.iter().filter(|h| h.existed).count() as u64;
        let expected = item_holdings.len() as u64 + existed;
        if affected != expected {
            return Err(conflict(
                "holdings changed under the batch",
                format!("{affected} rows affected, {expected} expected"),
            ));
        }
    }

    // Last, in id order: with the items locked last, the row lock that
    // arbitrates stock is held only from here to COMMIT. The generation too:
    // the plan fenced orders by the one it read, and a rebuild since then
    // (locked last) makes this attempt run again, carefully.
    for &(item_id, units, pool_epoch) in &plan.sold {
        let changed = execute(
            tx,
            "UPDATE items SET sold_units = sold_units + ?
             WHERE id = ? AND sold_units + ? <= stock_total AND pool_epoch = ?",
            vec![units.into(), item_id.into(), units.into(), pool_epoch.into()],
        )
        .await?;
        if changed != 1 {
            return Err(conflict("batch would oversell an item", format!("item {item_id} by its {units} units")));
        }
    }
    Ok(())
}

pub(super) async fn order(pool: &Pool, order_id: OrderId) -> Result<Option<OrderRecord>, StoreError> {
    read(pool, async |conn| select_order(conn, order_id, Lock::None).await).await
}

pub(super) async fn order_by_request(
    pool: &Pool,
    user_id: UserId,
    request_id: &str,
) -> Result<Option<OrderRecord>, StoreError> {
    read(pool, async |conn| {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ? AND request_id = ?");
        Ok(select_orders(conn, &sql, vec![user_id.into(), request_id.into()]).await?.into_iter().next())
    })
    .await
}

pub(super) async fn orders_of_user(
    pool: &Pool,
    user_id: UserId,
    limit: u32,
    before: Option<OrderId>,
) -> Result<Vec<OrderRecord>, StoreError> {
    // No cursor: start at the greatest id, u64::MAX included.
    let (bound, op) = match before {
        Some(id) => (order_id_to_sql(id), "<"),
        None => (i64::MAX, "<="),
    };
    read(pool, async |conn| {
        let sql =
            format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ? AND id {op} ? ORDER BY id DESC LIMIT ?");
        select_orders(conn, &sql, vec![user_id.into(), bound.into(), limit.min(PAGE_ROWS_MAX).into()]).await
    })
    .await
}

pub(super) async fn orders_of_item(
    pool: &Pool,
    item_id: ItemId,
    limit: u32,
    after: Option<OrderId>,
) -> Result<Vec<OrderRecord>, StoreError> {
    let (bound, op) = match after {
        Some(id) => (order_id_to_sql(id), ">"),
        None => (i64::MIN, ">="),
    };
    read(pool, async |conn| {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE item_id = ? AND id {op} ? ORDER BY id ASC LIMIT ?");
        select_orders(conn, &sql, vec![item_id.into(), bound.into(), limit.min(PAGE_ROWS_MAX).into()]).await
    })
    .await
}

pub(super) async fn orders_with_request_ids(pool: &Pool, limit: usize) -> Result<Vec<OrderRecord>, StoreError> {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    read(pool, async |conn| {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE request_id IS NOT NULL ORDER BY id DESC LIMIT ?");
        select_orders(conn, &sql, vec![limit.into()]).await
    })
    .await
}

/// Moves a pending order (locked by the caller) to `status` and gives its
/// units back: item row first, then the holding (the lock order).
async fn release<E: From<StoreError>>(
    tx: &mut Transaction<'static>,
    order: &OrderRecord,
    status: OrderStatus,
    now_ms: i64,
) -> Result<(), Fail<E>> {
    execute(
        tx,
        "UPDATE orders SET status = ?, closed_ms = ? WHERE id = ? AND status = ?",
        vec![status_to_sql(status).into(), now_ms.into(), order_id_to_sql(order.id).into(), STATUS_PENDING.into()],
    )
    .await?;
    give_back(tx, &[(order.item_id, order.user_id, u64::from(order.quantity))]).await
}

/// The counters are caches of the orders table, kept in the same transaction.
/// GREATEST(…, 0): should they ever drift, an expiry must still go through;
/// `reconcile` recomputes them and reports the drift.
///
/// A constant number of statements whatever the number of orders: one
/// UPDATE per item (a batch has a handful), and the holdings in one joined
/// UPDATE through the connection's `batch_releases` scratch table — one
/// UPDATE per holding made an expiry batch of 1,024 orders cost over a
/// thousand round trips, slower than the sale made orders (issue 10). A
/// single holding (a payment or a cancellation) is one plain UPDATE.
/// Items before holdings: the lock order of the module doc.
async fn give_back<E>(tx: &mut Transaction<'static>, units: &[(ItemId, UserId, u64)]) -> Result<(), Fail<E>> {
    // Sorted, and one row per key: the scratch table's key is the holding's.
    let mut per_item: BTreeMap<ItemId, u64> = BTreeMap::new();
    let mut per_holding: BTreeMap<(UserId, ItemId), u64> = BTreeMap::new();
    for &(item_id, user_id, quantity) in units {
        *per_item.entry(item_id).or_default() += quantity;
        *per_holding.entry((user_id, item_id)).or_default() += quantity;
    }
    for (item_id, quantity) in per_item {
        execute(
            tx,
            "UPDATE items SET sold_units = GREATEST(sold_units - ?, 0) WHERE id = ?",
            vec![quantity.into(), item_id.into()],
        )
        .await?;
    }
    if let [((user_id, item_id), quantity)] = per_holding.iter().collect::<Vec<_>>()[..] {
        execute(
            tx,
            "UPDATE holdings SET units = GREATEST(units - ?, 0) WHERE user_id = ? AND item_id = ?",
            vec![(*quantity).into(), (*user_id).into(), (*item_id).into()],
        )
        .await?;
        return Ok(());
    }
    if per_holding.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<Value>> = per_holding
        .into_iter()
        .map(|((user_id, item_id), quantity)| vec![user_id.into(), item_id.into(), quantity.into()])
        .collect();
    // The scratch table is not transactional: emptied first, also on a
    // transaction run again after a deadlock.
    tx.query_drop("DELETE FROM batch_releases").await?;
    insert_rows(tx, "INSERT INTO batch_releases (user_id, item_id, units)", "", 3, &rows).await?;
    // Missing holdings (none should be, but `reconcile` rewrites the table)
    // are skipped, as a plain UPDATE would skip them.
    tx.query_drop(
        "UPDATE holdings h JOIN batch_releases r ON r.user_id = h.user_id AND r.item_id = h.item_id
         SET h.units = GREATEST(h.units - r.units, 0)",
    )
    .await?;
    Ok(())
}

/// What a pay transaction decided; an expiry commits and is then reported as an error.
enum PayStep {
    Paid(OrderRecord),
    ExpiredNow(OrderRecord),
}

pub(super) async fn pay_order(
    pool: &Pool,
    order_id: OrderId,
    user_id: UserId,
    now_ms: u64,
) -> Result<OrderRecord, PayError> {
    let now = int(now_ms, "now_ms")?;
    let step = write(pool, async |tx| {
        let order = select_order(tx, order_id, Lock::ForUpdate).await?;
        let Some(mut order) = order.filter(|o| o.user_id == user_id) else {
            return Err(Fail::Refused(PayError::NotFound));
        };
        match order.status {
            OrderStatus::Paid => Ok(PayStep::Paid(order)),
            OrderStatus::Cancelled => Err(Fail::Refused(PayError::Cancelled(order))),
            OrderStatus::Expired => Err(Fail::Refused(PayError::Expired { order, units_returned: false })),
            // The deadline decides, not the timer (contract §3): expire it here, atomically.
            OrderStatus::PendingPayment if now_ms >= order.pay_deadline_ms => {
                release(tx, &order, OrderStatus::Expired, now).await?;
                order.status = OrderStatus::Expired;
                Ok(PayStep::ExpiredNow(order))
            }
            OrderStatus::PendingPayment => {
                execute(
                    tx,
                    "UPDATE orders SET status = ?, paid_ms = ? WHERE id = ?",
                    vec![STATUS_PAID.into(), now.into(), order_id_to_sql(order_id).into()],
                )
                .await?;
                order.status = OrderStatus::Paid;
                order.paid_ms = Some(now_ms);
                Ok(PayStep::Paid(order))
            }
        }
    })
    .await?;
    match step {
        PayStep::Paid(order) => Ok(order),
        PayStep::ExpiredNow(order) => Err(PayError::Expired { order, units_returned: true }),
    }
}

pub(super) async fn cancel_order(
    pool: &Pool,
    order_id: OrderId,
    user_id: UserId,
    now_ms: u64,
) -> Result<CancelOutcome, CancelError> {
    let now = int(now_ms, "now_ms")?;
    write(pool, async |tx| {
        let order = select_order(tx, order_id, Lock::ForUpdate).await?;
        let Some(mut order) = order.filter(|o| o.user_id == user_id) else {
            return Err(Fail::Refused(CancelError::NotFound));
        };
        match order.status {
            OrderStatus::Paid => Err(Fail::Refused(CancelError::Paid(order))),
            OrderStatus::Cancelled | OrderStatus::Expired => Ok(CancelOutcome { order, units_returned: false }),
            OrderStatus::PendingPayment => {
                // Past the deadline the order has expired, whatever the timer: record the truth.
                let status =
                    if now_ms >= order.pay_deadline_ms { OrderStatus::Expired } else { OrderStatus::Cancelled };
                release(tx, &order, status, now).await?;
                order.status = status;
                Ok(CancelOutcome { order, units_returned: true })
            }
        }
    })
    .await
}

/// The pending, due orders among `order_ids` are locked, expired and their
/// units given back in one transaction. The status test under the lock makes
/// it exactly-once: a second call, or a racing pay or cancel, finds the order
/// no longer pending.
pub(super) async fn expire_orders(
    pool: &Pool,
    order_ids: &[OrderId],
    now_ms: u64,
) -> Result<Vec<ReleasedUnits>, StoreError> {
    let now = int(now_ms, "now_ms")?;
    let mut ids = order_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let keys: Vec<Vec<Value>> = ids.iter().map(|&id| vec![order_id_to_sql(id).into()]).collect();
    write(pool, async |tx| {
        let mut due: Vec<(i64, ItemId, UserId, u32)> = Vec::new();
        for (list, params) in in_lists(&keys, 1) {
            let sql = format!(
                "SELECT id, item_id, user_id, quantity FROM orders
                 WHERE id IN ({list}) AND status = ? AND pay_deadline_ms <= ? ORDER BY id FOR UPDATE"
            );
            let mut params = params;
            params.extend([STATUS_PENDING.into(), now.into()]);
            due.extend(select::<(i64, ItemId, UserId, u32), _>(tx, &sql, params).await?);
        }
        let keys: Vec<Vec<Value>> = due.iter().map(|&(id, ..)| vec![id.into()]).collect();
        for (list, params) in in_lists(&keys, 1) {
            let sql = format!("UPDATE orders SET status = ?, closed_ms = ? WHERE id IN ({list}) AND status = ?");
            let mut all = vec![STATUS_EXPIRED.into(), now.into()];
            all.extend(params);
            all.push(STATUS_PENDING.into());
            execute(tx, &sql, all).await?;
        }
        let units: Vec<(ItemId, UserId, u64)> = due.iter().map(|&(_, i, u, q)| (i, u, u64::from(q))).collect();
        give_back(tx, &units).await?;
        // In the caller's order, as SQLite reports them.
        let released: HashMap<OrderId, ReleasedUnits> = due
            .iter()
            .map(|&(id, item_id, user_id, quantity)| {
                let order_id = order_id_from_sql(id);
                (order_id, ReleasedUnits { order_id, item_id, user_id, quantity })
            })
            .collect();
        let mut reported = HashSet::new();
        Ok(order_ids.iter().filter(|id| reported.insert(**id)).filter_map(|id| released.get(id).copied()).collect())
    })
    .await
}

pub(super) async fn pending_orders(pool: &Pool) -> Result<Vec<PendingOrder>, StoreError> {
    let rows = read(pool, async |conn| {
        select::<(i64, ItemId, UserId, u32, u64), _>(
            conn,
            "SELECT id, item_id, user_id, quantity, pay_deadline_ms FROM orders
             WHERE status = 0 ORDER BY pay_deadline_ms",
            Vec::new(),
        )
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, item_id, user_id, quantity, pay_deadline_ms)| PendingOrder {
            order_id: order_id_from_sql(id),
            item_id,
            user_id,
            quantity,
            pay_deadline_ms,
        })
        .collect())
}

pub(super) async fn stock_snapshot(pool: &Pool) -> Result<Vec<StockRow>, StoreError> {
    let rows = read(pool, async |conn| {
        select::<(ItemId, u64, u64), _>(conn, "SELECT id, stock_total, sold_units FROM items ORDER BY id", Vec::new())
            .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(item_id, stock_total, sold_units)| StockRow { item_id, stock_total, sold_units })
        .collect())
}

pub(super) async fn holdings_snapshot(pool: &Pool) -> Result<Vec<Holding>, StoreError> {
    let rows = read(pool, async |conn| {
        select::<(UserId, ItemId, u64), _>(
            conn,
            "SELECT user_id, item_id, units FROM holdings WHERE units > 0 ORDER BY user_id, item_id",
            Vec::new(),
        )
        .await
    })
    .await?;
    Ok(rows.into_iter().map(|(user_id, item_id, units)| Holding { user_id, item_id, units }).collect())
}

/// Recomputes the counters from the orders table under every item's lock
/// (so no batch, payment or expiry changes them meanwhile) and fixes drift.
pub(super) async fn reconcile(pool: &Pool) -> Result<ReconcileReport, StoreError> {
    write(pool, async |tx| {
        let mut report = ReconcileReport::default();
        tx.query_drop("SELECT id FROM items ORDER BY id FOR UPDATE").await?;
        let drift: Vec<(ItemId, u64, u64)> = select(
            tx,
            "SELECT i.id, i.sold_units,
               CAST(COALESCE((SELECT SUM(o.quantity) FROM orders o
                              WHERE o.item_id = i.id AND o.status IN (0, 1)), 0) AS SIGNED)
             FROM items i ORDER BY i.id",
            Vec::new(),
        )
        .await?;
        report.items_checked = drift.len() as u64;
        for (item_id, recorded, actual) in drift.into_iter().filter(|(_, recorded, actual)| recorded != actual) {
            execute(tx, "UPDATE items SET sold_units = ? WHERE id = ?", vec![actual.into(), item_id.into()]).await?;
            report.sold_fixed.push((item_id, recorded, actual));
        }
        // Rows that differ either way: recorded but wrong (or stale), and live but missing.
        let wrong: Option<u64> = select_one(
            tx,
            "WITH actual AS (SELECT user_id, item_id, SUM(quantity) AS units FROM orders
                             WHERE status IN (0, 1) GROUP BY user_id, item_id)
             SELECT CAST((SELECT COUNT(*) FROM holdings h LEFT JOIN actual a
                            ON a.user_id = h.user_id AND a.item_id = h.item_id
                          WHERE h.units != COALESCE(a.units, 0))
                       + (SELECT COUNT(*) FROM actual a LEFT JOIN holdings h
                            ON a.user_id = h.user_id AND a.item_id = h.item_id
                          WHERE h.units IS NULL) AS SIGNED)",
            Vec::new(),
        )
        .await?;
        let holdings_wrong = wrong.unwrap_or(0);
        if holdings_wrong > 0 {
            // Rewriting the table is simpler than patching it and runs only when drift was found.
            tx.query_drop("DELETE FROM holdings").await?;
            tx.query_drop(
                "INSERT INTO holdings (user_id, item_id, units)
                 SELECT user_id, item_id, SUM(quantity) FROM orders WHERE status IN (0, 1)
                 GROUP BY user_id, item_id",
            )
            .await?;
        }
        report.holdings_fixed = holdings_wrong;
        Ok(report)
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn order(id: OrderId, user_id: UserId) -> NewOrder {
        NewOrder {
            id,
            item_id: 1,
            user_id,
            quantity: NonZeroU32::MIN,
            created_ms: 1,
            pay_deadline_ms: 2,
            request_id: None,
            pool_epoch: None,
        }
    }

    fn committed(id: OrderId) -> OrderOutcome {
        OrderOutcome::Committed(OrderRecord {
            id,
            item_id: 1,
            user_id: 1,
            quantity: 1,
            status: OrderStatus::PendingPayment,
            created_ms: 1,
            pay_deadline_ms: 2,
            paid_ms: None,
            request_id: None,
        })
    }

    #[test]
    fn a_users_orders_share_one_lane_and_users_spread() {
        let orders: Vec<NewOrder> = (0..400).map(|i| order(i, i % 100 + 1)).collect();
        let split = split_into_lanes(&orders, 4);
        assert_eq!(split.iter().map(Vec::len).sum::<usize>(), 400);
        for lane in &split {
            // In batch order, and at least a tenth of the users each.
            assert!(lane.windows(2).all(|w| w[0] < w[1]));
            assert!(lane.len() >= 40, "{:?}", split.iter().map(Vec::len).collect::<Vec<_>>());
            assert!(lane.iter().all(|&i| lane_of(orders[i].user_id, 4) == lane_of(orders[lane[0]].user_id, 4)));
        }
        assert!(split_into_lanes(&orders, 1)[0].len() == 400);
    }

    #[test]
    fn lanes_merge_back_into_batch_order() {
        let split = vec![vec![1, 2], vec![0], vec![]];
        let results =
            vec![Some(Ok(vec![committed(1), OrderOutcome::SoldOut])), Some(Ok(vec![OrderOutcome::LimitReached])), None];
        let merged = merge_lanes(3, &split, results).unwrap();
        assert_eq!(merged, [OrderOutcome::LimitReached, committed(1), OrderOutcome::SoldOut]);
    }

    #[test]
    fn a_lane_failing_after_a_sibling_wrote_leaves_the_outcome_unknown() {
        let split = vec![vec![0], vec![1]];
        let down = || Some(Err(StoreError::Unavailable("down".into())));
        let wrote = merge_lanes(2, &split, vec![Some(Ok(vec![committed(0)])), down()]);
        assert!(matches!(wrote, Err(StoreError::OutcomeUnknown(_))), "{wrote:?}");
        // A sibling that only refused wrote nothing: the batch simply failed.
        let refused = merge_lanes(2, &split, vec![Some(Ok(vec![OrderOutcome::SoldOut])), down()]);
        assert!(matches!(refused, Err(StoreError::Unavailable(_))), "{refused:?}");
        let unknown = Some(Err(StoreError::OutcomeUnknown("lost".into())));
        let lost = merge_lanes(2, &split, vec![down(), unknown]);
        assert!(matches!(lost, Err(StoreError::OutcomeUnknown(_))), "{lost:?}");
    }
}
