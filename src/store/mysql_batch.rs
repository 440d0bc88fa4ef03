//! The decisions of one group commit, made in Rust from what the batch's
//! transaction read, without a round trip per order.
//!
//! The MySQL store reads everything a batch can depend on in a few queries
//! (its items locked `FOR UPDATE`, its users with their holdings; on a
//! careful attempt also the request ids and order ids already there), then
//! [`plan`] walks the entries in order exactly
//! as the SQLite store's `commit_one` does — idempotency, item, per-user
//! limit, stock, order id, user — so an earlier entry's units and request id
//! count against later ones. The result says what to write: the orders, the
//! change to each holding and to each item's sold counter. The writes are
//! conditional in SQL as well, so a mistake here fails the batch instead of
//! overselling.

use std::collections::{HashMap, HashSet};

use super::{ItemId, NewOrder, OrderId, OrderOutcome, OrderRecord, OrderStatus, UserId};

/// An item as the batch found it, locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ItemRow {
    pub stock_total: u64,
    pub per_user_limit: u64,
    pub sold_units: u64,
    /// The generation of the item's shared stock pool (see `OrderOutcome::Fenced`).
    pub pool_epoch: u64,
}

/// What the batch's transaction read before deciding.
#[derive(Debug, Default, Clone)]
pub(super) struct Found {
    pub items: HashMap<ItemId, ItemRow>,
    /// Holdings rows that exist (possibly at 0 units).
    pub holdings: HashMap<(UserId, ItemId), u64>,
    /// Orders already made under one of the batch's (user, request id)
    /// pairs. Read only by a careful attempt: a first attempt leaves both this
    /// and `ids_taken` empty and lets the unique keys catch a duplicate.
    pub requests: HashMap<(UserId, String), OrderRecord>,
    /// Which of the batch's order ids are already used (careful attempt only).
    pub ids_taken: HashSet<OrderId>,
    /// Which of the batch's users exist.
    pub users: HashSet<UserId>,
}

/// The change to one holdings row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HoldingChange {
    pub user_id: UserId,
    pub item_id: ItemId,
    /// Units added by this batch.
    pub units: u64,
    /// The row existed before (update it) or not (insert it).
    pub existed: bool,
    /// The item's per-user limit, which the write checks again.
    pub limit: u64,
}

/// What to write, and what to answer.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub outcomes: Vec<OrderOutcome>,
    /// Indices into the batch of the orders to insert, in order.
    pub inserts: Vec<usize>,
    pub holdings: Vec<HoldingChange>,
    /// `(item, units added, the pool generation the batch found)` for every
    /// item that sold something.
    pub sold: Vec<(ItemId, u64, u64)>,
}

/// Decides every entry of `orders` in order, as if each were applied before the next.
pub(super) fn plan(orders: &[NewOrder], mut found: Found) -> Plan {
    let mut out = Plan { outcomes: Vec::with_capacity(orders.len()), ..Plan::default() };
    // What this batch adds, on top of what was found.
    let mut added_held: HashMap<(UserId, ItemId), u64> = HashMap::new();
    let mut added_sold: Vec<(ItemId, u64)> = Vec::new();
    for (index, order) in orders.iter().enumerate() {
        let outcome = decide(order, &found, &added_held, &added_sold);
        if let OrderOutcome::Committed(record) = &outcome {
            let quantity = u64::from(order.quantity.get());
            *added_held.entry((order.user_id, order.item_id)).or_default() += quantity;
            match added_sold.iter_mut().find(|(id, _)| *id == order.item_id) {
                Some((_, units)) => *units += quantity,
                None => added_sold.push((order.item_id, quantity)),
            }
            found.ids_taken.insert(order.id);
            if let Some(request_id) = &order.request_id {
                found.requests.insert((order.user_id, request_id.clone()), record.clone());
            }
            out.inserts.push(index);
        }
        out.outcomes.push(outcome);
    }
    let mut holdings: Vec<HoldingChange> = added_held
        .into_iter()
        .map(|((user_id, item_id), units)| HoldingChange {
            user_id,
            item_id,
            units,
            existed: found.holdings.contains_key(&(user_id, item_id)),
            // Only committed orders are counted here, and they found their item.
            limit: found.items.get(&item_id).map_or(0, |item| item.per_user_limit),
        })
        .collect();
    // A fixed order: rows are locked in key order, like every other writer.
    holdings.sort_unstable_by_key(|h| (h.user_id, h.item_id));
    added_sold.sort_unstable();
    out.holdings = holdings;
    out.sold = added_sold
        .into_iter()
        .map(|(item_id, units)| (item_id, units, found.items.get(&item_id).map_or(0, |item| item.pool_epoch)))
        .collect();
    out
}

