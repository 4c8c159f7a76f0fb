//! Whether a horoscope reads as one: an automatic check of each text,
//! addressed to the sign's reader, about the day ahead, with no narrator
//! of its own, no phrase said twice, no list, markup or dialogue debris,
//! in the language asked for. Small models ramble ("Today, Leo, the stars,
//! Leo, love, love…") or turn into a person ("I am a person who loves my
//! family…"): these are what it catches.

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;

use chrono::NaiveDate;
use serde::Serialize;
use starcast_model::{HoroscopeRequest, HoroscopeWriter, Language, ZodiacSign};

/// One thing a horoscope must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criterion {
    /// Speaks to the reader: "you", "вы".
    SecondPerson,
    /// Speaks of the day: "today", "сегодня", "вечер".
    DayAhead,
    /// Has no narrator: no "I", "my", "я", "мой".
    NoNarrator,
    /// Says no four words twice.
    NoRepeats,
    /// Has no list markers, markup, chat roles ("User:") or dialogue.
    NoDebris,
    /// Nine letters in ten are of the language's alphabet.
    InLanguage,
}

impl Criterion {
    pub const ALL: [Criterion; 6] = [
        Criterion::SecondPerson,
        Criterion::DayAhead,
        Criterion::NoNarrator,
        Criterion::NoRepeats,
        Criterion::NoDebris,
        Criterion::InLanguage,
    ];
}

/// Words (lowercase, `ё` as `е`) that make each criterion, per language.
struct Words {
    second_person: &'static [&'static str],
    day: &'static [&'static str],
    first_person: &'static [&'static str],
    debris: &'static [&'static str],
}

fn words(language: Language) -> Words {
    match language {
        Language::En => Words {
            second_person: &[
                "you", "your", "yours", "yourself", "you'll", "you're", "you've",
            ],
            day: &[
                "today",
                "day",
                "today's",
                "tonight",
                "morning",
                "afternoon",
                "evening",
                "tomorrow",
                "hours",
            ],
            first_person: &["i", "i'm", "i've", "i'll", "me", "my", "mine", "myself"],
            debris: &[
                "user:",
                "assistant:",
                "system:",
                "question:",
                "answer:",
                "horoscope:",
            ],
        },
        Language::Ru => Words {
            second_person: &[
                "вы",
                "вас",
                "вам",
                "вами",
                "ваш",
                "ваша",
                "ваше",
                "ваши",
                "вашего",
                "вашей",
                "вашим",
                "ваших",
                "вашу",
                "ты",
                "тебя",
                "тебе",
                "твой",
                "твоя",
                "твои",
                "себе",
                "себя",
            ],
            day: &[
                "сегодня",
                "день",
                "дня",
                "дне",
                "днем",
                "вечер",
                "вечером",
                "утро",
                "утром",
                "завтра",
                "сегодняшний",
                "сегодняшнего",
            ],
            first_person: &[
                "я", "мне", "меня", "мной", "мой", "моя", "мое", "мои", "моих", "моим",
            ],
            debris: &[
                "пользователь:",
                "ассистент:",
                "вопрос:",
                "ответ:",
                "гороскоп:",
            ],
        },
    }
}

/// What a text fails, in [`Criterion::ALL`]'s order (empty: it reads).
pub fn failed_criteria(text: &str, language: Language) -> Vec<Criterion> {
    let words_of: Vec<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == ':'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace('ё', "е").replace('’', "'"))
        .collect();
    let bare = |w: &String| w.trim_end_matches(':').to_string();
    let has = |list: &[&str]| words_of.iter().any(|w| list.contains(&bare(w).as_str()));
    let vocabulary = words(language);
    let mut failed = Vec::new();
    if !has(vocabulary.second_person) {
        failed.push(Criterion::SecondPerson);
    }
    if !has(vocabulary.day) {
        failed.push(Criterion::DayAhead);
    }
    if has(vocabulary.first_person) {
        failed.push(Criterion::NoNarrator);
    }
    let plain: Vec<String> = words_of.iter().map(bare).collect();
    let mut seen = HashSet::new();
    if plain.windows(4).any(|four| !seen.insert(four.to_vec())) {
        failed.push(Criterion::NoRepeats);
    }
    let markup = text.contains(['*', '#', '<', '>', '[', ']', '|', '_', '{', '}'])
        || text.contains(" - ")
        || text.starts_with(['-', '—'])
        || text.contains(": —")
        || numbered_list(text)
        || has_heading(text)
        || words_of
            .iter()
            .any(|w| vocabulary.debris.contains(&w.as_str()));
    if markup {
        failed.push(Criterion::NoDebris);
    }
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let native = letters
        .iter()
        .filter(|&&c| match language {
            Language::En => c.is_ascii_alphabetic(),
            Language::Ru => matches!(c, 'а'..='я' | 'А'..='Я' | 'ё' | 'Ё'),
        })
        .count();
    if letters.is_empty() || native * 10 < letters.len() * 9 {
        failed.push(Criterion::InLanguage);
    }
    failed
}

