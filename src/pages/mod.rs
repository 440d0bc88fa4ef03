//! The web pages (contract §3, "Pages"): `/` lists the sales and
//! `/items/{id}` is an item's page. Both are static HTML rendered here when
//! the catalogue changes (at start-up and by an admin request, on a worker),
//! never per request: a loop answers them with a memory copy and a strong
//! `ETag` (see [`crate::api::pages`]). Everything that changes by the second —
//! the countdown, stock, the session, the captcha, the order — the page's
//! script fetches from the JSON API.
//!
//! The HTML templates, the stylesheet and the script sit beside this file
//! and are built into the binary with `include_str!`: no asset step at run
//! time, no JavaScript tool chain at build time. The stylesheet and the
//! script are inlined into every page so that a page is one request.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use seckill_protocol::DateHeader;

use crate::captcha;
use crate::etag::{self, ETag};
use crate::store::ItemRecord;

const LAYOUT: &str = include_str!("layout.html");
const ITEM: &str = include_str!("item.html");
const HOME: &str = include_str!("home.html");
const HOME_ROW: &str = include_str!("home-row.html");
const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// A rendered page and its validator.
#[derive(Debug)]
pub struct Page {
    pub html: Box<[u8]>,
    pub etag: ETag,
}

impl Page {
    fn new(html: String) -> Page {
        let etag = etag::of(html.as_bytes());
        Page { html: html.into_bytes().into_boxed_slice(), etag }
    }
}

/// Renders the pages. Holds what every page carries besides its item: the
/// public `auth.client_salt` the script mixes into the password hash
/// (`md5(client_salt + password)`, contract §3), so the page needs no
/// request to learn it.
#[derive(Debug, Clone)]
pub struct Pages {
    client_salt: String,
}

impl Pages {
    pub fn new(client_salt: &str) -> Pages {
        Pages { client_salt: escape(client_salt) }
    }

    /// The page of one item.
    pub fn item(&self, spec: &ItemRecord) -> Page {
        let main = fill(
            ITEM,
            &[
                ("id", &spec.id.to_string()),
                ("name", &escape(&spec.name)),
                ("description", &escape(&spec.description)),
                ("price", &price(spec.price_cents)),
                ("stock_total", &spec.stock_total.to_string()),
                ("per_user_limit", &spec.per_user_limit.to_string()),
                ("start_ms", &spec.start_ms.to_string()),
                ("end_ms", &spec.end_ms.to_string()),
                ("start_utc", &utc(spec.start_ms)),
                ("end_utc", &utc(spec.end_ms)),
                ("captcha_width", &captcha::WIDTH_PX.to_string()),
                ("captcha_height", &captcha::HEIGHT_PX.to_string()),
            ],
        );
        self.layout("item", &escape(&spec.name), &main)
    }

    /// The page that lists every item, in id order.
    pub fn home<'a>(&self, items: impl IntoIterator<Item = &'a ItemRecord>) -> Page {
        let mut rows = String::new();
        for spec in items {
            rows.push_str(&fill(
                HOME_ROW,
                &[
                    ("id", &spec.id.to_string()),
                    ("name", &escape(&spec.name)),
                    ("price", &price(spec.price_cents)),
                    ("start_ms", &spec.start_ms.to_string()),
                    ("end_ms", &spec.end_ms.to_string()),
                    ("start_utc", &utc(spec.start_ms)),
                ],
            ));
        }
        let empty = if rows.is_empty() { "" } else { "hidden" };
        let main = fill(HOME, &[("rows", &rows), ("empty_hidden", empty)]);
        self.layout("home", "Flash sales", &main)
    }

    fn layout(&self, page: &str, title: &str, main: &str) -> Page {
        Page::new(fill(
            LAYOUT,
            &[("page", page), ("title", title), ("salt", &self.client_salt), ("main", main), ("css", CSS), ("js", JS)],
        ))
    }
}

