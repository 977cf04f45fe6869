// product-catalog-builder: creates or updates categories and products.
//   POST / {"action":"category","name","description"}
//   POST / {"action":"product","id"?,"category","name","brand","description","price"}
//   -> 201 the stored category / product
'use strict';

const crypto = require('crypto');
const store = require('../store');

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CATEGORY = /^[a-z0-9][a-z0-9-]{0,39}$/;

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

function text(body, field, { required = true, max = 200, pattern, fallback } = {}) {
  const value = body[field];
  if (value === undefined || value === null || value === '') {
    if (required) {
      throw fail(400, `${field} is required`);
    }
    return fallback;
  }
  if (typeof value !== 'string' || value.trim() === '') {
    throw fail(400, `${field} must be a non-empty string`);
  }
  if (value.length > max) {
    throw fail(400, `${field} is longer than ${max} characters`);
  }
  if (pattern && !pattern.test(value)) {
    throw fail(400, `${field} is not valid`);
  }
  return value.trim();
}

function toProduct(row) {
  return {
    id: row.id,
    category: row.category,
    name: row.name,
    brand: row.brand,
    description: row.description,
    price: row.price,
    image: row.image,
  };
}

async function saveCategory(body) {
  const name = text(body, 'name', { max: 40, pattern: CATEGORY });
  const description = text(body, 'description', { required: false, max: 2000, fallback: '' });
  const { rows } = await store.query(
    `INSERT INTO categories (name, description) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description
     RETURNING name, description`,
    [name, description],
  );
  return rows[0];
}

async function saveProduct(body) {
  const id = text(body, 'id', { required: false, max: 64, pattern: ID })
    || `p-${crypto.randomBytes(6).toString('hex')}`;
  const category = text(body, 'category', { max: 40, pattern: CATEGORY });
  const name = text(body, 'name');
  const brand = text(body, 'brand', { max: 100 });
  const description = text(body, 'description', { required: false, max: 2000, fallback: '' });
  const price = body.price;
  if (typeof price !== 'number' || !Number.isFinite(price) || price < 0 || price > 10000000) {
    throw fail(400, 'price must be a number between 0 and 10000000');
  }

  const known = await store.query('SELECT 1 FROM categories WHERE name = $1', [category]);
  if (known.rowCount === 0) {
    throw fail(404, `unknown category: ${category}`);
  }

  const { rows } = await store.query(
    `INSERT INTO products (id, category, name, brand, description, price)
     VALUES ($1, $2, $3, $4, $5, round($6::numeric, 2))
     ON CONFLICT (id) DO UPDATE SET
       category = EXCLUDED.category, name = EXCLUDED.name, brand = EXCLUDED.brand,
       description = EXCLUDED.description, price = EXCLUDED.price, updated_at = now()
     RETURNING id, category, name, brand, description, price, image`,
    [id, category, name, brand, description, price],
  );
  return toProduct(rows[0]);
}

module.exports = async (event, context) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  let stored;
  if (body.action === 'category') {
    stored = await saveCategory(body);
  } else if (body.action === 'product') {
    stored = await saveProduct(body);
  } else {
    throw fail(400, 'action must be "category" or "product"');
  }
  return context.status(201).succeed(stored);
};
