//! `starcast collect photos`: photos of an actor from DuckDuckGo image
//! search (the lab's source) and Wikimedia Commons (licensed photos, the
//! licence recorded), downloaded concurrently with timeouts, retries with
//! backoff and a per-host pause, checked to be images, and stored as
//! `<out>/<actor>/<content hash>.<ext>` beside a `manifest.csv` (source
//! URL, page, licence, size, hash, time). A rerun adds only what is new.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use starcast_model::photo::{decode_photo, photo_extension};

/// Where the searches go; tests point them at loopback.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub duckduckgo: Option<String>,
    pub wikimedia: Option<String>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            duckduckgo: Some("https://duckduckgo.com".into()),
            wikimedia: Some("https://commons.wikimedia.org/w/api.php".into()),
        }
    }
}

/// How politely and how much to download.
#[derive(Clone, Debug)]
pub struct DownloadSettings {
    pub count: usize,
    pub concurrency: usize,
    pub timeout: Duration,
    pub retries: u32,
    /// The least time between two requests to one host.
    pub per_host_interval: Duration,
    pub user_agent: String,
}

impl Default for DownloadSettings {
    fn default() -> Self {
        DownloadSettings {
            count: 50,
            concurrency: 4,
            timeout: Duration::from_secs(20),
            retries: 2,
            per_host_interval: Duration::from_millis(250),
            user_agent: concat!("starcast/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

/// A photo found by a search.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub url: String,
    pub page: String,
    pub source: &'static str,
    pub licence: String,
}

/// One line of `manifest.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub file: String,
    pub url: String,
    pub page: String,
    pub source: String,
    pub licence: String,
    pub bytes: u64,
    pub sha256: String,
    pub downloaded_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("{0}")]
    Search(String),
    #[error("{path}: {reason}")]
    Store { path: PathBuf, reason: String },
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PhotoReport {
    pub found: usize,
    pub already_had: usize,
    pub added: usize,
    pub failed: Vec<(String, String)>,
    pub search_failures: Vec<String>,
}

/// Waits so that one host is asked at most once per interval.
struct HostPacer {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl HostPacer {
    async fn wait(&self, url: &str) {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let ready_at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = next.get(&host).copied().unwrap_or(now).max(now);
            next.insert(host, at + self.interval);
            at
        };
        tokio::time::sleep_until(ready_at.into()).await;
    }
}

struct Client {
    http: reqwest::Client,
    pacer: HostPacer,
    retries: u32,
}

impl Client {
    /// GET with retries on network errors and 5xx, backing off.
    async fn get(&self, url: &str) -> Result<reqwest::Response, String> {
        let mut wait = Duration::from_millis(300);
        let mut attempt = 0;
        loop {
            self.pacer.wait(url).await;
            let outcome = self.http.get(url).send().await;
            let retry = match &outcome {
                Ok(response) if response.status().is_server_error() => true,
                Ok(_) => false,
                Err(error) => error.is_timeout() || error.is_connect() || error.is_request(),
            };
            if !retry || attempt >= self.retries {
                return match outcome {
                    Ok(response) if response.status().is_success() => Ok(response),
                    Ok(response) => Err(format!("{url} answered {}", response.status())),
                    Err(error) => Err(format!("{url}: {error}")),
                };
            }
            attempt += 1;
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }

    async fn json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, String> {
        let bytes = self
            .get(url)
            .await?
            .bytes()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{url} did not answer the expected JSON: {e}"))
    }
}

fn query_url(base: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("{base}: {e}"))?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url.into())
}

#[derive(Deserialize)]
struct DuckResults {
    results: Vec<DuckImage>,
}

#[derive(Deserialize)]
struct DuckImage {
    image: String,
    #[serde(default)]
    url: String,
}

/// DuckDuckGo's image search: a page that hands out a `vqd` token, then
/// `i.js` with the results as JSON.
async fn search_duckduckgo(
    client: &Client,
    base: &str,
    query: &str,
) -> Result<Vec<Candidate>, String> {
    let base = base.trim_end_matches('/');
    let page = client
        .get(&query_url(
            &format!("{base}/"),
            &[("q", query), ("iax", "images"), ("ia", "images")],
        )?)
        .await?;
    let html = page.text().await.map_err(|e| e.to_string())?;
    let token = ["vqd=\"", "vqd='", "vqd="]
        .iter()
        .find_map(|start| {
            let at = html.find(start)? + start.len();
            let token: String = html[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            (!token.is_empty()).then_some(token)
        })
        .ok_or("DuckDuckGo's page has no search token (vqd): has it changed?")?;
    let results: DuckResults = client
        .json(&query_url(
            &format!("{base}/i.js"),
            &[
                ("l", "us-en"),
                ("o", "json"),
                ("q", query),
                ("vqd", &token),
                ("f", ",,,,,"),
                ("p", "1"),
            ],
        )?)
        .await?;
    Ok(results
        .results
        .into_iter()
        .map(|r| Candidate {
            url: r.image,
            page: r.url,
            source: "duckduckgo",
            licence: "unknown (web image search)".into(),
        })
        .collect())
}

#[derive(Deserialize)]
struct CommonsAnswer {
    #[serde(default)]
    query: Option<CommonsQuery>,
}

#[derive(Deserialize)]
struct CommonsQuery {
    pages: HashMap<String, CommonsPage>,
}

#[derive(Deserialize)]
struct CommonsPage {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    imageinfo: Vec<CommonsImage>,
}

#[derive(Deserialize)]
struct CommonsImage {
    url: String,
    #[serde(default)]
    descriptionurl: String,
    #[serde(default)]
    mime: String,
    #[serde(default)]
    extmetadata: HashMap<String, CommonsValue>,
}

#[derive(Deserialize)]
struct CommonsValue {
    value: serde_json::Value,
}

/// Wikimedia Commons' search API over files, with each file's licence.
async fn search_wikimedia(
    client: &Client,
    api: &str,
    query: &str,
    count: usize,
) -> Result<Vec<Candidate>, String> {
    let limit = count.clamp(1, 50).to_string();
    let answer: CommonsAnswer = client
        .json(&query_url(
            api,
            &[
                ("action", "query"),
                ("format", "json"),
                ("generator", "search"),
                ("gsrsearch", &format!("{query} filetype:bitmap")),
                ("gsrnamespace", "6"),
                ("gsrlimit", &limit),
                ("prop", "imageinfo"),
                ("iiprop", "url|mime|extmetadata"),
            ],
        )?)
        .await?;
    let mut pages: Vec<CommonsPage> = answer
        .query
        .map(|q| q.pages.into_values().collect())
        .unwrap_or_default();
    pages.sort_by_key(|p| p.index);
    Ok(pages
        .into_iter()
        .filter_map(|page| page.imageinfo.into_iter().next())
        .filter(|info| info.mime.is_empty() || info.mime.starts_with("image/"))
        .map(|info| {
            let licence = info
                .extmetadata
                .get("LicenseShortName")
                .and_then(|v| v.value.as_str().map(str::to_string))
                .unwrap_or_else(|| "see the file page".into());
            Candidate {
                url: info.url,
                page: info.descriptionurl,
                source: "wikimedia",
                licence,
            }
        })
        .collect())
}

fn read_manifest(path: &Path) -> Vec<ManifestEntry> {
    csv::Reader::from_path(path)
        .map(|mut r| r.deserialize().filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Searches, downloads what is new, and records it.
pub fn collect_photos(
    actor: &str,
    out: &Path,
    endpoints: &Endpoints,
    settings: &DownloadSettings,
    progress: &indicatif::ProgressBar,
) -> Result<PhotoReport, PhotoError> {
    let folder = out.join(actor.replace(['/', '\\'], "-"));
    let store = |reason: String| PhotoError::Store {
        path: folder.clone(),
        reason,
    };
    std::fs::create_dir_all(&folder).map_err(|e| store(e.to_string()))?;
    let manifest_path = folder.join("manifest.csv");
    let known = read_manifest(&manifest_path);
    let known_urls: HashSet<String> = known.iter().map(|e| e.url.clone()).collect();
    let mut known_hashes: HashSet<String> = known.iter().map(|e| e.sha256.clone()).collect();
    let http = reqwest::Client::builder()
        .timeout(settings.timeout)
        .user_agent(settings.user_agent.clone())
        .build()
        .map_err(|e| PhotoError::Search(e.to_string()))?;
    let client = Client {
        http,
        pacer: HostPacer {
            interval: settings.per_host_interval,
            next: Mutex::new(HashMap::new()),
        },
        retries: settings.retries,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| store(e.to_string()))?;
    runtime.block_on(async {
        let mut report = PhotoReport::default();
        let mut candidates = Vec::new();
        if let Some(base) = &endpoints.duckduckgo {
            match search_duckduckgo(&client, base, actor).await {
                Ok(found) => candidates.extend(found),
                Err(e) => report.search_failures.push(format!("duckduckgo: {e}")),
            }
        }
        if let Some(api) = &endpoints.wikimedia {
            match search_wikimedia(&client, api, actor, settings.count).await {
                Ok(found) => candidates.extend(found),
                Err(e) => report.search_failures.push(format!("wikimedia: {e}")),
            }
        }
        if candidates.is_empty() && !report.search_failures.is_empty() {
            return Err(PhotoError::Search(report.search_failures.join("; ")));
        }
        let mut seen = HashSet::new();
        candidates.retain(|c| seen.insert(c.url.clone()));
        report.found = candidates.len();
        let fresh: Vec<Candidate> = candidates
            .into_iter()
            .filter(|c| !known_urls.contains(&c.url))
            .collect();
        report.already_had = report.found - fresh.len();
        let wanted = settings.count.saturating_sub(known.len());
        progress.set_length(wanted.min(fresh.len()) as u64);
        // Downloads run concurrently; files are written here, one at a
        // time, so stopping at the count leaves no stray file.
        let mut downloads = futures::stream::iter(fresh.into_iter().map(|candidate| {
            let client = &client;
            async move {
                let outcome = download(client, &candidate).await;
                (candidate, outcome)
            }
        }))
        .buffer_unordered(settings.concurrency.max(1));
        let mut writer = csv::WriterBuilder::new()
            .has_headers(!manifest_path.exists())
            .from_writer(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&manifest_path)
                    .map_err(|e| store(e.to_string()))?,
            );
        while report.added < wanted {
            let Some((candidate, outcome)) = downloads.next().await else {
                break;
            };
            match outcome {
                Ok(photo) if !known_hashes.insert(photo.sha256.clone()) => report.already_had += 1,
                Ok(photo) => {
                    let entry = store_photo(&folder, &candidate, &photo).map_err(store)?;
                    writer.serialize(&entry).map_err(|e| store(e.to_string()))?;
                    writer.flush().map_err(|e| store(e.to_string()))?;
                    report.added += 1;
                    progress.inc(1);
                }
                Err(reason) => report.failed.push((candidate.url, reason)),
            }
        }
        Ok(report)
    })
}

/// A downloaded photo, checked to be one, not yet stored.
struct Downloaded {
    bytes: Vec<u8>,
    extension: &'static str,
    sha256: String,
}

/// Downloads one photo and checks that it decodes.
async fn download(client: &Client, candidate: &Candidate) -> Result<Downloaded, String> {
    let response = client.get(&candidate.url).await?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("{}: {e}", candidate.url))?;
    decode_photo(&bytes).map_err(|e| e.to_string())?;
    let extension = photo_extension(&bytes).ok_or("not a photo format")?;
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Downloaded {
        bytes: bytes.to_vec(),
        extension,
        sha256,
    })
}

/// Writes a photo under its content hash (aside, then renamed) and the
/// manifest line that describes it.
fn store_photo(
    folder: &Path,
    candidate: &Candidate,
    photo: &Downloaded,
) -> Result<ManifestEntry, String> {
    let file = format!("{}.{}", &photo.sha256[..16], photo.extension);
    let partial = folder.join(format!("{file}.partial"));
    std::fs::write(&partial, &photo.bytes).map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, folder.join(&file)).map_err(|e| format!("{file}: {e}"))?;
    Ok(ManifestEntry {
        file,
        url: candidate.url.clone(),
        page: candidate.page.clone(),
        source: candidate.source.into(),
        licence: candidate.licence.clone(),
        bytes: photo.bytes.len() as u64,
        sha256: photo.sha256.clone(),
        downloaded_at: chrono::Utc::now().to_rfc3339(),
    })
}
