// product-photos-success: marks a received photo as accepted and completes the
// product's open photo assignments.
//   POST / {"product","photo"} -> {"product","status":"success"}
// "photo" is the object product-photos-receive returns ({file, sha256, ...}).
'use strict';

const store = require('../store');

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SHA256 = /^[0-9a-f]{64}$/;

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
  if (!photo || typeof photo !== 'object' || Array.isArray(photo)) {
    throw fail(400, 'photo is required');
  }
  if (typeof photo.sha256 !== 'string' || !SHA256.test(photo.sha256)) {
    throw fail(400, 'photo.sha256 must be a sha256 hex digest');
  }

  const updated = await store.transaction(async (db) => {
    const photos = await db.query(
      `UPDATE photos SET status = 'success'
        WHERE product = $1 AND sha256 = $2
        RETURNING id`,
      [product, photo.sha256],
    );
    if (photos.rowCount === 0) {
      return false;
    }
    await db.query(
      `UPDATE assignments SET status = 'completed', updated_at = now()
        WHERE product = $1 AND status IN ('assigned', 'recorded')`,
      [product],
    );
    return true;
  });
  if (!updated) {
    const known = await store.query('SELECT 1 FROM products WHERE id = $1', [product]);
    throw fail(404, known.rowCount === 0 ? `unknown product: ${product}` : 'unknown photo for this product');
  }
  return { product, status: 'success' };
};
