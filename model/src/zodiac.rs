//! The twelve zodiac signs: their names in English and Russian, glyphs and
//! date ranges, and parsing from whatever a user or a scraped page writes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the twelve signs of the tropical zodiac.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZodiacSign {
    Aries,
    Taurus,
    Gemini,
    Cancer,
    Leo,
    Virgo,
    Libra,
    Scorpio,
    Sagittarius,
    Capricorn,
    Aquarius,
    Pisces,
}

/// Everything we know about a sign, in one row per sign.
struct SignFacts {
    sign: ZodiacSign,
    key: &'static str,
    name: &'static str,
    russian: &'static str,
    glyph: char,
    /// (month, day) of the first and last day of the sign.
    from: (u32, u32),
    to: (u32, u32),
}

const FACTS: [SignFacts; 12] = [
    SignFacts {
        sign: ZodiacSign::Aries,
        key: "aries",
        name: "Aries",
        russian: "Овен",
        glyph: '♈',
        from: (3, 21),
        to: (4, 19),
    },
    SignFacts {
        sign: ZodiacSign::Taurus,
        key: "taurus",
        name: "Taurus",
        russian: "Телец",
        glyph: '♉',
        from: (4, 20),
        to: (5, 20),
    },
    SignFacts {
        sign: ZodiacSign::Gemini,
        key: "gemini",
        name: "Gemini",
        russian: "Близнецы",
        glyph: '♊',
        from: (5, 21),
        to: (6, 20),
    },
    SignFacts {
        sign: ZodiacSign::Cancer,
        key: "cancer",
        name: "Cancer",
        russian: "Рак",
        glyph: '♋',
        from: (6, 21),
        to: (7, 22),
    },
    SignFacts {
        sign: ZodiacSign::Leo,
        key: "leo",
        name: "Leo",
        russian: "Лев",
        glyph: '♌',
        from: (7, 23),
        to: (8, 22),
    },
    SignFacts {
        sign: ZodiacSign::Virgo,
        key: "virgo",
        name: "Virgo",
        russian: "Дева",
        glyph: '♍',
        from: (8, 23),
        to: (9, 22),
    },
    SignFacts {
        sign: ZodiacSign::Libra,
        key: "libra",
        name: "Libra",
        russian: "Весы",
        glyph: '♎',
        from: (9, 23),
        to: (10, 22),
    },
    SignFacts {
        sign: ZodiacSign::Scorpio,
        key: "scorpio",
        name: "Scorpio",
        russian: "Скорпион",
        glyph: '♏',
        from: (10, 23),
        to: (11, 21),
    },
    SignFacts {
        sign: ZodiacSign::Sagittarius,
        key: "sagittarius",
        name: "Sagittarius",
        russian: "Стрелец",
        glyph: '♐',
        from: (11, 22),
        to: (12, 21),
    },
    SignFacts {
        sign: ZodiacSign::Capricorn,
        key: "capricorn",
        name: "Capricorn",
        russian: "Козерог",
        glyph: '♑',
        from: (12, 22),
        to: (1, 19),
    },
    SignFacts {
        sign: ZodiacSign::Aquarius,
        key: "aquarius",
        name: "Aquarius",
        russian: "Водолей",
        glyph: '♒',
        from: (1, 20),
        to: (2, 18),
    },
    SignFacts {
        sign: ZodiacSign::Pisces,
        key: "pisces",
        name: "Pisces",
        russian: "Рыбы",
        glyph: '♓',
        from: (2, 19),
        to: (3, 20),
    },
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl ZodiacSign {
    /// All signs in zodiac order, starting with Aries.
    pub const ALL: [ZodiacSign; 12] = [
        ZodiacSign::Aries,
        ZodiacSign::Taurus,
        ZodiacSign::Gemini,
        ZodiacSign::Cancer,
        ZodiacSign::Leo,
        ZodiacSign::Virgo,
        ZodiacSign::Libra,
        ZodiacSign::Scorpio,
        ZodiacSign::Sagittarius,
        ZodiacSign::Capricorn,
        ZodiacSign::Aquarius,
        ZodiacSign::Pisces,
    ];

    fn facts(self) -> &'static SignFacts {
        &FACTS[self as usize]
    }

    /// The canonical lowercase English name used in APIs and files (`aries`).
    pub fn key(self) -> &'static str {
        self.facts().key
    }

    /// The English name for people (`Aries`).
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// The Russian name (`Овен`).
    pub fn russian_name(self) -> &'static str {
        self.facts().russian
    }

    /// The Unicode zodiac glyph (`♈`).
    pub fn glyph(self) -> char {
        self.facts().glyph
    }

    /// The sign's dates for people, e.g. `Mar 21 – Apr 19`.
    /// The (month, day) of the sign's first and last day.
    pub fn days(self) -> ((u32, u32), (u32, u32)) {
        let f = self.facts();
        (f.from, f.to)
    }

    pub fn date_range(self) -> String {
        let f = self.facts();
        let day = |(m, d): (u32, u32)| format!("{} {d}", MONTHS[m as usize - 1]);
        format!("{} – {}", day(f.from), day(f.to))
    }

    /// The sign whose dates include this month and day.
    pub fn of_birthday(month: u32, day: u32) -> Option<ZodiacSign> {
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let md = (month, day);
        FACTS
            .iter()
            .find(|f| {
                if f.from <= f.to {
                    f.from <= md && md <= f.to
                } else {
                    md >= f.from || md <= f.to
                }
            })
            .map(|f| f.sign)
    }

    /// The canonical keys of all signs, comma separated, for error messages.
    pub fn all_keys() -> String {
        Self::ALL.map(ZodiacSign::key).join(", ")
    }
}

