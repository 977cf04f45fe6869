// product-photos-receive: fetches a photographer's photo of a product.
//   POST / {"photographer","product","url"}
//   -> {"product","photographer","photo":{"file","sha256","bytes","source"}}
// The download lands in the warm instance's /tmp under the URL's file name (a later
// request for the same name reuses it), is checksummed with sha256sum, and is copied
// into the shared photo volume PHOTOS_DIR as <product>-<sha8><ext>.
'use strict';

const fs = require('fs');
const fsp = require('fs/promises');
const http = require('http');
const https = require('https');
const path = require('path');
const crypto = require('crypto');
const { exec } = require('child_process');
const store = require('../store');

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DOWNLOAD_DIR = '/tmp';
const DOWNLOAD_TIMEOUT_MS = 5000;
const MAX_BYTES = 5 * 1024 * 1024;

const fail = (statusCode, error) => Object.assign(new Error(error), { statusCode });

function input(event) {
  let body = Buffer.isBuffer(event.body) ? event.body.toString('utf8') : event.body;
  if (typeof body === 'string') {
    try {
      body = body.trim() === '' ? {} : JSON.parse(body);
    } catch (_) {
      throw fail(400, 'invalid JSON body');
    }
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw fail(400, 'body must be a JSON object');
  }
  return body;
}

function idOf(body, field) {
  let value = body[field];
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    value = value.id;
  }
  if (value === undefined || value === null || value === '') {
    throw fail(400, `${field} is required`);
  }
  if (typeof value !== 'string' || !ID.test(value)) {
    throw fail(400, `${field} is not a valid id`);
  }
  return value;
}

function photosDir() {
  return process.env.PHOTOS_DIR || '/home/app/photos';
}

// The URL and the (decoded) file name it names.
function parseSource(value) {
  if (typeof value !== 'string' || value.trim() === '') {
    throw fail(400, 'url is required');
  }
  if (value.length > 4096) {
    throw fail(400, 'url is too long');
  }
  let url;
  try {
    url = new URL(value.trim());
  } catch (_) {
    throw fail(400, 'url is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw fail(400, 'url must be http:// or https://');
  }
  const last = url.pathname.split('/').pop();
  let name;
  try {
    name = decodeURIComponent(last);
  } catch (_) {
    throw fail(400, 'url has a malformed file name');
  }
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')
      || Buffer.byteLength(name) > 200 || name.startsWith('.receive-')) {
    throw fail(400, 'url must end in a file name');
  }
  return { url, name };
}

async function isFile(file) {
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) {
      throw fail(400, `${path.basename(file)} is not a file`);
    }
    return true;
  } catch (err) {
    if (err.code === 'ENOENT') {
      return false;
    }
    throw err;
  }
}

