//! An indexed-colour canvas that draws thick round-capped segments and cubic
//! Bézier curves.
//!
//! Everything here uses only `+ - * /`, `sqrt`, comparisons and float-to-int
//! casts, all exactly specified by IEEE 754 and Rust, and no `sin`, `cos` or
//! fused multiply-add whose last bit may differ between platforms' maths
//! libraries. That is what lets a golden test pin the pixels of a render on
//! every machine.

/// A point in pixel coordinates: x to the right, y down; pixel `(i, j)` covers
/// `[i, i + 1) × [j, j + 1)`.
pub(super) type Point = (f32, f32);

/// A `W × H` image of palette indices, on the stack: one render never
/// allocates for pixels.
#[derive(Debug)]
pub(super) struct Canvas<const W: usize, const H: usize> {
    rows: [[u8; W]; H],
}

/// Straight segments per Bézier curve: at captcha sizes (curves ≤ ~250 px
/// long) 32 keeps every chord within a fraction of a pixel of the curve.
const CURVE_SEGMENTS: usize = 32;

impl<const W: usize, const H: usize> Canvas<W, H> {
    pub(super) fn filled(color: u8) -> Self {
        Canvas { rows: [[color; W]; H] }
    }

    pub(super) fn rows(&self) -> &[[u8; W]; H] {
        &self.rows
    }

    /// Sets one pixel; pixels off the canvas are ignored, so callers may draw
    /// shapes that cross the edges.
    pub(super) fn dot(&mut self, x: usize, y: usize, color: u8) {
        if let Some(pixel) = self.rows.get_mut(y).and_then(|row| row.get_mut(x)) {
            *pixel = color;
        }
    }

    /// Paints every pixel whose centre lies within `radius` of the segment
    /// `a`–`b`: a thick line with round caps, so consecutive segments join
    /// without gaps.
    pub(super) fn segment(&mut self, a: Point, b: Point, radius: f32, color: u8) {
        // Bounds may be generous (the exact test below decides each pixel), so
        // truncating casts stand in for `floor`, which is a libm call on
        // baseline x86-64. Casts saturate: negative and NaN bounds become 0.
        let x_lo = (a.0.min(b.0) - radius) as usize;
        let x_hi = ((a.0.max(b.0) + radius) as usize + 1).min(W);
        let y_lo = (a.1.min(b.1) - radius) as usize;
        let y_hi = ((a.1.max(b.1) + radius) as usize + 1).min(H);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let length_sq = dx * dx + dy * dy;
        // A zero-length segment is a dot: t = 0 projects every pixel onto `a`.
        let inverse_length_sq = if length_sq > 0.0 { 1.0 / length_sq } else { 0.0 };
        let radius_sq = radius * radius;
        // A steep segment's pixels in one row lie within `half_width` of where
        // its centre line crosses that row; the +1 covers pixel-centre offsets
        // and rounding. Shallow segments span few rows, so use the bounding box.
        let steep = dy.abs() > dx.abs();
        let half_width = if steep { radius * length_sq.sqrt() / dy.abs() + 1.0 } else { 0.0 };
        for (y, row) in self.rows.iter_mut().enumerate().take(y_hi).skip(y_lo) {
            let py = y as f32 + 0.5 - a.1;
            let (row_lo, row_hi) = if steep {
                let crossing = a.0 + py * dx / dy;
                (x_lo.max((crossing - half_width) as usize), x_hi.min((crossing + half_width) as usize + 1))
            } else {
                (x_lo, x_hi)
            };
            let Some(span) = row.get_mut(row_lo..row_hi) else { continue };
            // Branch-free body over a plain slice, so the compiler can vectorise it.
            for (x, pixel) in (row_lo..).zip(span) {
                let px = x as f32 + 0.5 - a.0;
                // Projection of the pixel centre onto the segment, clamped to its ends.
                let t = ((px * dx + py * dy) * inverse_length_sq).clamp(0.0, 1.0);
                let (ex, ey) = (px - t * dx, py - t * dy);
                *pixel = if ex * ex + ey * ey <= radius_sq { color } else { *pixel };
            }
        }
    }

    /// Joins consecutive points with [`Self::segment`].
    pub(super) fn polyline(&mut self, points: impl IntoIterator<Item = Point>, radius: f32, color: u8) {
        let mut points = points.into_iter();
        let Some(mut previous) = points.next() else { return };
        for point in points {
            self.segment(previous, point, radius, color);
            previous = point;
        }
    }

