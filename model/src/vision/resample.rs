//! Pillow's antialiased bilinear resize of 8-bit RGB, to the bit: what
//! torchvision's `Resize` runs on a PIL image. A general SIMD resizer was
//! tried first and differed by one level on 16% of pixels, which moved
//! MobileNetV2's logits by 3%.
//!
//! Only the part of the result the caller keeps is computed: torchvision
//! crops the centre right after resizing, and each output pixel depends on
//! its own window of input pixels alone, so the crop's pixels are the same
//! whichever way round.

use image::RgbImage;

/// Pillow's fixed-point precision for 8-bit resampling. Its sums are 32-bit
/// and cannot overflow: the weights of one window add up to about
/// `1 << PRECISION_BITS`, times at most 255.
const PRECISION_BITS: u32 = 32 - 8 - 2;
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// A rectangle of the resized image, in its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

/// The `region` of `PIL.Image.resize((width, height), Image.BILINEAR)`'s
/// result, and only it computed: the horizontal pass first, each pass
/// rounding to 8 bits. The region is clipped to the result.
pub fn resize_bilinear_region(rgb: &RgbImage, width: u32, height: u32, region: Region) -> RgbImage {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let columns = span(region.left, region.width, width);
    let rows = span(region.top, region.height, height);
    let horizontal = Windows::new(w, width as usize, columns.clone());
    let vertical = Windows::new(h, height as usize, rows.clone());
    // The horizontal pass runs on the input rows the kept rows read.
    let needed = vertical.inputs();
    let mid = horizontal.resample_rows(rgb.as_raw(), w, needed.clone());
    let out = vertical.resample_columns(&mid, columns.len(), needed.start);
    RgbImage::from_raw(columns.len() as u32, rows.len() as u32, out)
        .expect("the passes yield width x height x 3 bytes")
}

/// `start..start + len` clipped to `0..size`.
fn span(start: u32, len: u32, size: u32) -> std::ops::Range<usize> {
    let start = start.min(size);
    start as usize..start.saturating_add(len).min(size) as usize
}

/// The inputs and fixed-point weights of each kept output pixel along one
/// axis: Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the
/// bilinear filter (support 1, widened by the scale when shrinking: the
/// antialiasing).
struct Windows {
    /// Per kept output: its first input and where its weights start.
    starts: Vec<(usize, usize)>,
    /// Every window's weights, one after another.
    weights: Vec<i32>,
    /// The same input and output size: a pass that copies.
    identity: bool,
}

