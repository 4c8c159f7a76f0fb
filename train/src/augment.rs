//! Training-time augmentation, torchvision's recipe for fine-tuning:
//! `RandomResizedCrop`, `RandomHorizontalFlip`, `ColorJitter`.

use image::imageops::{self, FilterType};
use image::{DynamicImage, RgbImage};
use rand::Rng;

/// The random transforms applied to each training photo, each epoch anew.
#[derive(Clone, Debug, PartialEq)]
pub struct Augment {
    /// The side of the square the crop is resized to.
    pub size: u32,
    /// The crop's share of the photo's area.
    pub scale: (f64, f64),
    /// The crop's width / height.
    pub ratio: (f64, f64),
    /// Brightness, contrast and saturation vary by up to this factor.
    pub jitter: f32,
}

impl Augment {
    /// torchvision's defaults for a `size`-pixel network input, with a mild
    /// colour jitter.
    pub fn new(size: u32) -> Self {
        Augment {
            size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            jitter: 0.2,
        }
    }

    /// A fresh random view of the photo, `size` x `size`.
    pub fn apply(&self, photo: &DynamicImage, rng: &mut impl Rng) -> RgbImage {
        let rgb = photo.to_rgb8();
        let (left, top, width, height) = self.crop_box(rgb.width(), rgb.height(), rng);
        let crop = imageops::crop_imm(&rgb, left, top, width, height).to_image();
        let mut view = imageops::resize(&crop, self.size, self.size, FilterType::Triangle);
        if rng.random_bool(0.5) {
            imageops::flip_horizontal_in_place(&mut view);
        }
        self.jitter_colours(&mut view, rng);
        view
    }

    /// torchvision's `RandomResizedCrop.get_params`: ten tries at a box of
    /// random area and aspect, then the centre crop clamped to the ratio.
    fn crop_box(&self, width: u32, height: u32, rng: &mut impl Rng) -> (u32, u32, u32, u32) {
        let area = f64::from(width) * f64::from(height);
        let (log_low, log_high) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale.0..=self.scale.1);
            let aspect = rng.random_range(log_low..=log_high).exp();
            let w = (target * aspect).sqrt().round() as u32;
            let h = (target / aspect).sqrt().round() as u32;
            if (1..=width).contains(&w) && (1..=height).contains(&h) {
                let top = rng.random_range(0..=height - h);
                let left = rng.random_range(0..=width - w);
                return (left, top, w, h);
            }
        }
        let aspect = f64::from(width) / f64::from(height);
        let (w, h) = if aspect < self.ratio.0 {
            (width, (f64::from(width) / self.ratio.0).round() as u32)
        } else if aspect > self.ratio.1 {
            ((f64::from(height) * self.ratio.1).round() as u32, height)
        } else {
            (width, height)
        };
        let (w, h) = (w.clamp(1, width), h.clamp(1, height));
        ((width - w) / 2, (height - h) / 2, w, h)
    }

    /// Brightness, contrast, then saturation, each by a random factor in
    /// `[1 - jitter, 1 + jitter]`.
    fn jitter_colours(&self, view: &mut RgbImage, rng: &mut impl Rng) {
        if self.jitter <= 0.0 {
            return;
        }
        let mut factor = || rng.random_range(1.0 - self.jitter..=1.0 + self.jitter);
        let (brightness, contrast, saturation) = (factor(), factor(), factor());
        let grey = |p: [f32; 3]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        let pixels = view.pixels().count() as f32;
        let mean_grey = view
            .pixels()
            .map(|p| grey(p.0.map(f32::from)) * brightness)
            .sum::<f32>()
            / pixels;
        for pixel in view.pixels_mut() {
            let mut p = pixel.0.map(|v| f32::from(v) * brightness);
            p = p.map(|v| (v - mean_grey) * contrast + mean_grey);
            let g = grey(p);
            p = p.map(|v| g + (v - g) * saturation);
            pixel.0 = p.map(|v| v.round().clamp(0.0, 255.0) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn views_have_the_network_size_and_differ_between_draws() {
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(300, 200, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let augment = Augment::new(64);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = augment.apply(&photo, &mut rng);
        let b = augment.apply(&photo, &mut rng);
        assert_eq!(a.dimensions(), (64, 64));
        assert_ne!(a, b);
        let again = augment.apply(&photo, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, again, "a seed makes the views reproducible");
    }

    #[test]
    fn tiny_and_extreme_photos_still_give_a_view() {
        let augment = Augment::new(32);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (w, h) in [(1, 1), (1, 500), (500, 1), (3, 2)] {
            let photo = DynamicImage::ImageRgb8(RgbImage::new(w, h));
            assert_eq!(augment.apply(&photo, &mut rng).dimensions(), (32, 32));
        }
    }
}
