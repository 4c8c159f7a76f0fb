//! `starcast collect horoscopes`: today's horoscopes from the sites a TOML
//! file declares, one `raw/date=YYYY-MM-DD/<source>.csv` per source in the
//! store. A site is added by writing its URL and CSS selectors, not code;
//! a source that fails or changed its markup is logged and counted and the
//! others go on. Rerunning a day replaces that day's file of each source.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use scraper::{ElementRef, Html, Selector};
use serde::Deserialize;
use starcast_model::ZodiacSign;

use crate::store::{self, Location, StoreError};

/// How often a failed download is tried again, and the first wait.
const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_USER_AGENT: &str = concat!("starcast/", env!("CARGO_PKG_VERSION"));

/// `sources.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    #[serde(rename = "source")]
    pub sources: Vec<Source>,
}

/// One site: where its horoscopes are and how to read them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The name in the `source` column and the file name.
    pub name: String,
    /// Pages to read. `{sign}` in a URL makes one page per sign (the English
    /// key, `aries`...), and the sign is known from the page.
    pub urls: Vec<String>,
    /// The language of the texts, for people (`ru`, `en`).
    #[serde(default)]
    pub language: Option<String>,
    /// The page encoding (`utf-8`, `windows-1251`...); without it, the
    /// HTTP header's charset, else UTF-8.
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// CSS selector of one horoscope on a page.
    pub item: String,
    /// CSS selector of the sign inside an item; not needed on `{sign}` pages.
    #[serde(default)]
    pub sign: Option<String>,
    /// CSS selector of the text inside an item; every match is joined.
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("could not read the sources file {path}: {reason}")]
    Sources { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one source gave.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceOutcome {
    Collected { rows: usize, location: String },
    Failed(String),
}

/// One row as collected: processing cleans and checks it later.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CollectedRow {
    pub date: String,
    pub sign: String,
    pub text: String,
    pub source: String,
}

impl Sources {
    pub fn read(path: &Path) -> Result<Self, CollectError> {
        let fail = |reason: String| CollectError::Sources {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let sources: Sources = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        for source in &sources.sources {
            source
                .selectors()
                .map_err(|e| fail(format!("source '{}': {e}", source.name)))?;
            if source.name.is_empty()
                || !source
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(fail(format!(
                    "source name '{}' must be letters, digits, '-', '_' or '.': it names a file",
                    source.name
                )));
            }
        }
        Ok(sources)
    }
}

struct Selectors {
    item: Selector,
    sign: Option<Selector>,
    text: Selector,
}

impl Source {
    fn selectors(&self) -> Result<Selectors, String> {
        let parse =
            |css: &str| Selector::parse(css).map_err(|e| format!("bad CSS selector '{css}': {e}"));
        Ok(Selectors {
            item: parse(&self.item)?,
            sign: self.sign.as_deref().map(parse).transpose()?,
            text: parse(&self.text)?,
        })
    }

    /// Every page to fetch, with the sign it is about when the URL says.
    fn pages(&self) -> Vec<(String, Option<ZodiacSign>)> {
        self.urls
            .iter()
            .flat_map(|url| {
                if url.contains("{sign}") {
                    ZodiacSign::ALL
                        .iter()
                        .map(|&sign| (url.replace("{sign}", sign.key()), Some(sign)))
                        .collect()
                } else {
                    vec![(url.clone(), None)]
                }
            })
            .collect()
    }

    /// Downloads and reads every page of the source.
    pub fn collect(&self, date: NaiveDate) -> Result<Vec<CollectedRow>, String> {
        let selectors = self.selectors()?;
        let agent = ureq::AgentBuilder::new()
            .timeout(TIMEOUT)
            .user_agent(self.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT))
            .build();
        let mut rows = Vec::new();
        for (url, page_sign) in self.pages() {
            let html = self.download(&agent, &url)?;
            let found = read_page(&html, &selectors, page_sign, date, &self.name);
            if found.is_empty() {
                return Err(format!(
                    "{url} has no item matching '{}' with a sign and a text: has the site changed?",
                    self.item
                ));
            }
            rows.extend(found);
        }
        Ok(rows)
    }

    fn download(&self, agent: &ureq::Agent, url: &str) -> Result<String, String> {
        let mut wait = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match agent.get(url).call() {
                Ok(response) => return self.decode(response, url),
                Err(ureq::Error::Status(status, _)) if status < 500 => {
                    return Err(format!("{url} answered {status}"));
                }
                Err(error) if attempt > RETRIES => {
                    return Err(format!("{url} failed {attempt} times, last: {error}"));
                }
                Err(error) => {
                    tracing::warn!(%url, %error, attempt, "download failed; trying again");
                    std::thread::sleep(wait);
                    wait *= 2;
                }
            }
        }
    }

    fn decode(&self, response: ureq::Response, url: &str) -> Result<String, String> {
        let label = self
            .encoding
            .clone()
            .or_else(|| response.charset().split(';').next().map(str::to_string))
            .unwrap_or_else(|| "utf-8".into());
        let encoding = encoding_rs::Encoding::for_label(label.trim().as_bytes())
            .ok_or_else(|| format!("unknown encoding '{label}' for {url}"))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(encoding.decode(&bytes).0.into_owned())
    }
}

