//! Draws a question's text into a noisy PNG: [`render_png`].

use std::ops::Range;

use super::encode::{self, PALETTE_LEN};
use super::font::{self, GLYPH_HEIGHT_UNITS, GLYPH_WIDTH_UNITS};
use super::raster::{Canvas, Point};

/// Image width in pixels: room for the longest question, `"9 × 9 - 9 = ?"`,
/// at a size readable on a phone.
pub const WIDTH_PX: usize = 200;
/// Image height in pixels.
pub const HEIGHT_PX: usize = 60;

/// The palette's roles. Ink is shared by text, interference curves and half
/// the speckles, so that no colour singles out the text.
const BACKGROUND: Range<u8> = 0..4;
const MID_TONE: Range<u8> = 4..8;
const INK: Range<u8> = 8..16;

/// The palette before per-image jitter: four pale background tints, four mid
/// tones for speckles, eight dark inks.
const PALETTE_BASE: [[u8; 3]; PALETTE_LEN] = [
    [0xf4, 0xef, 0xe4],
    [0xe2, 0xea, 0xf2],
    [0xef, 0xe0, 0xec],
    [0xdd, 0xea, 0xd6],
    [0xa8, 0x9c, 0x88],
    [0x8c, 0xa4, 0xb8],
    [0xb8, 0x94, 0xa8],
    [0x94, 0xb0, 0x8c],
    [0x1f, 0x3a, 0x93],
    [0x8b, 0x1e, 0x3f],
    [0x1e, 0x6b, 0x3a],
    [0x5b, 0x2c, 0x83],
    [0xa0, 0x40, 0x20],
    [0x0b, 0x55, 0x63],
    [0x30, 0x30, 0x30],
    [0x7a, 0x4b, 0x00],
];
/// How far each palette channel may move per image, so colours are not fixed
/// values a solver can key on.
const PALETTE_JITTER: u8 = 24;

/// Glyph size in pixels per font unit, before per-glyph jitter: glyphs are
/// about 18 px wide and 34 px tall.
const GLYPH_SCALE_X: f32 = 4.6;
const GLYPH_SCALE_Y: f32 = 5.6;
/// Space between glyphs, before jitter.
const GLYPH_GAP_PX: f32 = 2.5;
/// The text stays this far from the left and right edges.
const MARGIN_PX: f32 = 6.0;
/// Characters drawn at most; the rest of a longer text is dropped. Text wider
/// than the image is squeezed to fit. `generate` emits at most 13.
const TEXT_CHARS_MAX: usize = 16;

/// Noise amounts, tuned by eye on the golden image: enough that a threshold
/// keeps curves and speckles along with the text, little enough that a person
/// reads it at once.
const BACKGROUND_BANDS: usize = 4;
const INK_CURVES_UNDER: usize = 2;
const INK_CURVES_OVER: usize = 1;
const CUT_CURVES: usize = 1;
/// Paints exactly the pixels whose centres a line passes within half a pixel of.
const THIN_RADIUS_PX: f32 = 0.5;
const SPECKLES: usize = WIDTH_PX * HEIGHT_PX / 16;

/// Renders `text` as a captcha PNG of [`WIDTH_PX`] × [`HEIGHT_PX`] pixels.
///
/// The result is a pure function of `(text, seed)`: the server draws `seed`
/// at random per captcha, tests fix it. Characters the font lacks are left
/// as gaps (`generate` emits none; a test checks).
pub fn render_png(text: &str, seed: u64) -> Vec<u8> {
    let (canvas, palette) = draw(text, seed);
    encode::indexed4(canvas.rows(), &palette)
}

