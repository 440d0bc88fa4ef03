//! A minimal PNG encoder for 16-colour indexed images.
//!
//! Why our own and not the `png` crate: a captcha needs one image type (4-bit
//! palette, no interlacing, no metadata), which takes IHDR, PLTE, IDAT and IEND
//! chunks and a CRC; the `png` crate brings nine crates (two `miniz_oxide`
//! versions among them) into the server's build for it. Here the only
//! dependency is `miniz_oxide`'s deflate, whose output at a fixed level is part
//! of what the golden test pins. The tests decode our output with the `png`
//! crate, an independent implementation, so the encoder is checked by
//! something that does not share its mistakes.

use std::cell::RefCell;

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output, create_comp_flags_from_zip_params,
};

/// Four bits per pixel: a palette of at most 16 colours, two pixels per byte.
pub(super) const PALETTE_LEN: usize = 16;

/// Deflate effort, 0–10. Level 1 is miniz's fast path: on captchas it is
/// ~10% larger than level 2 (~2.7 KB against ~2.5 KB) and ~35% faster; the
/// noise leaves little for a deeper search to find.
const DEFLATE_LEVEL: i32 = 1;
/// zlib framing (header and Adler-32), which PNG's IDAT requires.
const ZLIB_WINDOW_BITS: i32 = 1;
const DEFAULT_STRATEGY: i32 = 0;

thread_local! {
    /// One compressor per thread, reset per image. A fresh `CompressorOxide`
    /// is ~230 KB of tables whose allocation and zeroing cost more than
    /// compressing a captcha; the server's threads are long-lived event loops,
    /// so each pays that once. `reset` returns it to its initial state, so the
    /// output depends only on the input (a test renders twice to check).
    static COMPRESSOR: RefCell<Box<CompressorOxide>> = RefCell::new(Box::new(CompressorOxide::new(
        create_comp_flags_from_zip_params(DEFLATE_LEVEL, ZLIB_WINDOW_BITS, DEFAULT_STRATEGY),
    )));
}

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
const BIT_DEPTH: u8 = 4;
const COLOR_TYPE_INDEXED: u8 = 3;
/// Filter type 0 on every row: the PNG specification recommends no filtering
/// for palette images, since neighbouring indices do not predict each other.
const FILTER_NONE: u8 = 0;

/// Encodes `rows` (palette indices, each `< 16`) with `palette` as a PNG.
pub(super) fn indexed4<const W: usize, const H: usize>(
    rows: &[[u8; W]; H],
    palette: &[[u8; 3]; PALETTE_LEN],
) -> Vec<u8> {
    let mut raw = Vec::with_capacity(H * (1 + W.div_ceil(2)));
    for row in rows {
        raw.push(FILTER_NONE);
        raw.extend(row.chunks(2).map(|pair| {
            debug_assert!(pair.iter().all(|&index| usize::from(index) < PALETTE_LEN));
            // An odd last pixel is padded with a zero low nibble, as PNG requires.
            pair[0] << 4 | pair.get(1).copied().unwrap_or(0)
        }));
    }

    let mut ihdr = [0u8; 13];
    ihdr[0..4].copy_from_slice(&dimension(W).to_be_bytes());
    ihdr[4..8].copy_from_slice(&dimension(H).to_be_bytes());
    // Compression, filter and interlace methods stay 0: the only defined ones / none.
    ihdr[8..10].copy_from_slice(&[BIT_DEPTH, COLOR_TYPE_INDEXED]);

    // Noise keeps captchas from compressing below about a third of `raw`.
    let mut png = Vec::with_capacity(SIGNATURE.len() + 4 * 12 + ihdr.len() + 3 * PALETTE_LEN + raw.len() / 2);
    png.extend_from_slice(&SIGNATURE);
    chunk(&mut png, b"IHDR", |png| png.extend_from_slice(&ihdr));
    chunk(&mut png, b"PLTE", |png| png.extend_from_slice(palette.as_flattened()));
    chunk(&mut png, b"IDAT", |png| deflate(&raw, png));
    chunk(&mut png, b"IEND", |_| {});
    png
}

/// Appends the zlib stream of `raw` to `out`.
fn deflate(raw: &[u8], out: &mut Vec<u8>) {
    COMPRESSOR.with_borrow_mut(|compressor| {
        compressor.reset();
        let (status, consumed) = compress_to_output(compressor, raw, TDEFLFlush::Finish, |bytes| {
            out.extend_from_slice(bytes);
            true
        });
        // With the whole input, Finish and a sink that accepts everything, miniz
        // has nothing to wait for: anything else is a bug in this function.
        assert_eq!((status, consumed), (TDEFLStatus::Done, raw.len()), "deflate did not finish in one call");
    });
}

/// PNG dimensions are u32 and at least 1; ours are compile-time constants.
fn dimension(pixels: usize) -> u32 {
    assert!(pixels >= 1, "a PNG has at least one row and column");
    u32::try_from(pixels).expect("captcha dimensions fit in u32")
}

/// Appends one chunk: length, type, the data `write_data` appends, and the
/// CRC of type and data. Writing in place spares a copy of the IDAT data.
fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], write_data: impl FnOnce(&mut Vec<u8>)) {
    let length_at = png.len();
    png.extend_from_slice(&[0; 4]);
    png.extend_from_slice(kind);
    write_data(png);
    let data_len = png.len() - length_at - 8;
    // Our chunks are at most a few KB: an image of W × H 4-bit pixels.
    let length = u32::try_from(data_len).expect("a captcha chunk is far below 4 GiB");
    png[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32(&png[length_at + 4..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (ISO 3309, reflected polynomial 0xEDB88320) as PNG specifies it.
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| CRC_TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8))
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn odd_width_image_decodes_to_the_same_pixels() {
        let mut palette = [[0u8; 3]; PALETTE_LEN];
        for (i, colour) in palette.iter_mut().enumerate() {
            *colour = [i as u8 * 16, 255 - i as u8 * 16, i as u8];
        }
        let rows: [[u8; 5]; 3] = [[0, 1, 2, 3, 4], [15, 14, 13, 12, 11], [7, 7, 7, 7, 8]];
        let png = indexed4(&rows, &palette);

        let decoder = ::png::Decoder::new(std::io::Cursor::new(&png));
        let mut reader = decoder.read_info().expect("our PNG has a valid header");
        // Without transformations the decoder hands back packed indices, as we wrote them.
        let mut packed = vec![0; reader.output_buffer_size().expect("5 × 3 fits in memory")];
        let info = reader.next_frame(&mut packed).expect("our PNG decodes");
        assert_eq!((info.width, info.height, info.bit_depth), (5, 3, ::png::BitDepth::Four));
        assert_eq!(info.color_type, ::png::ColorType::Indexed);
        assert_eq!(reader.info().palette.as_deref(), Some(palette.as_flattened()));
        let unpacked: Vec<Vec<u8>> = packed
            .chunks(info.line_size)
            .map(|line| line.iter().flat_map(|&b| [b >> 4, b & 0xf]).take(5).collect())
            .collect();
        assert_eq!(unpacked, rows.map(Vec::from));
    }
}
