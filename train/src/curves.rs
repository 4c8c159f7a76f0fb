//! Training curves as an SVG image: losses and validation accuracy per
//! epoch, viewable in any browser and on the Hub.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    pub learning_rate: f64,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const MARGIN: f64 = 48.0;

/// The curves of `history`: losses on a left axis from zero, accuracy on a
/// right axis from 0 to 1.
pub fn svg(history: &[EpochRecord]) -> String {
    let epochs = history.len().max(2) - 1;
    let max_loss = history
        .iter()
        .flat_map(|r| [r.train_loss, r.validation_loss])
        .filter(|l| l.is_finite())
        .fold(1e-9, f64::max);
    let x = |i: usize| MARGIN + (WIDTH - 2.0 * MARGIN) * i as f64 / epochs as f64;
    let y = |v: f64| HEIGHT - MARGIN - (HEIGHT - 2.0 * MARGIN) * v.clamp(0.0, 1.0);
    let line = |value: &dyn Fn(&EpochRecord) -> f64| {
        history
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{:.1},{:.1}", x(i), y(value(r))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{MARGIN}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>
<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{bottom}" stroke="black"/>
<line x1="{right}" y1="{MARGIN}" x2="{right}" y2="{bottom}" stroke="black"/>
<text x="{MARGIN}" y="{label_y}">epoch 1</text>
<text x="{right}" y="{label_y}" text-anchor="end">epoch {last}</text>
<text x="4" y="{top_label}">loss {max_loss:.3}</text>
<text x="{right_label}" y="{top_label}" text-anchor="end">accuracy 1.0</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{train}"/>
<polyline fill="none" stroke="#ff7f0e" stroke-width="2" points="{validation}"/>
<polyline fill="none" stroke="#2ca02c" stroke-width="2" points="{accuracy}"/>
<text x="{legend_x}" y="20" fill="#1f77b4">training loss</text>
<text x="{legend_x2}" y="20" fill="#ff7f0e">validation loss</text>
<text x="{legend_x3}" y="20" fill="#2ca02c">validation accuracy</text>
</svg>
"##,
        bottom = HEIGHT - MARGIN,
        right = WIDTH - MARGIN,
        label_y = HEIGHT - MARGIN + 16.0,
        last = history.len(),
        top_label = MARGIN - 6.0,
        right_label = WIDTH - 4.0,
        train = line(&|r| r.train_loss / max_loss),
        validation = line(&|r| r.validation_loss / max_loss),
        accuracy = line(&|r| r.validation_accuracy),
        legend_x = MARGIN,
        legend_x2 = MARGIN + 130.0,
        legend_x3 = MARGIN + 270.0,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_point_per_epoch_on_each_curve() {
        let history: Vec<EpochRecord> = (1..=3)
            .map(|epoch| EpochRecord {
                epoch,
                train_loss: 1.0 / epoch as f64,
                validation_loss: 1.2 / epoch as f64,
                validation_accuracy: 0.3 * epoch as f64,
                learning_rate: 1e-3,
            })
            .collect();
        let image = svg(&history);
        assert_eq!(image.matches("<polyline").count(), 3);
        let points = image
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), 3);
        assert!(image.contains("epoch 3") && image.contains("loss 1.200"));
    }
}
