// product-purchase-publish: records a purchase, and lists a user's purchases.
//   POST / {"user","product","quantity","total","authorization"} -> {"purchase","status":"published"}
//   GET /purchases?user=U -> list of purchases
'use strict';

const crypto = require('crypto');
const store = require('../store');

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

function text(body, field, max) {
  const value = body[field];
  if (typeof value !== 'string' || value.trim() === '') {
    throw fail(400, `${field} is required`);
  }
  if (value.length > max) {
    throw fail(400, `${field} is longer than ${max} characters`);
  }
  return value;
}

async function publish(event) {
  const body = input(event);
  const user = text(body, 'user', 100);
  const product = text(body, 'product', 64);
  const authorization = text(body, 'authorization', 200);
  const { quantity, total } = body;
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > 1000000) {
    throw fail(400, 'quantity must be a positive integer');
  }
  if (typeof total !== 'number' || !Number.isFinite(total) || total < 0 || total >= 1e12) {
    throw fail(400, 'total must be a non-negative number');
  }

  // Deliberate vulnerability (attack kit target): the caller is trusted; the purchase is
  // recorded without checking the authorization, the user or the price.
  const id = `pu-${crypto.randomBytes(8).toString('hex')}`;
  await store.query(
    `INSERT INTO purchases (id, username, product, quantity, total, authorization_code)
     VALUES ($1, $2, $3, $4, round($5::numeric, 2), $6)`,
    [id, user, product, quantity, total, authorization],
  );
  return { purchase: id, status: 'published' };
}

async function list(event) {
  const user = (event.query || {}).user;
  if (typeof user !== 'string' || user === '' || user.length > 100) {
    throw fail(400, 'user is required (?user=U)');
  }
  const { rows } = await store.query(
    `SELECT id, username, product, quantity, total, authorization_code, created_at
       FROM purchases WHERE username = $1 ORDER BY created_at, id`,
    [user],
  );
  return rows.map((r) => ({
    purchase: r.id,
    user: r.username,
    product: r.product,
    quantity: r.quantity,
    total: r.total,
    authorization: r.authorization_code,
    createdAt: r.created_at.toISOString(),
  }));
}

module.exports = async (event) => {
  const route = String(event.path || '/').replace(/\/+$/, '') || '/';
  if (route === '/' && event.method === 'POST') {
    return publish(event);
  }
  if (route === '/purchases' && event.method === 'GET') {
    return list(event);
  }
  if (route === '/' || route === '/purchases') {
    throw fail(405, route === '/' ? 'use POST' : 'use GET');
  }
  throw fail(404, 'not found: use POST / or GET /purchases?user=U');
};
