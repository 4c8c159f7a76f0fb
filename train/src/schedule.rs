//! The learning rate over training: a linear warm-up, then a cosine decay
//! to zero, the schedule fine-tuning recipes use with AdamW.

use std::f64::consts::PI;

/// The learning rate at each optimiser step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl WarmupCosine {
    /// The rate for step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        self.peak * 0.5 * (1.0 + (PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rises_then_falls_to_zero() {
        let schedule = WarmupCosine {
            peak: 1e-3,
            warmup_steps: 4,
            total_steps: 14,
        };
        let rates: Vec<f64> = (0..14).map(|s| schedule.at(s)).collect();
        assert_eq!(rates[0], 2.5e-4);
        assert_eq!(rates[3], 1e-3);
        assert_eq!(rates[4], 1e-3, "decay starts at the peak");
        assert!((schedule.at(9) - 0.5e-3).abs() < 1e-12, "half-way down");
        assert!(rates[4..].windows(2).all(|w| w[1] < w[0]));
        assert!(schedule.at(14) < 1e-12 && schedule.at(100) < 1e-12);
    }
}
