//! Holding browser objects (blobs, event streams) in the reactive graph.
//!
//! The server renders pages on any of its threads and may drop a page's
//! reactive state on another, so thread-local storage there is a crash.
//! Browser objects are only ever created in the browser: a thread-safe slot
//! that is empty on the server, holding a `SendWrapper` in the browser
//! (where there is one thread), is safe on both sides.

use leptos::prelude::*;
use send_wrapper::SendWrapper;

/// A reactive-graph slot for one browser object.
pub type BrowserSlot<T> = StoredValue<Option<SendWrapper<T>>>;

pub fn browser_slot<T: 'static>() -> BrowserSlot<T> {
    StoredValue::new(None)
}

pub fn fill<T: 'static>(slot: BrowserSlot<T>, value: Option<T>) {
    slot.set_value(value.map(SendWrapper::new));
}

pub fn cloned<T: Clone + 'static>(slot: BrowserSlot<T>) -> Option<T> {
    slot.with_value(|v| v.as_ref().map(|w| (**w).clone()))
}