    /// A cubic Bézier curve through control points `p`, drawn as a polyline.
    pub(super) fn cubic(&mut self, p: [Point; 4], radius: f32, color: u8) {
        let at = |i: usize| {
            let t = i as f32 / CURVE_SEGMENTS as f32;
            (bezier([p[0].0, p[1].0, p[2].0, p[3].0], t), bezier([p[0].1, p[1].1, p[2].1, p[3].1], t))
        };
        self.polyline((0..=CURVE_SEGMENTS).map(at), radius, color);
    }

    /// A wide band across the whole canvas whose centre height follows a cubic
    /// Bézier in `heights` from the left edge to the right, `half_height` above
    /// and below. Painted column by column: [`Self::cubic`] at such widths
    /// would test each pixel dozens of times.
    pub(super) fn band(&mut self, heights: [f32; 4], half_height: f32, color: u8) {
        for x in 0..W {
            let centre = bezier(heights, (x as f32 + 0.5) / W as f32);
            // Adding 0.5 and truncating rounds (without a libm call); the
            // casts saturate, clipping the span to the canvas.
            let top = (centre - half_height + 0.5) as usize;
            let bottom = ((centre + half_height + 0.5) as usize).min(H);
            for row in self.rows.iter_mut().take(bottom).skip(top) {
                row[x] = color;
            }
        }
    }
}

/// The cubic Bézier with control values `c` at `t` in `0..=1`.
fn bezier(c: [f32; 4], t: f32) -> f32 {
    let s = 1.0 - t;
    s * s * s * c[0] + 3.0 * s * s * t * c[1] + 3.0 * s * t * t * c[2] + t * t * t * c[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(canvas: &Canvas<8, 5>, expected: &str) {
        let actual: Vec<String> =
            canvas.rows().iter().map(|row| row.iter().map(|&c| char::from(b'0' + c)).collect()).collect();
        assert_eq!(actual.join("\n"), expected.trim());
    }

    #[test]
    fn segment_is_thick_and_round_capped() {
        let mut canvas = Canvas::<8, 5>::filled(0);
        canvas.segment((2.0, 2.5), (6.0, 2.5), 1.0, 1);
        check(
            &canvas,
            "
00000000
00111100
01111110
00111100
00000000",
        );
    }

    /// The row bounds in `segment` only skip pixels: every pixel is painted
    /// exactly when a test of all pixels says so.
    #[test]
    fn segment_bounds_skip_no_pixel() {
        let cases = [((3.2, 1.0), (5.9, 38.0), 1.7), ((30.0, 2.5), (1.0, 36.6), 0.5), ((4.0, 30.0), (36.0, 12.0), 2.2)];
        for (a, b, radius) in cases {
            let mut canvas = Canvas::<40, 40>::filled(0);
            canvas.segment(a, b, radius, 1);
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            for (y, row) in canvas.rows().iter().enumerate() {
                for (x, &pixel) in row.iter().enumerate() {
                    let (px, py) = (x as f32 + 0.5 - a.0, y as f32 + 0.5 - a.1);
                    let t = ((px * dx + py * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
                    let distance = ((px - t * dx).powi(2) + (py - t * dy).powi(2)).sqrt();
                    // Pixels within a rounding error of the edge may go either way.
                    if (distance - radius).abs() > 1e-3 {
                        assert_eq!(pixel == 1, distance < radius, "{a:?}-{b:?} r={radius} at ({x}, {y})");
                    }
                }
            }
        }
    }

    #[test]
    fn drawing_off_the_canvas_is_clipped() {
        let mut canvas = Canvas::<8, 5>::filled(0);
        canvas.segment((-20.0, 0.5), (30.0, 0.4), 0.6, 2);
        canvas.cubic([(-9.0, 9.0), (0.0, 20.0), (8.0, 20.0), (17.0, 9.0)], 1.0, 3);
        canvas.band([-9.0, -9.0, 20.0, 20.0], 2.0, 5);
        canvas.dot(8, 0, 4);
        canvas.dot(0, 5, 4);
        // The band climbs from y = -9 to 20 across 8 columns: only column 3 is on the canvas.
        check(&canvas, "\n22222222\n00050000\n00050000\n00050000\n00050000");
    }
}
