// bench/browser.sh's harness: one headless Chromium, one loopback static
// host, Starcast's Web Worker beside its peers in the same page.
//
// - classification, batch 1: Starcast's worker against onnxruntime-web's
//   WASM backend, both single-threaded, on the same torchvision networks,
//   from a 256x256 JPEG's bytes to probabilities (decode, crop, normalise,
//   forward, softmax: Starcast's report times exactly that), and
//   onnxruntime-web's forward pass alone on a ready tensor;
// - generation: Starcast's worker against wllama (llama.cpp in WASM),
//   single-threaded, on the same SmolLM2 GGUF and prompt;
// - a first visit to the static Space: the bytes it downloads and the
//   time until its first answer.
//
// Prints one JSON object per figure. Environment: WORK (bench/browser_models.py's folder), SMOLLM2 (its model folder),
// SPACE (an exported static Space), PEERS (bench/browser's node_modules),
// PHOTO (a photo for the Space), RUNS.

import { createServer } from "node:http";
import { readFileSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { extname, join, normalize, relative } from "node:path";
import { chromium } from "../e2e/node_modules/playwright-core/index.mjs";

const { WORK, SMOLLM2, SPACE, PEERS, PHOTO } = process.env;
const runs = Number(process.env.RUNS ?? 20);

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

// Files under each prefix come from a folder, the rest from the static
// Space; `/bench/` is an empty page for the measurements.
const MOUNTS = {
  "/ort/": join(PEERS, "onnxruntime-web/dist"),
  "/wllama/": join(PEERS, "@wllama/wllama/esm"),
  "/work/": WORK,
  "/smollm2/": SMOLLM2,
  "/": SPACE,
};

function serve() {
  const requests = [];
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://x").pathname);
    requests.push({ path, bytes: 0 });
    if (path === "/bench/") {
      response.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>bench</title>");
      return;
    }
    const mount = Object.keys(MOUNTS).find((prefix) => path.startsWith(prefix));
    let file = mount && normalize(join(MOUNTS[mount], path.slice(mount.length)));
    if (file && !relative(MOUNTS[mount], file).startsWith("..")) {
      try {
        if (statSync(file).isDirectory()) file = join(file, "index.html");
        const bytes = readFileSync(file);
        requests.at(-1).bytes = bytes.length;
        response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
        response.end(bytes);
        return;
      } catch {
        // not there
      }
    }
    response.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${server.address().port}`, server, requests })));
}

function size(path) {
  return statSync(path).size;
}

// Runs in the page: Starcast's worker, loaded with `model`, answering `op`s.
async function starcastWorker(model) {
  const worker = new Worker("/pkg/worker.js", { type: "module" });
  let next = 0;
  const calls = new Map();
  worker.onmessage = ({ data }) => {
    const call = calls.get(data.id);
    if ("piece" in data) return call.piece?.(data.piece);
    if ("progress" in data) return;
    calls.delete(data.id);
    "error" in data ? call.reject(new Error(data.error)) : call.resolve(data.done);
  };
  const ask = (message, piece, transfer = []) =>
    new Promise((resolve, reject) => {
      const id = next++;
      calls.set(id, { resolve, reject, piece });
      worker.postMessage({ id, ...message }, transfer);
    });
  await ask({ op: "load", key: "bench", model });
  return ask;
}

async function classification(page, arch) {
  const files = ["config.json", "model.pth"].map((name) => ({ name, size: size(join(WORK, arch, name)) }));
  const model = { task: "actors", source: arch, base: `/work/${arch}/`, files };
  return page.evaluate(
    async ({ model, arch, runs, starcastWorker }) => {
      const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
      const ask = await new Function(`return (${starcastWorker})`)()(model);
      const photo = await (await fetch("/work/photo.jpg")).arrayBuffer();
      const ours = [];
      for (let i = 0; i < runs + 3; i++) {
        const report = JSON.parse(await ask({ op: "recognize", key: "bench", photo: photo.slice(0) }));
        if (i >= 3) ours.push(report.elapsed_ms);
      }
      const ort = await import("/ort/ort.wasm.min.mjs");
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.wasmPaths = "/ort/";
      const session = await ort.InferenceSession.create(`/work/${arch}.onnx`, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
      const input = new ort.Tensor("float32", new Float32Array(3 * 224 * 224).fill(0.5), [1, 3, 224, 224]);
      const theirs = [];
      for (let i = 0; i < runs + 3; i++) {
        const start = performance.now();
        await session.run({ input });
        if (i >= 3) theirs.push(performance.now() - start);
      }
      // The same work as Starcast's report: the JPEG decoded (by the
      // browser), centre-cropped to 224 (the photo's shorter side is
      // already 256), normalised, the forward pass, the softmax.
      const [mean, std] = [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]];
      const canvas = new OffscreenCanvas(224, 224);
      const context = canvas.getContext("2d", { willReadFrequently: true });
      const whole = [];
      for (let i = 0; i < runs + 3; i++) {
        const start = performance.now();
        const bitmap = await createImageBitmap(new Blob([photo], { type: "image/jpeg" }));
        context.drawImage(bitmap, 16, 16, 224, 224, 0, 0, 224, 224);
        const pixels = context.getImageData(0, 0, 224, 224).data;
        const values = new Float32Array(3 * 224 * 224);
        for (let p = 0; p < 224 * 224; p++) {
          for (let c = 0; c < 3; c++) values[c * 224 * 224 + p] = (pixels[4 * p + c] / 255 - mean[c]) / std[c];
        }
        const output = await session.run({ input: new ort.Tensor("float32", values, [1, 3, 224, 224]) });
        const logits = output.logits.data;
        const top = Math.max(...logits);
        const exps = logits.map((l) => Math.exp(l - top));
        const total = exps.reduce((a, b) => a + b, 0);
        exps.map((e) => e / total);
        if (i >= 3) whole.push(performance.now() - start);
      }
      return { arch, starcast_ms: median(ours), onnxruntime_web_ms: median(whole), onnxruntime_web_forward_ms: median(theirs) };
    },
    { model, arch, runs, starcastWorker: starcastWorker.toString() },
  );
}

const PROMPT =
  "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWrite today's horoscope for Leo (Jul 23 – Aug 22), Sunday, November 22, 2026, in one paragraph that speaks to the reader as \"you\". Give advice about mood, love and work.<|im_end|>\n<|im_start|>assistant\nToday, Leo, you";

async function generation(page) {
  const files = ["config.json", "model.gguf"].map((name) => ({ name, size: size(join(SMOLLM2, name)) }));
  const model = { task: "horoscope", source: "smollm2", base: "/smollm2/", files };
  return page.evaluate(
    async ({ model, prompt, starcastWorker }) => {
      const ask = await new Function(`return (${starcastWorker})`)()(model);
      const rates = [];
      let restarts = 0;
      for (const seed of [1, 2, 3]) {
        let first = null;
        const query = JSON.stringify({ sign: "leo", date: "2026-11-22", seed });
        const horoscope = JSON.parse(
          await ask({ op: "write", key: "bench", query, today: "2026-11-22" }, (piece) => {
            if (piece === null) restarts++;
            first ??= performance.now();
          }),
        );
        const done = performance.now();
        rates.push({ tokens: horoscope.tokens, end_to_end: horoscope.tokens_per_s, decode: (horoscope.tokens - 1) / ((done - first) / 1000) });
      }
      const { Wllama } = await import("/wllama/index.js");
      const wllama = new Wllama({ default: "/wllama/wasm/wllama.wasm" }, { suppressNativeLog: true });
      await wllama.loadModelFromUrl(`${location.origin}/smollm2/model.gguf`, { n_threads: 1, n_gpu_layers: 0, n_ctx: 1024 });
      const theirs = [];
      for (const seed of [1, 2, 3]) {
        const start = performance.now();
        const answer = await wllama.createCompletion({ prompt, max_tokens: 128, temperature: 0.8, top_p: 0.7, seed });
        const seconds = (performance.now() - start) / 1000;
        theirs.push({ tokens: answer.usage.completion_tokens, end_to_end: answer.usage.completion_tokens / seconds, decode: answer.timings?.predicted_per_second });
      }
      const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
      const pick = (list, key) => median(list.map((r) => r[key]));
      return {
        starcast_tokens_per_s: pick(rates, "end_to_end"),
        starcast_decode_tokens_per_s: pick(rates, "decode"),
        starcast_restarts: restarts,
        wllama_tokens_per_s: pick(theirs, "end_to_end"),
        wllama_decode_tokens_per_s: pick(theirs, "decode"),
        tokens: [pick(rates, "tokens"), pick(theirs, "tokens")],
      };
    },
    { model, prompt: PROMPT, starcastWorker: starcastWorker.toString() },
  );
}

async function firstVisit(browser, host) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const before = host.requests.length;
  const start = Date.now();
  await page.goto(`${host.url}/`);
  await page.waitForSelector("html[data-hydrated=true]");
  await page.setInputFiles("#photo-input", PHOTO);
  await page.waitForSelector(".result .labels", { timeout: 120_000 });
  const seconds = (Date.now() - start) / 1000;
  const fetched = host.requests.slice(before);
  const weights = fetched.filter((r) => r.path.includes("/api/browser/files/")).reduce((sum, r) => sum + r.bytes, 0);
  const code = fetched.filter((r) => /\.(wasm|js|css|html)$|\/$/.test(r.path));
  const gzipped = code.reduce((sum, r) => {
    const path = join(SPACE, r.path, r.path.endsWith("/") ? "index.html" : "");
    return sum + gzipSync(readFileSync(path)).length;
  }, 0);
  await context.close();
  return { first_visit_code_gzip_bytes: gzipped, first_visit_weight_bytes: weights, first_answer_s: seconds };
}

const host = await serve();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${host.url}/bench/`);
  for (const arch of ["resnet18", "mobilenet_v2"]) {
    console.log(JSON.stringify(await classification(page, arch)));
  }
  console.log(JSON.stringify(await generation(page)));
  console.log(JSON.stringify(await firstVisit(browser, host)));
} finally {
  await browser.close();
  host.server.close();
}
