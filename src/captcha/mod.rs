//! Captchas for the sale: the arithmetic question a user must answer before
//! `POST /api/items/{id}/path` hands out a purchase path, and the PNG that
//! shows it (`GET /api/items/{id}/captcha`).
//!
//! This module owns the *question* and the *picture*, nothing else: keeping one
//! captcha per (user, item), consuming it on any answer, expiring it after
//! `captcha.ttl_ms` and the admin answer hook for load tests belong to the
//! store that holds [`Question::answer`].
//!
//! Why the picture is noisy: the captcha exists to slow down bots that would
//! otherwise fire purchase requests the instant a sale opens. If the text were
//! drawn in one colour on a clean background, thresholding the image and
//! matching glyph shapes would read it in microseconds. So each glyph is drawn
//! from a stroke font with its own scale, rotation, shear, stroke width and
//! colour, over a banded background; curves in the same dark inks run under
//! and over the text, a background-coloured curve cuts through it, and
//! speckles of every colour are sprinkled on top, so a brightness threshold
//! keeps the clutter along with the glyphs. A human still reads it at a
//! glance; a solver has to do real work. It is not meant to stop a determined
//! OCR model: it raises the cost of the cheapest bots.
//!
//! Code map:
//! - `question` — [`Question`] and [`generate`]: small-operand arithmetic with
//!   the usual precedence.
//! - `font` — the stroke font: every character `generate` can emit.
//! - `raster` — an indexed-colour canvas that draws round-capped thick segments
//!   and Bézier curves with plain IEEE arithmetic, so renders are identical on
//!   every platform.
//! - `render` — [`render_png`]: layout, jitter and noise, seeded.
//! - `encode` — a minimal 4-bit indexed PNG encoder over `miniz_oxide`.
//!
//! Architecture invariant: `render_png` is a pure function of `(text, seed)`;
//! the golden test in `render` pins its bytes.

mod encode;
mod font;
mod question;
mod raster;
mod render;

pub use question::{Question, generate};
pub use render::{HEIGHT_PX, WIDTH_PX, render_png};