fn text_of(element: ElementRef) -> String {
    element
        .text()
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rows of one page: an item with no sign or no text is skipped.
fn read_page(
    html: &str,
    selectors: &Selectors,
    page_sign: Option<ZodiacSign>,
    date: NaiveDate,
    source: &str,
) -> Vec<CollectedRow> {
    let document = Html::parse_document(html);
    document
        .select(&selectors.item)
        .filter_map(|item| {
            let sign = match (&selectors.sign, page_sign) {
                (Some(selector), _) => item.select(selector).next().map(text_of)?,
                (None, Some(sign)) => sign.key().to_string(),
                (None, None) => return None,
            };
            let text = item
                .select(&selectors.text)
                .map(text_of)
                .collect::<Vec<_>>()
                .join(" ");
            (!sign.is_empty() && !text.trim().is_empty()).then(|| CollectedRow {
                date: date.to_string(),
                sign,
                text,
                source: source.to_string(),
            })
        })
        .collect()
}

/// Collects every source for `date` into `store`, replacing that day's
/// files; a failed source leaves its previous file alone.
pub fn collect_horoscopes(
    sources: &Sources,
    store: &str,
    date: NaiveDate,
) -> Result<Vec<(String, SourceOutcome)>, CollectError> {
    let store = Location::parse(store)?;
    let scratch = tempfile::tempdir().map_err(|e| CollectError::Sources {
        path: std::env::temp_dir(),
        reason: e.to_string(),
    })?;
    let mut outcomes = Vec::new();
    for source in &sources.sources {
        let key = format!("raw/date={date}/{}.csv", source.name);
        let outcome = source.collect(date).and_then(|rows| {
            write_rows(&rows, &store, &key, scratch.path()).map(|location| (rows.len(), location))
        });
        let outcome = match outcome {
            Ok((rows, location)) => {
                tracing::info!(source = %source.name, rows, %location, "collected");
                SourceOutcome::Collected { rows, location }
            }
            Err(reason) => {
                tracing::warn!(source = %source.name, %reason, "source failed; the others go on");
                SourceOutcome::Failed(reason)
            }
        };
        outcomes.push((source.name.clone(), outcome));
    }
    Ok(outcomes)
}

/// Writes the rows as CSV beside the target and renames (locally) or
/// uploads (remotely) the finished file, so no half-written day exists.
fn write_rows(
    rows: &[CollectedRow],
    store: &Location,
    key: &str,
    scratch: &Path,
) -> Result<String, String> {
    match store {
        Location::Local(root) => {
            let target = root.join(key);
            let parent = target.parent().unwrap_or(root);
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            let partial = target.with_extension("csv.partial");
            write_csv(rows, &partial)?;
            std::fs::rename(&partial, &target).map_err(|e| format!("{}: {e}", target.display()))?;
            Ok(target.display().to_string())
        }
        Location::Remote { url, .. } => {
            let file = scratch.join("rows.csv");
            write_csv(rows, &file)?;
            let location = format!("{}/{key}", url.trim_end_matches('/'));
            let object = Location::parse(&location).map_err(|e| e.to_string())?;
            store::publish(&file, &object).map_err(|e| e.to_string())?;
            Ok(location)
        }
    }
}

fn write_csv(rows: &[CollectedRow], path: &Path) -> Result<(), String> {
    let mut writer =
        csv::Writer::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for row in rows {
        writer.serialize(row).map_err(|e| e.to_string())?;
    }
    writer.flush().map_err(|e| e.to_string())
}