/// One entry, in the contract's order of checks: idempotency, item, (the
/// stock pool's generation,) per-user limit, stock; then the order id and the user (SQLite finds those
/// two at the INSERT, which comes last, and a taken id wins over a missing user).
fn decide(
    order: &NewOrder,
    found: &Found,
    added_held: &HashMap<(UserId, ItemId), u64>,
    added_sold: &[(ItemId, u64)],
) -> OrderOutcome {
    if let Some(request_id) = &order.request_id
        && let Some(existing) = found.requests.get(&(order.user_id, request_id.clone()))
    {
        return OrderOutcome::Duplicate(existing.clone());
    }
    let Some(item) = found.items.get(&order.item_id) else {
        return OrderOutcome::NoSuchItem;
    };
    if order.pool_epoch.is_some_and(|epoch| epoch != item.pool_epoch) {
        return OrderOutcome::Fenced;
    }
    let quantity = u64::from(order.quantity.get());
    let key = (order.user_id, order.item_id);
    let held = found.holdings.get(&key).copied().unwrap_or(0) + added_held.get(&key).copied().unwrap_or(0);
    if held + quantity > item.per_user_limit {
        return OrderOutcome::LimitReached;
    }
    let sold = item.sold_units + added_sold.iter().find(|(id, _)| *id == order.item_id).map_or(0, |(_, n)| *n);
    if sold + quantity > item.stock_total {
        return OrderOutcome::SoldOut;
    }
    if found.ids_taken.contains(&order.id) {
        return OrderOutcome::IdTaken;
    }
    if !found.users.contains(&order.user_id) {
        return OrderOutcome::NoSuchUser;
    }
    OrderOutcome::Committed(OrderRecord {
        id: order.id,
        item_id: order.item_id,
        user_id: order.user_id,
        quantity: order.quantity.get(),
        status: OrderStatus::PendingPayment,
        created_ms: order.created_ms,
        pay_deadline_ms: order.pay_deadline_ms,
        paid_ms: None,
        request_id: order.request_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn order(id: OrderId, item_id: ItemId, user_id: UserId, quantity: u32, request_id: Option<&str>) -> NewOrder {
        NewOrder {
            id,
            item_id,
            user_id,
            quantity: NonZeroU32::new(quantity).unwrap_or(NonZeroU32::MIN),
            created_ms: 1,
            pay_deadline_ms: 2,
            request_id: request_id.map(str::to_owned),
            pool_epoch: None,
        }
    }

    #[test]
    fn earlier_entries_count_against_later_ones() {
        let mut found = Found::default();
        found.items.insert(1, ItemRow { stock_total: 3, per_user_limit: 2, sold_units: 0, pool_epoch: 0 });
        found.users.extend([7, 8]);
        found.holdings.insert((8, 1), 0);
        let batch = [
            order(1, 1, 7, 2, Some("a")),
            order(2, 1, 7, 1, None),      // 2 held + 1 > 2
            order(3, 1, 8, 1, Some("a")), // request ids are per user
            order(4, 1, 7, 1, Some("a")), // duplicate of entry 0
            order(1, 1, 8, 1, None),      // id taken by entry 0... but stock first: 3 sold + 1 > 3
        ];
        let plan = plan(&batch, found);
        let kinds: Vec<&str> = plan
            .outcomes
            .iter()
            .map(|o| match o {
                OrderOutcome::Committed(_) => "committed",
                OrderOutcome::Duplicate(_) => "duplicate",
                OrderOutcome::LimitReached => "limit",
                OrderOutcome::SoldOut => "sold_out",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["committed", "limit", "committed", "duplicate", "sold_out"]);
        assert_eq!(plan.inserts, [0, 2]);
        assert_eq!(plan.sold, [(1, 3, 0)]);
        assert_eq!(
            plan.holdings,
            [
                HoldingChange { user_id: 7, item_id: 1, units: 2, existed: false, limit: 2 },
                HoldingChange { user_id: 8, item_id: 1, units: 1, existed: true, limit: 2 },
            ]
        );
    }
}
