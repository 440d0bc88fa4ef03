//! The items on sale as the loops see them. Each item's JSON is serialised
//! and its page rendered once when the item changes; only the JSON's live
//! fields (`stock_left`, `state`, `server_time_ms`) are spliced in per
//! request. The page that lists every item is rendered with each change
//! too. Loops keep their own snapshot of the catalogue and refresh it when
//! its version changes (one atomic load per request), so reading an item
//! or a page takes no lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::pages::{Page, Pages};
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

/// One item: its spec, its pre-serialised JSON, its page, and its live stock.
#[derive(Debug)]
pub struct Item {
    pub spec: ItemRecord,
    /// `{"id":…,…,"end_ms":…,` — the ITEM object up to its live fields.
    json_prefix: Box<[u8]>,
    /// `/items/{id}`, rendered from `spec`.
    pub page: Page,
    /// Units left on sale, everywhere (possibly a moment stale).
    stock_left: AtomicU64,
}

impl Item {
    fn new(spec: ItemRecord, stock_left: u64, pages: &Pages) -> Self {
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
        let page = pages.item(&spec);
        Item { spec, json_prefix: json.into_boxed_slice(), page, stock_left: AtomicU64::new(stock_left) }
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

/// Every item and the page that lists them, as one immutable snapshot: a
/// loop that copies the `Arc` sees a consistent pair.
#[derive(Debug)]
struct Snapshot {
    items: BTreeMap<u64, Arc<Item>>,
    /// `/`, rendered from `items`.
    home: Page,
}

/// Every item, shared by the loops; changed only at start-up and by admin
/// requests (on workers).
#[derive(Debug)]
pub struct Catalogue {
    pages: Pages,
    /// Writers take turns here, so that a change is built (pages rendered)
    /// outside `current`'s lock: a loop refreshing its view waits at most
    /// for a pointer swap, never for a render.
    writer: Mutex<()>,
    current: RwLock<Arc<Snapshot>>,
    version: AtomicU64,
}

impl Catalogue {
    /// The catalogue of `items` (each with its units left), every page
    /// rendered once.
    pub fn new(pages: Pages, items: impl IntoIterator<Item = (ItemRecord, u64)>) -> Self {
        let items: BTreeMap<u64, Arc<Item>> =
            items.into_iter().map(|(spec, left)| (spec.id, Arc::new(Item::new(spec, left, &pages)))).collect();
        let home = pages.home(items.values().map(|i| &i.spec));
        Catalogue {
            pages,
            writer: Mutex::new(()),
            current: RwLock::new(Arc::new(Snapshot { items, home })),
            version: AtomicU64::new(0),
        }
    }

    /// Adds or replaces an item, with its page and the list page rendered anew.
    pub fn put(&self, spec: ItemRecord, stock_left: u64) -> Arc<Item> {
        let item = Arc::new(Item::new(spec, stock_left, &self.pages));
        let _turn = self.writer.lock();
        let mut items = self.current.read().items.clone();
        items.insert(item.spec.id, item.clone());
        let home = self.pages.home(items.values().map(|i| &i.spec));
        *self.current.write() = Arc::new(Snapshot { items, home });
        self.version.fetch_add(1, Ordering::Release);
        item
    }

    pub fn get(&self, id: u64) -> Option<Arc<Item>> {
        self.current.read().items.get(&id).cloned()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn all(&self) -> Vec<Arc<Item>> {
        self.current.read().items.values().cloned().collect()
    }
}

/// A loop's copy of the catalogue, refreshed when the shared one changes.
#[derive(Debug)]
pub struct CatalogueView {
    shared: Arc<Catalogue>,
    version: u64,
    snapshot: Arc<Snapshot>,
}

impl CatalogueView {
    pub fn new(shared: Arc<Catalogue>) -> Self {
        let snapshot = shared.current.read().clone();
        CatalogueView { shared, version: u64::MAX, snapshot }
    }

    fn refresh(&mut self) {
        let version = self.shared.version();
        if version != self.version {
            // Read the version before the snapshot: a change racing this
            // copy bumps the version again and the next call copies again.
            self.snapshot = self.shared.current.read().clone();
            self.version = version;
        }
    }

    /// The page that lists every item.
    pub fn home(&mut self) -> &Page {
        self.refresh();
        &self.snapshot.home
    }

    pub fn get(&mut self, id: u64) -> Option<&Item> {
        self.refresh();
        self.snapshot.items.get(&id).map(|i| &**i)
    }

    /// `{"items":[ITEM…],"server_time_ms":T}`.
    pub fn write_list_json(&mut self, out: &mut Vec<u8>, now_ms: u64) {
        self.refresh();
        out.extend_from_slice(b"{\"items\":[");
        for (i, item) in self.snapshot.items.values().enumerate() {
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
        let item = Item::new(spec(3), 10, &Pages::new("salt"));
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
        let item = Item::new(spec(1), 5, &Pages::new("salt"));
        assert_eq!(item.state(999), SaleState::Upcoming);
        assert_eq!(item.state(1_000), SaleState::Active);
        assert_eq!(item.state(2_000), SaleState::Ended);
        item.set_stock_left(0);
        assert_eq!(item.state(2_000), SaleState::Ended, "ended wins over sold out");
    }

    #[test]
    fn views_follow_changes() {
        let shared = Arc::new(Catalogue::new(Pages::new("salt"), []));
        let mut view = CatalogueView::new(shared.clone());
        assert!(view.get(1).is_none());
        let empty_home = view.home().etag;
        shared.put(spec(1), 5);
        assert_eq!(view.get(1).map(|i| i.spec.stock_total), Some(10));
        assert_ne!(view.home().etag, empty_home, "the list page follows the items");
        let page_before = view.get(1).map(|i| i.page.etag);
        shared.put(ItemRecord { name: "Renamed".into(), ..spec(1) }, 5);
        assert_ne!(view.get(1).map(|i| i.page.etag), page_before, "the item page follows the item");
        let mut out = Vec::new();
        view.write_list_json(&mut out, 0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    }
}
