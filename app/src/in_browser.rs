//! "Run in my browser": the page's side of the Web Worker that runs the
//! models in WebAssembly (`/pkg/worker.js`, over the `starcast-browser`
//! crate). On a static Space there is no server, so every prediction is
//! made here; on the Docker app the visitor chooses, and a browser that
//! can't run the models (no WebAssembly SIMD) is answered by the server.
//!
//! The worker answers in the REST API's JSON, so the pages read a report
//! or a horoscope the same way whichever side made it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use leptos::prelude::*;
use serde::de::DeserializeOwned;
use starcast_api::{
    ActorReport, BrowserModel, Horoscope, HoroscopeQuery, Language, ModelInfo, Task,
};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::api::client::{self, Failure};
use crate::i18n::{browser_language, locale, show_in};

/// Where the list of models a browser can run is: an endpoint of the
/// server, or a file of that name on a static Space.
const CATALOGUE: &str = "/api/browser/models";
const WORKER: &str = "/pkg/worker.js";
/// The marker a static build puts in every page's `<head>`.
const STATIC_SITE: &str = "meta[name=starcast-site][content=static]";

/// A model download under way, in bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Download {
    pub loaded: u64,
    pub total: u64,
}

/// The page-wide choice and what the browser holds, provided by `App`.
#[derive(Clone, Copy)]
pub struct InBrowser {
    /// Whether predictions are made in this browser.
    pub chosen: RwSignal<bool>,
    /// Whether a server answers predictions: not on a static Space.
    pub has_server: RwSignal<bool>,
    /// Whether this browser can run the models.
    pub supported: RwSignal<bool>,
    /// The model download under way.
    pub download: RwSignal<Option<Download>>,
    /// The models loaded in this browser, as they describe themselves.
    pub loaded: RwSignal<Vec<ModelInfo>>,
    /// Why the last answer came from the server although this browser was
    /// chosen.
    pub fell_back: RwSignal<Option<String>>,
}

impl InBrowser {
    /// Provides the state; once the page runs in a browser, finds out
    /// whether it is a static Space and whether the browser can run models.
    pub fn provide() {
        let state = InBrowser {
            chosen: RwSignal::new(false),
            has_server: RwSignal::new(true),
            supported: RwSignal::new(false),
            download: RwSignal::new(None),
            loaded: RwSignal::new(Vec::new()),
            fell_back: RwSignal::new(None),
        };
        provide_context(state);
        Effect::new(move |_| {
            let is_static = document()
                .query_selector(STATIC_SITE)
                .ok()
                .flatten()
                .is_some();
            state.supported.set(browser_can_run_models());
            state.has_server.set(!is_static);
            state.chosen.set(is_static);
            if is_static
                && let Some(language) = browser_language()
                && language != locale().get_untracked()
            {
                show_in(language);
            }
        });
    }
}

pub fn in_browser() -> InBrowser {
    expect_context::<InBrowser>()
}

/// A module that uses one SIMD instruction (`i32x4.splat`): browsers
/// without WebAssembly SIMD refuse it, and they can't load the models'
/// module either.
const SIMD_PROBE: [u8; 29] = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // a type: () -> v128
    0x03, 0x02, 0x01, 0x00, // one function of it
    0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x11, 0x0b, // i32.const 0; i32x4.splat
];

fn browser_can_run_models() -> bool {
    let global = js_sys::global();
    let has_worker = Reflect::has(&global, &"Worker".into()).unwrap_or(false);
    let probe = js_sys::Uint8Array::from(&SIMD_PROBE[..]);
    has_worker && js_sys::WebAssembly::validate(&probe).unwrap_or(false)
}

/// A call to the worker that has not finished.
struct Call {
    resolve: Function,
    reject: Function,
    on_progress: Option<Box<dyn Fn(Download)>>,
    on_piece: Option<Box<dyn Fn(Option<String>)>>,
}

/// The worker and the calls it is answering.
struct Client {
    worker: Worker,
    next_id: Cell<u32>,
    calls: Rc<RefCell<HashMap<u32, Call>>>,
    /// The models loaded in the worker, by key, with the address their
    /// files came from.
    loaded: RefCell<HashMap<String, String>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
}