fn draw(text: &str, seed: u64) -> (Canvas<WIDTH_PX, HEIGHT_PX>, [[u8; 3]; PALETTE_LEN]) {
    let mut rng = SplitMix64(seed);
    let palette = jittered_palette(&mut rng);
    let mut canvas = Canvas::<WIDTH_PX, HEIGHT_PX>::filled(BACKGROUND.start);
    for _ in 0..BACKGROUND_BANDS {
        let color = rng.pick(BACKGROUND);
        let half_height = rng.range(4.0, 10.0);
        let heights = [(); 4].map(|()| rng.range(0.0, HEIGHT_PX as f32));
        canvas.band(heights, half_height, color);
    }
    // Curves slant and wave across the text rather than run level with it,
    // so that they are not mistaken for a minus or an equals sign.
    let text_band = HEIGHT_PX as f32 * 0.2..HEIGHT_PX as f32 * 0.8;
    let inks = Inks { first_curve_ink: rng.pick(INK) };
    for i in 0..INK_CURVES_UNDER {
        let radius = rng.range(0.8, 1.2);
        canvas.cubic(wandering_curve(&mut rng, text_band.clone()), radius, inks.curve(i));
    }
    draw_text(&mut canvas, text, inks, &mut rng);
    // Curves over the text are one pixel wide: they cross strokes without
    // hiding one (a bar of `=` or `+` could vanish under a thick one).
    for i in INK_CURVES_UNDER..INK_CURVES_UNDER + INK_CURVES_OVER {
        canvas.cubic(wandering_curve(&mut rng, text_band.clone()), THIN_RADIUS_PX, inks.curve(i));
    }
    // Background-coloured cuts break strokes, so the text is not one connected blob per glyph.
    for _ in 0..CUT_CURVES {
        canvas.cubic(wandering_curve(&mut rng, text_band.clone()), THIN_RADIUS_PX, BACKGROUND.start);
    }
    for _ in 0..SPECKLES {
        let (x, y) = (rng.below(WIDTH_PX as u32), rng.below(HEIGHT_PX as u32));
        let color = match rng.below(4) {
            0 | 1 => rng.pick(INK),
            2 => rng.pick(MID_TONE),
            _ => rng.pick(BACKGROUND),
        };
        canvas.dot(x as usize, y as usize, color);
    }
    (canvas, palette)
}

/// Which inks draw curves and which draw text. Curves and glyphs share the
/// palette's dark inks, so a luminance threshold keeps both, but never the
/// same ink: a bar of `=` lying along a curve of its own colour would merge
/// into it and read as `-`.
#[derive(Debug, Clone, Copy)]
struct Inks {
    first_curve_ink: u8,
}

const CURVE_INKS: u8 = (INK_CURVES_UNDER + INK_CURVES_OVER) as u8;
const _: () = assert!(CURVE_INKS < INK.end - INK.start, "text needs an ink no curve uses");

impl Inks {
    /// The ink of curve `i`: consecutive inks from `first_curve_ink`, wrapping.
    fn curve(self, i: usize) -> u8 {
        self.nth_after_first(i as u8)
    }

    fn glyph(self, rng: &mut SplitMix64) -> u8 {
        let text_inks = u32::from(INK.end - INK.start - CURVE_INKS);
        self.nth_after_first(CURVE_INKS + rng.below(text_inks) as u8)
    }

    fn nth_after_first(self, n: u8) -> u8 {
        INK.start + (self.first_curve_ink - INK.start + n) % (INK.end - INK.start)
    }
}

fn jittered_palette(rng: &mut SplitMix64) -> [[u8; 3]; PALETTE_LEN] {
    PALETTE_BASE.map(|rgb| {
        rgb.map(|channel| {
            let jitter = rng.below(2 * u32::from(PALETTE_JITTER) + 1) as i32 - i32::from(PALETTE_JITTER);
            (i32::from(channel) + jitter).clamp(0, 255) as u8
        })
    })
}

/// Control points of a curve that crosses the whole image from left to right,
/// their heights drawn from `band`.
fn wandering_curve(rng: &mut SplitMix64, band: Range<f32>) -> [Point; 4] {
    let w = WIDTH_PX as f32;
    let mut y = || rng.range(band.start, band.end);
    // Inner control points overshoot the band, so the curve bends visibly.
    let (y0, y1, y2, y3) = (y(), y(), y(), y());
    [(-8.0, y0), (w / 3.0, 2.0 * y1 - y0), (w * 2.0 / 3.0, 2.0 * y2 - y3), (w + 8.0, y3)]
}

/// One glyph's placement, drawn before any glyph is painted so the whole line
/// can be centred and, if needed, squeezed.
#[derive(Debug, Clone, Copy)]
struct Placement {
    glyph: &'static font::Glyph,
    advance_px: f32,
    scale: (f32, f32),
    /// Rotation in radians, clockwise on screen since y points down.
    angle: f32,
    shear: f32,
    raise_px: f32,
    radius_px: f32,
    color: u8,
}

fn draw_text<const W: usize, const H: usize>(canvas: &mut Canvas<W, H>, text: &str, inks: Inks, rng: &mut SplitMix64) {
    let mut placements = [None; TEXT_CHARS_MAX];
    for (slot, c) in placements.iter_mut().zip(text.chars()) {
        let glyph = font::lookup(c).unwrap_or(&font::SPACE);
        *slot = Some(place(glyph, inks.glyph(rng), rng));
    }
    let placements = placements.iter().flatten();
    let width_px: f32 = placements.clone().map(|p| p.advance_px).sum::<f32>() - GLYPH_GAP_PX;
    let room_px = W as f32 - 2.0 * MARGIN_PX;
    let fit = if width_px > room_px { room_px / width_px } else { 1.0 };
    let mut pen_x = MARGIN_PX + rng.range(0.0, (room_px - width_px * fit).max(0.0));
    for p in placements {
        let centre = (pen_x + p.glyph.advance * p.scale.0 * fit / 2.0, H as f32 / 2.0 - p.raise_px);
        draw_glyph(canvas, p, centre, fit);
        pen_x += p.advance_px * fit;
    }
}

