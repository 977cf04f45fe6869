// The monitor API (faasmon serve, contract v1). Same origin, so the browser sends the basic-auth credentials it holds.
const enc = encodeURIComponent;

async function getJson(url, signal) {
  const response = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin', signal });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && typeof body.error === 'string') message += `: ${body.error}`;
    } catch { /* not JSON: the status says enough */ }
    throw new Error(message);
  }
  return response.json();
}

export const api = {
  invocations({ fn, verdict, limit = 200 }, signal) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (fn) query.set('function', fn);
    if (verdict) query.set('verdict', verdict);
    return getJson(`/api/invocations?${query}`, signal);
  },
  invocation: (id, signal) => getJson(`/api/invocations/${enc(id)}`, signal),
  graph: (id, signal) => getJson(`/api/invocations/${enc(id)}/graph?format=json`, signal),
  trace: (traceId, signal) => getJson(`/api/traces/${enc(traceId)}`, signal),
  graphUrl: (id, format) => `/api/invocations/${enc(id)}/graph?format=${enc(format)}`,
  pcapUrl: (id) => `/api/invocations/${enc(id)}/pcap`,
  snapshots: (id, signal) => getJson(`/api/invocations/${enc(id)}/snapshots`, signal),
};
