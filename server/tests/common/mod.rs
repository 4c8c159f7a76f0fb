//! What the HTTP tests share: a server state in a temporary folder, request
//! builders, and small models with real (if simple) behaviour so the wiring
//! can be tested before the vision and text cores land.

#![allow(dead_code)]

pub mod moto;
pub mod postgres;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use image::DynamicImage;
use leptos::config::LeptosOptions;
use starcast_model::{
    ActorRecognizer, Horoscope, HoroscopeRequest, HoroscopeWriter, Language, ModelError, ModelInfo,
    ModelKind, Prediction, Recognition, ServedModels, Streamed,
};
use starcast_pipeline::records::Records;
use starcast_pipeline::registry::Task;
use starcast_pipeline::store::Location;
use starcast_pipeline::{ExamplePhotos, FlagStore, ModelUploads};
use starcast_server::model_check::ModelChecker;
use starcast_server::{Admin, AppState, Limits};
use tempfile::TempDir;
use tower::ServiceExt;

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct TestServer {
    pub state: AppState,
    pub data: TempDir,
}

pub async fn server(models: ServedModels) -> TestServer {
    server_with_limits(models, Limits::default()).await
}

/// The review queue a test server in `data` keeps: records in
/// `records.db`, photos in `flags/`, as `starcast serve` keeps them.
pub async fn flag_store(data: &std::path::Path) -> FlagStore {
    let url = format!("sqlite://{}", data.join("records.db").display());
    let records = Records::open(&url).await.unwrap();
    FlagStore::open(records, Location::Local(data.join("flags")))
        .await
        .unwrap()
}

pub async fn server_with_limits(models: ServedModels, limits: Limits) -> TestServer {
    let data = tempfile::tempdir().unwrap();
    let site = data.path().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    std::fs::write(site.join("favicon.svg"), "<svg/>").unwrap();
    let leptos_options = LeptosOptions::builder()
        .output_name(starcast_app::OUTPUT_NAME)
        .site_root(site.to_string_lossy().as_ref())
        .build();
    let state = AppState::new(
        leptos_options,
        models,
        flag_store(data.path()).await,
        ExamplePhotos::new(data.path().join("examples")),
        limits,
    );
    TestServer { state, data }
}

/// The admin token test servers with uploads accept.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A test server whose admin may upload models into its data folder, each
/// checked by the `starcast` binary first, as `starcast serve` does.
pub async fn server_with_admin(models: ServedModels) -> TestServer {
    server_with_checked_uploads(models, 4 << 30).await
}

/// [`server_with_admin`] whose upload checks may use `memory_bytes`.
pub async fn server_with_checked_uploads(models: ServedModels, memory_bytes: u64) -> TestServer {
    let TestServer { state, data } = server(models).await;
    let uploads = ModelUploads::new(data.path().join("models/uploads"));
    let program = env!("CARGO_BIN_EXE_starcast");
    let checker = ModelChecker::new(program, Duration::from_secs(60), memory_bytes);
    let admin = Admin::new(ADMIN_TOKEN, uploads)
        .unwrap()
        .with_checker(checker);
    let state = state.with_admin(admin);
    TestServer { state, data }
}

impl TestServer {
    pub fn app(&self) -> Router {
        starcast_server::router(self.state.clone())
    }

    /// Sends a request to a new router and reads the whole answer.
    ///
    /// Tests take turns: Leptos collects a router's page routes by rendering
    /// the app, and that collection running while another router renders a
    /// page in the same process was seen to hang the page (about one run in
    /// ten). A server builds its one router before serving, so this never
    /// happens there; `tests/load.rs` covers concurrent pages.
    pub async fn send(&self, request: Request<Body>) -> Response<Body> {
        let _turn = TURN.lock().await;
        let response = self.app().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Response::from_parts(parts, Body::from(bytes))
    }

    /// Sends a request and hands back the answer's body unread, for
    /// streams. Only for API routes: the turn ends before the body is read.
    pub async fn send_streaming(&self, request: Request<Body>) -> Response<Body> {
        let _turn = TURN.lock().await;
        self.app().oneshot(request).await.unwrap()
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, String) {
        let response = self
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        let status = response.status();
        (status, text(response).await)
    }

    pub async fn post_json(&self, uri: &str, json: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json.to_string()))
            .unwrap();
        let response = self.send(request).await;
        let status = response.status();
        (status, serde_json::from_str(&text(response).await).unwrap())
    }

    pub async fn post_form(&self, uri: &str, form: Multipart) -> (StatusCode, serde_json::Value) {
        let response = self.send(form.request(uri)).await;
        let status = response.status();
        let body = text(response).await;
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        (status, json)
    }
}

