// product-photos-report: publishes an accepted photo as the product's image.
//   POST / {"product","photo"} -> {"product","image"}
// "image" is the photo's file name in the shared photo volume (PHOTOS_DIR).
'use strict';

const fsp = require('fs/promises');
const path = require('path');
const store = require('../store');

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

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

module.exports = async (event) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const product = body.product && typeof body.product === 'object' ? body.product.id : body.product;
  if (typeof product !== 'string' || !ID.test(product)) {
    throw fail(400, 'product is required and must be a valid id');
  }
  const photo = body.photo;
  const file = photo && typeof photo === 'object' ? photo.file : photo;
  if (typeof file !== 'string' || !FILE.test(file)) {
    throw fail(400, 'photo.file is required and must be a plain file name');
  }

  const dir = process.env.PHOTOS_DIR || '/home/app/photos';
  try {
    const st = await fsp.stat(path.join(dir, file));
    if (!st.isFile()) {
      throw fail(404, `unknown photo: ${file}`);
    }
  } catch (err) {
    if (err.code === 'ENOENT') {
      throw fail(404, `unknown photo: ${file}`);
    }
    throw err;
  }

  const { rows } = await store.query(
    'UPDATE products SET image = $2, updated_at = now() WHERE id = $1 RETURNING id, image',
    [product, file],
  );
  if (rows.length === 0) {
    throw fail(404, `unknown product: ${product}`);
  }
  return { product: rows[0].id, image: rows[0].image };
};
