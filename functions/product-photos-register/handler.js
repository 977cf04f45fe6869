// product-photos-register: registers (or updates) a photographer.
//   POST / {"id"?,"name","email","phone"} -> 201 {id,name,email,phone}
'use strict';

const crypto = require('crypto');
const store = require('../store');

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const EMAIL = /^[^\s@"<>()\\,;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;
const PHONE = /^\+?[0-9][0-9 ().-]{4,23}$/;

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

function text(body, field, { required = true, max = 200, pattern } = {}) {
  const value = body[field];
  if (value === undefined || value === null || value === '') {
    if (required) {
      throw fail(400, `${field} is required`);
    }
    return undefined;
  }
  if (typeof value !== 'string' || value.trim() === '') {
    throw fail(400, `${field} must be a non-empty string`);
  }
  const v = value.trim();
  if (v.length > max) {
    throw fail(400, `${field} is longer than ${max} characters`);
  }
  if (pattern && !pattern.test(v)) {
    throw fail(400, `${field} is not valid`);
  }
  return v;
}

module.exports = async (event, context) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const id = text(body, 'id', { required: false, max: 64, pattern: ID })
    || `ph-${crypto.randomBytes(6).toString('hex')}`;
  const name = text(body, 'name');
  const email = text(body, 'email', { max: 254, pattern: EMAIL }).toLowerCase();
  const phone = text(body, 'phone', { max: 24, pattern: PHONE });

  const { rows } = await store.query(
    `INSERT INTO photographers (id, name, email, phone) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, phone = EXCLUDED.phone
     RETURNING id, name, email, phone`,
    [id, name, email, phone],
  );
  return context.status(201).succeed({ ...rows[0] });
};