/// Sends a raw HTTP/1.1 request (with `Connection: close`) over TCP and
/// reads the whole answer, as bytes arrive on the wire.
pub async fn over_tcp(address: std::net::SocketAddr, request: impl AsRef<[u8]>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_ref()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// Serves `state` on a loopback port over real TCP, telling the handlers
/// each peer's address as `starcast serve` does.
pub async fn serve_over_tcp(state: AppState) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = starcast_server::router(state)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(axum::serve(listener, app).into_future());
    address
}

/// Waits for every client task, failing if one fails or time runs out:
/// load tests stop by themselves.
pub async fn join_within(mut clients: tokio::task::JoinSet<()>, limit: Duration) {
    let all = async {
        while let Some(result) = clients.join_next().await {
            result.unwrap();
        }
    };
    tokio::time::timeout(limit, all)
        .await
        .unwrap_or_else(|_| panic!("the clients did not finish within {limit:?}"));
}

pub async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A multipart/form-data body built by hand, as a browser sends it.
#[derive(Default)]
pub struct Multipart {
    body: Vec<u8>,
}

const BOUNDARY: &str = "starcast-test-boundary";

impl Multipart {
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
        self
    }

    pub fn file(mut self, name: &str, file_name: &str, bytes: &[u8]) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// The content type and the finished body.
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body
            .extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        (
            format!("multipart/form-data; boundary={BOUNDARY}"),
            self.body,
        )
    }

    pub fn request(self, uri: &str) -> Request<Body> {
        let (content_type, body) = self.finish();
        Request::post(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    }

    /// The whole HTTP/1.1 request as bytes, for raw TCP clients.
    pub fn raw(self, uri: &str, extra_headers: &str) -> Vec<u8> {
        let (content_type, body) = self.finish();
        let mut raw = format!(
            "POST {uri} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra_headers}\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(&body);
        raw
    }
}

pub fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn info(task: ModelKind, name: &str) -> ModelInfo {
    ModelInfo {
        task,
        name: name.into(),
        version: "test".into(),
        architecture: "test".into(),
        source: "tests".into(),
        labels: vec!["red".into(), "green".into(), "blue".into()],
        metrics: [("accuracy".to_string(), 0.75)].into(),
        language: None,
    }
}

/// Names the dominant colour channel of a photo, with the channel means as
/// scores: a real computation on the decoded pixels.
pub struct ColourRecognizer(ModelInfo);

impl ColourRecognizer {
    pub fn new() -> Self {
        ColourRecognizer(info(ModelKind::ImageClassification, "colours"))
    }
}

impl ActorRecognizer for ColourRecognizer {
    fn info(&self) -> &ModelInfo {
        &self.0
    }

    fn recognize(&self, photo: &DynamicImage) -> Result<Recognition, ModelError> {
        let rgb = photo.to_rgb8();
        let mut sums = [0f64; 3];
        for pixel in rgb.pixels() {
            for (sum, &v) in sums.iter_mut().zip(pixel.0.iter()) {
                *sum += f64::from(v) + 1.0;
            }
        }
        let total: f64 = sums.iter().sum();
        let mut predictions: Vec<Prediction> = self
            .0
            .labels
            .iter()
            .zip(sums)
            .map(|(label, sum)| Prediction {
                label: label.clone(),
                score: (sum / total) as f32,
            })
            .collect();
        predictions.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(Recognition {
            predictions,
            faces: Vec::new(),
        })
    }
}

/// A recognizer with a bug: it panics.
pub struct PanickingRecognizer(ModelInfo);

impl PanickingRecognizer {
    pub fn new() -> Self {
        PanickingRecognizer(info(ModelKind::ImageClassification, "panics"))
    }
}

impl ActorRecognizer for PanickingRecognizer {
    fn info(&self) -> &ModelInfo {
        &self.0
    }

    fn recognize(&self, _: &DynamicImage) -> Result<Recognition, ModelError> {
        panic!("index out of bounds in a buggy model")
    }
}

/// Writes the sign's name and date word by word, up to `words` words, and
/// counts the words it was allowed to write.
pub struct EchoWriter {
    info: ModelInfo,
    words: usize,
    pause: Duration,
    pub written: Arc<AtomicUsize>,
    active: AtomicUsize,
    /// The most generations that ever ran at once.
    pub most_at_once: Arc<AtomicUsize>,
    /// Words of an unusable first sample, dropped with a restart.
    draft_words: usize,
}

impl EchoWriter {
    pub fn new(words: usize, pause: Duration) -> Self {
        EchoWriter {
            info: info(ModelKind::TextGeneration, "echo"),
            words,
            pause,
            written: Arc::new(AtomicUsize::new(0)),
            active: AtomicUsize::new(0),
            most_at_once: Arc::new(AtomicUsize::new(0)),
            draft_words: 0,
        }
    }

    /// The same writer, saying it writes `language`.
    pub fn writing(mut self, language: Language) -> Self {
        self.info.name = format!("echo-{language}");
        self.info.language = Some(language);
        self
    }

    /// Streams `words` draft words and a restart before the horoscope, as
    /// a model does when its first sample is unusable.
    pub fn with_draft(self, words: usize) -> Self {
        EchoWriter {
            draft_words: words,
            ..self
        }
    }
}

impl HoroscopeWriter for EchoWriter {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn write(
        &self,
        request: &HoroscopeRequest,
        on_token: &mut dyn FnMut(Streamed) -> ControlFlow<()>,
    ) -> Result<Horoscope, ModelError> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        for i in 0..self.draft_words {
            let _ = on_token(Streamed::Text(&format!(" draft{i}")));
        }
        if self.draft_words > 0 {
            let _ = on_token(Streamed::Restart);
        }
        let mut text = String::new();
        for i in 0..self.words {
            let piece = if i == 0 {
                format!("{} {}", request.sign.name(), request.date)
            } else {
                format!(" word{i}")
            };
            std::thread::sleep(self.pause);
            text.push_str(&piece);
            self.written.fetch_add(1, Ordering::SeqCst);
            if on_token(Streamed::Text(&piece)).is_break() {
                break;
            }
        }
        self.active.fetch_sub(1, Ordering::SeqCst);
        Ok(Horoscope {
            sign: request.sign,
            date: request.date,
            tokens: self.written.load(Ordering::SeqCst),
            text,
            model: format!("{} {}", self.info.name, self.info.version),
            tokens_per_s: 0.0,
        })
    }
}

