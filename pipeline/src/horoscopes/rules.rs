//! The processing rules of raw horoscope records, in the order they apply
//! (the seed project's Spark job, made exact):
//!
//! a. drop rows with an empty date, sign, text or source;
//! b. map the sign to one of the 12 canonical names from English or Russian
//!    names in any case, with or without a glyph or emoji; drop the rest;
//! c. clean the text: newlines, tabs and non-breaking spaces become spaces,
//!    characters outside the kept set go, runs of spaces collapse, ends trim;
//! d. drop a row whose (date, sign, text) already appeared, keeping the first;
//! e. keep texts of more than 300 and fewer than 500 characters (Unicode);
//! f. keep the input order.

use std::collections::HashSet;
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};
use starcast_model::ZodiacSign;
use starcast_model::horoscope::is_kept_char;

/// Texts must be longer than this, in characters.
pub const MORE_THAN: usize = 300;
/// Texts must be shorter than this, in characters.
pub const FEWER_THAN: usize = 500;

/// A row as collected: every field may be missing or messy.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct RawRecord {
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub sign: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// A processed row: `date,sign,text,source`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub date: String,
    pub sign: String,
    pub text: String,
    pub source: String,
}

/// How many rows each rule removed, and how many were read and kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read: u64,
    pub empty_field: u64,
    pub unknown_sign: u64,
    pub duplicate: u64,
    pub wrong_length: u64,
    pub kept: u64,
}

/// Rule c.
pub fn clean_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = match c {
            '\n' | '\t' | '\u{a0}' => ' ',
            c if is_kept_char(c) => c,
            _ => continue,
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Applies the rules to rows in order. The duplicate check keeps a 128-bit
/// hash per kept (date, sign, text), so memory grows with the distinct
/// rows, 16 bytes each, not with the text.
pub struct Rules {
    seen: HashSet<u128>,
    hashers: [std::hash::RandomState; 2],
    counts: Counts,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            seen: HashSet::new(),
            hashers: [std::hash::RandomState::new(), std::hash::RandomState::new()],
            counts: Counts::default(),
        }
    }
}

fn present(field: Option<String>) -> Option<String> {
    field.filter(|f| !f.trim().is_empty())
}

impl Rules {
    /// The processed row, or `None` when a rule removed it.
    pub fn apply(&mut self, raw: RawRecord) -> Option<Record> {
        self.counts.read += 1;
        let (Some(date), Some(sign), Some(text), Some(source)) = (
            present(raw.date),
            present(raw.sign),
            present(raw.text),
            present(raw.source),
        ) else {
            self.counts.empty_field += 1;
            return None;
        };
        let Ok(sign) = sign.parse::<ZodiacSign>() else {
            self.counts.unknown_sign += 1;
            return None;
        };
        let record = Record {
            date,
            sign: sign.key().to_string(),
            text: clean_text(&text),
            source,
        };
        if !self.seen.insert(self.key(&record)) {
            self.counts.duplicate += 1;
            return None;
        }
        let length = record.text.chars().count();
        if length <= MORE_THAN || length >= FEWER_THAN {
            self.counts.wrong_length += 1;
            return None;
        }
        self.counts.kept += 1;
        Some(record)
    }

    fn key(&self, record: &Record) -> u128 {
        let [high, low] = self
            .hashers
            .each_ref()
            .map(|state| state.hash_one((&record.date, &record.sign, &record.text)));
        (u128::from(high) << 64) | u128::from(low)
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(date: &str, sign: &str, text: &str, source: &str) -> RawRecord {
        let field = |s: &str| (!s.is_empty()).then(|| s.to_string());
        RawRecord {
            date: field(date),
            sign: field(sign),
            text: field(text),
            source: field(source),
        }
    }

    fn long(word: &str) -> String {
        let mut text = String::new();
        while text.chars().count() < 350 {
            text += word;
            text += " ";
        }
        text.trim_end().to_string()
    }

    #[test]
    fn cleaning_keeps_letters_digits_and_the_punctuation_set() {
        assert_eq!(
            clean_text("  Звёзды\tсегодня\u{a0}★★ благосклонны!\n\nДень 1 — «удачный» (почти)…  "),
            "Звёзды сегодня благосклонны! День 1 — «удачный» (почти)"
        );
        assert_eq!(clean_text("a  ,  b"), "a , b");
        assert_eq!(clean_text("★ 😀 \u{200b}"), "");
    }

    #[test]
    fn each_rule_counts_what_it_removed() {
        let mut rules = Rules::default();
        let text = long("Удача");
        let rows = [
            raw("2026-01-01", "♈ Овен", &text, "site-a"),
            raw("2026-01-01", "", &text, "site-a"),
            raw("2026-01-01", "Гороскоп на сегодня", &text, "site-a"),
            raw("2026-01-01", "aries", &format!("{text}\n"), "site-b"),
            raw("2026-01-01", "LEO", "too short", "site-a"),
            raw("2026-01-01", "Лев ♌️", &long("Сила"), "site-a"),
        ];
        let kept: Vec<Record> = rows.into_iter().filter_map(|r| rules.apply(r)).collect();
        assert_eq!(kept.len(), 2);
        assert_eq!(
            (kept[0].sign.as_str(), kept[1].sign.as_str()),
            ("aries", "leo")
        );
        assert_eq!(
            rules.counts(),
            Counts {
                read: 6,
                empty_field: 1,
                unknown_sign: 1,
                duplicate: 1,
                wrong_length: 1,
                kept: 2,
            }
        );
    }

    #[test]
    fn length_bounds_are_strict_and_count_characters() {
        let mut rules = Rules::default();
        let exactly = |n: usize| "я".repeat(n);
        for (n, kept) in [(300, false), (301, true), (499, true), (500, false)] {
            let row = raw("2026-01-02", "leo", &exactly(n), &format!("s{n}"));
            assert_eq!(rules.apply(row).is_some(), kept, "{n} characters");
        }
    }
}