thread_local! {
    // Only ever filled in a browser (a page's event handlers), where there
    // is one thread; the server never calls into this module.
    static CLIENT: RefCell<Option<Rc<Client>>> = const { RefCell::new(None) };
    static CATALOGUE_LIST: RefCell<Option<Vec<BrowserModel>>> = const { RefCell::new(None) };
    /// The actor model the visitor picked from their own files, kept to
    /// load again into a new worker.
    static OWN_ACTORS: RefCell<Option<Vec<(String, web_sys::File)>>> = const { RefCell::new(None) };
}

/// What the worker's loaded-models map says of the visitor's own model.
const OWN: &str = "own files";

/// The weights file names a model folder's loader looks for, by extension.
const WEIGHTS: [&str; 4] = ["safetensors", "pth", "pt", "bin"];

fn field(data: &JsValue, name: &str) -> Option<JsValue> {
    Reflect::get(data, &name.into())
        .ok()
        .filter(|v| !v.is_undefined())
}

impl Client {
    fn start() -> Result<Rc<Client>, Failure> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options(WORKER, &options).map_err(|_| {
            Failure(
                "This browser could not start the model worker: the server answers instead.".into(),
            )
        })?;
        let calls: Rc<RefCell<HashMap<u32, Call>>> = Rc::default();
        let answered = calls.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            let Some(id) = field(&data, "id").and_then(|v| v.as_f64()) else {
                return;
            };
            let id = id as u32;
            let mut calls = answered.borrow_mut();
            if let Some(progress) = field(&data, "progress") {
                let number = |name| {
                    field(&progress, name)
                        .and_then(|v| v.as_f64())
                        .unwrap_or(0.0)
                };
                if let Some(on_progress) = calls.get(&id).and_then(|c| c.on_progress.as_ref()) {
                    on_progress(Download {
                        loaded: number("loaded") as u64,
                        total: number("total") as u64,
                    });
                }
            } else if let Some(piece) = field(&data, "piece") {
                if let Some(on_piece) = calls.get(&id).and_then(|c| c.on_piece.as_ref()) {
                    on_piece(piece.as_string());
                }
            } else if let Some(call) = calls.remove(&id) {
                match (field(&data, "done"), field(&data, "error")) {
                    (Some(done), _) => drop(call.resolve.call1(&JsValue::NULL, &done)),
                    (None, error) => drop(
                        call.reject
                            .call1(&JsValue::NULL, &error.unwrap_or(JsValue::NULL)),
                    ),
                }
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        // A worker that fails to start (or dies) answers nothing: end its
        // calls, and let the next call start a new one.
        let failed = calls.clone();
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            CLIENT.take();
            let reason = JsValue::from_str("its worker stopped");
            for (_, call) in failed.borrow_mut().drain() {
                let _ = call.reject.call1(&JsValue::NULL, &reason);
            }
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Rc::new(Client {
            worker,
            next_id: Cell::new(0),
            calls,
            loaded: RefCell::default(),
            _on_message: on_message,
            _on_error: on_error,
        }))
    }

    fn current() -> Result<Rc<Client>, Failure> {
        if let Some(client) = CLIENT.with_borrow(Clone::clone) {
            return Ok(client);
        }
        let client = Client::start()?;
        CLIENT.set(Some(client.clone()));
        Ok(client)
    }

    /// Posts `message` (`op` and its fields) with `transfer`red buffers;
    /// the worker's `done` string, or its error as the failure.
    async fn call(
        &self,
        message: serde_json::Value,
        extra: &[(&str, JsValue)],
        on_progress: Option<Box<dyn Fn(Download)>>,
        on_piece: Option<Box<dyn Fn(Option<String>)>>,
    ) -> Result<String, Failure> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let unreadable = |_| Failure("The page could not talk to the model worker.".into());
        let object: Object = js_sys::JSON::parse(&message.to_string())
            .map_err(unreadable)?
            .unchecked_into();
        Reflect::set(&object, &"id".into(), &id.into()).map_err(unreadable)?;
        let transfer = Array::new();
        for (name, value) in extra {
            Reflect::set(&object, &(*name).into(), value).map_err(unreadable)?;
            if value.is_instance_of::<js_sys::ArrayBuffer>() {
                transfer.push(value);
            }
        }
        let calls = self.calls.clone();
        let mut on_progress = Some(on_progress);
        let mut on_piece = Some(on_piece);
        let answer = Promise::new(&mut |resolve, reject| {
            calls.borrow_mut().insert(
                id,
                Call {
                    resolve,
                    reject,
                    on_progress: on_progress.take().flatten(),
                    on_piece: on_piece.take().flatten(),
                },
            );
        });
        self.worker
            .post_message_with_transfer(&object, &transfer)
            .map_err(unreadable)?;
        match JsFuture::from(answer).await {
            Ok(done) => Ok(done.as_string().unwrap_or_default()),
            Err(error) => Err(Failure(error.as_string().map_or_else(
                || "The model worker stopped.".to_string(),
                |reason| format!("The model in this browser failed: {reason}."),
            ))),
        }
    }
}

