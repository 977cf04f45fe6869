// product-purchase-authorize-cc: authorizes a card payment.
//   POST / {"user","token","card","total"?} -> {"authorized":true,"authorization","limit"} or 402
// Declined (402) when the token is not the user's, the card number is not valid
// (12-19 digits passing the Luhn check) or the total is over the limit (10000).
// Without "total" (product-purchase asks while the price is being computed) the
// card is pre-authorized up to the limit, which the caller must respect.
'use strict';

const crypto = require('crypto');
const { signingKey } = require('../secrets');

const LIMIT = 10000;

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

function luhn(digits) {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) {
        d -= 9;
      }
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function validToken(user, token) {
  if (!/^[0-9a-f]{64}$/.test(token)) {
    return false;
  }
  const expected = crypto.createHmac('sha256', signingKey('auth-token-key')).update(`user:${user}`).digest();
  return crypto.timingSafeEqual(expected, Buffer.from(token, 'hex'));
}

module.exports = async (event) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const { user, token, card, total } = body;
  if (typeof user !== 'string' || user === '' || user.length > 100) {
    throw fail(400, 'user is required');
  }
  if (typeof token !== 'string' || token === '') {
    throw fail(400, 'token is required');
  }
  if (typeof card !== 'string' && typeof card !== 'number') {
    throw fail(400, 'card is required');
  }
  const hasTotal = total !== undefined && total !== null;
  if (hasTotal && (typeof total !== 'number' || !Number.isFinite(total) || total < 0)) {
    throw fail(400, 'total must be a non-negative number');
  }

  if (!validToken(user, token)) {
    throw fail(402, 'payment declined: invalid token');
  }
  const digits = String(card).replace(/[\s-]/g, '');
  if (!/^[0-9]{12,19}$/.test(digits) || !luhn(digits)) {
    throw fail(402, 'payment declined: invalid card number');
  }
  if (hasTotal && total > LIMIT) {
    throw fail(402, `payment declined: total over the limit of ${LIMIT}`);
  }

  const amount = hasTotal ? Math.round(total * 100) / 100 : LIMIT;
  const claim = JSON.stringify({
    user,
    card: digits.slice(-4),
    amount,
    at: Date.now(),
    nonce: crypto.randomBytes(8).toString('hex'),
  });
  const authorization = crypto.createHmac('sha256', signingKey('payment-api-key')).update(claim).digest('hex');
  return { authorized: true, authorization, limit: amount };
};