impl Windows {
    fn new(in_size: usize, out_size: usize, kept: std::ops::Range<usize>) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let one = f64::from(1u32 << PRECISION_BITS);
        let mut starts = Vec::with_capacity(kept.len());
        let mut weights = Vec::new();
        for out in kept {
            let center = (out as f64 + 0.5) * scale;
            let start = ((center - filter_scale + 0.5) as i64).max(0) as usize;
            let end = ((center + filter_scale + 0.5) as i64).min(in_size as i64) as usize;
            let raw: Vec<f64> = (start..end)
                .map(|x| (1.0 - ((x as f64 - center + 0.5) / filter_scale).abs()).max(0.0))
                .collect();
            let total: f64 = raw.iter().sum();
            starts.push((start, weights.len()));
            weights.extend(raw.iter().map(|w| {
                let w = if total != 0.0 { w / total } else { *w };
                (w * one + 0.5) as i32
            }));
        }
        Windows {
            starts,
            weights,
            identity: in_size == out_size,
        }
    }

    /// The kept output's first input and weights.
    fn window(&self, i: usize) -> (usize, &[i32]) {
        let (start, from) = self.starts[i];
        let to = self.starts.get(i + 1).map_or(self.weights.len(), |s| s.1);
        (start, &self.weights[from..to])
    }

    /// The inputs some kept output reads.
    fn inputs(&self) -> std::ops::Range<usize> {
        let first = self.starts.first().map_or(0, |s| s.0);
        let last = (0..self.starts.len())
            .map(|i| {
                let (start, weights) = self.window(i);
                start + weights.len()
            })
            .max()
            .unwrap_or(first);
        first..last
    }

    /// The horizontal pass over `rows` of a `w`-pixel-wide image.
    fn resample_rows(&self, pixels: &[u8], w: usize, rows: std::ops::Range<usize>) -> Vec<u8> {
        let kept = self.starts.len();
        let mut out = vec![0u8; rows.len() * kept * 3];
        let rows = pixels[rows.start * w * 3..rows.end * w * 3].chunks_exact(w * 3);
        for (source, target) in rows.zip(out.chunks_exact_mut(kept * 3)) {
            for (i, pixel) in target.chunks_exact_mut(3).enumerate() {
                let (start, weights) = self.window(i);
                if self.identity {
                    pixel.copy_from_slice(&source[start * 3..start * 3 + 3]);
                    continue;
                }
                let inputs = source[start * 3..].chunks_exact(3);
                let mut sums = [HALF; 3];
                for (input, &k) in inputs.zip(weights) {
                    sums[0] += i32::from(input[0]) * k;
                    sums[1] += i32::from(input[1]) * k;
                    sums[2] += i32::from(input[2]) * k;
                }
                for (value, sum) in pixel.iter_mut().zip(sums) {
                    *value = clip(sum);
                }
            }
        }
        out
    }

    /// The vertical pass over rows `first..` of a `width`-pixel-wide image:
    /// whole rows at a time, which the compiler vectorizes.
    fn resample_columns(&self, pixels: &[u8], width: usize, first: usize) -> Vec<u8> {
        let row = width * 3;
        let mut out = vec![0u8; self.starts.len() * row];
        let mut sums = vec![0i32; row];
        for (i, target) in out.chunks_exact_mut(row.max(1)).enumerate() {
            let (start, weights) = self.window(i);
            let start = start - first;
            if self.identity {
                target.copy_from_slice(&pixels[start * row..(start + 1) * row]);
                continue;
            }
            sums.fill(HALF);
            for (tap, &k) in weights.iter().enumerate() {
                let source = &pixels[(start + tap) * row..(start + tap + 1) * row];
                for (sum, &value) in sums.iter_mut().zip(source) {
                    *sum += i32::from(value) * k;
                }
            }
            for (value, &sum) in target.iter_mut().zip(&sums) {
                *value = clip(sum);
            }
        }
        out
    }
}

fn clip(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Fixture {
        width: u32,
        height: u32,
        cases: Vec<Case>,
    }

    #[derive(serde::Deserialize)]
    struct Case {
        width: u32,
        height: u32,
        rgb: String,
    }

    /// scripts/reference/pillow_resize.py's input.
    fn pattern(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb(std::array::from_fn(|c| {
                let c = c as u32;
                ((x * 7 + y * 13 + c * 101 + (x * y) % 17 + (x ^ y) * c) % 256) as u8
            }))
        })
    }

    fn fixture() -> Fixture {
        serde_json::from_str(include_str!("../../tests/fixtures/pillow_resize.json")).unwrap()
    }

    fn resize_bilinear(rgb: &RgbImage, width: u32, height: u32) -> RgbImage {
        let whole = Region {
            left: 0,
            top: 0,
            width,
            height,
        };
        resize_bilinear_region(rgb, width, height, whole)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn matches_pillow_to_the_bit() {
        let fixture = fixture();
        let input = pattern(fixture.width, fixture.height);
        for case in &fixture.cases {
            let got = resize_bilinear(&input, case.width, case.height);
            assert_eq!(
                hex(got.as_raw()),
                case.rgb,
                "{}x{}",
                case.width,
                case.height
            );
        }
    }

    #[test]
    fn a_region_is_the_same_pixels_as_a_crop_of_the_whole() {
        let input = pattern(101, 73);
        for (width, height) in [(40, 30), (130, 90), (101, 20)] {
            let whole = resize_bilinear(&input, width, height);
            for region in [
                Region {
                    left: 3,
                    top: 5,
                    width: 20,
                    height: 11,
                },
                Region {
                    left: 0,
                    top: 0,
                    width: 1,
                    height: 1,
                },
                Region {
                    left: width - 7,
                    top: height - 4,
                    width: 50,
                    height: 50,
                },
            ] {
                let part = resize_bilinear_region(&input, width, height, region);
                let crop = image::imageops::crop_imm(
                    &whole,
                    region.left,
                    region.top,
                    region.width,
                    region.height,
                )
                .to_image();
                assert_eq!(part, crop, "{width}x{height} {region:?}");
            }
        }
    }
}