impl fmt::Display for ZodiacSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the twelve signs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown zodiac sign '{given}': use one of {}", ZodiacSign::all_keys())]
pub struct UnknownSign {
    pub given: String,
}

impl FromStr for ZodiacSign {
    type Err = UnknownSign;

    /// Accepts English or Russian names in any case, with or without a zodiac
    /// glyph or emoji around them, or the glyph alone.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownSign {
            given: s.to_string(),
        };
        if let Some(f) = FACTS.iter().find(|f| s.contains(f.glyph)) {
            return Ok(f.sign);
        }
        // Drop emoji presentation selectors and anything else that isn't a letter.
        let word: String = s
            .chars()
            .filter(|c| c.is_alphabetic())
            .flat_map(char::to_lowercase)
            .map(|c| if c == 'ё' { 'е' } else { c })
            .collect();
        if word.is_empty() {
            return Err(unknown());
        }
        FACTS
            .iter()
            .find(|f| word == f.key || word == f.russian.to_lowercase())
            .map(|f| f.sign)
            .ok_or_else(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_english_russian_and_glyphs_in_any_case() {
        assert_eq!("aries".parse(), Ok(ZodiacSign::Aries));
        assert_eq!("  SCORPIO ".parse(), Ok(ZodiacSign::Scorpio));
        assert_eq!("Близнецы".parse(), Ok(ZodiacSign::Gemini));
        assert_eq!("ВОДОЛЕЙ".parse(), Ok(ZodiacSign::Aquarius));
        assert_eq!("♓".parse(), Ok(ZodiacSign::Pisces));
        assert_eq!("♌\u{fe0f} Лев".parse(), Ok(ZodiacSign::Leo));
    }

    #[test]
    fn rejects_headings_and_lists_the_signs() {
        let err = "Гороскоп на сегодня".parse::<ZodiacSign>().unwrap_err();
        let message = err.to_string();
        assert!(message.contains("Гороскоп на сегодня"), "{message}");
        for sign in ZodiacSign::ALL {
            assert!(message.contains(sign.key()), "{message}");
        }
        assert!("".parse::<ZodiacSign>().is_err());
    }

    #[test]
    fn key_round_trips_through_serde() {
        for sign in ZodiacSign::ALL {
            let json = serde_json::to_string(&sign).unwrap();
            assert_eq!(json, format!("\"{}\"", sign.key()));
            assert_eq!(serde_json::from_str::<ZodiacSign>(&json).unwrap(), sign);
            assert_eq!(sign.key().parse(), Ok(sign));
        }
    }

    #[test]
    fn every_day_of_the_year_has_a_sign_and_boundaries_are_exact() {
        let days = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        for (m, &n) in days.iter().enumerate() {
            for d in 1..=n {
                assert!(
                    ZodiacSign::of_birthday(m as u32 + 1, d).is_some(),
                    "{m}-{d}"
                );
            }
        }
        for f in &FACTS {
            assert_eq!(ZodiacSign::of_birthday(f.from.0, f.from.1), Some(f.sign));
            assert_eq!(ZodiacSign::of_birthday(f.to.0, f.to.1), Some(f.sign));
        }
        assert_eq!(ZodiacSign::of_birthday(1, 1), Some(ZodiacSign::Capricorn));
        assert_eq!(ZodiacSign::of_birthday(3, 20), Some(ZodiacSign::Pisces));
        assert_eq!(ZodiacSign::of_birthday(13, 1), None);
    }

    #[test]
    fn date_range_reads_well() {
        assert_eq!(ZodiacSign::Aries.date_range(), "Mar 21 – Apr 19");
        assert_eq!(ZodiacSign::Capricorn.date_range(), "Dec 22 – Jan 19");
    }
}
