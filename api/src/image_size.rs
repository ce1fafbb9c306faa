//! The width and height an image attachment declares in its header, read
//! without decoding it: PNG's `IHDR`, JPEG's start-of-frame, WebP's `VP8 `,
//! `VP8L` or `VP8X` chunk.
//!
//! Attachments are shown inline to counterparties and to the agents who
//! resolve appeals. A few MiB of PNG or WebP can declare billions of pixels
//! (a decompression bomb) and stall or crash the viewer that decodes it, so an
//! image must declare a size, and at most [`PIXELS_MAX`] pixels, to be
//! accepted. Which types are allowed at all is the engine's rule; this is a
//! fact about the bytes, checked in the shell like their signature.

/// The most pixels an image attachment may declare: 64 megapixels, more
/// than a 50-megapixel phone's full-resolution photo (8192 × 6144) or a long
/// screenshot, and about 256 MB once decoded. (A 200-megapixel mode's photo
/// is over it, and over the attachment size limit too.)
pub const PIXELS_MAX: u64 = 64_000_000;

/// `(width, height)` as `data`'s header declares them, for the image types
/// an attachment may be; `None` inside when the header cannot be read (or
/// declares a zero side); `None` outside for other types.
#[must_use]
pub fn declared(content_type: &str, data: &[u8]) -> Option<Option<(u32, u32)>> {
    let size = match content_type {
        "image/png" => png(data),
        "image/jpeg" => jpeg(data),
        "image/webp" => webp(data),
        _ => return None,
    };
    Some(size.filter(|&(w, h)| w > 0 && h > 0))
}

fn be16(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 2)?;
    Some(u32::from(u16::from_be_bytes([b[0], b[1]])))
}

fn le16(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 2)?;
    Some(u32::from(u16::from_le_bytes([b[0], b[1]])))
}

fn le24(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 3)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], 0]))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The first chunk after the signature must be `IHDR` (13 bytes).
fn png(data: &[u8]) -> Option<(u32, u32)> {
    if be32(data, 8)? != 13 || data.get(12..16)? != b"IHDR" {
        return None;
    }
    Some((be32(data, 16)?, be32(data, 20)?))
}

/// Walks the segments after SOI to the first start-of-frame; the scan
/// (SOS) or the end (EOI) before it means no size.
fn jpeg(data: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        if *data.get(at)? != 0xFF {
            return None;
        }
        // Fill bytes: any number of 0xFF before the marker.
        while *data.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *data.get(at)?;
        at += 1;
        match marker {
            // Markers without a length: TEM, RSTn, a second SOI.
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 | 0xDA => return None,
            _ => {}
        }
        let len = usize::try_from(be16(data, at)?).ok()?;
        if len < 2 {
            return None;
        }
        // SOF0..SOF15, less DHT (C4), JPG (C8) and DAC (CC): precision,
        // then height, then width.
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            return Some((be16(data, at + 5)?, be16(data, at + 3)?));
        }
        at += len;
    }
}

/// `RIFF` size `WEBP`, then the first chunk: lossy (`VP8 `), lossless
/// (`VP8L`) or extended (`VP8X`, the canvas).
fn webp(data: &[u8]) -> Option<(u32, u32)> {
    match data.get(12..16)? {
        b"VP8 " => {
            if data.get(23..26)? != [0x9D, 0x01, 0x2A] {
                return None;
            }
            Some((le16(data, 26)? & 0x3FFF, le16(data, 28)? & 0x3FFF))
        }
        b"VP8L" => {
            if *data.get(20)? != 0x2F {
                return None;
            }
            let b = data.get(21..25)?;
            let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => Some((le24(data, 24)? + 1, le24(data, 27)? + 1)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PNG's signature and `IHDR` for `w` × `h` (CRC not checked here).
    pub(crate) fn png_head(w: u32, h: u32) -> Vec<u8> {
        let mut d = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        d.extend_from_slice(&w.to_be_bytes());
        d.extend_from_slice(&h.to_be_bytes());
        d.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        d
    }

    #[test]
    fn png_sizes_come_from_ihdr() {
        assert_eq!(
            declared("image/png", &png_head(1170, 2532)),
            Some(Some((1170, 2532)))
        );
        assert_eq!(
            declared("image/png", &png_head(0, 5)),
            Some(None),
            "a zero side"
        );
        assert_eq!(declared("image/png", b"\x89PNG\r\n\x1a\n...."), Some(None));
        let mut other_chunk = png_head(10, 10);
        other_chunk[12..16].copy_from_slice(b"tEXt");
        assert_eq!(
            declared("image/png", &other_chunk),
            Some(None),
            "IHDR first"
        );
        assert_eq!(declared("application/pdf", b"%PDF-1.7"), None);
    }

    #[test]
    fn jpeg_sizes_come_from_the_first_frame_past_other_segments() {
        // SOI, APP0 (JFIF, 16 bytes), fill bytes, DQT (4 bytes), SOF2
        // (progressive) 480 high, 640 wide.
        let mut d = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        d.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        d.extend_from_slice(&[0xFF, 0xFF, 0xDB, 0x00, 0x04, 0x00, 0x00]);
        d.extend_from_slice(&[0xFF, 0xC2, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03]);
        assert_eq!(declared("image/jpeg", &d), Some(Some((640, 480))));
        // DHT (C4) is not a frame.
        let dht = [
            0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x07, 0x00, 0x10, 0x20, 0x30, 0x40,
        ];
        assert_eq!(declared("image/jpeg", &dht), Some(None));
        // The scan before any frame, a truncated segment, a length below 2.
        assert_eq!(
            declared("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]),
            Some(None)
        );
        assert_eq!(
            declared("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8, 1]),
            Some(None)
        );
        assert_eq!(
            declared("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE1, 0, 1]),
            Some(None)
        );
        assert_eq!(
            declared("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(None)
        );
    }

    #[test]
    fn webp_sizes_come_from_its_first_chunk() {
        let riff = |chunk: &[u8]| [b"RIFF\0\0\0\0WEBP".as_slice(), chunk].concat();
        // Lossy: frame tag, start code, 14-bit width and height (the top
        // two bits are scaling).
        let vp8 = riff(b"VP8 \0\0\0\0\0\0\0\x9d\x01\x2a\x80\x07\x38\x44");
        assert_eq!(declared("image/webp", &vp8), Some(Some((1920, 1080))));
        // Lossless: width-1 and height-1 in 14 bits each.
        let bits: u32 = 99 | (49 << 14);
        let vp8l = riff(&[b"VP8L\0\0\0\0\x2f".as_slice(), &bits.to_le_bytes()].concat());
        assert_eq!(declared("image/webp", &vp8l), Some(Some((100, 50))));
        // Extended: the canvas, 24-bit width-1 and height-1.
        let vp8x = riff(b"VP8X\0\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff");
        assert_eq!(
            declared("image/webp", &vp8x),
            Some(Some((1 << 24, 1 << 24)))
        );
        assert_eq!(
            declared("image/webp", &riff(b"VP8 \0\0\0\0\0\0\0\0\0\0")),
            Some(None)
        );
        assert_eq!(declared("image/webp", &riff(b"ALPH")), Some(None));
        assert_eq!(declared("image/webp", b"RIFF\0\0\0\0WEBP"), Some(None));
    }
}
