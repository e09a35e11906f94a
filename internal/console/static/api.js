// The console's one door to the HTTP API: same-origin fetches with the
// session cookie, the CSRF token on every request that changes anything,
// and errors turned into sentences.

let csrf = '';
export let session = null;

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.reason ? body.reason : `the server answered ${status}`);
    this.status = status;
    this.kind = body && body.error;
    this.errors = (body && body.errors) || [];
  }
}

// call sends one request; body is JSON-encoded. It resolves to the parsed
// answer (null for 204) or rejects with ApiError.
export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { reason: 'The broker did not answer (is it running, and is the network up?).' });
  }
  if (res.status === 401) {
    location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
    throw new ApiError(401, { reason: 'Your session has ended; sign in again.' });
  }
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { reason: text }; }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path) => call('GET', path);

export async function loadSession() {
  session = await get('/api/session');
  csrf = session.csrf_token;
  return session;
}

// enc writes one path segment (vhost "/" is %2F).
export const enc = (s) => encodeURIComponent(s);

export async function logout() {
  await fetch('/logout', { method: 'POST', headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' });
  location.assign('/login');
}
