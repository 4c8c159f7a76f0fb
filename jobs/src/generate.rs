//! `starcast generate horoscope`: one horoscope on the command line.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::Context;
use starcast_model::hub::local_model;
use starcast_model::text::load_horoscope_writer;
use starcast_model::{HoroscopeQuery, Streamed};

use crate::defaults;
use crate::device::DeviceChoice;

#[derive(Debug, clap::Args)]
pub struct HoroscopeArgs {
    /// The sign: English or Russian name in any case, or the glyph.
    #[arg(long)]
    pub sign: String,
    /// The day, YYYY-MM-DD; today when absent.
    #[arg(long)]
    pub date: Option<String>,
    /// Another horoscope for the same day; absent: the day's horoscope.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sampling temperature, above 0 and at most 2.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus sampling: above 0 and at most 1.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// The language to write in: en or ru (default: the language the sign
    /// is written in).
    #[arg(long)]
    pub lang: Option<String>,
    /// The model folder or `hf://user/repo[@revision]` (default: the
    /// language's model under data/models/).
    #[arg(long, env = "STARCAST_HOROSCOPE_MODEL")]
    pub model: Option<PathBuf>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
    /// Print one JSON object instead of streaming the text.
    #[arg(long)]
    pub json: bool,
}

pub fn horoscope(args: HoroscopeArgs) -> anyhow::Result<()> {
    let request = HoroscopeQuery {
        sign: args.sign,
        date: args.date,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        lang: args.lang,
    }
    .validate(chrono::Local::now().date_naive())?;
    let model = args.model.unwrap_or_else(|| {
        Path::new("data/models").join(defaults::horoscope_model(request.language))
    });
    let path = local_model(&model)?;
    let writer = load_horoscope_writer(&path, &args.device.open()?)
        .with_context(|| format!("could not load the horoscope model in {}", model.display()))?;
    let mut stdout = std::io::stdout().lock();
    let streaming = !args.json;
    let horoscope = writer.write(&request, &mut |event| {
        if streaming {
            match event {
                Streamed::Text(piece) => {
                    let _ = write!(stdout, "{piece}");
                }
                Streamed::Restart => {
                    let _ = writeln!(stdout);
                    eprintln!("(that sample was unusable; writing another)");
                }
            }
            let _ = stdout.flush();
        }
        ControlFlow::Continue(())
    })?;
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string(&horoscope)?)?;
    } else {
        writeln!(stdout, "\n\n{}", horoscope.text)?;
        eprintln!(
            "{} · {} · {} tokens at {:.1} tokens/s",
            horoscope.sign, horoscope.date, horoscope.tokens, horoscope.tokens_per_s
        );
    }
    Ok(())
}
