// Function-to-function calls through the gateway, with the call id and the
// W3C trace context propagated as OpenTelemetry instrumentation would.
'use strict';

const crypto = require('crypto');

const DEFAULT_TIMEOUT_MS = 10000;
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const FUNCTION_NAME = /^[-a-zA-Z_0-9.]+$/;

// One new trace per incoming event that carried none, shared by all its calls.
const newTraces = new WeakMap();

function header(event, name) {
  const headers = (event && event.headers) || {};
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

function randomHex(bytes) {
  let hex;
  do {
    hex = crypto.randomBytes(bytes).toString('hex');
  } while (/^0+$/.test(hex));
  return hex;
}

// The trace id of the incoming request, or a new one when none (or an invalid one) came in.
function traceId(event) {
  const incoming = header(event, 'traceparent');
  if (typeof incoming === 'string') {
    const m = TRACEPARENT.exec(incoming.trim().toLowerCase());
    if (m && m[1] !== 'ff' && !/^0+$/.test(m[2]) && !/^0+$/.test(m[3])) {
      return m[2];
    }
  }
  if (event && typeof event === 'object') {
    let id = newTraces.get(event);
    if (!id) {
      id = randomHex(16);
      newTraces.set(event, id);
    }
    return id;
  }
  return randomHex(16);
}

function gatewayUrl() {
  const url = process.env.gateway_url;
  if (!url) {
    const err = new Error('gateway_url is not set');
    err.statusCode = 500;
    throw err;
  }
  return url.replace(/\/+$/, '');
}

function callError(name, status, body, message) {
  const err = new Error(message);
  err.function = name;
  err.status = status; // what the callee answered (0: no answer)
  err.body = body;
  // What this function should answer in turn: a callee's 4xx passes through,
  // a failed callee is a bad gateway (or a gateway timeout).
  if (status >= 400 && status < 500) {
    err.statusCode = status;
  } else if (status === 504 || (status === 0 && / timed out /.test(message))) {
    err.statusCode = 504;
  } else {
    err.statusCode = 502;
  }
  return err;
}

// call(event, name, {method='POST', path='/', body, query, headers, timeoutMs, throwOnError=true})
//   -> {status, body, headers}; body is parsed JSON when possible, else text.
async function call(event, name, options = {}) {
  const {
    method = 'POST',
    path = '/',
    body,
    query,
    headers: extraHeaders = {},
    timeoutMs = DEFAULT_TIMEOUT_MS,
    throwOnError = true,
  } = options;

  if (typeof name !== 'string' || !FUNCTION_NAME.test(name)) {
    throw new Error(`invalid function name: ${name}`);
  }

  let url = `${gatewayUrl()}/function/${name}${path.startsWith('/') ? path : `/${path}`}`;
  if (query && Object.keys(query).length > 0) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null) {
        qs.append(k, String(v));
      }
    }
    const s = qs.toString();
    if (s) {
      url += (url.includes('?') ? '&' : '?') + s;
    }
  }

  const headers = { accept: 'application/json', ...extraHeaders };
  const callId = header(event, 'x-call-id');
  if (callId) {
    headers['X-Call-Id'] = callId;
  }
  headers.traceparent = `00-${traceId(event)}-${randomHex(8)}-01`;
  const tracestate = header(event, 'tracestate');
  if (tracestate) {
    headers.tracestate = tracestate;
  }

  const init = { method, headers, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined && method !== 'GET' && method !== 'HEAD') {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }

  let res;
  let text;
  try {
    res = await fetch(url, init);
    text = await res.text();
  } catch (err) {
    const timedOut = err && (err.name === 'TimeoutError' || err.name === 'AbortError');
    const e = callError(name, 0, undefined,
      timedOut ? `${name} timed out after ${timeoutMs} ms` : `${name} unreachable: ${err.cause ? err.cause.message || err.cause.code : err.message}`);
    e.cause = err;
    throw e;
  }

  let parsed = text;
  if (text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch (_) {
      parsed = text;
    }
  }

  if (throwOnError && (res.status < 200 || res.status > 299)) {
    const upstream = parsed && typeof parsed === 'object' && typeof parsed.error === 'string' ? parsed.error : null;
    throw callError(name, res.status, parsed,
      upstream && res.status < 500 ? upstream : `${name} failed with HTTP ${res.status}${upstream ? `: ${upstream}` : ''}`);
  }

  return { status: res.status, body: parsed, headers: Object.fromEntries(res.headers) };
}

module.exports = { call, traceId };