/// `template` with every `{{key}}` replaced by its value. The values are
/// already escaped (or are our own CSS and JS); a key the template names
/// but `values` lacks is a bug in this file, caught by the tests below.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let key = &after[..close];
        match values.iter().find(|(k, _)| *k == key) {
            Some((_, value)) => out.push_str(value),
            None => {
                debug_assert!(false, "template key {{{{{key}}}}} has no value");
                out.push_str(&rest[open..open + 2 + close + 2]);
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Text made safe for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Integer cents as a decimal amount: `1999` → `19.99`.
fn price(cents: u64) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write!(out, "{}.{:02}", cents / 100, cents % 100);
    out
}

/// A Unix-millisecond time as an HTTP date (`Mon, 30 Nov 2026 10:00:00 GMT`),
/// shown until the script replaces it with the reader's local time. The
/// `Date` header's renderer is reused: one calendar in the code base.
fn utc(ms: u64) -> String {
    let header = DateHeader::new(UNIX_EPOCH + Duration::from_millis(ms));
    let line = String::from_utf8_lossy(header.line());
    line.trim_start_matches("Date: ").trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u64, name: &str) -> ItemRecord {
        ItemRecord {
            id,
            name: name.into(),
            description: "<b>new</b> & \"shiny\"".into(),
            price_cents: 199_905,
            stock_total: 10,
            per_user_limit: 2,
            start_ms: 1_764_496_800_000,
            end_ms: 1_764_500_400_000,
        }
    }

    #[test]
    fn item_page_carries_the_item_escaped_and_the_salt() {
        let pages = Pages::new("s\"alt");
        let page = pages.item(&spec(7, "Phone <X>"));
        let html = std::str::from_utf8(&page.html).unwrap();
        assert!(html.starts_with("<!doctype html>"), "{}", &html[..40]);
        assert!(html.contains("Phone &lt;X&gt;") && !html.contains("Phone <X>"));
        assert!(html.contains("&lt;b&gt;new&lt;/b&gt; &amp; &quot;shiny&quot;"));
        assert!(html.contains("data-client-salt=\"s&quot;alt\""));
        assert!(html.contains("data-item-id=\"7\"") && html.contains("data-start-ms=\"1764496800000\""));
        assert!(html.contains("1999.05"));
        assert!(html.contains("Sun, 30 Nov 2025 10:00:00 GMT"), "start rendered as an HTTP date");
        assert!(!html.contains("{{"), "every template key filled");
        assert_eq!(page.etag, etag::of(&page.html));
    }

    #[test]
    fn home_lists_every_item_and_changes_with_them() {
        let pages = Pages::new("salt");
        let empty = pages.home([]);
        let one = [spec(1, "Kettle")];
        let listed = pages.home(&one);
        let html = std::str::from_utf8(&listed.html).unwrap();
        assert!(html.contains("href=\"/items/1\"") && html.contains("Kettle"));
        assert!(!html.contains("{{"));
        assert_ne!(empty.etag, listed.etag);
        let renamed = [spec(1, "Toaster")];
        assert_ne!(pages.home(&renamed).etag, listed.etag);
        assert_eq!(pages.home(&one).etag, listed.etag, "the same items render the same bytes");
    }

    #[test]
    fn fill_replaces_keys() {
        assert_eq!(fill("a{{x}}b{{y}}c", &[("x", "1"), ("y", "2")]), "a1b2c");
        assert_eq!(fill("{{x}}{{x}}", &[("x", "<>")]), "<><>");
        assert_eq!(fill("no keys", &[]), "no keys");
    }

    #[test]
    fn prices_have_two_decimals() {
        assert_eq!(price(0), "0.00");
        assert_eq!(price(5), "0.05");
        assert_eq!(price(123_456), "1234.56");
    }

    /// Every refusal code of the contract (§3) and the HTTP layer has a
    /// human message in the script, not just the server's text.
    #[test]
    fn script_has_a_message_for_every_refusal_code() {
        let codes = [
            "invalid_input",
            "username_taken",
            "bad_credentials",
            "unauthenticated",
            "rate_limited",
            "overloaded",
            "unavailable",
            "no_such_item",
            "not_started",
            "ended",
            "captcha_wrong",
            "captcha_expired",
            "bad_path",
            "limit_reached",
            "request_id_reused",
            "sold_out",
            "no_such_order",
            "order_expired",
            "order_cancelled",
            "order_paid",
            "body_too_large",
            "not_found",
            "internal",
        ];
        for code in codes {
            assert!(JS.contains(&format!("\n  {code}: ")), "page.js has no message for `{code}`");
        }
    }
}