// Fetches url into target (through a temporary file, so that a partial download is
// never reused). Node's http/https clients: no redirects are followed.
function download(url, target) {
  // Deliberate vulnerability (attack kit target): any URL is fetched (SSRF), including
  // internal addresses and ports; only the scheme, the size and the time are limited.
  const client = url.protocol === 'https:' ? https : http;
  const part = path.join(DOWNLOAD_DIR, `.receive-${process.pid}-${crypto.randomBytes(6).toString('hex')}.part`);

  return new Promise((resolve, reject) => {
    let settled = false;
    let out = null;
    const finish = (err) => {
      if (settled) {
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (!err) {
        fsp.rename(part, target).then(resolve, (e) => {
          fsp.rm(part, { force: true }).finally(() => reject(e));
        });
        return;
      }
      req.destroy();
      const cleanup = () => fsp.rm(part, { force: true }).catch(() => {}).then(() => reject(err));
      if (out) {
        out.destroy();
        out.once('close', cleanup);
        if (out.closed) {
          cleanup();
        }
      } else {
        cleanup();
      }
    };

    const req = client.get(url, { headers: { 'user-agent': 'hello-retail-photos/1.0', accept: 'image/*,*/*' } }, (res) => {
      if (res.statusCode >= 300 && res.statusCode < 400) {
        res.resume();
        finish(fail(400, `download failed: HTTP ${res.statusCode} (redirects are not followed)`));
        return;
      }
      if (res.statusCode !== 200) {
        res.resume();
        finish(fail(400, `download failed: HTTP ${res.statusCode}`));
        return;
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > MAX_BYTES) {
        res.resume();
        finish(fail(400, `download failed: larger than ${MAX_BYTES} bytes`));
        return;
      }
      out = fs.createWriteStream(part, { flags: 'wx', mode: 0o644 });
      out.on('error', (err) => finish(err));
      let bytes = 0;
      res.on('data', (chunk) => {
        bytes += chunk.length;
        if (bytes > MAX_BYTES) {
          finish(fail(400, `download failed: larger than ${MAX_BYTES} bytes`));
        }
      });
      res.on('error', (err) => finish(fail(400, `download failed: ${err.message}`)));
      res.on('aborted', () => finish(fail(400, 'download failed: connection closed')));
      res.pipe(out);
      out.on('close', () => {
        if (!out.writableFinished || !res.complete) {
          finish(fail(400, 'download failed: connection closed'));
        } else {
          finish(null);
        }
      });
    });
    req.on('error', (err) => finish(fail(400, `download failed: ${err.code || err.message}`)));
    const timer = setTimeout(() => finish(fail(400, 'download failed: timed out')), DOWNLOAD_TIMEOUT_MS);
  });
}

function sha256sum(name) {
  // Deliberate vulnerability (attack kit target): the decoded file name from the URL is
  // pasted into a shell command line (command injection), run in /tmp where earlier
  // downloads of this warm instance are kept.
  const command = `sha256sum "${name}"`;
  return new Promise((resolve) => {
    exec(command, { cwd: DOWNLOAD_DIR, timeout: 10000, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        console.error(`sha256sum: ${err.message.trim()}${stderr ? ` ${stderr.trim()}` : ''}`);
      }
      const m = /^\\?([0-9a-f]{64})\s/m.exec(String(stdout));
      resolve(m ? m[1] : null);
    });
  });
}

module.exports = async (event) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const productId = idOf(body, 'product');
  const photographerId = idOf(body, 'photographer');
  const { url, name } = parseSource(body.url);

  const [products, photographers] = await Promise.all([
    store.query('SELECT id FROM products WHERE id = $1', [productId]),
    store.query('SELECT id FROM photographers WHERE id = $1', [photographerId]),
  ]);
  if (products.rowCount === 0) {
    throw fail(404, `unknown product: ${productId}`);
  }
  if (photographers.rowCount === 0) {
    throw fail(404, `unknown photographer: ${photographerId}`);
  }

  // Warm cache: a file of that name already in /tmp is reused.
  const local = path.join(DOWNLOAD_DIR, name);
  if (!(await isFile(local))) {
    await download(url, local);
  }

  const sha256 = await sha256sum(name);
  if (!sha256) {
    throw fail(500, 'checksum failed');
  }

  const { size: bytes } = await fsp.stat(local);
  const ext = path.extname(name).toLowerCase();
  const file = `${productId}-${sha256.slice(0, 8)}${/^\.[a-z0-9]{1,8}$/.test(ext) ? ext : ''}`;
  const dir = photosDir();
  await fsp.mkdir(dir, { recursive: true });
  await fsp.copyFile(local, path.join(dir, file));

  const source = url.href;
  await store.query(
    `INSERT INTO photos (product, photographer, file, sha256, bytes, source)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (product, sha256) DO UPDATE SET
       photographer = EXCLUDED.photographer, file = EXCLUDED.file, bytes = EXCLUDED.bytes,
       source = EXCLUDED.source, status = 'received', received_at = now()`,
    [productId, photographerId, file, sha256, bytes, source],
  );

  return {
    product: productId,
    photographer: photographerId,
    photo: { file, sha256, bytes, source },
  };
};
