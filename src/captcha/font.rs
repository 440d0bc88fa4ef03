//! The stroke font the captcha is drawn with.
//!
//! Strokes rather than bitmaps because a stroke can be rotated, sheared and
//! drawn at any width without blocky scaling artefacts, and each glyph is a
//! handful of points. Coordinates are in font units: x in `0..=4` left to
//! right, y in `0..=6` top to bottom.

/// One polyline: consecutive points are joined by round-capped segments.
pub(super) type Stroke = &'static [(f32, f32)];

#[derive(Debug)]
pub(super) struct Glyph {
    pub strokes: &'static [Stroke],
    /// Horizontal space the glyph takes, in font units.
    pub advance: f32,
}

pub(super) const GLYPH_WIDTH_UNITS: f32 = 4.0;
pub(super) const GLYPH_HEIGHT_UNITS: f32 = 6.0;

const fn glyph(strokes: &'static [Stroke]) -> Glyph {
    Glyph { strokes, advance: GLYPH_WIDTH_UNITS }
}

/// Spaces are narrower than glyphs so that 13-character questions fit.
pub(super) const SPACE: Glyph = Glyph { strokes: &[], advance: 0.8 };

const ZERO: Glyph = glyph(&[&[
    (1.2, 0.0),
    (2.8, 0.0),
    (4.0, 1.2),
    (4.0, 4.8),
    (2.8, 6.0),
    (1.2, 6.0),
    (0.0, 4.8),
    (0.0, 1.2),
    (1.2, 0.0),
]]);
const ONE: Glyph = glyph(&[&[(0.8, 1.4), (2.2, 0.0), (2.2, 6.0)], &[(0.8, 6.0), (3.6, 6.0)]]);
const TWO: Glyph = glyph(&[&[(0.0, 1.2), (1.2, 0.0), (2.8, 0.0), (4.0, 1.2), (4.0, 2.2), (0.0, 6.0), (4.0, 6.0)]]);
const THREE: Glyph = glyph(&[&[
    (0.0, 0.0),
    (4.0, 0.0),
    (1.8, 2.6),
    (2.8, 2.6),
    (4.0, 3.8),
    (4.0, 4.9),
    (2.9, 6.0),
    (1.1, 6.0),
    (0.0, 4.9),
]]);
const FOUR: Glyph = glyph(&[&[(3.0, 6.0), (3.0, 0.0), (0.0, 4.2), (4.0, 4.2)]]);
const FIVE: Glyph = glyph(&[&[
    (4.0, 0.0),
    (0.3, 0.0),
    (0.0, 2.8),
    (2.8, 2.4),
    (4.0, 3.6),
    (4.0, 4.9),
    (2.9, 6.0),
    (1.1, 6.0),
    (0.0, 5.0),
]]);
const SIX: Glyph = glyph(&[&[
    (3.6, 0.4),
    (2.6, 0.0),
    (1.3, 0.0),
    (0.0, 1.5),
    (0.0, 4.8),
    (1.2, 6.0),
    (2.8, 6.0),
    (4.0, 4.8),
    (4.0, 3.7),
    (2.9, 2.6),
    (1.1, 2.6),
    (0.0, 3.7),
]]);
const SEVEN: Glyph = glyph(&[&[(0.0, 0.0), (4.0, 0.0), (1.6, 6.0)]]);
const EIGHT: Glyph = glyph(&[
    &[(1.1, 0.0), (2.9, 0.0), (3.8, 0.9), (3.8, 1.9), (2.9, 2.8), (1.1, 2.8), (0.2, 1.9), (0.2, 0.9), (1.1, 0.0)],
    &[(1.1, 2.8), (0.0, 3.9), (0.0, 4.9), (1.1, 6.0), (2.9, 6.0), (4.0, 4.9), (4.0, 3.9), (2.9, 2.8)],
]);
const NINE: Glyph = glyph(&[&[
    (0.4, 5.6),
    (1.4, 6.0),
    (2.7, 6.0),
    (4.0, 4.5),
    (4.0, 1.2),
    (2.8, 0.0),
    (1.2, 0.0),
    (0.0, 1.2),
    (0.0, 2.3),
    (1.1, 3.4),
    (2.9, 3.4),
    (4.0, 2.3),
]]);

// Operators fill most of the box: smaller ones drown in the interference curves.
const PLUS: Glyph = glyph(&[&[(2.0, 1.1), (2.0, 4.9)], &[(0.1, 3.0), (3.9, 3.0)]]);
const MINUS: Glyph = glyph(&[&[(0.3, 3.0), (3.7, 3.0)]]);
const TIMES: Glyph = glyph(&[&[(0.5, 1.5), (3.5, 4.5)], &[(3.5, 1.5), (0.5, 4.5)]]);
const EQUALS: Glyph = glyph(&[&[(0.2, 1.7), (3.8, 1.7)], &[(0.2, 4.3), (3.8, 4.3)]]);
const QUESTION: Glyph = glyph(&[
    &[(0.0, 1.2), (1.2, 0.0), (2.8, 0.0), (4.0, 1.2), (4.0, 2.2), (2.0, 3.6), (2.0, 4.3)],
    &[(2.0, 5.7), (2.0, 6.0)],
]);

/// The glyph for `c`, or `None` if the font does not cover it.
pub(super) fn lookup(c: char) -> Option<&'static Glyph> {
    let glyph = match c {
        '0' => &ZERO,
        '1' => &ONE,
        '2' => &TWO,
        '3' => &THREE,
        '4' => &FOUR,
        '5' => &FIVE,
        '6' => &SIX,
        '7' => &SEVEN,
        '8' => &EIGHT,
        '9' => &NINE,
        '+' => &PLUS,
        '-' => &MINUS,
        '×' => &TIMES,
        '=' => &EQUALS,
        '?' => &QUESTION,
        ' ' => &SPACE,
        _ => return None,
    };
    Some(glyph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn covers_every_character_generate_emits() {
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..10_000 {
            let question = super::super::generate(&mut rng);
            for c in question.text.chars() {
                assert!(lookup(c).is_some(), "no glyph for {c:?} in {:?}", question.text);
            }
        }
    }

    #[test]
    fn strokes_stay_inside_the_glyph_box() {
        for c in "0123456789+-×=? ".chars() {
            let glyph = lookup(c).unwrap_or_else(|| panic!("no glyph for {c:?}"));
            for &(x, y) in glyph.strokes.iter().flat_map(|s| s.iter()) {
                assert!((0.0..=GLYPH_WIDTH_UNITS).contains(&x) && (0.0..=GLYPH_HEIGHT_UNITS).contains(&y), "{c:?}");
            }
        }
    }
}