fn place(glyph: &'static font::Glyph, color: u8, rng: &mut SplitMix64) -> Placement {
    let scale = (GLYPH_SCALE_X * rng.range(0.85, 1.1), GLYPH_SCALE_Y * rng.range(0.85, 1.1));
    Placement {
        glyph,
        advance_px: glyph.advance * scale.0 + GLYPH_GAP_PX + rng.range(-0.5, 1.5),
        scale,
        angle: rng.range(-0.25, 0.25),
        shear: rng.range(-0.25, 0.25),
        raise_px: rng.range(-4.0, 4.0),
        radius_px: rng.range(1.5, 2.1),
        color,
    }
}

fn draw_glyph<const W: usize, const H: usize>(canvas: &mut Canvas<W, H>, p: &Placement, centre: Point, fit: f32) {
    let (sin, cos) = sin_cos(p.angle);
    let (sx, sy) = (p.scale.0 * fit, p.scale.1);
    let transform = |&(u, v): &(f32, f32)| {
        let y = (v - GLYPH_HEIGHT_UNITS / 2.0) * sy;
        let x = (u - GLYPH_WIDTH_UNITS / 2.0) * sx + p.shear * y;
        (centre.0 + cos * x - sin * y, centre.1 + sin * x + cos * y)
    };
    for stroke in p.glyph.strokes {
        canvas.polyline(stroke.iter().map(transform), p.radius_px, p.color);
    }
}

/// Sine and cosine by Taylor series, exact to ~1e-6 for |x| ≤ 0.5. Not
/// `f32::sin_cos`: the platform's maths library may round the last bit
/// differently, which would move a pixel and break the golden test elsewhere.
fn sin_cos(x: f32) -> (f32, f32) {
    debug_assert!(x.abs() <= 0.5, "the series is only accurate for small angles");
    let x2 = x * x;
    let sin = x * (1.0 - x2 / 6.0 * (1.0 - x2 / 20.0 * (1.0 - x2 / 42.0)));
    let cos = 1.0 - x2 / 2.0 * (1.0 - x2 / 12.0 * (1.0 - x2 / 30.0));
    (sin, cos)
}

