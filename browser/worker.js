// The Web Worker that runs Starcast's models in the visitor's browser, off
// the page's thread so the page stays responsive while a model works.
//
// The page posts {id, op, ...}; the worker answers {id, progress}, {id,
// piece} (a horoscope's text as it is written; null drops the text so far),
// then {id, done} or {id, error}. A model's files are fetched once and kept
// in Cache Storage, so a second visit downloads nothing.

import init, { ActorModel, HoroscopeModel } from "./starcast_browser.js";

const CACHE = "starcast-models-v1";
const ready = init();
const models = new Map();

async function cached(url) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(url);
  if (hit) return { response: hit, fresh: false };
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`could not download ${url} (status ${response.status})`);
  }
  return { response, fresh: true, cache };
}

// The file's bytes, counting each chunk into `progress` as it arrives.
async function download(url, progress) {
  const { response, fresh, cache } = await cached(url);
  const reader = response.clone().body.getReader();
  const chunks = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
    progress(value.length);
  }
  if (fresh) await cache.put(url, response);
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

// Loads `model` (an API `BrowserModel`) under `key`.
async function load(id, { key, model }) {
  const total = model.files.reduce((sum, file) => sum + file.size, 0);
  let loaded = 0;
  const progress = (bytes) => {
    loaded += bytes;
    postMessage({ id, progress: { loaded, total } });
  };
  const base = new URL(model.base, self.location.href);
  // Files the visitor picked come with their bytes.
  const contents = await Promise.all(
    model.files.map((file) =>
      file.bytes ? new Uint8Array(file.bytes) : download(new URL(file.name, base).href, progress),
    ),
  );
  const names = model.files.map((file) => file.name);
  await ready;
  models.get(key)?.free();
  models.delete(key);
  const kind = model.task === "actors" ? ActorModel : HoroscopeModel;
  const instance = kind.load(model.source, names, contents);
  models.set(key, instance);
  return instance.info();
}

function loadedModel(key) {
  const model = models.get(key);
  if (!model) throw new Error(`no model ${key} is loaded in this browser`);
  return model;
}

const operations = {
  load,
  recognize: async (_, { key, photo }) => loadedModel(key).recognize(new Uint8Array(photo)),
  write: async (id, { key, query, today }) =>
    loadedModel(key).write(query, today, (piece) => postMessage({ id, piece })),
};

self.onmessage = async ({ data }) => {
  const { id, op } = data;
  try {
    const run = operations[op];
    if (!run) throw new Error(`unknown operation ${op}`);
    postMessage({ id, done: await run(id, data) });
  } catch (error) {
    postMessage({ id, error: String(error?.message ?? error) });
  }
};