/// Stops whatever the worker is doing (a horoscope being written): the
/// worker is ended, and the next call starts a new one, which loads its
/// models again from the browser's cache.
pub fn stop() {
    if let Some(client) = CLIENT.take() {
        client.worker.terminate();
        for (_, call) in client.calls.borrow_mut().drain() {
            let _ = call.reject.call0(&JsValue::NULL);
        }
    }
}

async fn catalogue() -> Result<Vec<BrowserModel>, Failure> {
    if let Some(list) = CATALOGUE_LIST.with_borrow(Clone::clone) {
        return Ok(list);
    }
    let list: Vec<BrowserModel> = client::get_json(CATALOGUE).await?;
    CATALOGUE_LIST.set(Some(list.clone()));
    Ok(list)
}

fn parse<T: DeserializeOwned>(json: &str) -> Result<T, Failure> {
    serde_json::from_str(json)
        .map_err(|e| Failure(format!("The model's answer could not be read: {e}.")))
}

/// The worker with the model for `task` (in `language`) loaded, and the
/// model's key there.
async fn with_model(
    state: InBrowser,
    task: Task,
    language: Option<Language>,
) -> Result<(Rc<Client>, String), Failure> {
    if task == Task::Actors && OWN_ACTORS.with_borrow(Option::is_some) {
        let client = Client::current()?;
        let key = task.to_string();
        if client.loaded.borrow().get(&key).map(String::as_str) != Some(OWN) {
            load_own(state, &client, &key).await?;
        }
        return Ok((client, key));
    }
    let model = catalogue()
        .await?
        .into_iter()
        .find(|m| m.task == task && (language.is_none() || m.language == language))
        .ok_or_else(|| {
            Failure(match language {
                Some(language) => format!(
                    "No {task} model in {} can run in this browser.",
                    language.native_name()
                ),
                None => format!("No {task} model can run in this browser."),
            })
        })?;
    let client = Client::current()?;
    let key = model.key();
    if client.loaded.borrow().get(&key) == Some(&model.base) {
        return Ok((client, key));
    }
    state.download.set(Some(Download {
        loaded: 0,
        total: model.files.iter().map(|f| f.size).sum(),
    }));
    let message = serde_json::json!({ "op": "load", "key": key, "model": model });
    let progress = move |download| state.download.set(Some(download));
    let answer = client
        .call(message, &[], Some(Box::new(progress)), None)
        .await;
    state.download.set(None);
    let info: ModelInfo = parse(&answer?)?;
    client.loaded.borrow_mut().insert(key.clone(), model.base);
    show_loaded(state, info);
    Ok((client, key))
}

fn show_loaded(state: InBrowser, info: ModelInfo) {
    state.loaded.update(|loaded| {
        loaded.retain(|m| !(m.task == info.task && m.language == info.language));
        loaded.push(info);
    });
}

