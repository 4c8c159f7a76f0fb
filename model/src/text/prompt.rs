//! What the model is asked, per model family. Training (fine-tuning on
//! scraped horoscopes) uses the same functions, so the formats agree.

use chrono::{Locale, NaiveDate};

use crate::{Language, ZodiacSign};

/// How a model expects to be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptStyle {
    /// ChatML, as SmolLM2-Instruct and other instruct models are tuned on.
    Chat,
    /// A model fine-tuned on horoscopes: `sign | date` then the text.
    Horoscope,
    /// The seed project's T5 format: the bare sign name.
    SignName,
    /// A base model (Gemma 3) continuing a page of horoscopes: examples
    /// for other signs, then the asked sign's name.
    FewShot,
}

impl PromptStyle {
    /// Whether the answer ends at a line break: a few-shot page goes on
    /// with the next sign on the next line.
    pub fn ends_at_line_break(self) -> bool {
        self == PromptStyle::FewShot
    }

    /// Whether the prompt is a document of its own, begun with the
    /// tokenizer's start token (Gemma's `<bos>`) where it has one.
    pub fn starts_a_document(self) -> bool {
        self == PromptStyle::FewShot
    }
}

fn long_date(date: NaiveDate) -> String {
    date.format("%A, %-d %B %Y").to_string()
}

/// Where the next entry of a few-shot page begins in `text`, when the
/// model went on to one without a line break: a sentence that is one
/// capitalised word and a colon ("Virgo:", "Дева:", or a heading of its
/// own making, "Jupiter:").
pub fn next_entry(text: &str) -> Option<usize> {
    let mut sentence_start = 0;
    for (at, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?') {
            sentence_start = at + c.len_utf8();
            continue;
        }
        if c == ':' {
            let word = text[sentence_start..at].trim();
            let heading = word.chars().next().is_some_and(char::is_uppercase)
                && word.chars().all(char::is_alphabetic);
            if heading && sentence_start > 0 {
                return Some(sentence_start);
            }
        }
    }
    None
}

/// "2 December 2026" or "2 декабря 2026 г.".
fn day_in(language: Language, date: NaiveDate) -> String {
    match language {
        Language::En => date.format("%-d %B %Y").to_string(),
        Language::Ru => format!("{} г.", date.format_localized("%-d %B %Y", Locale::ru_RU)),
    }
}

/// Horoscopes written for this prompt, for no sign in particular: the page
/// the model continues shows them under other signs' names.
const EXAMPLES: [(&str, &str); 3] = [
    (
        "Сегодня вам стоит замедлиться и прислушаться к себе. Утром придёт известие, которое поможет решить давний вопрос, но не спешите с ответом: дайте себе время всё обдумать. Во второй половине дня займитесь делами, которые вы давно откладывали. Вечер лучше провести с близкими людьми: тёплый разговор вернёт вам силы и уверенность.",
        "Today, slow down and listen to yourself. A message in the morning will help you settle an old question, but don't hurry to answer: give yourself time to think it over. In the afternoon, take up the tasks you have been putting off. Spend the evening with the people close to you: a warm conversation will give you back your strength and confidence.",
    ),
    (
        "День благоприятен для новых начинаний. Вы почувствуете прилив энергии и захотите изменить что-то в привычном распорядке. На работе ваши идеи встретят поддержку, только не берите на себя слишком много обязательств. В денежных вопросах будьте осторожны и избегайте спонтанных покупок. Вечером найдите время для прогулки: движение поможет снять накопившееся напряжение.",
        "The day favours new beginnings. You will feel a surge of energy and want to change something in your usual routine. At work your ideas will find support, just don't take on too many commitments. Be careful with money and avoid impulse purchases. In the evening, find time for a walk: moving will ease the tension that has built up.",
    ),
    (
        "Сегодня звёзды советуют вам быть внимательнее к словам. Случайная фраза может задеть близкого человека, поэтому лучше лишний раз промолчать. Зато в делах удача на вашей стороне: вы легко найдёте общий язык с коллегами и справитесь со сложной задачей. Не отказывайтесь от приглашения на вечернюю встречу, она может стать началом интересного знакомства.",
        "Today the stars advise you to choose your words with care. A careless remark could hurt someone close to you, so it is better to hold your tongue. In your affairs, though, luck is on your side: you will easily find common ground with colleagues and handle a difficult task. Don't turn down an invitation for the evening, it may be the start of an interesting acquaintance.",
    ),
];

