//! The `Date` header (RFC 9110 §6.6.1), rendered in IMF-fixdate once a
//! second into a fixed buffer. Each event loop owns one and refreshes it once
//! per tick; encoding a response copies the bytes.
//!
//! The calendar arithmetic is our own (`civil_from_days`, after Howard
//! Hinnant's public-domain algorithm) so that rendering needs no allocation,
//! no time-zone database and no dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`, re-rendered when the second changes.
#[derive(Debug, Clone)]
pub struct DateHeader {
    line: [u8; 37],
    second: u64,
}

/// 9999-12-31T23:59:59Z: IMF-fixdate has a four-digit year, so later clocks
/// are clamped rather than rendered wrongly.
const LAST_RENDERABLE_SECOND: u64 = 253_402_300_799;

const WEEKDAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

impl DateHeader {
    /// Rendered for `now`.
    pub fn new(now: SystemTime) -> Self {
        let mut d = DateHeader { line: *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n", second: u64::MAX };
        d.refresh(now);
        d
    }

    /// Re-renders if `now` falls in another second than the last rendering.
    pub fn refresh(&mut self, now: SystemTime) {
        // A clock before 1970 is a broken clock; 1970 is as good an answer as any.
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()).min(LAST_RENDERABLE_SECOND);
        if second == self.second {
            return;
        }
        self.second = second;
        render(&mut self.line, second);
    }

    /// The whole header line including `Date: ` and the trailing CRLF.
    pub fn line(&self) -> &[u8; 37] {
        &self.line
    }
}

/// Writes `Date: Www, DD Mon YYYY HH:MM:SS GMT\r\n` for `second` (Unix time).
fn render(line: &mut [u8; 37], second: u64) {
    let days = second / 86_400;
    let in_day = second % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
    let weekday = ((days + 4) % 7) as usize;
    line[6..9].copy_from_slice(WEEKDAYS[weekday]);
    two_digits(&mut line[11..13], day);
    line[14..17].copy_from_slice(MONTHS[(month - 1) as usize]);
    two_digits(&mut line[18..20], year / 100);
    two_digits(&mut line[20..22], year % 100);
    two_digits(&mut line[23..25], (in_day / 3600) as u32);
    two_digits(&mut line[26..28], (in_day / 60 % 60) as u32);
    two_digits(&mut line[29..31], (in_day % 60) as u32);
}

fn two_digits(out: &mut [u8], value: u32) {
    out[0] = b'0' + (value / 10 % 10) as u8;
    out[1] = b'0' + (value % 10) as u8;
}

/// (year, month 1–12, day 1–31) of the proleptic Gregorian calendar for a
/// count of days since 1970-01-01. Eras are 400-year cycles starting on
/// March 1st, which puts the leap day at the end of the year being counted.
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097; // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let mp = (5 * day_of_year + 2) / 153; // month from March = 0
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (year_of_era + era * 400) as u32 + u32::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check(unix_seconds: u64, expected: &str) {
        let date = DateHeader::new(UNIX_EPOCH + Duration::from_secs(unix_seconds));
        assert_eq!(std::str::from_utf8(date.line()).unwrap(), expected, "for {unix_seconds}");
    }

    #[test]
    fn known_timestamps() {
        check(0, "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
        // The example of RFC 9110 §5.6.7.
        check(784_111_777, "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
        check(951_782_400, "Date: Tue, 29 Feb 2000 00:00:00 GMT\r\n"); // 2000 is a leap year (÷400)
        check(951_868_799, "Date: Tue, 29 Feb 2000 23:59:59 GMT\r\n");
        check(951_868_800, "Date: Wed, 01 Mar 2000 00:00:00 GMT\r\n");
        check(4_107_542_400, "Date: Mon, 01 Mar 2100 00:00:00 GMT\r\n"); // 2100 is not (÷100)
        check(1_709_164_800, "Date: Thu, 29 Feb 2024 00:00:00 GMT\r\n");
        check(1_735_689_599, "Date: Tue, 31 Dec 2024 23:59:59 GMT\r\n");
        check(2_147_483_647, "Date: Tue, 19 Jan 2038 03:14:07 GMT\r\n");
        check(LAST_RENDERABLE_SECOND, "Date: Fri, 31 Dec 9999 23:59:59 GMT\r\n");
        check(u64::MAX / 2, "Date: Fri, 31 Dec 9999 23:59:59 GMT\r\n");
    }

    #[test]
    fn before_the_epoch_renders_the_epoch() {
        let date = DateHeader::new(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(date.line(), b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
    }

    #[test]
    fn refresh_renders_only_when_the_second_changes() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut date = DateHeader::new(t);
        date.refresh(t + Duration::from_millis(999));
        assert_eq!(date.line(), b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
        date.refresh(t + Duration::from_millis(1000));
        assert_eq!(date.line(), b"Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n");
    }

    /// Every day from 1970 to 2400 against a naive day-by-day calendar walk.
    #[test]
    fn civil_from_days_agrees_with_a_calendar_walk() {
        let (mut y, mut m, mut d) = (1970u32, 1u32, 1u32);
        for days in 0..(430 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(m - 1) as usize];
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