/// Loads the visitor's picked files into the worker under `key`.
async fn load_own(state: InBrowser, client: &Client, key: &str) -> Result<ModelInfo, Failure> {
    let picked = OWN_ACTORS.with_borrow(Clone::clone).unwrap_or_default();
    let unreadable = |_| Failure("The picked files could not be read.".into());
    let files = Array::new();
    for (name, file) in &picked {
        let bytes = JsFuture::from(file.array_buffer())
            .await
            .map_err(unreadable)?;
        let entry = Object::new();
        Reflect::set(&entry, &"name".into(), &name.as_str().into()).map_err(unreadable)?;
        Reflect::set(&entry, &"size".into(), &file.size().into()).map_err(unreadable)?;
        Reflect::set(&entry, &"bytes".into(), &bytes).map_err(unreadable)?;
        files.push(&entry);
    }
    let model = Object::new();
    Reflect::set(&model, &"task".into(), &"actors".into()).map_err(unreadable)?;
    Reflect::set(&model, &"source".into(), &OWN.into()).map_err(unreadable)?;
    Reflect::set(&model, &"base".into(), &"/".into()).map_err(unreadable)?;
    Reflect::set(&model, &"files".into(), &files).map_err(unreadable)?;
    let message = serde_json::json!({ "op": "load", "key": key });
    let info: ModelInfo = parse(
        &client
            .call(message, &[("model", model.into())], None, None)
            .await?,
    )?;
    client
        .loaded
        .borrow_mut()
        .insert(key.to_string(), OWN.to_string());
    show_loaded(state, info.clone());
    Ok(info)
}

/// Loads the visitor's own actor model from files they picked on the page
/// (the weights, `.pth` or `.safetensors`, with its `config.json` or
/// `labels.txt`), as the server's loaders would: recognitions in this
/// browser use it from then on. Nothing is uploaded.
pub async fn use_own_actors(
    state: InBrowser,
    picked: Vec<web_sys::File>,
) -> Result<ModelInfo, Failure> {
    let weights = picked
        .iter()
        .filter(|f| {
            WEIGHTS
                .iter()
                .any(|e| f.name().to_lowercase().ends_with(&format!(".{e}")))
        })
        .count();
    if weights != 1 {
        return Err(Failure(
            "Pick one weights file (.pth, .pt, .bin or .safetensors), with its config.json or labels.txt.".into(),
        ));
    }
    // The weights under the name a model folder's loader looks for.
    let named = picked
        .into_iter()
        .map(|file| {
            let name = file.name();
            let extension = name.rsplit('.').next().unwrap_or_default().to_lowercase();
            let name = if WEIGHTS.contains(&extension.as_str()) {
                format!("model.{extension}")
            } else {
                name
            };
            (name, file)
        })
        .collect();
    OWN_ACTORS.set(Some(named));
    let client = Client::current()?;
    let result = load_own(state, &client, &Task::Actors.to_string()).await;
    if result.is_err() {
        OWN_ACTORS.set(None);
    } else {
        state.chosen.set(true);
    }
    result
}

/// Who is in `photo`, answered in this browser.
pub async fn recognize(state: InBrowser, photo: &Blob) -> Result<ActorReport, Failure> {
    let (client, key) = with_model(state, Task::Actors, None).await?;
    let buffer = JsFuture::from(photo.array_buffer())
        .await
        .map_err(|_| Failure("The photo could not be read.".into()))?;
    let message = serde_json::json!({ "op": "recognize", "key": key });
    parse(
        &client
            .call(message, &[("photo", buffer)], None, None)
            .await?,
    )
}

/// A horoscope written in this browser; `on_piece` gets the text as it
/// is written (`None`: the text so far is dropped for a new sample).
pub async fn write(
    state: InBrowser,
    query: &HoroscopeQuery,
    today: &str,
    on_piece: impl Fn(Option<String>) + 'static,
) -> Result<Horoscope, Failure> {
    let language = query.lang.as_deref().and_then(|code| code.parse().ok());
    let (client, key) = with_model(state, Task::Horoscope, language).await?;
    let query = serde_json::to_string(query).unwrap_or_default();
    let message = serde_json::json!({ "op": "write", "key": key, "query": query, "today": today });
    parse(
        &client
            .call(message, &[], None, Some(Box::new(on_piece)))
            .await?,
    )
}
