// The models in the visitor's browser: the static Space `starcast
// export-static` writes, served by a plain static file server on loopback
// (weights bundled, or fetched from a Hub on loopback), and "Run in my
// browser" on the server's own pages. Each answers as the server does.
//
// Besides support.mjs's variables: ACTORS_MODEL (the face gallery),
// HOROSCOPE_MODEL (SmolLM2), CLASSIFIER (MobileNetV2's model.pth, in its
// model folder) and PHOTOS (the example photos).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join, normalize, relative } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, bin, site, startServer } from "./support.mjs";

const gallery = process.env.ACTORS_MODEL;
const smollm2 = process.env.HOROSCOPE_MODEL;
const classifierFolder = process.env.CLASSIFIER && dirname(process.env.CLASSIFIER);
const photos = process.env.PHOTOS;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".wasm": "application/wasm",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".jpg": "image/jpeg",
  ".png": "image/png",
  ".json": "application/json",
};

// A file's bytes, or the slice a Range header asks for, as a static host sends them.
function sendFile(request, response, path, headers = {}) {
  const bytes = readFileSync(path);
  const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? "");
  const start = range ? Number(range[1]) : 0;
  const end = range && range[2] ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
  response.writeHead(range ? 206 : 200, {
    "content-type": TYPES[extname(path)] ?? "application/octet-stream",
    "content-length": end - start + 1,
    "content-range": `bytes ${start}-${end}/${bytes.length}`,
    ...headers,
  });
  response.end(request.method === "HEAD" ? undefined : bytes.subarray(start, end + 1));
}

// Serves `route(path)`'s file (or 404) on a free loopback port, and logs
// every request's path.
function listen(route) {
  const requests = [];
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://x").pathname);
    requests.push(path);
    try {
      if (!route(request, response, path)) {
        response.writeHead(404).end("not found");
      }
    } catch (error) {
      response.writeHead(500).end(String(error));
    }
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const url = `http://127.0.0.1:${server.address().port}`;
      resolve({ url, requests, close: () => server.close() });
    });
  });
}

function isFile(path) {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

// A plain static host over `root`: files by path, a folder's index.html.
function staticHost(root) {
  return listen((request, response, path) => {
    const file = normalize(join(root, path));
    if (relative(root, file).startsWith("..")) return false;
    const found = [file, join(file, "index.html")].find(isFile);
    if (!found) return false;
    sendFile(request, response, found);
    return true;
  });
}

// The Hub's read side for one model repo `repo` holding `folder`'s files:
// revision info and `resolve/`, with the headers hf-hub reads and the CORS
// header the Hub sends browsers.
function loopbackHub(repo, folder, files) {
  return listen((request, response, path) => {
    const cors = { "access-control-allow-origin": "*", "access-control-expose-headers": "*" };
    if (path.startsWith(`/api/models/${repo}/revision/`)) {
      const siblings = files.map((rfilename) => ({ rfilename }));
      response.writeHead(200, { "content-type": "application/json", ...cors });
      response.end(JSON.stringify({ sha: COMMIT, siblings }));
      return true;
    }
    const prefix = `/${repo}/resolve/main/`;
    if (!path.startsWith(prefix) || !files.includes(path.slice(prefix.length))) return false;
    const file = path.slice(prefix.length);
    const etag = `"${file.length}-${statSync(join(folder, file)).size}"`;
    sendFile(request, response, join(folder, file), { etag, "x-repo-commit": COMMIT, ...cors });
    return true;
  });
}

// `starcast export-static` into a fresh folder. Asynchronous: the Hub it
// may fetch from answers from this process.
async function exportSpace(args, env = {}) {
  const out = mkdtempSync(join(tmpdir(), "starcast-space-"));
  const data = mkdtempSync(join(tmpdir(), "starcast-space-data-"));
  await promisify(execFile)(bin, ["export-static", join(out, "space"), "--site", site, "--data", data, ...args], {
    env: { ...process.env, ...env, RUST_LOG: "error" },
  });
  const remove = () => {
    rmSync(out, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  };
  return { root: join(out, "space"), remove };
}

// What `starcast predict actors` says of a photo.
function predicted(model, photo) {
  const line = execFileSync(bin, ["predict", "actors", "--model", model, "--json", photo], {
    env: { ...process.env, RUST_LOG: "warn" },
  });
  return JSON.parse(line.toString().trim().split("\n")[0]).predictions;
}

let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
});

async function open(context, url) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector("html[data-hydrated=true]", { timeout: 20_000 });
  return { page, errors };
}

