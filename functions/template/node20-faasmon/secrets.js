// OpenFaaS secrets: each secret is the file <secret_mount_path>/<name>.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function mountPath() {
  return process.env.secret_mount_path || '/var/openfaas/secrets';
}

// The trimmed secret, or null when it is absent (or empty).
function readSecret(name) {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new Error(`invalid secret name: ${name}`);
  }
  try {
    const value = fs.readFileSync(path.join(mountPath(), name), 'utf8').trim();
    return value === '' ? null : value;
  } catch (err) {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR' || err.code === 'EISDIR') {
      return null;
    }
    throw err;
  }
}

// A signing key: the secret when it is mounted, otherwise a key derived from
// PGPASSWORD (so that every instance of a deployment derives the same key).
function signingKey(name) {
  const secret = readSecret(name);
  if (secret !== null) {
    return secret;
  }
  return crypto.createHash('sha256')
    .update(`faasmon:${name}:${process.env.PGPASSWORD || ''}`)
    .digest('hex');
}

module.exports = { readSecret, signingKey, mountPath };
