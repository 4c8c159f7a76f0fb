// End-to-end tests: the real starcast binary, the real WASM bundle, a real
// headless Chromium. Run by scripts/test.sh, which builds both first.
//
// STARCAST_BIN   the starcast binary
// STARCAST_SITE  the built site folder (pkg/ with the bundle)
// SCREENSHOTS    where screenshots go (kept under target/)
// HOROSCOPE_MODEL  the SmolLM2 model folder (scripts/fetch-defaults.sh)
// RUSSIAN_HOROSCOPE_MODEL  the Gemma 3 model folder (scripts/fetch-defaults.sh)
// ACTORS_MODEL     the demo face gallery folder (scripts/fetch-defaults.sh)
// PHOTOS           the data folder's examples/ with face_recognition's photos
// CLASSIFIER       a classifier weights file for the admin upload (MobileNetV2's .pth)

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, startServer, tinyPng } from "./support.mjs";

const screenshots = process.env.SCREENSHOTS ?? "screenshots";

let server;
let browser;
let base;

before(async () => {
  mkdirSync(screenshots, { recursive: true });
  server = await startServer();
  base = server.url;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    // launch() gives every run a fresh temporary profile (--user-data-dir).
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  server?.stop();
});

async function open(path, options = {}, url = base) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${url}${path}`);
  await page.waitForSelector("html[data-hydrated=true]", { timeout: 20_000 });
  return { page, errors, close: () => context.close() };
}

describe("actors page", () => {
  test("hydrates: the theme switch responds", async () => {
    const { page, errors, close } = await open("/", { colorScheme: "light" });
    assert.equal(await page.getAttribute("html", "data-theme"), null);
    await page.click("#theme-toggle");
    assert.equal(await page.getAttribute("html", "data-theme"), "dark");
    await page.screenshot({ path: join(screenshots, "actors-dark.png"), fullPage: true });
    await page.reload();
    await page.waitForSelector("html[data-hydrated=true]");
    assert.equal(await page.getAttribute("html", "data-theme"), "dark", "the choice is remembered");
    assert.deepEqual(errors, []);
    await close();
  });

  test("an uploaded photo is previewed and answered; no model means no guess", async () => {
    const { page, close } = await open("/");
    await page.setInputFiles("#photo-input", { name: "tiny.png", mimeType: "image/png", buffer: tinyPng() });
    await page.waitForSelector(".preview img");
    const message = await page.textContent(".result .error", { timeout: 10_000 });
    assert.match(message, /No actor recognition model is loaded yet/);
    await page.screenshot({ path: join(screenshots, "actors-no-model.png"), fullPage: true });
    await close();
  });

  test("a file that is not an image gets a clear message", async () => {
    const { page, close } = await open("/");
    await page.setInputFiles("#photo-input", {
      name: "notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("these are not pixels"),
    });
    const message = await page.textContent(".result .error", { timeout: 10_000 });
    assert.match(message, /not an image this app can read/);
    await close();
  });

  test("a Russian visitor is told in Russian", async () => {
    const { page, close } = await open("/", { locale: "ru-RU" });
    await page.setInputFiles("#photo-input", {
      name: "notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("these are not pixels"),
    });
    const message = await page.textContent(".result .error", { timeout: 10_000 });
    assert.match(message, /Это не изображение, которое приложение умеет читать/);
    await close();
  });

  test("paste and drop upload too", async () => {
    const { page, close } = await open("/");
    const bytes = [...tinyPng()];
    const send = (kind) =>
      page.evaluate(
        ([bytes, kind]) => {
          const file = new File([new Uint8Array(bytes)], `${kind}.png`, { type: "image/png" });
          const transfer = new DataTransfer();
          transfer.items.add(file);
          if (kind === "pasted") {
            window.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer }));
          } else {
            document.querySelector(".dropzone").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
          }
        },
        [bytes, kind],
      );
    await send("pasted");
    await page.waitForSelector('.preview img[alt*="pasted.png"]');
    await page.waitForSelector(".result .error");
    await send("dropped");
    await page.waitForSelector('.preview img[alt*="dropped.png"]');
    await page.waitForSelector(".result .error");
    await close();
  });

  test("clicking an example runs it", async () => {
    const { page, close } = await open("/");
    await page.click('button.example[title="Try tiny.png"]');
    await page.waitForSelector('.preview img[alt*="tiny.png"]');
    assert.match(await page.textContent(".result .error"), /No actor recognition model/);
    await close();
  });
});

describe("horoscope page", () => {
  test("pick a sign by keyboard and generate; no model means a clear message", async () => {
    const { page, errors, close } = await open("/horoscope");
    assert.equal(await page.isDisabled("#generate"), true, "nothing to generate before a sign is picked");
    const today = await page.inputValue("#horoscope-date");
    assert.match(today, /^\d{4}-\d{2}-\d{2}$/);
    await page.focus("#sign-aries");
    await page.keyboard.press("Space");
    await page.keyboard.press("ArrowRight");
    assert.equal(await page.isChecked("#sign-taurus"), true);
    assert.equal(await page.isDisabled("#generate"), false);
    await page.click("#generate");
    const message = await page.textContent(".result .error", { timeout: 10_000 });
    assert.match(message, /No horoscope model is loaded yet/);
    await page.screenshot({ path: join(screenshots, "horoscope-no-model.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await close();
  });

  test("fits a phone screen", async () => {
    const { page, close } = await open("/horoscope", { viewport: { width: 390, height: 844 }, isMobile: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    await page.screenshot({ path: join(screenshots, "horoscope-phone.png"), fullPage: true });
    await close();
  });
});

describe("the interface's language", () => {
  test("follows Accept-Language, switches at once and is remembered", async () => {
    const { page, errors, close } = await open("/horoscope", { locale: "ru-RU" });
    assert.equal(await page.getAttribute("html", "lang"), "ru");
    assert.match(await page.textContent("header nav"), /Актёры.*Гороскоп/);
    assert.match(await page.textContent('label[for="sign-leo"]'), /Лев.*23 июля – 22 августа/);
    assert.equal(await page.getAttribute("#language-ru", "aria-pressed"), "true");
    assert.ok(await page.isChecked("#lang-ru"), "a Russian visitor's horoscope is Russian too");
    await page.screenshot({ path: join(screenshots, "horoscope-ru.png"), fullPage: true });
    await page.click("#language-en");
    assert.match(await page.textContent("header nav"), /Actors.*Horoscope/);
    assert.match(await page.textContent('label[for="sign-leo"]'), /Leo.*Jul 23 – Aug 22/);
    await page.reload();
    await page.waitForSelector("html[data-hydrated=true]");
    assert.equal(await page.getAttribute("html", "lang"), "en", "the choice outlives the page");
    assert.match(await page.textContent("h1"), /Your horoscope/);
    assert.deepEqual(errors, []);
    await close();
  });
});

describe("models page", () => {
  test("says that no model is served", async () => {
    const { page, close } = await open("/models");
    assert.match(await page.textContent("#no-models"), /No model is loaded yet/);
    await close();
  });
});

describe("API page", () => {
  test("lists the endpoints, and its JavaScript runs as written against this server", async () => {
    const { page, errors, close } = await open("/api/docs");
    assert.ok((await page.$$(".endpoint")).length >= 8);
    await page.click('.client-switch button:has-text("JavaScript")');
    const snippet = await page.textContent("#get-api-models .snippet");
    assert.ok(snippet.includes(`fetch("${base}/api/models"`), snippet);
    // The snippet, run in the page as a visitor would paste it into the console.
    const logged = await page.evaluate(async (code) => {
      const lines = [];
      const log = console.log;
      console.log = (...args) => lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
      try {
        await new (async () => {}).constructor(code)();
      } finally {
        console.log = log;
      }
      return lines;
    }, snippet);
    assert.deepEqual(logged, ["200 []"]);
    await page.screenshot({ path: join(screenshots, "api.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await close();
  });
});

describe("horoscope page with the SmolLM2 and Gemma 3 models", () => {
  const model = process.env.HOROSCOPE_MODEL;
  const russian = process.env.RUSSIAN_HOROSCOPE_MODEL;
  let modelServer;

  before(async () => {
    assert.ok(model && russian, "set HOROSCOPE_MODEL and RUSSIAN_HOROSCOPE_MODEL (scripts/test.sh does)");
    modelServer = await startServer(["--horoscope-model", model, "--horoscope-model", russian]);
  });

  test("a Russian horoscope streams in from the Russian model", async () => {
    const { page, errors, close } = await open("/horoscope", { locale: "ru-RU" }, modelServer.url);
    await page.click('label[for="sign-leo"]');
    await page.click("#generate");
    await page.waitForSelector(".result .meta", { timeout: 120_000 });
    const text = (await page.textContent("#horoscope-text")).trim();
    assert.match(text, /^[А-ЯЁ]/, text);
    const letters = [...text].filter((c) => /\p{L}/u.test(c));
    const cyrillic = letters.filter((c) => /[а-яё]/i.test(c));
    assert.ok(cyrillic.length >= 0.9 * letters.length, text);
    assert.ok(text.length >= 300 && text.length <= 500, `${text.length} characters: ${text}`);
    assert.match(await page.textContent(".result .meta"), /Gemma-3-270M.*токенов\/с|токенов\/с.*Gemma-3-270M/);
    await page.screenshot({ path: join(screenshots, "horoscope-leo-ru.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await close();
  });
  after(() => modelServer?.stop());

  test("a horoscope streams in and is flagged", async () => {
    const { page, errors, close } = await open("/horoscope", {}, modelServer.url);
    assert.equal(await page.$(".notice-missing"), null, "the model is loaded");
    await page.click('label[for="sign-leo"]');
    await page.click("#generate");
    await page.waitForSelector("#horoscope-text.streaming", { timeout: 20_000 });
    const partial = await page.textContent("#horoscope-text");
    await page.waitForSelector(".result .meta", { timeout: 120_000 });
    const text = (await page.textContent("#horoscope-text")).trim();
    assert.ok(text.startsWith("Today, Leo"), text);
    assert.ok(text.length >= 300 && text.length <= 500, `${text.length} characters: ${text}`);
    assert.ok(partial.length < text.length + 200, "streamed text came before the end");
    assert.match(await page.textContent(".result .meta"), /tokens/);
    await page.screenshot({ path: join(screenshots, "horoscope-leo.png"), fullPage: true });
    await page.click(".flag button");
    await page.fill(".flag-form input", "too vague");
    await page.click(".flag-form button[type=submit]");
    assert.match(await page.textContent(".flag .notice", { timeout: 10_000 }), /Flagged for review/);
    assert.deepEqual(errors, []);
    await close();
  });

  test("Stop ends a streaming horoscope and keeps its text", async () => {
    const { page, errors, close } = await open("/horoscope", {}, modelServer.url);
    await page.click('label[for="sign-virgo"]');
    await page.click(".card details summary");
    await page.fill("#seed", "7");
    await page.click("#generate");
    await page.waitForSelector("#horoscope-text.streaming", { timeout: 20_000 });
    await page.waitForFunction(() => document.querySelector("#horoscope-text")?.textContent.length > 10, null, { timeout: 60_000 });
    await page.click("#stop");
    await page.waitForSelector("#stopped", { timeout: 10_000 });
    const stopped = await page.textContent("#horoscope-text");
    await page.waitForTimeout(1500);
    assert.equal(await page.textContent("#horoscope-text"), stopped, "no token arrived after Stop");
    assert.equal(await page.isDisabled("#generate"), false);
    assert.deepEqual(errors, []);
    await close();
  });

  test("the models page lists it", async () => {
    const { page, close } = await open("/models", {}, modelServer.url);
    assert.match(await page.textContent(".model"), /SmolLM2-135M-Instruct/);
    await page.screenshot({ path: join(screenshots, "models.png"), fullPage: true });
    await close();
  });
});

describe("actors page with the demo face gallery", () => {
  const model = process.env.ACTORS_MODEL;
  const photos = process.env.PHOTOS;
  let modelServer;

  before(async () => {
    assert.ok(model && photos, "set ACTORS_MODEL and PHOTOS (scripts/test.sh does)");
    modelServer = await startServer(["--actors-model", model, "--admin-token", "e2e-admin-token-0123456789abcdef"]);
  });
  after(() => modelServer?.stop());

  test("a photo gets a named face box and ranked labels", async () => {
    const { page, errors, close } = await open("/", {}, modelServer.url);
    assert.equal(await page.$(".notice-missing"), null, "the model is loaded");
    await page.setInputFiles("#photo-input", join(photos, "obama3.jpg"));
    await page.waitForSelector(".labels .label", { timeout: 30_000 });
    assert.equal((await page.textContent(".labels .label")).trim(), "Barack Obama");
    const boxes = await page.$$(".face-box");
    assert.equal(boxes.length, 1);
    assert.match(await boxes[0].textContent(), /Barack Obama/);
    await page.screenshot({ path: join(screenshots, "actors-gallery.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await close();
  });
});

describe("models page admin upload", () => {
  const classifier = process.env.CLASSIFIER;
  let adminServer;

  before(async () => {
    assert.ok(classifier, "set CLASSIFIER to a .pth file (scripts/test.sh does)");
    adminServer = await startServer(["--admin-token", "e2e-admin-token-0123456789abcdef"]);
  });
  after(() => adminServer?.stop());

  test("a wrong token is refused; the right one serves the upload at once", async () => {
    const { page, errors, close } = await open("/models", {}, adminServer.url);
    await page.click(".admin summary");
    await page.fill("#admin-token", "wrong");
    await page.setInputFiles("#admin-weights", classifier);
    await page.click(".admin-form button[type=submit]");
    assert.match(await page.textContent(".admin .error", { timeout: 30_000 }), /admin token/);
    await page.fill("#admin-token", "e2e-admin-token-0123456789abcdef");
    await page.click(".admin-form button[type=submit]");
    assert.match(await page.textContent(".admin .notice", { timeout: 60_000 }), /Now serving .*mobilenet_v2, 1000 labels/);
    await page.waitForSelector(".model", { timeout: 10_000 });
    assert.match(await page.textContent(".model"), /uploaded classifier/);
    await page.screenshot({ path: join(screenshots, "models-admin-upload.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await close();
  });
});

describe("pipeline page", () => {
  let adminServer;

  before(async () => {
    adminServer = await startServer(["--admin-token", "e2e-admin-token-0123456789abcdef"]);
  });
  after(() => adminServer?.stop());

  test("lists no run, refuses a wrong token, starts a run for the admin", async () => {
    const { page, errors, close } = await open("/pipeline", {}, adminServer.url);
    await page.waitForSelector("#no-runs", { timeout: 10_000 });
    await page.click(".admin summary");
    await page.fill("#pipeline-token", "wrong");
    await page.click(".admin-form button[type=submit]");
    assert.match(await page.textContent(".admin .error", { timeout: 10_000 }), /admin token/);
    await page.fill("#pipeline-token", "e2e-admin-token-0123456789abcdef");
    await page.click(".admin-form button[type=submit]");
    assert.match(await page.textContent(".admin .notice", { timeout: 10_000 }), /started/);
    await page.waitForSelector(".run", { timeout: 10_000 });
    assert.match(await page.textContent(".run"), /collect horoscopes/);
    await page.screenshot({ path: join(screenshots, "pipeline.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await close();
  });
});
