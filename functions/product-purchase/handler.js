// product-purchase: orchestrates a purchase.
//   POST / {"user","password","product","quantity","card","coupon"?}
//   -> authenticate -> (get-price || authorize-cc) -> publish
//   -> {"purchase","user","product","quantity","total","status":"published"}
// 401 for bad credentials, 402 when the card is declined; other callee errors pass
// through (4xx as they are, failures as 502/504).
'use strict';

const chain = require('../chain');

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

module.exports = async (event) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const { user, password, product, quantity, card, coupon } = body;
  if (typeof user !== 'string' || user === '') {
    throw fail(400, 'user is required');
  }
  if (typeof password !== 'string' || password === '') {
    throw fail(400, 'password is required');
  }
  if (typeof product !== 'string' || !ID.test(product)) {
    throw fail(400, 'product is required and must be a valid id');
  }
  if (!Number.isInteger(quantity) || quantity < 1) {
    throw fail(400, 'quantity must be a positive integer');
  }
  if ((typeof card !== 'string' && typeof card !== 'number') || String(card) === '') {
    throw fail(400, 'card is required');
  }
  if (coupon !== undefined && coupon !== null && typeof coupon !== 'string') {
    throw fail(400, 'coupon must be a string');
  }

  const auth = (await chain.call(event, 'product-purchase-authenticate', {
    body: { user, password },
  })).body;
  if (!auth || typeof auth.token !== 'string') {
    throw fail(502, 'product-purchase-authenticate returned an unexpected answer');
  }

  // The price and the card are checked at the same time; the card is pre-authorized
  // up to its limit, and the priced total must fit in it.
  const [priced, authorized] = await Promise.all([
    chain.call(event, 'product-purchase-get-price', {
      body: coupon ? { product, quantity, coupon } : { product, quantity },
    }).then((r) => r.body),
    chain.call(event, 'product-purchase-authorize-cc', {
      body: { user: auth.user, token: auth.token, card },
    }).then((r) => r.body),
  ]);
  if (!priced || typeof priced.total !== 'number') {
    throw fail(502, 'product-purchase-get-price returned an unexpected answer');
  }
  if (!authorized || authorized.authorized !== true || typeof authorized.authorization !== 'string') {
    throw fail(402, 'payment declined');
  }
  if (typeof authorized.limit === 'number' && priced.total > authorized.limit) {
    throw fail(402, `payment declined: total over the limit of ${authorized.limit}`);
  }

  const published = (await chain.call(event, 'product-purchase-publish', {
    body: {
      user: auth.user,
      product,
      quantity,
      total: priced.total,
      authorization: authorized.authorization,
    },
  })).body;

  return {
    purchase: published.purchase,
    user: auth.user,
    product,
    quantity,
    total: priced.total,
    status: 'published',
  };
};
