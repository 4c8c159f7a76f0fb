// What the end-to-end tests share: Chromium's flags, a tiny photo, and a
// starcast server on a free loopback port.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";

export const bin = process.env.STARCAST_BIN;
export const site = process.env.STARCAST_SITE;
assert.ok(bin && site, "set STARCAST_BIN and STARCAST_SITE (scripts/test.sh does)");

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

// An 8x8 orange PNG, so the tests need no image package.
export function tinyPng() {
  return Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR4nGM4YaOBFTEMLQkAdntLARs7+acAAAAASUVORK5CYII=", "base64");
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
    probe.on("error", reject);
  });
}

async function waitForHealth(url, child) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`starcast exited with ${child.exitCode}`);
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("starcast did not answer /healthz within 30 s");
}

// A starcast server on a free loopback port with a fresh data folder that
// holds one example photo; `args` are more `serve` options.
export async function startServer(args = []) {
  const data = mkdtempSync(join(tmpdir(), "starcast-e2e-"));
  mkdirSync(join(data, "examples"));
  writeFileSync(join(data, "examples", "tiny.png"), tinyPng());
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("STARCAST_")));
  const child = spawn(bin, ["serve", "--host", "127.0.0.1", "--port", String(port), "--site", site, "--data", data, ...args], {
    stdio: ["ignore", "inherit", "inherit"],
    env,
  });
  await waitForHealth(url, child);
  return {
    url,
    stop() {
      child.kill("SIGTERM");
      rmSync(data, { recursive: true, force: true });
    },
  };
}

