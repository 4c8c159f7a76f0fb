//! Finished horoscopes kept in memory, so a day's horoscope is written once
//! and then served at once to everyone who asks.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use crate::{
    Horoscope, HoroscopeRequest, HoroscopeWriter, Language, ModelError, ModelInfo, Streamed,
    TextScore, ZodiacSign,
};

/// How many horoscopes are kept: every sign for a month and then some.
pub const CACHED_HOROSCOPES: usize = 1024;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    sign: ZodiacSign,
    date: NaiveDate,
    temperature: u32,
    top_p: u32,
    seed: Option<u64>,
    language: Language,
}

impl From<&HoroscopeRequest> for Key {
    fn from(r: &HoroscopeRequest) -> Self {
        Key {
            sign: r.sign,
            date: r.date,
            temperature: r.temperature.to_bits(),
            top_p: r.top_p.to_bits(),
            seed: r.seed,
            language: r.language,
        }
    }
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Horoscope>,
    order: VecDeque<Key>,
}

/// A writer with a bounded memory of what it wrote; the oldest goes first.
pub struct CachedWriter {
    inner: Arc<dyn HoroscopeWriter>,
    capacity: usize,
    entries: Mutex<Entries>,
}

impl CachedWriter {
    pub fn new(inner: Arc<dyn HoroscopeWriter>, capacity: usize) -> Self {
        CachedWriter {
            inner,
            capacity,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn cached(&self, key: &Key) -> Option<Horoscope> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.map.get(key).cloned()
    }

    fn remember(&self, key: Key, horoscope: Horoscope) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.map.insert(key.clone(), horoscope).is_none() {
            entries.order.push_back(key);
        }
        while entries.order.len() > self.capacity {
            if let Some(oldest) = entries.order.pop_front() {
                entries.map.remove(&oldest);
            }
        }
    }
}

impl HoroscopeWriter for CachedWriter {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    fn location(&self) -> Option<&std::path::Path> {
        self.inner.location()
    }

    fn write(
        &self,
        request: &HoroscopeRequest,
        on_token: &mut dyn FnMut(Streamed) -> ControlFlow<()>,
    ) -> Result<Horoscope, ModelError> {
        let key = Key::from(request);
        if let Some(horoscope) = self.cached(&key) {
            let _ = on_token(Streamed::Text(&horoscope.text));
            return Ok(horoscope);
        }
        let mut finished = true;
        let horoscope = self.inner.write(request, &mut |event| {
            let flow = on_token(event);
            finished &= flow.is_continue();
            flow
        })?;
        if finished {
            self.remember(key, horoscope.clone());
        }
        Ok(horoscope)
    }

    fn score(
        &self,
        sign: ZodiacSign,
        date: NaiveDate,
        text: &str,
    ) -> Result<TextScore, ModelError> {
        self.inner.score(sign, date, text)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ModelKind;

    struct Counting {
        info: ModelInfo,
        calls: AtomicUsize,
    }

    impl HoroscopeWriter for Counting {
        fn info(&self) -> &ModelInfo {
            &self.info
        }
        fn write(
            &self,
            request: &HoroscopeRequest,
            on_token: &mut dyn FnMut(Streamed) -> ControlFlow<()>,
        ) -> Result<Horoscope, ModelError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let text = format!("call {n}");
            let _ = on_token(Streamed::Text(&text));
            Ok(Horoscope {
                sign: request.sign,
                date: request.date,
                text,
                model: "m".into(),
                tokens: 1,
                tokens_per_s: 1.0,
            })
        }
    }

    fn request(day: u32, seed: Option<u64>) -> HoroscopeRequest {
        HoroscopeRequest {
            sign: ZodiacSign::Leo,
            date: NaiveDate::from_ymd_opt(2026, 1, day).unwrap(),
            temperature: 0.6,
            top_p: 0.7,
            seed,
            language: Language::En,
        }
    }

    fn counting() -> Arc<Counting> {
        Arc::new(Counting {
            info: ModelInfo {
                task: ModelKind::TextGeneration,
                name: "m".into(),
                version: "1".into(),
                architecture: "test".into(),
                source: "test".into(),
                labels: vec![],
                metrics: Default::default(),
                language: None,
            },
            calls: AtomicUsize::new(0),
        })
    }

    #[test]
    fn the_same_request_is_written_once_and_the_cache_is_bounded() {
        let inner = counting();
        let cache = CachedWriter::new(inner.clone(), 2);
        let mut streamed = String::new();
        let first = cache
            .write(&request(1, None), &mut |_| ControlFlow::Continue(()))
            .unwrap();
        let again = cache
            .write(&request(1, None), &mut |event| {
                if let Streamed::Text(piece) = event {
                    streamed.push_str(piece);
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(streamed, first.text, "a cached horoscope still streams");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        cache
            .write(&request(1, Some(9)), &mut |_| ControlFlow::Continue(()))
            .unwrap();
        cache
            .write(&request(2, None), &mut |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
        cache
            .write(&request(1, None), &mut |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            4,
            "the oldest entry was evicted"
        );
    }

    #[test]
    fn an_abandoned_horoscope_is_not_cached() {
        let inner = counting();
        let cache = CachedWriter::new(inner.clone(), 8);
        cache
            .write(&request(1, None), &mut |_| ControlFlow::Break(()))
            .unwrap();
        cache
            .write(&request(1, None), &mut |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }
}
