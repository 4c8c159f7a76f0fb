//! Starcast's models in the visitor's browser. The page's Web Worker
//! fetches a model folder's files, hands them to [`ActorModel::load`] or
//! [`HoroscopeModel::load`], and asks them as the server's API would be
//! asked; answers are the API's JSON, so the page reads both alike.
//!
//! The loaders are the server's own, reading the folder from memory: a
//! student's `model.pth` or safetensors with its labels, the face gallery,
//! or a GGUF loads here exactly as it does there.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use chrono::NaiveDate;
use js_sys::{Function, Uint8Array};
use starcast_model::folder::{Files, ModelFolder};
use starcast_model::photo::decode_photo;
use starcast_model::text::horoscope_writer;
use starcast_model::vision::ClassifierOptions;
use starcast_model::{
    ActorRecognizer, ActorReport, HoroscopeQuery, HoroscopeWriter, Streamed,
    load_actor_recognizer_from,
};
use wasm_bindgen::prelude::*;
use web_time::Instant;

/// A model folder handed over by the page: `names[i]` (relative to the
/// folder, `/`-separated) holds `contents[i]`; `source` says where the
/// files came from (a Hub repo, the Space itself) and names the folder.
fn folder_files(
    source: &str,
    names: Vec<String>,
    contents: Vec<Uint8Array>,
) -> Result<Files, JsError> {
    if names.len() != contents.len() {
        return Err(JsError::new(&format!(
            "{} file names for {} files",
            names.len(),
            contents.len()
        )));
    }
    Ok(Files::in_memory(
        source,
        names
            .into_iter()
            .zip(contents)
            .map(|(name, bytes)| (name, bytes.to_vec())),
    ))
}

fn failed(error: impl std::fmt::Display) -> JsError {
    JsError::new(&error.to_string())
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, JsError> {
    serde_json::to_string(value).map_err(failed)
}

/// An actor model: a classifier or a face gallery.
#[wasm_bindgen]
pub struct ActorModel {
    recognizer: Arc<dyn ActorRecognizer>,
}

#[wasm_bindgen]
impl ActorModel {
    /// Loads a model folder from its files.
    pub fn load(
        source: &str,
        names: Vec<String>,
        contents: Vec<Uint8Array>,
    ) -> Result<ActorModel, JsError> {
        let files = folder_files(source, names, contents)?;
        let recognizer =
            load_actor_recognizer_from(&files, Path::new(source), &ClassifierOptions::default())
                .map_err(failed)?;
        Ok(ActorModel { recognizer })
    }

    /// What the page shows about the model: the API's `ModelInfo` JSON.
    pub fn info(&self) -> Result<String, JsError> {
        json(self.recognizer.info())
    }

    /// The actors in a photo (the file's bytes): the API's `ActorReport` JSON.
    pub fn recognize(&self, photo: &[u8]) -> Result<String, JsError> {
        let start = Instant::now();
        let photo = decode_photo(photo).map_err(failed)?;
        let recognition = self.recognizer.recognize(&photo.image).map_err(failed)?;
        let info = self.recognizer.info();
        json(&ActorReport {
            recognition,
            width: photo.image.width(),
            height: photo.image.height(),
            model: format!("{} {}", info.name, info.version),
            elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

/// A horoscope model.
#[wasm_bindgen]
pub struct HoroscopeModel {
    writer: Arc<dyn HoroscopeWriter>,
}

#[wasm_bindgen]
impl HoroscopeModel {
    /// Loads a model folder from its files.
    pub fn load(
        source: &str,
        names: Vec<String>,
        contents: Vec<Uint8Array>,
    ) -> Result<HoroscopeModel, JsError> {
        let files = folder_files(source, names, contents)?;
        let folder = ModelFolder::open_in(files, Path::new(source)).map_err(failed)?;
        let writer = horoscope_writer(&folder, &Device::Cpu).map_err(failed)?;
        Ok(HoroscopeModel { writer })
    }

    /// What the page shows about the model: the API's `ModelInfo` JSON.
    pub fn info(&self) -> Result<String, JsError> {
        json(self.writer.info())
    }

    /// Writes a horoscope. `query` is the API's `HoroscopeQuery` JSON and
    /// `today` (`YYYY-MM-DD`) the visitor's date, used when the query has
    /// none. `on_text` is called with each piece of text as it is written,
    /// and with `null` when the text so far is dropped for a new sample;
    /// returns the API's `Horoscope` JSON.
    pub fn write(&self, query: &str, today: &str, on_text: &Function) -> Result<String, JsError> {
        let query: HoroscopeQuery = serde_json::from_str(query)
            .map_err(|e| failed(format!("the request is not a horoscope query: {e}")))?;
        let today = NaiveDate::parse_from_str(today, "%Y-%m-%d")
            .map_err(|_| failed(format!("today's date '{today}' is not YYYY-MM-DD")))?;
        let request = query.validate(today).map_err(failed)?;
        let mut on_token = |piece: Streamed| {
            let piece = match piece {
                Streamed::Text(text) => JsValue::from_str(text),
                Streamed::Restart => JsValue::NULL,
            };
            match on_text.call1(&JsValue::NULL, &piece) {
                Ok(_) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        };
        json(&self.writer.write(&request, &mut on_token).map_err(failed)?)
    }
}
