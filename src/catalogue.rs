//! The items on sale as the loops see them. Each item's JSON is serialised
//! once when the item changes; only its live fields (`stock_left`, `state`,
//! `server_time_ms`) are spliced in per request. Loops keep their own
//! snapshot of the catalogue and refresh it when its version changes (one
//! atomic load per request), so reading an item takes no lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::Serialize;

use crate::store::ItemRecord;

/// How an item's fixed part is written in ITEM JSON (contract §3).
#[derive(Serialize)]
struct ItemJson<'a> {
    id: u64,
    name: &'a str,
    description: &'a str,
    price_cents: u64,
    stock_total: u64,
    per_user_limit: u32,
    start_ms: u64,
    end_ms: u64,
}

/// The sale state of an item at a moment (contract §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleState {
    Upcoming,
    Active,
    SoldOut,
    Ended,
}

impl SaleState {
    pub const fn as_str(self) -> &'static str {
        match self {
            SaleState::Upcoming => "upcoming",
            SaleState::Active => "active",
            SaleState::SoldOut => "sold_out",
            SaleState::Ended => "ended",
        }
    }
}

/// One item: its spec, its pre-serialised JSON, and its live stock.
#[derive(Debug)]
pub struct Item {
    pub spec: ItemRecord,
    /// `{"id":…,…,"end_ms":…,` — the ITEM object up to its live fields.
    json_prefix: Box<[u8]>,
    /// Units left on sale, everywhere (possibly a moment stale).
    stock_left: AtomicU64,
}

impl Item {
    pub fn new(spec: ItemRecord, stock_left: u64) -> Self {
        let fixed = ItemJson {
            id: spec.id,
            name: &spec.name,
            description: &spec.description,
            price_cents: spec.price_cents,
            stock_total: spec.stock_total,
            per_user_limit: spec.per_user_limit,
            start_ms: spec.start_ms,
            end_ms: spec.end_ms,
        };
        // Serialising plain strings and integers cannot fail.
        let mut json = serde_json::to_vec(&fixed).expect("ItemJson serialises");
        // Replace the closing brace: the live fields follow.
        json.pop();
        json.push(b',');
        Item { spec, json_prefix: json.into_boxed_slice(), stock_left: AtomicU64::new(stock_left) }
    }

    pub fn stock_left(&self) -> u64 {
        self.stock_left.load(Ordering::Relaxed)
    }

    pub fn set_stock_left(&self, units: u64) {
        self.stock_left.store(units, Ordering::Relaxed);
    }

    pub fn state(&self, now_ms: u64) -> SaleState {
        if now_ms >= self.spec.end_ms {
            SaleState::Ended
        } else if now_ms < self.spec.start_ms {
            SaleState::Upcoming
        } else if self.stock_left() == 0 {
            SaleState::SoldOut
        } else {
            SaleState::Active
        }
    }

    /// Appends the ITEM JSON object to `out`; allocates nothing.
    pub fn write_json(&self, out: &mut Vec<u8>, now_ms: u64) {
        let mut digits = itoa::Buffer::new();
        out.extend_from_slice(&self.json_prefix);
        out.extend_from_slice(b"\"stock_left\":");
        out.extend_from_slice(digits.format(self.stock_left()).as_bytes());
        out.extend_from_slice(b",\"state\":\"");
        out.extend_from_slice(self.state(now_ms).as_str().as_bytes());
        out.extend_from_slice(b"\",\"server_time_ms\":");
        out.extend_from_slice(digits.format(now_ms).as_bytes());
        out.push(b'}');
    }
}

/// Every item, shared by the loops; changed only by admin requests.
#[derive(Debug, Default)]
pub struct Catalogue {
    items: RwLock<BTreeMap<u64, Arc<Item>>>,
    version: AtomicU64,
}

impl Catalogue {
    /// Adds or replaces an item.
    pub fn put(&self, item: Item) -> Arc<Item> {
        let item = Arc::new(item);
        self.items.write().insert(item.spec.id, item.clone());
        self.version.fetch_add(1, Ordering::Release);
        item
    }

    pub fn get(&self, id: u64) -> Option<Arc<Item>> {
        self.items.read().get(&id).cloned()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn all(&self) -> Vec<Arc<Item>> {
        self.items.read().values().cloned().collect()
    }
}

/// A loop's copy of the catalogue, refreshed when the shared one changes.
#[derive(Debug)]
pub struct CatalogueView {
    shared: Arc<Catalogue>,
    version: u64,
    items: BTreeMap<u64, Arc<Item>>,
}

impl CatalogueView {
    pub fn new(shared: Arc<Catalogue>) -> Self {
        CatalogueView { shared, version: u64::MAX, items: BTreeMap::new() }
    }

    fn refresh(&mut self) {
        let version = self.shared.version();
        if version != self.version {
            // Read the version before the items: a change racing this copy
            // bumps the version again and the next call copies again.
            self.items = self.shared.items.read().clone();
            self.version = version;
        }
    }

    pub fn get(&mut self, id: u64) -> Option<&Item> {
        self.refresh();
        self.items.get(&id).map(|i| &**i)
    }

    /// `{"items":[ITEM…],"server_time_ms":T}`.
    pub fn write_list_json(&mut self, out: &mut Vec<u8>, now_ms: u64) {
        self.refresh();
        out.extend_from_slice(b"{\"items\":[");
        for (i, item) in self.items.values().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.write_json(out, now_ms);
        }
        out.extend_from_slice(b"],\"server_time_ms\":");
        out.extend_from_slice(itoa::Buffer::new().format(now_ms).as_bytes());
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u64) -> ItemRecord {
        ItemRecord {
            id,
            name: "Phone \"X\"".into(),
            description: "línea\nnew".into(),
            price_cents: 99_900,
            stock_total: 10,
            per_user_limit: 1,
            start_ms: 1_000,
            end_ms: 2_000,
        }
    }

    #[test]
    fn json_is_valid_and_live() {
        let item = Item::new(spec(3), 10);
        let mut out = Vec::new();
        item.write_json(&mut out, 1_500);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["name"], "Phone \"X\"");
        assert_eq!(v["description"], "línea\nnew");
        assert_eq!((v["stock_left"].as_u64(), v["state"].as_str()), (Some(10), Some("active")));
        assert_eq!(v["server_time_ms"], 1_500);
        item.set_stock_left(0);
        out.clear();
        item.write_json(&mut out, 1_500);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["state"], "sold_out");
    }

    #[test]
    fn states_follow_the_window() {
        let item = Item::new(spec(1), 5);
        assert_eq!(item.state(999), SaleState::Upcoming);
        assert_eq!(item.state(1_000), SaleState::Active);
        assert_eq!(item.state(2_000), SaleState::Ended);
        item.set_stock_left(0);
        assert_eq!(item.state(2_000), SaleState::Ended, "ended wins over sold out");
    }

    #[test]
    fn views_follow_changes() {
        let shared = Arc::new(Catalogue::default());
        let mut view = CatalogueView::new(shared.clone());
        assert!(view.get(1).is_none());
        shared.put(Item::new(spec(1), 5));
        assert_eq!(view.get(1).map(|i| i.spec.stock_total), Some(10));
        let mut out = Vec::new();
        view.write_list_json(&mut out, 0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    }
}
