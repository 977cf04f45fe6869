// product-photos-message: texts the photographer about a new assignment.
//   POST / {"assignment","photographer","product"} -> {"sent":true,"to":phone}
// "assignment", "photographer" and "product" are the objects product-photos-assign
// returns (an id string is looked up instead). The SMS gateway is simulated by
// appending the message to /tmp/outbox.log.
'use strict';

const { exec } = require('child_process');
const store = require('../store');

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_PHONE_LENGTH = 1000;

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

const isObject = (v) => !!v && typeof v === 'object' && !Array.isArray(v);

function checkId(value, what) {
  if (typeof value !== 'string' || !ID.test(value)) {
    throw fail(400, `${what} is not a valid id`);
  }
  return value;
}

async function photographerOf(value) {
  if (isObject(value)) {
    if (typeof value.phone !== 'string' || value.phone.trim() === '') {
      throw fail(400, 'photographer.phone is required');
    }
    if (value.phone.length > MAX_PHONE_LENGTH) {
      throw fail(400, 'photographer.phone is too long');
    }
    return { id: value.id, name: typeof value.name === 'string' ? value.name : '', phone: value.phone };
  }
  if (value === undefined || value === null || value === '') {
    throw fail(400, 'photographer is required');
  }
  const id = checkId(value, 'photographer');
  const { rows } = await store.query('SELECT id, name, phone FROM photographers WHERE id = $1', [id]);
  if (rows.length === 0) {
    throw fail(404, `unknown photographer: ${id}`);
  }
  return rows[0];
}

async function productOf(value) {
  if (isObject(value)) {
    checkId(value.id, 'product.id');
    return { id: value.id, name: typeof value.name === 'string' ? value.name : value.id };
  }
  if (value === undefined || value === null || value === '') {
    throw fail(400, 'product is required');
  }
  const id = checkId(value, 'product');
  const { rows } = await store.query('SELECT id, name FROM products WHERE id = $1', [id]);
  if (rows.length === 0) {
    throw fail(404, `unknown product: ${id}`);
  }
  return rows[0];
}

// Text that is safe inside a double-quoted shell word.
function quoteSafe(s) {
  return String(s).replace(/[\r\n]+/g, ' ').replace(/[\\"$`]/g, (c) => `\\${c}`);
}

function send(phone, message) {
  // Deliberate vulnerability (attack kit target): the phone number is pasted unescaped
  // into a shell command line (command injection through photographer.phone).
  const command = `echo "To ${phone}: ${quoteSafe(message)}" >> /tmp/outbox.log`;
  return new Promise((resolve, reject) => {
    exec(command, { timeout: 5000, maxBuffer: 64 * 1024 }, (err) => (err ? reject(err) : resolve()));
  });
}

module.exports = async (event) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const assignmentId = checkId(isObject(body.assignment) ? body.assignment.id : body.assignment, 'assignment');
  const photographer = await photographerOf(body.photographer);
  const product = await productOf(body.product);

  const greeting = photographer.name ? `Hi ${photographer.name}, ` : 'Hi, ';
  const message = `${greeting}please photograph ${product.name} (${product.id}) for assignment ${assignmentId}.`;
  try {
    await send(photographer.phone, message);
  } catch (err) {
    console.error('message not sent:', err.message);
    throw fail(500, 'message could not be sent');
  }
  return { sent: true, to: photographer.phone };
};
