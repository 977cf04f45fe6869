// Shared PostgreSQL access for the hello-retail functions.
// node-postgres reads PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE itself.
'use strict';

const { Pool, types } = require('pg');

// NUMERIC (prices, totals) and BIGINT (counts, sizes) as JavaScript numbers.
types.setTypeParser(1700, (v) => (v === null ? null : parseFloat(v)));
types.setTypeParser(20, (v) => (v === null ? null : parseInt(v, 10)));

let pool = null;

function getPool() {
  if (!pool) {
    pool = new Pool({
      max: 2,
      idleTimeoutMillis: 30000,
      connectionTimeoutMillis: 5000,
      application_name: process.env.PGAPPNAME || 'faasmon-function',
    });
    // An idle client losing its connection must not crash the instance.
    pool.on('error', (err) => {
      console.error('postgres pool error:', err.message);
    });
  }
  return pool;
}

// query(text, params) -> pg result ({rows, rowCount, ...}).
async function query(text, params) {
  return getPool().query(text, params);
}

// Runs fn(client) inside BEGIN/COMMIT, rolling back on error.
async function transaction(fn) {
  const client = await getPool().connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (_) {
      // the connection is probably gone; the original error matters more
    }
    throw err;
  } finally {
    client.release();
  }
}

async function end() {
  if (pool) {
    const p = pool;
    pool = null;
    await p.end();
  }
}

module.exports = { query, transaction, end, getPool };
