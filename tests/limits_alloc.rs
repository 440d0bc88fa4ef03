//! `check` and `ip_key` allocate nothing: a counting allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use seckill::limits::{TokenBuckets, ip_key};

/// Counts the allocations of the thread that set `COUNTING`, so that the test
/// harness's own threads do not disturb the count.
struct Counting;

thread_local! {
    // `const` and no destructor: safe to touch from inside the allocator.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds the `GlobalAlloc` contract; counting only touches thread-locals
// that need no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `work` on this thread.
fn allocations_in(work: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    work();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_counter_sees_allocations() {
    // Without this, a broken counter would pass the test below.
    assert_eq!(allocations_in(|| drop(std::hint::black_box(vec![1_u8; 16]))), 1);
}

#[test]
fn checks_allocate_nothing() {
    let per_ip = TokenBuckets::new(200, 400, 1_024);
    let per_user = TokenBuckets::new(5, 10, 1_024);
    let disabled = TokenBuckets::new(0, 0, 0);
    let epoch = per_ip.epoch();
    // The first call draws the process's address key.
    ip_key(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let allocations = allocations_in(|| {
        for i in 0..100_000_u64 {
            let now = epoch + Duration::from_micros(i * 10);
            let v4 = IpAddr::V4(Ipv4Addr::from_bits(i as u32));
            let v6 = IpAddr::V6(Ipv6Addr::from_bits(u128::from(i) << 64 | 1));
            // Admitted, refused (hot key), evictions, and full groups all pass here:
            // 10,000 users over 1,024 slots at 5 tokens/s keep the table crowded.
            let _ = per_ip.check(ip_key(v4), now);
            let _ = per_ip.check(ip_key(v6), now);
            let _ = per_ip.check(7, now);
            let _ = per_user.check(i % 10_000, now);
            let _ = disabled.check(i, now);
        }
    });
    assert_eq!(allocations, 0);
    let (ip, user) = (per_ip.metrics(), per_user.metrics());
    assert!(ip.refused_empty > 0 && ip.evictions > 0 && user.refused_table_full > 0, "{ip:?} {user:?}");
}
