//! Turning uploaded bytes into a photo: format sniffing, size limits checked
//! before any pixel is decoded, and EXIF orientation applied.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

/// The largest photo accepted, per side. A bigger one is refused from its
/// header alone, so a tiny file claiming 30000x30000 pixels costs nothing.
pub const MAX_SIDE: u32 = 12_000;
/// The most pixels a photo may have unless the caller says otherwise: 40
/// megapixels is 120 MB decoded, more than any camera photo needs to name
/// who is in it. Also checked from the header, before decoding.
pub const MAX_PIXELS: u64 = 40_000_000;
/// The most memory decoding one photo may allocate.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// Why an upload is not a usable photo.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("the file is empty: choose a photo (JPEG, PNG, WebP, GIF or BMP)")]
    Empty,
    #[error(
        "the file is not an image this app can read: upload a JPEG, PNG, WebP, GIF or BMP photo"
    )]
    NotAnImage,
    #[error(
        "the image is {width}x{height} pixels; the largest accepted is {MAX_SIDE} pixels a side: resize it and try again"
    )]
    TooLarge { width: u32, height: u32 },
    #[error(
        "the image is {width}x{height} pixels, {megapixels:.0} megapixels; the largest accepted is {limit:.0}: resize it and try again",
        megapixels = f64::from(*width) * f64::from(*height) / 1e6,
        limit = *max_pixels as f64 / 1e6
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("the {format} file is damaged or truncated and can't be decoded ({reason})")]
    Damaged { format: String, reason: String },
}

/// A decoded photo, upright, with the format it came in.
#[derive(Debug)]
pub struct Photo {
    pub image: DynamicImage,
    pub format: ImageFormat,
}

/// Decodes an uploaded photo of at most [`MAX_PIXELS`].
pub fn decode_photo(bytes: &[u8]) -> Result<Photo, PhotoError> {
    decode_photo_within(bytes, MAX_PIXELS)
}

/// Decodes an uploaded photo of at most `max_pixels`, refused from its
/// header when larger.
pub fn decode_photo_within(bytes: &[u8], max_pixels: u64) -> Result<Photo, PhotoError> {
    let (mut decoder, format) = open_within(bytes, max_pixels)?;
    let damaged = |e: ImageError| damaged(format, e);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    decoder.set_limits(limits).map_err(damaged)?;
    let orientation = decoder.orientation().map_err(damaged)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(damaged)?;
    image.apply_orientation(orientation);
    Ok(Photo { image, format })
}

/// What [`decode_photo_within`] can tell from the header alone: whether
/// the bytes are an image of a readable format within `max_pixels`, with
/// no pixel decoded.
pub fn check_photo_header(bytes: &[u8], max_pixels: u64) -> Result<(), PhotoError> {
    open_within(bytes, max_pixels).map(drop)
}

/// A decoder for the photo, its size checked from the header.
fn open_within(
    bytes: &[u8],
    max_pixels: u64,
) -> Result<(Box<dyn ImageDecoder + '_>, ImageFormat), PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| PhotoError::NotAnImage)?;
    let format = reader.format().ok_or(PhotoError::NotAnImage)?;
    let decoder = reader.into_decoder().map_err(|e| match e {
        ImageError::Unsupported(_) => PhotoError::NotAnImage,
        other => damaged(format, other),
    })?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(PhotoError::TooLarge { width, height });
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PhotoError::TooManyPixels {
            width,
            height,
            max_pixels,
        });
    }
    Ok((Box::new(decoder), format))
}

fn damaged(format: ImageFormat, error: ImageError) -> PhotoError {
    PhotoError::Damaged {
        format: format!("{format:?}").to_uppercase(),
        reason: error.to_string(),
    }
}

/// The usual file extension of the photo format these bytes start with.
pub fn photo_extension(bytes: &[u8]) -> Option<&'static str> {
    image::guess_format(bytes)
        .ok()
        .and_then(|format| format.extensions_str().first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_a_png_with_its_size() {
        let photo = decode_photo(&png(40, 30)).unwrap();
        assert_eq!(photo.format, ImageFormat::Png);
        assert_eq!((photo.image.width(), photo.image.height()), (40, 30));
    }

    #[test]
    fn names_the_extension_of_a_photo() {
        assert_eq!(photo_extension(&png(2, 2)), Some("png"));
        assert_eq!(photo_extension(b"plain text"), None);
    }

    #[test]
    fn refuses_empty_text_and_truncated_files() {
        assert!(matches!(decode_photo(b""), Err(PhotoError::Empty)));
        assert!(matches!(
            decode_photo(b"hello, this is not a photo"),
            Err(PhotoError::NotAnImage)
        ));
        let whole = png(64, 64);
        let err = decode_photo(&whole[..whole.len() / 2]).unwrap_err();
        assert!(matches!(err, PhotoError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("PNG"), "{err}");
    }

    /// CRC-32 as PNG chunks use it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn refuses_more_pixels_than_the_budget_from_the_header() {
        let photo = png(300, 200);
        assert!(decode_photo_within(&photo, 60_000).is_ok());
        let err = decode_photo_within(&photo, 59_999).unwrap_err();
        assert!(
            matches!(
                err,
                PhotoError::TooManyPixels {
                    width: 300,
                    height: 200,
                    ..
                }
            ),
            "{err}"
        );
        // 11000x11000 is within each side's limit but 121 megapixels.
        let mut claimed = png(1, 1);
        claimed[16..20].copy_from_slice(&11_000u32.to_be_bytes());
        claimed[20..24].copy_from_slice(&11_000u32.to_be_bytes());
        let crc = crc32(&claimed[12..29]);
        claimed[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode_photo(&claimed).unwrap_err();
        assert!(err.to_string().contains("121 megapixels"), "{err}");
    }

    #[test]
    fn refuses_a_huge_claimed_size_before_decoding() {
        // A valid PNG whose IHDR claims 30000x30000 and whose data is 1x1.
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&30_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&30_000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode_photo(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                PhotoError::TooLarge {
                    width: 30_000,
                    height: 30_000
                }
            ),
            "{err}"
        );
    }
}
