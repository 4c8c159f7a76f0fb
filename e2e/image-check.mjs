// Drives a running Starcast container in headless Chromium, as a visitor
// would: the Actors page names Obama in a real photo, a horoscope streams in
// and is flagged. Run by scripts/check-image.sh inside the container's
// network namespace (the container has no network but loopback).
//
// Usage: node image-check.mjs BASE_URL PHOTO SCREENSHOTS

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, photo, screenshots] = process.argv.slice(2);
assert.ok(base && photo && screenshots, "usage: node image-check.mjs BASE_URL PHOTO SCREENSHOTS");
mkdirSync(screenshots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});

async function open(path) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}${path}`);
  await page.waitForSelector("html[data-hydrated=true]", { timeout: 30_000 });
  return { page, errors };
}

try {
  {
    const { page, errors } = await open("/");
    await page.setInputFiles("#photo-input", photo);
    await page.waitForSelector(".labels .label", { timeout: 60_000 });
    assert.equal((await page.textContent(".labels .label")).trim(), "Barack Obama");
    await page.screenshot({ path: join(screenshots, "image-actors.png"), fullPage: true });
    assert.deepEqual(errors, []);
    console.log("actors: Barack Obama named");
  }
  {
    const { page, errors } = await open("/horoscope");
    await page.click('label[for="sign-leo"]');
    await page.click("#generate");
    await page.waitForSelector("#horoscope-text.streaming", { timeout: 30_000 });
    await page.waitForSelector(".result .meta", { timeout: 180_000 });
    const text = (await page.textContent("#horoscope-text")).trim();
    assert.ok(text.length > 100, text);
    await page.click(".flag button");
    await page.fill(".flag-form input", "image check");
    await page.click(".flag-form button[type=submit]");
    assert.match(await page.textContent(".flag .notice", { timeout: 10_000 }), /Flagged for review/);
    await page.screenshot({ path: join(screenshots, "image-horoscope.png"), fullPage: true });
    assert.deepEqual(errors, []);
    console.log(`horoscope: ${text.length} characters streamed and flagged`);
  }
} finally {
  await browser.close();
}
