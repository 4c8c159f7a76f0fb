// Writes model/tests/fixtures/face_descriptors.json: the face descriptors
// face-api itself computes (its own TensorFlow.js, CPU backend, in headless
// Chromium) for fixed face boxes of the sample photos, which the Rust port
// of its network must reproduce. Run once (CI does not run it), after
// scripts/fetch-defaults.sh data and `npm install` in e2e/:
//   npm pack @vladmandic/face-api@1.7.15 && tar xzf vladmandic-face-api-1.7.15.tgz -C /tmp
//   node scripts/reference/face_descriptors.mjs /tmp/package data model/tests/fixtures/face_descriptors.json

import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { chromium } from "../../e2e/node_modules/playwright-core/index.mjs";

const [faceApi, data, output] = process.argv.slice(2).map((p) => resolve(p));
// [x, y, width, height] as Starcast's detector finds them.
const FACES = [
  { photo: "samples/astronaut.png", box: [173, 68, 99, 99] },
  { photo: "samples/32bit.png", box: [151, 276, 315, 315] },
  { photo: "examples/obama3.jpg", box: [621, 266, 322, 321] },
  { photo: "examples/biden.jpg", box: [411, 204, 329, 329] },
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--allow-file-access-from-files"],
});
const page = await browser.newPage();
const html = `<!doctype html><script type="module">
import * as faceapi from "file://${faceApi}/dist/face-api.esm.js";
window.faceapi = faceapi;
window.ready = true;
</script>`;
writeFileSync(`${faceApi}/reference.html`, html);
await page.goto(`file://${faceApi}/reference.html`);
await page.waitForFunction(() => window.ready === true, null, { timeout: 60_000 });

const results = await page.evaluate(
  async ({ gallery, data, faces }) => {
    const tf = faceapi.tf;
    await tf.setBackend("cpu");
    await tf.ready();
    const manifest = await (await fetch(`file://${gallery}/face_recognition_model-weights_manifest.json`)).json();
    const bin = await (await fetch(`file://${gallery}/face_recognition_model.bin`)).arrayBuffer();
    const weights = tf.io.decodeWeights(bin, manifest[0].weights);
    await faceapi.nets.faceRecognitionNet.loadFromWeightMap(weights);
    const out = [];
    for (const { photo, box } of faces) {
      const image = new Image();
      image.src = `file://${data}/${photo}`;
      await image.decode();
      const canvas = document.createElement("canvas");
      [canvas.width, canvas.height] = [box[2], box[3]];
      const context = canvas.getContext("2d");
      context.drawImage(image, box[0], box[1], box[2], box[3], 0, 0, box[2], box[3]);
      const rgba = context.getImageData(0, 0, box[2], box[3]).data;
      const rgb = new Int32Array(box[2] * box[3] * 3);
      for (let i = 0; i < box[2] * box[3]; i++) {
        rgb.set([rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]], 3 * i);
      }
      const tensor = tf.tensor3d(rgb, [box[3], box[2], 3], "int32");
      const descriptor = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(tensor);
      tensor.dispose();
      out.push({ photo, box, descriptor: Array.from(descriptor) });
    }
    return out;
  },
  { gallery: `${data}/models/face-gallery`, data, faces: FACES },
);
await browser.close();
writeFileSync(output, JSON.stringify({ face_api: "1.7.15", backend: "cpu", faces: results }));
console.log(`wrote ${results.length} descriptors to ${output}`);
