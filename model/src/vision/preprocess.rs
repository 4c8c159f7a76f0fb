//! The input transform of torchvision's ImageNet recipe, computed as
//! torchvision computes it on a PIL image: `Resize(256)` (shorter side,
//! Pillow's antialiased bilinear), `CenterCrop(224)`, `ToTensor()`,
//! `Normalize(mean, std)`.

use super::resample::{Region, resize_bilinear_region};
use candle_core::{Device, Tensor};
use image::{DynamicImage, RgbImage};
use serde::{Deserialize, Serialize};

/// The transform's settings, as `config.json`'s `preprocess` writes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Preprocess {
    /// The shorter side after resizing.
    pub resize: u32,
    /// The side of the centred square crop.
    pub crop: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            resize: 256,
            crop: 224,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

impl Preprocess {
    /// Settings a network can't run with, in words.
    pub fn check(&self) -> Result<(), String> {
        if self.crop == 0 || self.resize < self.crop {
            return Err(format!(
                "preprocess needs 0 < crop <= resize, got crop {} and resize {}",
                self.crop, self.resize
            ));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(format!(
                "preprocess std must be positive, got {:?}",
                self.std
            ));
        }
        Ok(())
    }

    /// The photo as a normalised `(1, 3, crop, crop)` tensor. Grey, alpha,
    /// 16-bit and CMYK photos become 8-bit RGB first, as PIL's
    /// `convert("RGB")` does.
    pub fn tensor(&self, photo: &DynamicImage) -> candle_core::Result<Tensor> {
        let converted;
        let rgb = match photo.as_rgb8() {
            Some(rgb) => rgb,
            None => {
                converted = photo.to_rgb8();
                &converted
            }
        };
        let (w, h) = self.resized_size(rgb.width(), rgb.height());
        let side = self.crop;
        // torchvision rounds the offset with Python's round(): ties to even.
        let top = (f64::from(h.saturating_sub(side)) / 2.0).round_ties_even() as u32;
        let left = (f64::from(w.saturating_sub(side)) / 2.0).round_ties_even() as u32;
        let crop = Region {
            left,
            top,
            width: side,
            height: side,
        };
        if (w, h) == rgb.dimensions() {
            return self.normalised(rgb, left, top);
        }
        self.normalised(&resize_bilinear_region(rgb, w, h, crop), 0, 0)
    }

    /// The `crop` x `crop` square at `(left, top)` of an RGB view, scaled to
    /// 0..1 and normalised: the transform's last step, which training
    /// applies to its augmented views too. Pixels past the view stay 0.
    pub fn normalised(&self, view: &RgbImage, left: u32, top: u32) -> candle_core::Result<Tensor> {
        let side = self.crop;
        let (w, h) = view.dimensions();
        let plane = (side * side) as usize;
        let mut data = vec![0f32; 3 * plane];
        for y in 0..side.min(h.saturating_sub(top)) {
            for x in 0..side.min(w.saturating_sub(left)) {
                let pixel = view.get_pixel(left + x, top + y);
                let at = (y * side + x) as usize;
                for c in 0..3 {
                    let value = f32::from(pixel[c]) / 255.0;
                    data[c * plane + at] = (value - self.mean[c]) / self.std[c];
                }
            }
        }
        Tensor::from_vec(data, (1, 3, side as usize, side as usize), &Device::Cpu)
    }

    /// The size `Resize(self.resize)` gives: shorter side to `self.resize`,
    /// the longer in proportion (truncated, as torchvision does).
    fn resized_size(&self, w: u32, h: u32) -> (u32, u32) {
        if w == 0 || h == 0 {
            return (w, h);
        }
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        let new_long = (u64::from(self.resize) * u64::from(long) / u64::from(short)) as u32;
        if w <= h {
            (self.resize, new_long)
        } else {
            (new_long, self.resize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_the_centre_of_the_resized_photo() {
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(512, 300, |x, _| {
            image::Rgb([if x < 256 { 0 } else { 255 }, 128, 255])
        }));
        let t = Preprocess::default().tensor(&photo).unwrap();
        assert_eq!(t.dims(), &[1, 3, 224, 224]);
        let red = t
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let black = (0.0 - 0.485) / 0.229;
        let white = (1.0 - 0.485) / 0.229;
        assert!((red[0] - black).abs() < 1e-5, "{}", red[0]);
        assert!((red[223] - white).abs() < 1e-5, "{}", red[223]);
    }

    #[test]
    fn grey_16_bit_alpha_and_tiny_photos_become_rgb_tensors() {
        let grey =
            DynamicImage::ImageLuma8(image::GrayImage::from_pixel(300, 280, image::Luma([128])));
        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            260,
            260,
            image::Rgb([65535u16, 0, 32768]),
        ));
        let clear = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            256,
            256,
            image::Rgba([255, 255, 255, 0]),
        ));
        let tiny = DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, image::Rgb([0, 0, 0])));
        let p = Preprocess::default();
        let value = |t: &Tensor, c: usize| {
            t.get(0)
                .unwrap()
                .get(c)
                .unwrap()
                .get(100)
                .unwrap()
                .get(100)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let g = p.tensor(&grey).unwrap();
        let expected = (128.0 / 255.0 - 0.485) / 0.229;
        assert!((value(&g, 0) - expected).abs() < 1e-5);
        let d = p.tensor(&deep).unwrap();
        assert!((value(&d, 0) - (1.0 - 0.485) / 0.229).abs() < 1e-5);
        assert!((value(&d, 1) - (0.0 - 0.456) / 0.224).abs() < 1e-5);
        // Alpha is dropped, as PIL's convert("RGB") does: transparent white is white.
        let c = p.tensor(&clear).unwrap();
        assert!((value(&c, 2) - (1.0 - 0.406) / 0.225).abs() < 1e-5);
        assert_eq!(p.tensor(&tiny).unwrap().dims(), &[1, 3, 224, 224]);
    }

    #[test]
    fn bad_settings_are_named() {
        let p = Preprocess {
            crop: 300,
            ..Preprocess::default()
        };
        assert!(p.check().unwrap_err().contains("crop"));
    }
}
