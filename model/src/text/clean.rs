//! From raw model output to a horoscope: clean the text as the seed project
//! did, then cut it to 300-500 characters at a sentence boundary.

/// The shortest and longest horoscope, in characters (not bytes).
pub const MIN_CHARS: usize = 300;
pub const MAX_CHARS: usize = 500;

use crate::horoscope::is_kept_char;

/// Removes stray characters and junk sequences: line breaks and
/// non-breaking spaces become spaces, other characters outside the kept set
/// go, dot runs (`..`) become one dot, spaces before `,.!?;:` go, and runs
/// of spaces collapse.
pub fn clean_text(raw: &str) -> String {
    let spaced = raw.replace(['\n', '\r', '\t', '\u{a0}'], " ");
    let kept: String = spaced.chars().filter(|&c| is_kept_char(c)).collect();
    let mut out = String::with_capacity(kept.len());
    for c in kept.chars() {
        let last = out.chars().last();
        match c {
            ' ' if last == Some(' ') || last.is_none() => {}
            '.' if last == Some('.') => {}
            ',' | '.' | '!' | '?' | ';' | ':' if last == Some(' ') => {
                out.pop();
                if !out.ends_with(c) {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out.trim().to_string()
}

fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// The longest prefix of `text` that ends a sentence and has between
/// [`MIN_CHARS`] and [`MAX_CHARS`] characters, or `None` when there is none.
pub fn cut_to_length(text: &str) -> Option<String> {
    let mut best = None;
    for (count, (index, c)) in text.char_indices().enumerate() {
        let chars = count + 1;
        if chars > MAX_CHARS {
            break;
        }
        let at_boundary = text[index + c.len_utf8()..]
            .chars()
            .next()
            .is_none_or(|next| next == ' ' || next == '»' || next == '"' || next == '”');
        if chars >= MIN_CHARS && ends_sentence(c) && at_boundary {
            best = Some(&text[..index + c.len_utf8()]);
        }
    }
    best.map(str::to_string)
}

/// Cleans and cuts model output; `None` when it can't make a horoscope.
pub fn shape_horoscope(raw: &str) -> Option<String> {
    cut_to_length(&clean_text(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_removes_what_the_seed_removed() {
        assert_eq!(
            clean_text("**Leo**\n\nToday ,  you shine.. Love\u{a0}waits!  #stars 🌟"),
            "Leo Today, you shine. Love waits! stars"
        );
        assert_eq!(
            clean_text("Овен: день «удачный» — верьте себе ."),
            "Овен: день «удачный» — верьте себе."
        );
        assert_eq!(clean_text("  \n "), "");
    }

    #[test]
    fn cuts_at_the_last_sentence_that_fits_counting_characters_not_bytes() {
        // Cyrillic letters are two bytes each: 600 bytes is 300 characters.
        let sentence = "Звёзды благоволят вам сегодня.";
        let long = vec![sentence; 30].join(" ");
        let cut = cut_to_length(&long).unwrap();
        let chars = cut.chars().count();
        assert!((MIN_CHARS..=MAX_CHARS).contains(&chars), "{chars}");
        assert!(cut.len() > MAX_CHARS, "the cut was measured in bytes");
        assert!(cut.ends_with('.'));
        assert_eq!(
            chars % (sentence.chars().count() + 1),
            sentence.chars().count()
        );
    }

    #[test]
    fn exactly_300_and_500_characters_are_kept() {
        let exactly = |n: usize| format!("{}.", "é".repeat(n - 1));
        assert_eq!(
            cut_to_length(&exactly(300)).map(|t| t.chars().count()),
            Some(300)
        );
        assert_eq!(
            cut_to_length(&exactly(500)).map(|t| t.chars().count()),
            Some(500)
        );
        assert_eq!(cut_to_length(&exactly(299)), None);
        assert_eq!(cut_to_length(&exactly(501)), None, "no boundary within 500");
    }

    #[test]
    fn a_short_or_unending_text_is_unusable() {
        assert_eq!(shape_horoscope("Too short."), None);
        assert_eq!(shape_horoscope(&"word ".repeat(120)), None);
    }

    #[test]
    fn a_dot_inside_a_number_is_not_a_sentence_end() {
        let text = format!("{} 3.5 more words here.", "a".repeat(330));
        assert_eq!(cut_to_length(&text).unwrap(), text);
    }
}
