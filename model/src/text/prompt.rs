//! What the model is asked, per model family. Training (fine-tuning on
//! scraped horoscopes) uses the same functions, so the formats agree.

use chrono::NaiveDate;

use crate::ZodiacSign;

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
    /// A base model continuing an example horoscope with the next one.
    FewShot,
}

fn long_date(date: NaiveDate) -> String {
    date.format("%A, %-d %B %Y").to_string()
}

/// What the model is given, and the words its answer starts with: a small
/// model stays on topic when its answer is begun for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub input: String,
    /// Part of the horoscope; the model continues it.
    pub answer_start: String,
}

/// The prompt for one horoscope.
pub fn horoscope_prompt(style: PromptStyle, sign: ZodiacSign, date: NaiveDate) -> Prompt {
    let plain = |input: String| Prompt {
        input,
        answer_start: String::new(),
    };
    match style {
        PromptStyle::Chat => {
            let answer_start = format!("Today, {}, the stars", sign.name());
            let input = format!(
                "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWrite today's horoscope for {name} ({dates}), {day}. \
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
        PromptStyle::FewShot => plain(format!("<bos>{}:\n", sign.russian_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_style_names_the_sign() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let chat = horoscope_prompt(PromptStyle::Chat, ZodiacSign::Leo, day);
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
        let trained = horoscope_prompt(PromptStyle::Horoscope, ZodiacSign::Leo, day);
        assert_eq!(trained.input, "leo | 2026-11-22\n");
        assert_eq!(trained.answer_start, "");
        assert_eq!(
            horoscope_prompt(PromptStyle::SignName, ZodiacSign::Leo, day).input,
            "Лев"
        );
    }
}