// Recognises `photo` on the page and reads the labels it shows.
async function recognise(page, photo) {
  await page.setInputFiles("#photo-input", photo);
  await page.waitForSelector(".result .labels, .result .error", { timeout: 120_000 });
  const error = await page.$(".result .error");
  assert.equal(error && (await error.textContent()), null, "the page shows an error");
  return page.$$eval(".result .labels li", (items) =>
    items.map((li) => ({
      label: li.querySelector(".label").textContent,
      score: parseFloat(li.querySelector(".score").textContent) / 100,
    })),
  );
}

// The shown labels (at most 5, scores to a tenth of a percent) against
// the command line's answer.
function assertSameAnswer(shown, expected) {
  assert.equal(shown[0].label, expected[0].label, "the top label");
  for (const { label, score } of shown) {
    const want = expected.find((p) => p.label === label);
    assert.ok(want, `${label} is among the command line's labels`);
    assert.ok(Math.abs(score - want.score) <= 0.01, `${label}: ${score} in the browser, ${want.score} from starcast predict`);
  }
}

describe("the static Space", { skip: !(gallery && smollm2 && photos) && "set ACTORS_MODEL, HOROSCOPE_MODEL and PHOTOS" }, () => {
  let space;
  let host;
  let context;

  before(async () => {
    space = await exportSpace(["--actors-model", gallery, "--horoscope-model", smollm2]);
    host = await staticHost(space.root);
    context = await browser.newContext();
  });

  after(async () => {
    await context?.close();
    host?.close();
    space?.remove();
  });

  test("is a folder the Hub serves as a static Space", () => {
    const readme = readFileSync(join(space.root, "README.md"), "utf8");
    assert.match(readme, /^---\n[\s\S]*\nsdk: static\n[\s\S]*\n---\n/);
    assert.match(readme, /\napp_file: index\.html\n/);
    for (const file of ["index.html", "horoscope/index.html", "pkg/worker.js", "pkg/starcast_browser_bg.wasm", "api/browser/models"]) {
      assert.ok(isFile(join(space.root, file)), file);
    }
  });

  test("recognises actors in the browser as starcast predict does", async () => {
    const { page, errors } = await open(context, `${host.url}/`);
    assert.match(await page.textContent(".run-where"), /runs in your browser/);
    const photo = join(photos, "obama2.jpg");
    assertSameAnswer(await recognise(page, photo), predicted(gallery, photo));
    assert.ok(host.requests.some((p) => p.startsWith("/api/browser/files/actors/")), "the weights came from the Space");
    assert.ok(!host.requests.some((p) => p.startsWith("/api/actors")), "no prediction was asked of a server");
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("writes a horoscope in the browser while the page stays responsive", async () => {
    const { page, errors } = await open(context, `${host.url}/horoscope`);
    await page.click("label[for=sign-leo]");
    await page.fill("#horoscope-date", "2026-11-22");
    await page.click("details summary");
    await page.fill("#seed", "7");
    await page.click("#generate");
    await page.waitForFunction(() => document.querySelector("#horoscope-text")?.textContent.length > 20, null, { timeout: 300_000 });
    // The worker is writing: an input on the page still answers at once.
    const started = Date.now();
    await page.fill("#temperature", "0.5");
    await page.fill("#seed", "8");
    const answered = Date.now() - started;
    assert.equal(await page.inputValue("#seed"), "8");
    assert.ok(await page.isVisible("#stop"), "still writing");
    assert.ok(answered < 1000, `the page took ${answered} ms to answer an input`);
    await page.waitForSelector(".result .meta, .result .error", { timeout: 300_000 });
    const text = await page.textContent("#horoscope-text");
    assert.ok(text.length >= 300 && text.length <= 500, `${text.length} characters: ${text}`);
    assert.match(text, /^Today, Leo, you/);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("speaks the visitor's language although its pages were rendered in English", async () => {
    const russian = await browser.newContext({ locale: "ru-RU" });
    try {
      const { page } = await open(russian, `${host.url}/`);
      await page.waitForFunction(() => document.documentElement.lang === "ru");
      assert.match(await page.textContent("header nav"), /Актёры/);
      assert.match(await page.textContent(".run-where"), /в вашем браузере/);
    } finally {
      await russian.close();
    }
  });

  test("a second visit downloads no weights", async () => {
    const before = host.requests.length;
    const { page } = await open(context, `${host.url}/`);
    const photo = join(photos, "biden.jpg");
    assertSameAnswer(await recognise(page, photo), predicted(gallery, photo));
    const fetched = host.requests.slice(before).filter((p) => p.startsWith("/api/browser/files/"));
    assert.deepEqual(fetched, [], "weights came from the browser's cache");
    await page.close();
  });
});

describe("a student's model picked on the static page", { skip: !(gallery && classifierFolder && photos) && "set ACTORS_MODEL, CLASSIFIER and PHOTOS" }, () => {
  test("loads in the browser from the picked files and answers as starcast predict does", async () => {
    const space = await exportSpace(["--actors-model", gallery]);
    const host = await staticHost(space.root);
    const context = await browser.newContext();
    try {
      const { page, errors } = await open(context, `${host.url}/models`);
      await page.click(".own-model summary");
      // Picked under the names a student's files might have.
      await page.setInputFiles("#own-model-files", [
        { name: "actors_mobilenet.pth", mimeType: "application/octet-stream", buffer: readFileSync(join(classifierFolder, "model.pth")) },
        { name: "config.json", mimeType: "application/json", buffer: readFileSync(join(classifierFolder, "config.json")) },
      ]);
      await page.click(".own-model button[type=submit]");
      await page.waitForSelector("#own-model-loaded, .own-model .error", { timeout: 120_000 });
      assert.match(await page.textContent(".own-model"), /MobileNetV2/);
      await page.click("a[href='/']");
      const photo = join(photos, "obama.jpg");
      assertSameAnswer(await recognise(page, photo), predicted(classifierFolder, photo));
      assert.ok(!host.requests.some((p) => p.startsWith("/api/browser/files/")), "the Space's own model was not fetched");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      host.close();
      space.remove();
    }
  });
});

describe("a student's model from a Hub repo", { skip: !(classifierFolder && photos) && "set CLASSIFIER and PHOTOS" }, () => {
  test("the static page fetches it from the Hub and answers as starcast predict does", async () => {
    const files = ["config.json", "model.pth"];
    const hub = await loopbackHub("student/actors", classifierFolder, files);
    const hfHome = mkdtempSync(join(tmpdir(), "starcast-hf-home-"));
    const space = await exportSpace(["--actors-model", "hf://student/actors", "--weights-from-hub"], {
      HF_ENDPOINT: hub.url,
      HF_HOME: hfHome,
    });
    const host = await staticHost(space.root);
    const context = await browser.newContext();
    try {
      const readme = readFileSync(join(space.root, "README.md"), "utf8");
      assert.match(readme, /\nmodels:\n {2}- student\/actors\n/);
      const before = hub.requests.length;
      const { page, errors } = await open(context, `${host.url}/`);
      const photo = join(photos, "obama.jpg");
      assertSameAnswer(await recognise(page, photo), predicted(classifierFolder, photo));
      const fromHub = hub.requests.slice(before);
      assert.ok(fromHub.includes("/student/actors/resolve/main/model.pth"), fromHub.join(", "));
      assert.ok(!host.requests.some((p) => p.includes("model.pth")), "the Space carries no weights");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      host.close();
      hub.close();
      space.remove();
      rmSync(hfHome, { recursive: true, force: true });
    }
  });
});

// What the server's own API says of a photo.
async function serverAnswer(url, photo) {
  const form = new FormData();
  form.append("image", new Blob([readFileSync(photo)]), basename(photo));
  return (await fetch(`${url}/api/actors/predict`, { method: "POST", body: form })).json();
}

describe("Run in my browser on the server's pages", { skip: !(classifierFolder && photos) && "set CLASSIFIER and PHOTOS" }, () => {
  test("the classifier runs in the browser and answers as the server does", async () => {
    const server = await startServer(["--actors-model", classifierFolder]);
    const context = await browser.newContext();
    try {
      const { page, errors } = await open(context, `${server.url}/`);
      const requests = [];
      page.on("request", (r) => requests.push(new URL(r.url()).pathname));
      await page.check("#run-in-browser");
      const photo = join(photos, "obama3.jpg");
      const answer = await serverAnswer(server.url, photo);
      assertSameAnswer(await recognise(page, photo), answer.predictions);
      assert.ok(requests.some((p) => p.startsWith("/api/browser/files/actors/")), requests.join(", "));
      assert.ok(!requests.includes("/api/actors/predict"), "the page asked the server instead");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      server.stop();
    }
  });

  test("a browser that can't run the model is answered by the server", async () => {
    const server = await startServer(["--actors-model", classifierFolder]);
    const context = await browser.newContext();
    try {
      // The model's weights can't be had here, as when the browser runs out of memory loading them.
      await context.route("**/api/browser/files/**", (route) => route.abort());
      const { page } = await open(context, `${server.url}/`);
      await page.check("#run-in-browser");
      const photo = join(photos, "obama3.jpg");
      const answer = await serverAnswer(server.url, photo);
      assertSameAnswer(await recognise(page, photo), answer.predictions);
      assert.match(await page.textContent("#ran-on-server"), /server answered instead/);
    } finally {
      await context.close();
      server.stop();
    }
  });
});
