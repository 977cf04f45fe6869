// product-photos-record: records that the photographer was notified.
//   POST / {"assignment":{id}} -> {"assignment":id,"status":"recorded"}
'use strict';

const store = require('../store');

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

module.exports = async (event) => {
  if (event.method !== 'POST') {
    throw fail(405, 'use POST');
  }
  const body = input(event);
  const a = body.assignment;
  const id = a && typeof a === 'object' && !Array.isArray(a) ? a.id : a;
  if (id === undefined || id === null || id === '') {
    throw fail(400, 'assignment.id is required');
  }
  if (typeof id !== 'string' || !ID.test(id)) {
    throw fail(400, 'assignment.id is not a valid id');
  }

  // An assignment that is already recorded stays recorded; a completed one stays completed.
  const { rows } = await store.query(
    `UPDATE assignments
        SET status = CASE WHEN status = 'assigned' THEN 'recorded' ELSE status END,
            updated_at = now()
      WHERE id = $1
      RETURNING id, status`,
    [id],
  );
  if (rows.length === 0) {
    throw fail(404, `unknown assignment: ${id}`);
  }
  if (rows[0].status === 'completed') {
    throw fail(409, `assignment ${id} is already completed`);
  }
  return { assignment: id, status: 'recorded' };
};
