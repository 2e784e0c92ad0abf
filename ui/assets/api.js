// Talking to the Sluice API: JSON reads, token-guarded writes, the event stream.
//
// The token lives in sessionStorage (this tab only). Writes always send it;
// reads send it when the server said reads are closed (a 401), and the event
// stream then carries it as `access_token`, since EventSource cannot set headers.

const TOKEN_KEY = 'sluice.token';
let readsClosed = false;
let prompt = async () => null;

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** `fn(reason)` asks the person for the token and resolves to it (or null). */
export function setTokenPrompt(fn) {
  prompt = fn;
}

function headers(withToken) {
  const t = token();
  return withToken && t ? { Authorization: 'Bearer ' + t } : {};
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return body.error || resp.statusText;
  } catch {
    return resp.statusText;
  }
}

async function request(method, path, needsToken) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (needsToken && !token()) {
      const t = await prompt(method === 'GET' ? 'Reading this flow needs the token.' : 'Changing the flow needs the token.');
      if (!t) throw new Error('no token given');
      setToken(t);
    }
    const resp = await fetch(path, { method, headers: headers(needsToken), cache: 'no-store' });
    if (resp.status === 401) {
      if (method === 'GET') readsClosed = true;
      if (needsToken) setToken(null);
      needsToken = true;
      continue;
    }
    if (!resp.ok) throw new Error(await errorText(resp));
    return resp.json();
  }
  throw new Error('the token was not accepted');
}

export function getJSON(path) {
  return request('GET', path, readsClosed);
}

export function post(path) {
  return request('POST', path, true);
}

export function pathId(id) {
  return encodeURIComponent(id);
}

/** Opens the event stream; `on` maps event names to handlers of parsed data. */
export function openEvents(on, onState) {
  let url = '/api/events';
  if (readsClosed && token()) url += '?access_token=' + encodeURIComponent(token());
  const es = new EventSource(url);
  for (const [name, fn] of Object.entries(on)) {
    es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  es.onopen = () => onState(true);
  es.onerror = () => onState(false);
  return es;
}
