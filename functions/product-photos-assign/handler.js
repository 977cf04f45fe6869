// product-photos-assign: assigns a photographer to photograph a product.
//   POST / {"product","photographer"?}
//   -> {"assignment":{id,product,photographer},"photographer":{...},"product":{...}}
// Without "photographer", the one with the fewest open assignments is chosen.
'use strict';

const crypto = require('crypto');
const store = require('../store');

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

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

// An id given either as a string or as an object with an "id".
function idOf(body, field, required = true) {
  let value = body[field];
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    value = value.id;
  }
  if (value === undefined || value === null || value === '') {
    if (required) {
      throw fail(400, `${field} is required`);
    }
    return undefined;
  }
  if (typeof value !== 'string' || !ID.test(value)) {
    throw fail(400, `${field} is not a valid id`);
  }
  return value;
}

module.exports = async (event) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const productId = idOf(body, 'product');
  const photographerId = idOf(body, 'photographer', false);

  const products = await store.query(
    'SELECT id, category, name, brand, description, price, image FROM products WHERE id = $1',
    [productId],
  );
  if (products.rowCount === 0) {
    throw fail(404, `unknown product: ${productId}`);
  }

  let photographers;
  if (photographerId) {
    photographers = await store.query(
      'SELECT id, name, email, phone FROM photographers WHERE id = $1', [photographerId],
    );
    if (photographers.rowCount === 0) {
      throw fail(404, `unknown photographer: ${photographerId}`);
    }
  } else {
    photographers = await store.query(
      `SELECT ph.id, ph.name, ph.email, ph.phone
         FROM photographers ph
         LEFT JOIN assignments a ON a.photographer = ph.id AND a.status IN ('assigned', 'recorded')
        GROUP BY ph.id
        ORDER BY count(a.id), ph.id
        LIMIT 1`,
    );
    if (photographers.rowCount === 0) {
      throw fail(404, 'no photographer is registered');
    }
  }

  const product = { ...products.rows[0] };
  const photographer = { ...photographers.rows[0] };
  const id = `as-${crypto.randomBytes(6).toString('hex')}`;
  await store.query(
    'INSERT INTO assignments (id, product, photographer) VALUES ($1, $2, $3)',
    [id, product.id, photographer.id],
  );

  return {
    assignment: { id, product: product.id, photographer: photographer.id },
    photographer,
    product,
  };
};
