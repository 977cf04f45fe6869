// FaaSMon node20 template: the HTTP server that of-watchdog (mode=http) proxies to.
// It follows the OpenFaaS node20 template's contract: express 4 + body-parser,
// handler(event, context, cb) with event = {body, headers, method, query, path}.
'use strict';

const express = require('express');
const bodyParser = require('body-parser');
const handler = require('./function/handler');

const DEFAULT_LIMIT = '100kb'; // body-parser's own default
const rawLimit = process.env.MAX_RAW_SIZE || DEFAULT_LIMIT;
const jsonLimit = process.env.MAX_JSON_SIZE || DEFAULT_LIMIT;

const app = express();
app.disable('x-powered-by');

// A request without a content type would leave the body undefined; treat it as text.
app.use((req, res, next) => {
  if (!req.headers['content-type']) {
    req.headers['content-type'] = 'text/plain';
  }
  next();
});

if (process.env.RAW_BODY === 'true') {
  app.use(bodyParser.raw({ type: '*/*', limit: rawLimit }));
} else {
  app.use(bodyParser.text({ type: 'text/*' }));
  app.use(bodyParser.json({ limit: jsonLimit }));
  app.use(bodyParser.urlencoded({ extended: true }));
}

const isArray = (v) => Array.isArray(v);
const isObject = (v) => !!v && v.constructor === Object;

class FunctionEvent {
  constructor(req) {
    this.body = req.body;
    this.headers = req.headers;
    this.method = req.method;
    this.query = req.query;
    this.path = req.path;
  }
}

class FunctionContext {
  constructor(cb) {
    this.statusCode = 200;
    this.headerValues = {};
    this.cb = cb;
    this.cbCalled = 0;
  }

  status(code) {
    if (!code) {
      return this.statusCode;
    }
    this.statusCode = code;
    return this;
  }

  headers(value) {
    if (!value) {
      return this.headerValues;
    }
    this.headerValues = value;
    return this;
  }

  succeed(value) {
    this.cbCalled++;
    this.cb(undefined, value);
  }

  fail(value) {
    if (Number(this.status()) === 200) {
      this.status(500);
    }
    this.cbCalled++;
    this.cb(value);
  }
}

const middleware = (req, res) => {
  let fnContext;

  const cb = (err, result) => {
    if (res.headersSent) {
      return;
    }
    if (err) {
      // Errors that carry an HTTP status (e.g. 400 for bad input, or a callee's
      // status propagated by chain.js) become {"error": message} with that status.
      const code = Number(err && (err.statusCode || err.status));
      if (Number.isInteger(code) && code >= 400 && code <= 599) {
        if (code >= 500) {
          console.error(err);
        }
        return res.set(fnContext.headers()).status(code)
          .type('application/json').send(JSON.stringify({ error: err.message || String(err) }));
      }
      console.error(err);
      if (Number(fnContext.status()) < 400) {
        fnContext.status(500);
      }
      if (err instanceof Error) {
        return res.status(fnContext.status()).type('application/json')
          .send(JSON.stringify({ error: 'internal error' }));
      }
      return res.status(fnContext.status())
        .send(isArray(err) || isObject(err) ? JSON.stringify(err) : String(err));
    }

    if (isArray(result) || isObject(result)) {
      const headers = fnContext.headers();
      const hasType = Object.keys(headers).some((h) => h.toLowerCase() === 'content-type');
      res.set(headers);
      if (!hasType) {
        res.type('application/json');
      }
      return res.status(fnContext.status()).send(JSON.stringify(result));
    }
    return res.set(fnContext.headers()).status(fnContext.status())
      .send(result === undefined || result === null ? '' : result);
  };

  const fnEvent = new FunctionEvent(req);
  fnContext = new FunctionContext(cb);

  Promise.resolve()
    .then(() => handler(fnEvent, fnContext, cb))
    .then((result) => {
      if (!fnContext.cbCalled) {
        fnContext.succeed(result);
      }
    })
    .catch((e) => cb(e));
};

app.post('/*', middleware);
app.get('/*', middleware);
app.patch('/*', middleware);
app.put('/*', middleware);
app.delete('/*', middleware);
app.options('/*', middleware);

// Body-parser failures (malformed JSON, body too large) are the caller's fault.
// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  const code = Number(err.statusCode || err.status) || 500;
  const message = err.type === 'entity.parse.failed' ? 'invalid JSON body'
    : err.type === 'entity.too.large' ? 'request body too large'
      : code < 500 ? err.message : 'internal error';
  if (code >= 500) {
    console.error(err);
  }
  res.status(code).type('application/json').send(JSON.stringify({ error: message }));
});

// A stray rejection (e.g. a fire-and-forget promise) must not take the instance down.
process.on('unhandledRejection', (reason) => {
  console.error('unhandled rejection:', reason);
});

const port = Number(process.env.http_port) || 3000;
const host = process.env.http_host || undefined;

const server = app.listen(port, host, () => {
  console.log(`node20-faasmon listening on ${host || '*'}:${port}`);
});

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
});