/// MobileNetV2's ImageNet features with a new 3-class head whose weights
/// are zero and biases 0, 1, 2: every photo gets the third label first.
/// As safetensors bytes, the way a student's fine-tuned model arrives.
pub fn three_class_safetensors() -> Vec<u8> {
    use candle_core::{DType, Device, Tensor};
    let pth = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/models/mobilenet-v2-imagenet/model.pth");
    let mut tensors = starcast_model::vision::read_weights(&pth)
        .unwrap_or_else(|e| panic!("{e}: run scripts/fetch-defaults.sh data"));
    let head = Tensor::zeros((3, 1280), DType::F32, &Device::Cpu).unwrap();
    let bias = Tensor::new(&[0f32, 1.0, 2.0], &Device::Cpu).unwrap();
    tensors.insert("classifier.1.weight".into(), head);
    tensors.insert("classifier.1.bias".into(), bias);
    let file = tempfile::NamedTempFile::new().unwrap();
    candle_core::safetensors::save(&tensors, file.path()).unwrap();
    std::fs::read(file.path()).unwrap()
}

/// A listener on a free loopback port, and its base URL.
pub fn loopback_listener() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Serves `app` from a thread of its own, for tests whose code under test
/// blocks: the CLI as a child process, or a synchronous client.
pub fn serve_in_background(listener: std::net::TcpListener, app: Router) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
}

/// `root/<class>/<n>.png`: five crops of each named sample photo
/// (scripts/fetch-defaults.sh puts them in data/samples).
pub fn photo_dataset(root: &std::path::Path, classes: &[(&str, &str)]) {
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/samples");
    for (class, file) in classes {
        let path = samples.join(file);
        let photo = image::open(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run scripts/fetch-defaults.sh data",
                path.display()
            )
        });
        let (w, h) = (photo.width(), photo.height());
        std::fs::create_dir_all(root.join(class)).unwrap();
        for n in 0..5u32 {
            let crop = photo.crop_imm(w * n / 20, h * n / 25, w * 3 / 4, h * 3 / 4);
            let crop = crop.thumbnail(160, 160);
            crop.save(root.join(class).join(format!("{n}.png")))
                .unwrap();
        }
    }
}

/// Registers a version of the actor model made of `files` (name, bytes),
/// with a test lineage over a dataset of fingerprint `dataset_hash`.
pub fn register_version(
    registry: &starcast_pipeline::registry::Registry,
    files: &[(&str, Vec<u8>)],
    dataset_hash: &str,
) -> starcast_pipeline::registry::Version {
    register_version_of(Task::Actors, registry, files, dataset_hash)
}