/// SplitMix64 (Steele, Lea, Flood 2014). Ours rather than a `rand` generator
/// because the golden test pins every pixel: `rand` documents that its
/// generators and range sampling may change between versions, this cannot.
/// Unpredictability comes from the caller's seed, not from this generator.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` by multiply-shift; the bias (< n / 2³²) is
    /// invisible in a picture.
    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    fn pick(&mut self, range: Range<u8>) -> u8 {
        range.start + self.below(u32::from(range.end - range.start)) as u8
    }

    /// Uniform in `[lo, hi)`, from 24 random bits (all an f32 holds).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32;
        lo + (hi - lo) * unit
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    const GOLDEN_TEXT: &str = "7 + 3 × 2 = ?";
    const GOLDEN_SEED: u64 = 0x5EC_C111;
    const GOLDEN: &[u8] = include_bytes!("testdata/captcha_golden.png");
    const GOLDEN_FILE: &str = "testdata/captcha_golden.png";

    /// Every captcha must stay small: it is served once per (user, item) at
    /// the busiest moment of a sale.
    const PNG_BYTES_MAX: usize = 4 * 1024;

    /// The on-disk path of `relative`, a path beside this source file.
    /// `file!()` is relative to the workspace root, which may be an ancestor
    /// of the package directory, so try the package directory and upwards.
    fn beside_this_file(relative: &str) -> PathBuf {
        let this_file = Path::new(file!());
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join(this_file))
            .find(|candidate| candidate.is_file())
            .and_then(|found| Some(found.parent()?.join(relative)))
            .unwrap_or_else(|| panic!("cannot find {} from {}", this_file.display(), env!("CARGO_MANIFEST_DIR")))
    }

    /// Decodes a PNG to 8-bit RGB with the `png` crate: (width, height, pixels).
    fn decode_rgb(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), png::DecodingError> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info()?;
        let size = reader.output_buffer_size().expect("a captcha-sized image fits in memory");
        let mut pixels = vec![0; size];
        let info = reader.next_frame(&mut pixels)?;
        assert_eq!(info.color_type, png::ColorType::Rgb, "EXPAND turns a palette into RGB");
        pixels.truncate(info.buffer_size());
        Ok((info.width, info.height, pixels))
    }

    #[test]
    fn matches_golden_image() {
        let actual = render_png(GOLDEN_TEXT, GOLDEN_SEED);
        let golden_path = beside_this_file(GOLDEN_FILE);
        if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
            std::fs::write(&golden_path, &actual).expect("the golden file is writable");
            eprintln!("wrote {} ({} bytes); rebuild to compare against it", golden_path.display(), actual.len());
            return;
        }
        if actual == GOLDEN {
            return;
        }
        let actual_path = std::env::temp_dir().join("captcha_actual.png");
        std::fs::write(&actual_path, &actual).expect("the temporary directory is writable");
        let why = match (decode_rgb(&actual), decode_rgb(GOLDEN)) {
            (Ok(a), Ok(g)) if a == g => {
                "the pixels are the same but the encoding differs (a deflate upgrade or setting?)"
            }
            (Ok(_), Ok(_)) => "the pixels differ",
            (_, Err(_)) => "the golden file does not decode",
            (Err(_), _) => "the new render does not decode",
        };
        panic!(
            "render_png({GOLDEN_TEXT:?}, {GOLDEN_SEED:#x}) no longer matches {}: {why}.\n\
             The new render is at {}. Look at it; if it is right, accept it with\n\
             UPDATE_GOLDEN=1 cargo test matches_golden_image, then rerun the tests.",
            golden_path.display(),
            actual_path.display(),
        );
    }

    #[test]
    fn decodes_to_the_advertised_size() {
        let (width, height, pixels) = decode_rgb(&render_png(GOLDEN_TEXT, 1)).expect("the captcha decodes");
        assert_eq!((width as usize, height as usize), (WIDTH_PX, HEIGHT_PX));
        assert_eq!(pixels.len(), WIDTH_PX * HEIGHT_PX * 3);
    }

    #[test]
    fn same_input_same_bytes_other_seed_other_bytes() {
        assert_eq!(render_png(GOLDEN_TEXT, 42), render_png(GOLDEN_TEXT, 42));
        assert_ne!(render_png(GOLDEN_TEXT, 42), render_png(GOLDEN_TEXT, 43));
        assert_ne!(render_png("1 + 1 = ?", 42), render_png("1 + 2 = ?", 42));
    }

    #[test]
    fn generated_questions_render_small() {
        let mut rng = SmallRng::seed_from_u64(3);
        for seed in 0..200 {
            let question = super::super::generate(&mut rng);
            let size = render_png(&question.text, seed).len();
            assert!(size <= PNG_BYTES_MAX, "{question:?} with seed {seed} took {size} bytes");
        }
    }

    #[test]
    fn overlong_text_still_renders() {
        let long = "1 + 2 + 3 + 4 + 5 + 6 + 7 = ?";
        assert_eq!(render_png(long, 9), render_png(&long[..TEXT_CHARS_MAX], 9), "only the first characters are drawn");
        assert!(decode_rgb(&render_png(long, 9)).is_ok());
    }

    #[test]
    fn sin_cos_is_accurate_for_captcha_angles() {
        for i in -50..=50 {
            let x = i as f32 / 100.0;
            let (sin, cos) = sin_cos(x);
            assert!((sin - x.sin()).abs() < 1e-6 && (cos - x.cos()).abs() < 1e-6, "{x}");
        }
    }

    /// Prints the render time; not asserted, since machines vary. The best
    /// of several batches is reported, as the least disturbed by other load.
    #[test]
    fn render_time() {
        const BATCHES: u64 = 200;
        const RENDERS_PER_BATCH: u64 = 5;
        let mut bytes = 0;
        let batch_time = |batch: u64, bytes: &mut usize| {
            let started = Instant::now();
            for seed in batch * RENDERS_PER_BATCH..(batch + 1) * RENDERS_PER_BATCH {
                *bytes += render_png("9 × 9 - 9 = ?", seed).len();
            }
            started.elapsed() / RENDERS_PER_BATCH as u32
        };
        let best = (0..BATCHES).map(|batch| batch_time(batch, &mut bytes)).min();
        let mean_bytes = bytes as u64 / (BATCHES * RENDERS_PER_BATCH);
        eprintln!("render_png: {best:?} per image (best batch), {mean_bytes} bytes on average");
    }
}
