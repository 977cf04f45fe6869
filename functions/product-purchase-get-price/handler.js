// product-purchase-get-price: prices a purchase.
//   POST / {"product","quantity","coupon"?} -> {"product","unitPrice","quantity","total"}
// A coupon is a discount formula over the list price and the quantity, e.g.
// "price*0.9" or "price-5"; it gives the unit price to charge.
// total = max(0, formula result) * quantity, rounded to cents (list price without coupon).
'use strict';

const store = require('../store');

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_QUANTITY = 1000;
const MAX_COUPON_LENGTH = 10000;

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

const cents = (x) => Math.round(x * 100) / 100;

function applyCoupon(coupon, price, quantity) {
  let formula;
  try {
    // Deliberate vulnerability (attack kit target): the coupon is compiled as JavaScript
    // and runs inside this process with its privileges.
    formula = new Function('price', 'quantity', 'return ' + coupon);
  } catch (err) {
    throw fail(400, `invalid coupon: ${err.message}`);
  }
  let result;
  try {
    result = formula(price, quantity);
  } catch (err) {
    throw fail(400, `invalid coupon: ${err.message}`);
  }
  if (typeof result !== 'number' || !Number.isFinite(result)) {
    throw fail(400, 'invalid coupon: it must give a finite number');
  }
  return Math.max(0, result);
}

module.exports = async (event) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const product = body.product;
  if (typeof product !== 'string' || !ID.test(product)) {
    throw fail(400, 'product is required and must be a valid id');
  }
  const quantity = body.quantity;
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > MAX_QUANTITY) {
    throw fail(400, `quantity must be an integer from 1 to ${MAX_QUANTITY}`);
  }
  const coupon = body.coupon;
  if (coupon !== undefined && coupon !== null && coupon !== ''
      && (typeof coupon !== 'string' || coupon.length > MAX_COUPON_LENGTH)) {
    throw fail(400, 'coupon must be a string');
  }

  const { rows } = await store.query('SELECT id, price FROM products WHERE id = $1', [product]);
  if (rows.length === 0) {
    throw fail(404, `unknown product: ${product}`);
  }
  const unitPrice = rows[0].price;

  const charged = typeof coupon === 'string' && coupon.trim() !== ''
    ? applyCoupon(coupon, unitPrice, quantity)
    : unitPrice;
  const total = cents(charged * quantity);

  return { product, unitPrice, quantity, total };
};