/// A page of the day's horoscopes in `language`: the examples under the
/// two signs before `sign`, then `sign`'s name for the model to go on.
fn few_shot_page(language: Language, sign: ZodiacSign, date: NaiveDate) -> String {
    let name = |s: ZodiacSign| match language {
        Language::En => s.name(),
        Language::Ru => s.russian_name(),
    };
    let title = match language {
        Language::En => format!("Horoscope for {}", day_in(language, date)),
        Language::Ru => format!("Гороскоп на {}", day_in(language, date)),
    };
    let index = ZodiacSign::ALL.iter().position(|&s| s == sign).unwrap_or(0);
    let mut page = format!("{title}\n\n");
    // Which examples, and under which signs, vary with the sign asked for.
    for back in [2, 1] {
        let other = ZodiacSign::ALL[(index + 12 - back) % 12];
        let (russian, english) = EXAMPLES[(index + back) % EXAMPLES.len()];
        let text = match language {
            Language::En => english,
            Language::Ru => russian,
        };
        page.push_str(&format!("{}: {text}\n\n", name(other)));
    }
    page.push_str(&format!("{}:", name(sign)));
    page
}

/// What the model is given, and the words its answer starts with: a small
/// model stays on topic when its answer is begun for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub input: String,
    /// Part of the horoscope; the model continues it.
    pub answer_start: String,
}

/// The prompt for one horoscope in `language` (the styles of models
/// tuned on English prompts ask in English whatever the language).
pub fn horoscope_prompt(
    style: PromptStyle,
    sign: ZodiacSign,
    date: NaiveDate,
    language: Language,
) -> Prompt {
    let plain = |input: String| Prompt {
        input,
        answer_start: String::new(),
    };
    match style {
        PromptStyle::Chat => {
            let answer_start = format!("Today, {}, you", sign.name());
            let input = format!(
                "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWrite today's horoscope for {name} ({dates}), {day}, \
             in one paragraph that speaks to the reader as \"you\". \
             Give advice about mood, love and work.<|im_end|>\n\
             <|im_start|>assistant\n{answer_start}",
                name = sign.name(),
                dates = sign.date_range(),
                day = long_date(date),
            );
            Prompt {
                input,
                answer_start,
            }
        }
        PromptStyle::Horoscope => plain(format!("{} | {date}\n", sign.key())),
        PromptStyle::SignName => plain(sign.russian_name().to_string()),
        PromptStyle::FewShot => plain(few_shot_page(language, sign, date)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_style_names_the_sign() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let chat = horoscope_prompt(PromptStyle::Chat, ZodiacSign::Leo, day, Language::En);
        assert!(
            chat.input
                .contains("Leo (Jul 23 – Aug 22), Sunday, 22 November 2026"),
            "{chat:?}"
        );
        assert!(
            chat.input
                .ends_with(&format!("<|im_start|>assistant\n{}", chat.answer_start))
        );
        assert!(chat.answer_start.contains("Leo"));
        let trained = horoscope_prompt(PromptStyle::Horoscope, ZodiacSign::Leo, day, Language::En);
        assert_eq!(trained.input, "leo | 2026-11-22\n");
        assert_eq!(trained.answer_start, "");
        assert_eq!(
            horoscope_prompt(PromptStyle::SignName, ZodiacSign::Leo, day, Language::En).input,
            "Лев"
        );
    }

    #[test]
    fn a_few_shot_page_ends_with_the_asked_sign_in_its_language() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let russian = horoscope_prompt(PromptStyle::FewShot, ZodiacSign::Leo, day, Language::Ru);
        assert!(
            russian
                .input
                .starts_with("Гороскоп на 2 декабря 2026 г.\n\nБлизнецы: "),
            "{}",
            russian.input
        );
        assert!(russian.input.contains("\n\nРак: "), "{}", russian.input);
        assert!(russian.input.ends_with("\n\nЛев:"), "{}", russian.input);
        let english = horoscope_prompt(PromptStyle::FewShot, ZodiacSign::Aries, day, Language::En);
        assert!(
            english
                .input
                .starts_with("Horoscope for 2 December 2026\n\nAquarius: "),
            "{}",
            english.input
        );
        assert!(english.input.ends_with("\n\nAries:"), "{}", english.input);
        assert_eq!(next_entry(" Rest today. Virgo: Today"), Some(12));
        assert_eq!(next_entry(" Rest. Jupiter: today"), Some(6));
        assert_eq!(next_entry(" Отдохните. Дева: сегодня"), Some(20));
        assert_eq!(next_entry(" Rest today, Virgo."), None);
        assert_eq!(next_entry(" Advice: rest today."), None);
        assert_eq!(next_entry(" Rest. Then do this: call a friend."), None);
    }
}
