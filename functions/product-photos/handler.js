// product-photos: orchestrates the photo workflow of hello-retail.
//   POST /request {"product","photographer"?}
//     -> assign -> message -> record -> {"assignment","photographer","status":"recorded"}
//   POST /photos {"photographer","product","url"}
//     -> receive -> success -> report -> {"product","photo","status":"reported"}
// Callee errors pass through (4xx as they are, failures as 502/504).
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

function idOf(body, field, required = true) {
  const value = body[field];
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

async function request(event, body) {
  const product = idOf(body, 'product');
  const photographer = idOf(body, 'photographer', false);

  const assigned = (await chain.call(event, 'product-photos-assign', {
    body: photographer ? { product, photographer } : { product },
  })).body;
  if (!assigned || !assigned.assignment || !assigned.photographer) {
    throw fail(502, 'product-photos-assign returned an unexpected answer');
  }

  await chain.call(event, 'product-photos-message', {
    body: {
      assignment: assigned.assignment,
      photographer: assigned.photographer,
      product: assigned.product,
    },
  });

  const recorded = (await chain.call(event, 'product-photos-record', {
    body: { assignment: { id: assigned.assignment.id } },
  })).body;

  return {
    assignment: recorded.assignment,
    photographer: assigned.photographer.id,
    status: 'recorded',
  };
}

async function photos(event, body) {
  const product = idOf(body, 'product');
  const photographer = idOf(body, 'photographer');
  if (typeof body.url !== 'string' || body.url.trim() === '') {
    throw fail(400, 'url is required');
  }

  const received = (await chain.call(event, 'product-photos-receive', {
    body: { photographer, product, url: body.url },
    timeoutMs: 15000,
  })).body;
  if (!received || !received.photo) {
    throw fail(502, 'product-photos-receive returned an unexpected answer');
  }

  await chain.call(event, 'product-photos-success', {
    body: { product, photo: received.photo },
  });

  await chain.call(event, 'product-photos-report', {
    body: { product, photo: received.photo },
  });

  return { product, photo: received.photo, status: 'reported' };
}

module.exports = async (event) => {
  const route = String(event.path || '/').replace(/\/+$/, '');
  if (route !== '/request' && route !== '/photos') {
    throw fail(404, 'not found: use POST /request or POST /photos');
  }
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  return route === '/request' ? request(event, body) : photos(event, body);
};
