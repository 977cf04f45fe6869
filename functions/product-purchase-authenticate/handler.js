// product-purchase-authenticate: checks a user's password.
//   POST / {"user","password"} -> {"user","token"} or 401
// Passwords are stored as hex(sha256(salt + ":" + password)); the token is
// hex(HMAC-SHA256(auth-token-key, "user:" + user)).
'use strict';

const crypto = require('crypto');
const store = require('../store');
const { signingKey } = require('../secrets');

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

function hashPassword(salt, password) {
  return crypto.createHash('sha256').update(`${salt}:${password}`).digest('hex');
}

function tokenFor(user) {
  return crypto.createHmac('sha256', signingKey('auth-token-key')).update(`user:${user}`).digest('hex');
}

// Compares two hex digests in constant time.
function sameDigest(a, b) {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && crypto.timingSafeEqual(x, y);
}

// Used when the user does not exist, so that both cases take the same work.
const DUMMY = { salt: '00000000000000000000000000000000', password_hash: '0'.repeat(64) };

module.exports = async (event) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const { user, password } = body;
  if (typeof user !== 'string' || user === '' || user.length > 100) {
    throw fail(400, 'user is required');
  }
  if (typeof password !== 'string' || password === '' || password.length > 1000) {
    throw fail(400, 'password is required');
  }

  const { rows } = await store.query(
    'SELECT username, salt, password_hash FROM users WHERE username = $1', [user],
  );
  const row = rows[0] || DUMMY;
  const ok = sameDigest(hashPassword(row.salt, password), row.password_hash);
  if (!rows[0] || !ok) {
    throw fail(401, 'invalid credentials');
  }
  return { user: row.username, token: tokenFor(row.username) };
};