/// Registers a version of the `task` model, as [`register_version`] does.
pub fn register_version_of(
    task: Task,
    registry: &starcast_pipeline::registry::Registry,
    files: &[(&str, Vec<u8>)],
    dataset_hash: &str,
) -> starcast_pipeline::registry::Version {
    let staged = registry.stage(task).unwrap();
    for (name, bytes) in files {
        std::fs::write(staged.path().join(name), bytes).unwrap();
    }
    let lineage = starcast_pipeline::registry::Lineage {
        created: chrono::Utc::now(),
        dataset: "test".into(),
        dataset_hash: dataset_hash.into(),
        base_model: "mobilenet-v2-imagenet".into(),
        parameters: serde_json::json!({}),
        code_revision: "test".into(),
    };
    registry.commit(staged, &lineage).unwrap()
}

/// The config of a three-class MobileNetV2 classifier labelled Ada, Bea, Cleo.
pub const THREE_CLASS_CONFIG: &str = r#"{"task": "image-classification", "architecture": "mobilenet_v2", "labels": ["Ada", "Bea", "Cleo"]}"#;

/// A loopback port nothing listens on now, for a `starcast serve` to take.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the `starcast` binary with `args`, logging warnings only.
pub fn starcast(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// What a run that must succeed printed.
pub fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a run that must fail said.
pub fn failure(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Starts `starcast` with `args` and kills it, as a crash would, once
/// `checkpoint` holds a finished epoch.
pub fn crash_after_first_epoch(args: &[String], checkpoint: &std::path::Path) {
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !checkpoint.join("state.json").is_file() {
        assert!(
            started.elapsed().as_secs() < 300,
            "no epoch was checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run.kill().unwrap();
    run.wait().unwrap();
}

/// Each epoch's training loss in a model folder's `training.json`; the
/// history is at the JSON pointer `history`.
pub fn epoch_losses(folder: &std::path::Path, history: &str) -> Vec<f64> {
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("training.json")).unwrap())
            .unwrap();
    training
        .pointer(history)
        .and_then(|h| h.as_array())
        .unwrap()
        .iter()
        .map(|r| r["train_loss"].as_f64().unwrap())
        .collect()
}

/// A `starcast serve` child process on a free loopback port, killed when
/// dropped.
pub struct ServeProcess {
    pub port: u16,
    child: std::process::Child,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// Runs `command` (the `starcast` binary, its environment set) as
    /// `serve --host 127.0.0.1 --port P` with `args`, and waits for its
    /// `/healthz` to say 200: models loaded.
    pub fn start<A: AsRef<std::ffi::OsStr>>(
        mut command: std::process::Command,
        args: impl IntoIterator<Item = A>,
    ) -> ServeProcess {
        let port = free_port();
        let child = command
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut served = ServeProcess { port, child };
        let started = std::time::Instant::now();
        while !served
            .get("/healthz")
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "starcast serve did not come up"
            );
            assert!(
                served.child.try_wait().unwrap().is_none(),
                "starcast serve exited"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        served
    }

    /// One GET over a fresh connection: the whole answer.
    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    }

    /// One POST of `request` (a whole raw HTTP/1.1 request): the answer.
    pub fn send(&self, request: &[u8]) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(request).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    }
}

/// Posts one actor flag ("not me, but Ada") with a photo to the server on
/// `port`, as client `client` (sent as `X-Forwarded-For`, for a server that
/// trusts loopback as its proxy): its id once the server acknowledged it,
/// `None` when the server was gone first.
pub fn post_flag(port: u16, client: u32, photo: &[u8]) -> Option<String> {
    use std::io::{Read, Write};
    let form = Multipart::default()
        .text("task", "actors")
        .text("input", r#"{"file": "me.png"}"#)
        .text(
            "output",
            r#"{"predictions": [{"label": "Ada", "score": 0.9}]}"#,
        )
        .text("reason", "not me")
        .text("label", "Ada")
        .file("image", "photo.png", photo);
    let forwarded = format!(
        "X-Forwarded-For: 10.{}.{}.{}\r\n",
        client >> 16 & 255,
        client >> 8 & 255,
        client & 255
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.write_all(&form.raw("/api/flags", &forwarded)).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    if !response.starts_with("HTTP/1.1 200") {
        assert!(response.is_empty(), "a flag was refused: {response}");
        return None;
    }
    let body = response.split("\r\n\r\n").nth(1)?;
    let receipt: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(receipt["id"].as_str()?.to_string())
}