/// A sentence that starts with a heading and a colon: a sign's name, or a
/// few words with a date or a parenthesis in them ("Mar 21 Apr 19:",
/// "Love (Venus):"), as a model writes when it lays out a page.
fn has_heading(text: &str) -> bool {
    text.split(['.', '!', '?']).any(|sentence| {
        let Some((head, _)) = sentence.split_once(':') else {
            return false;
        };
        let words: Vec<&str> = head.split_whitespace().collect();
        let sign = words.len() == 1 && words[0].parse::<ZodiacSign>().is_ok();
        let laid_out = (1..=4).contains(&words.len())
            && head.contains(|c: char| c.is_ascii_digit() || c == ')');
        sign || laid_out
    })
}

/// Two or more list items numbered "1." or "2)".
fn numbered_list(text: &str) -> bool {
    let is_item = |word: &&str| {
        let number = word.trim_end_matches(['.', ')']);
        number.len() < word.len()
            && (1..=2).contains(&number.len())
            && number.chars().all(|c| c.is_ascii_digit())
    };
    text.split_whitespace().filter(is_item).count() >= 2
}

/// The reading check over a model's day's horoscopes.
#[derive(Clone, Debug, Serialize)]
pub struct ReadingReport {
    pub language: Language,
    pub samples: usize,
    /// Horoscopes that met every criterion.
    pub passed: usize,
    /// Horoscopes the model could not write at all.
    pub failures: usize,
    /// How many horoscopes failed each criterion.
    pub failed: BTreeMap<Criterion, usize>,
    /// A few that did not pass, with what they failed, for people to read.
    pub examples: Vec<(String, Vec<Criterion>)>,
}

impl ReadingReport {
    pub fn share(&self) -> f64 {
        self.passed as f64 / self.samples.max(1) as f64
    }
}

/// How many failing horoscopes a report quotes.
const FAILING_EXAMPLES: usize = 3;

/// Checks the day's horoscope (the default sampling, the day's seed) of
/// every sign on each of `dates`, in `language`.
pub fn reading_check(
    writer: &dyn HoroscopeWriter,
    language: Language,
    dates: &[NaiveDate],
) -> ReadingReport {
    let mut report = ReadingReport {
        language,
        samples: 0,
        passed: 0,
        failures: 0,
        failed: BTreeMap::new(),
        examples: Vec::new(),
    };
    for &date in dates {
        for sign in ZodiacSign::ALL {
            report.samples += 1;
            let request = HoroscopeRequest {
                sign,
                date,
                temperature: starcast_model::horoscope::DEFAULT_TEMPERATURE,
                top_p: starcast_model::horoscope::DEFAULT_TOP_P,
                seed: None,
                language,
            };
            let Ok(horoscope) = writer.write(&request, &mut |_| ControlFlow::Continue(())) else {
                report.failures += 1;
                continue;
            };
            let failed = failed_criteria(&horoscope.text, language);
            if failed.is_empty() {
                report.passed += 1;
                continue;
            }
            for criterion in &failed {
                *report.failed.entry(*criterion).or_default() += 1;
            }
            if report.examples.len() < FAILING_EXAMPLES {
                report.examples.push((horoscope.text, failed));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_horoscope_that_speaks_to_the_reader_about_the_day_passes() {
        let english = "Today, Leo, take your time: an old question will settle itself if you let it. In the evening, call someone close to you.";
        assert_eq!(failed_criteria(english, Language::En), []);
        let russian = "Сегодня вам стоит замедлиться. Вечером позвоните близкому человеку: тёплый разговор вернёт вам силы.";
        assert_eq!(failed_criteria(russian, Language::Ru), []);
    }

    #[test]
    fn the_ramblings_small_models_write_fail() {
        let narrator =
            "Today I am a person who loves my family, but I also love my friends, and you know it.";
        assert_eq!(
            failed_criteria(narrator, Language::En),
            [Criterion::NoNarrator]
        );
        let rambling = "Today, Leo, the stars, Leo, love, love and the stars, Leo, love, love and work for you.";
        assert_eq!(
            failed_criteria(rambling, Language::En),
            [Criterion::NoRepeats]
        );
        let chat = "User: what does today hold for you? Assistant: **love** and luck.";
        assert_eq!(failed_criteria(chat, Language::En), [Criterion::NoDebris]);
        let list = "Today: 1. rest well. 2. call your mother. 3. avoid quarrels.";
        assert_eq!(failed_criteria(list, Language::En), [Criterion::NoDebris]);
        let page = "Today, Aries, you will rest. Mar 21 Apr 19: the world is your home. Love (Venus): yours.";
        assert_eq!(failed_criteria(page, Language::En), [Criterion::NoDebris]);
        let next_sign = "Today, you will rest. Virgo: today is a good day for you.";
        assert_eq!(
            failed_criteria(next_sign, Language::En),
            [Criterion::NoDebris]
        );
        let about_nothing = "The planets move in their orbits as they always have.";
        assert_eq!(
            failed_criteria(about_nothing, Language::En),
            [Criterion::SecondPerson, Criterion::DayAhead]
        );
        let english_for_russian = "Today you will be lucky.";
        assert_eq!(
            failed_criteria(english_for_russian, Language::Ru),
            [
                Criterion::SecondPerson,
                Criterion::DayAhead,
                Criterion::InLanguage
            ]
        );
        let russian_narrator = "Сегодня я советую вам отдохнуть, мой друг.";
        assert_eq!(
            failed_criteria(russian_narrator, Language::Ru),
            [Criterion::NoNarrator]
        );
    }
}
