//! Choosing the next token: repetition penalty, a ban on repeated n-grams,
//! temperature, top-k and top-p, from a seeded generator so a seed gives the
//! same text every time.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How tokens are chosen; the request sets temperature and top-p.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingSettings {
    pub temperature: f32,
    pub top_p: f32,
    /// 0 keeps every token.
    pub top_k: usize,
    /// 1.0 is none; above 1 makes tokens already generated less likely.
    pub repetition_penalty: f32,
    /// 0 is none; n bans any n-gram from appearing twice in the output.
    pub no_repeat_ngram: usize,
    pub max_new_tokens: usize,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        SamplingSettings {
            temperature: crate::horoscope::DEFAULT_TEMPERATURE,
            top_p: crate::horoscope::DEFAULT_TOP_P,
            top_k: 50,
            repetition_penalty: 1.1,
            no_repeat_ngram: 3,
            max_new_tokens: 210,
        }
    }
}

pub struct Sampler {
    settings: SamplingSettings,
    // ChaCha8 is specified bit for bit, so a seed means the same text on
    // every platform and every version of this program.
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(settings: SamplingSettings, seed: u64) -> Self {
        Sampler {
            settings,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn settings(&self) -> &SamplingSettings {
        &self.settings
    }

    /// Picks the next token from `logits`, given the tokens generated so far.
    pub fn next_token(&mut self, logits: &mut [f32], generated: &[u32]) -> u32 {
        self.penalise_repeats(logits, generated);
        ban_repeated_ngrams(logits, generated, self.settings.no_repeat_ngram);
        let temperature = self.settings.temperature.max(1e-4);
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, l / temperature))
            .collect();
        if candidates.is_empty() {
            return 0;
        }
        // Most likely first, ties by token id: one order, however found.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let k = self.settings.top_k;
        if k > 0 && k < candidates.len() {
            // Only the top k need sorting; sorting the whole vocabulary
            // cost more than a generated token's products.
            candidates.select_nth_unstable_by(k - 1, order);
            candidates.truncate(k);
        }
        candidates.sort_unstable_by(order);
        let max = candidates[0].1;
        let mut weights: Vec<f32> = candidates.iter().map(|(_, l)| (l - max).exp()).collect();
        let total: f32 = weights.iter().sum();
        let mut cumulative = 0.0;
        let mut keep = weights.len();
        for (i, w) in weights.iter_mut().enumerate() {
            *w /= total;
            cumulative += *w;
            if cumulative >= self.settings.top_p {
                keep = i + 1;
                break;
            }
        }
        weights.truncate(keep);
        let kept: f32 = weights.iter().sum();
        let mut target = self.rng.random::<f32>() * kept;
        for (i, w) in weights.iter().enumerate() {
            target -= w;
            if target <= 0.0 {
                return candidates[i].0;
            }
        }
        candidates[keep - 1].0
    }

    fn penalise_repeats(&self, logits: &mut [f32], generated: &[u32]) {
        let penalty = self.settings.repetition_penalty;
        if penalty == 1.0 {
            return;
        }
        let mut seen = generated.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for token in seen {
            if let Some(l) = logits.get_mut(token as usize) {
                *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
            }
        }
    }
}

/// Bans every token that would complete an n-gram already in `generated`.
fn ban_repeated_ngrams(logits: &mut [f32], generated: &[u32], n: usize) {
    if n == 0 || generated.len() < n {
        return;
    }
    ban_continuations(logits, generated, &generated[generated.len() - (n - 1)..]);
}

/// Bans every token that follows `recent` somewhere in `source`: with the
/// last tokens written as `recent`, no n-gram of `source` is copied whole.
pub(super) fn ban_continuations(logits: &mut [f32], source: &[u32], recent: &[u32]) {
    let n = recent.len() + 1;
    for window in source.windows(n) {
        if &window[..n - 1] == recent
            && let Some(l) = logits.get_mut(window[n - 1] as usize)
        {
            *l = f32::NEG_INFINITY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SamplingSettings {
        SamplingSettings {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
            no_repeat_ngram: 0,
            max_new_tokens: 10,
        }
    }

    #[test]
    fn a_seed_gives_the_same_choices() {
        let logits = vec![0.5, 0.4, 0.3, 0.2, 0.1];
        let draw = |seed| {
            let mut sampler = Sampler::new(settings(), seed);
            (0..50)
                .map(|_| sampler.next_token(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn a_tiny_top_p_or_top_k_of_one_is_greedy() {
        let logits = vec![0.1, 2.0, 0.3];
        for s in [
            SamplingSettings {
                top_p: 0.01,
                ..settings()
            },
            SamplingSettings {
                top_k: 1,
                ..settings()
            },
        ] {
            let mut sampler = Sampler::new(s, 1);
            for _ in 0..20 {
                assert_eq!(sampler.next_token(&mut logits.clone(), &[]), 1);
            }
        }
    }

    #[test]
    fn repeated_ngrams_are_banned() {
        // Generated "5 6 7 5 6": with n = 3, "5 6 7" may not appear again.
        let mut logits = vec![0.0; 10];
        logits[7] = 100.0;
        let mut sampler = Sampler::new(
            SamplingSettings {
                no_repeat_ngram: 3,
                top_k: 1,
                ..settings()
            },
            1,
        );
        let next = sampler.next_token(&mut logits, &[5, 6, 7, 5, 6]);
        assert_ne!(next, 7);
    }

    #[test]
    fn a_source_is_not_copied_past_its_recent_tokens() {
        let mut logits = vec![0f32; 6];
        ban_continuations(&mut logits, &[1, 2, 3, 1, 2, 5], &[1, 2]);
        assert_eq!(logits[3], f32::NEG_INFINITY);
        assert_eq!(logits[5], f32::NEG_INFINITY);
        assert_eq!(logits[4], 0.0);
    }

    #[test]
    fn the_repetition_penalty_lowers_seen_tokens() {
        let mut logits = vec![2.0, 1.9, -1.0];
        let sampler = Sampler::new(
            SamplingSettings {
                repetition_penalty: 2.0,
                ..settings()
            },
            1,
        );
        sampler.penalise_repeats(&mut logits, &[0, 2, 0]);
        assert_eq!(logits, vec![1.0, 1.9, -2.0]);
    }

    #[test]
    fn low_temperature_prefers_the_likeliest_token() {
        let logits = vec![1.0, 1.5, 0.5];
        let mut sampler = Sampler::new(
            SamplingSettings {
                temperature: 0.05,
                ..settings()
            },
            3,
        );
        let ones = (0..200)
            .filter(|_| sampler.next_token(&mut logits.clone(), &[]) == 1)
            .count();
        assert!(ones > 190, "{ones}");
    }
}
