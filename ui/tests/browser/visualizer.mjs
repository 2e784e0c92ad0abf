// Drives the visualizer in headless Chromium (Debian's /usr/bin/chromium via
// playwright-core) against a running flow; started by ui/tests/browser.rs.
//
// Environment: BASE_URL (the UI), CLOSED_URL (the same with reads closed), TOKEN, PLAYWRIGHT_DIR (node_modules holding
// playwright-core), USER_DATA_DIR (fresh), SCREENSHOT (PNG path), CHROMIUM.
// Exits non-zero with a message on the first failed check.

import { createRequire } from 'node:module';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('BASE_URL');
const TOKEN = env('TOKEN');
const require = createRequire(path.join(env('PLAYWRIGHT_DIR'), 'noop.js'));
const { chromium } = require('playwright-core');

const STALLED = 'tag.success->sink';
const MARKUP_ID = '<script>window.__pwned=3</script>';

function check(cond, message) {
  if (!cond) throw new Error('check failed: ' + message);
  console.log('ok - ' + message);
}

/** Polls `fn` (in node) until it returns a truthy value, or fails after `ms`. */
async function waitFor(what, fn, ms = 20000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

async function api(method, p, token) {
  const resp = await fetch(BASE + p, { method, headers: token ? { Authorization: 'Bearer ' + token } : {} });
  if (!resp.ok) throw new Error(`${method} ${p}: ${resp.status} ${await resp.text()}`);
  return resp.json();
}

const browser = await chromium.launchPersistentContext(env('USER_DATA_DIR'), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1600, height: 940 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-sync'],
});
let failed = null;
const pageErrors = [];
const page = browser.pages()[0] || await browser.newPage();
try {
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });

  await page.goto(BASE + '/');
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 20000 });
  check(true, 'page loaded');

  // Every processor and connection of the flow is drawn.
  const flow = await api('GET', '/api/flow');
  const drawn = await page.evaluate(() => ({
    processors: [...document.querySelectorAll('#graph [data-processor]')].map((e) => e.dataset.processor),
    connections: [...document.querySelectorAll('#graph [data-connection]')].map((e) => e.dataset.connection),
  }));
  for (const p of flow.processors) check(drawn.processors.includes(p.id), `processor ${p.id} is drawn`);
  for (const c of flow.connections) check(drawn.connections.includes(c.id), `connection ${c.id} is drawn`);
  check(drawn.processors.length === flow.processors.length, 'no extra processors');
  check(drawn.connections.length === flow.connections.length, 'no extra connections');

  // Left to right: each connection's source box is left of its target box.
  const xs = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#graph [data-processor]')]
    .map((e) => [e.dataset.processor, e.getBoundingClientRect().x])));
  for (const c of flow.connections) check(xs[c.from] < xs[c.to], `${c.from} is left of ${c.to}`);

  // Markup in ids and data is shown as text, never run.
  const markup = await page.evaluate((id) => {
    const node = [...document.querySelectorAll('#graph [data-processor]')].find((e) => e.dataset.processor === id);
    return {
      text: node ? node.querySelector('[data-field="id"]').textContent : null,
      imgs: document.querySelectorAll('#graph script, #graph img, #graph foreignObject').length,
      pwned: window.__pwned,
    };
  }, MARKUP_ID);
  check(markup.text && markup.text.startsWith('<script>'), `a processor id with markup shows as text (${markup.text})`);
  check(markup.imgs === 0, 'no element was made from the markup');

  // Live over SSE: the sink's count rises without a reload.
  await waitFor('the live indicator', () => page.evaluate(() => document.getElementById('live').dataset.live === 'true'));
  const inCount = () => page.evaluate(() => {
    const el = [...document.querySelectorAll('#graph [data-processor]')].find((e) => e.dataset.processor === 'sink');
    return Number(el.querySelector('[data-field="in-count"]').textContent.split(' ')[0].replace(/,/g, ''));
  });
  const before = await inCount();
  const after = await waitFor('the sink counter to rise', async () => { const n = await inCount(); return n > before ? n : 0; });
  check(after > before, `sink in-count rose from ${before} to ${after}`);
  const rate = await page.evaluate(() => document.querySelector('[data-processor="sink"] [data-field="in-rate"]').textContent);
  check(/^[0-9.,k]+\/s$/.test(rate) && rate !== '0/s', `sink shows a live rate (${rate})`);

  // Bulletins appear on the box that raised them.
  const alarm = await waitFor('a bulletin on the alarm box', () => page.evaluate(() => {
    const el = document.querySelector('[data-processor="alarm"]');
    const text = el.querySelector('[data-field="bulletin"]').textContent;
    return Number(el.dataset.problems) > 0 && text ? { text, problems: el.dataset.problems } : null;
  }));
  check(alarm.text.includes('disk full on <b>/var</b>'), `the alarm box shows its error as text (${alarm.text})`);

  // Stall the sink through the API: its input connection turns red.
  await api('POST', '/api/processors/sink/stop', TOKEN);
  await waitFor('the stalled connection to turn red', () => page.evaluate((id) => {
    const el = [...document.querySelectorAll('#graph [data-connection]')].find((e) => e.dataset.connection === id);
    return el.dataset.level === 'red';
  }, STALLED));
  check(true, `${STALLED} turned red`);
  const sinkState = await page.evaluate(() => document.querySelector('[data-processor="sink"]').dataset.state);
  check(sinkState === 'stopped', 'the sink box shows stopped');
  const edgeColour = await page.evaluate((id) => {
    const el = [...document.querySelectorAll('#graph [data-connection]')].find((e) => e.dataset.connection === id);
    return getComputedStyle(el.querySelector('.edge-line')).stroke;
  }, STALLED);
  check(edgeColour === 'rgb(220, 38, 38)', `the stalled connection is drawn red (${edgeColour})`);

  // A connection's panel lists its queue; attributes with markup are text.
  await page.evaluate((id) => {
    [...document.querySelectorAll('[data-connection-label]')].find((e) => e.dataset.connectionLabel === id)
      .dispatchEvent(new MouseEvent('click', { bubbles: true }));
  }, STALLED);
  await page.waitForSelector('[data-panel="connection"] [data-section="queue"] tbody tr', { timeout: 10000 });
  const queue = await page.evaluate(() => {
    const t = document.querySelector('[data-section="queue"]');
    return { rows: t.querySelectorAll('tbody tr').length, text: t.textContent, scripts: t.querySelectorAll('script').length };
  });
  check(queue.rows > 0, `the queue listing shows ${queue.rows} FlowFiles`);
  check(queue.text.includes('<script>window.__pwned=1</script>'), 'an attribute with markup shows as text');
  check(queue.scripts === 0, 'no script element came from an attribute');
  await page.screenshot({ path: env('SCREENSHOT').replace(/\.png$/, '-queue.png') });

  // Stop a processor from its panel: the page asks for the token.
  await page.evaluate((id) => {
    [...document.querySelectorAll('#graph [data-processor]')].find((e) => e.dataset.processor === id)
      .dispatchEvent(new MouseEvent('click', { bubbles: true }));
  }, MARKUP_ID);
  await page.waitForSelector('[data-panel="processor"] [data-action="stop"]:not([disabled])');
  const title = await page.textContent('[data-panel="processor"] h2');
  check(title === MARKUP_ID, 'the panel title shows the id with markup as text');
  await page.click('[data-panel="processor"] [data-action="stop"]');
  await page.waitForSelector('#token-dialog[open]', { timeout: 5000 });
  await page.fill('#token-input', TOKEN);
  await page.click('#token-dialog button[value="save"]');
  await waitFor('the stopped state', () => page.evaluate((id) =>
    [...document.querySelectorAll('#graph [data-processor]')].find((e) => e.dataset.processor === id).dataset.state === 'stopped', MARKUP_ID));
  check(true, 'stopped from the panel with the token');
  const kept = await page.evaluate(() => sessionStorage.getItem('sluice.token'));
  check(kept === TOKEN, 'the token is kept in sessionStorage');
  const serverState = (await api('GET', '/api/status')).processors.find((p) => p.id === MARKUP_ID).state;
  check(serverState === 'stopped', 'the server agrees');

  // The YAML source tab.
  await page.click('[data-tab="source"]');
  const source = await page.textContent('#source');
  check(source.includes('name: visualizer-test') && source.includes('password: ***'), 'the YAML source is shown, secrets masked');

  // Provenance lookup: where did FlowFile seq=1 go?
  await page.click('[data-tab="provenance"]');
  await page.fill('#prov-key', 'seq');
  await page.fill('#prov-value', '1');
  await page.click('#prov-by-attr button[type="submit"]');
  await page.waitForSelector('[data-provenance="results"] .trace', { timeout: 10000 });
  const trace = await page.textContent('[data-provenance="results"]');
  check(trace.includes('created by gen') && trace.includes('ROUTE'), 'provenance shows where FlowFile seq=1 went');
  await page.screenshot({ path: env('SCREENSHOT').replace(/\.png$/, '-provenance.png') });

  // A processor's panel: properties (secret masked) and counters.
  await page.click('[data-processor="gen"]');
  await page.waitForSelector('[data-panel="processor"][data-id="gen"]');
  const panel = await page.evaluate(() => {
    const p = document.querySelector('[data-panel="processor"]');
    return {
      password: p.querySelector('[data-property="password"] td').textContent,
      out: p.querySelector('[data-counter="flowfiles_out"] td').textContent,
      generated: p.querySelector('[data-counter="counter:generated"] td')?.textContent,
      state: p.querySelector('[data-field="state"]').textContent,
    };
  });
  check(panel.password.startsWith('***'), `the secret property reads *** (${panel.password})`);
  check(/^[1-9][0-9,]* \(/.test(panel.out), `the panel shows FlowFiles out (${panel.out})`);
  check(!!panel.generated, 'the panel shows the named counter');
  check(panel.state === 'running', 'the panel shows the state');

  const pwned = await page.evaluate(() => window.__pwned);
  check(pwned === undefined, 'no injected script ran');
  check(pageErrors.length === 0, 'no errors in the page: ' + pageErrors.join(' | '));

  await page.screenshot({ path: env('SCREENSHOT') });
  console.log('screenshot: ' + env('SCREENSHOT'));

  // A second server over the same flow with reads closed: the page asks for
  // the token, then loads and goes live (the event stream carries the token).
  const closed = await browser.newPage();
  closed.on('pageerror', (e) => pageErrors.push(String(e)));
  await closed.goto(env('CLOSED_URL') + '/');
  await closed.waitForSelector('#token-dialog[open]', { timeout: 10000 });
  check(true, 'with reads closed the page asks for the token');
  await closed.fill('#token-input', TOKEN);
  await closed.click('#token-dialog button[value="save"]');
  await closed.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 20000 });
  await waitFor('the closed page to go live', () => closed.evaluate(() => document.getElementById('live').dataset.live === 'true'));
  const closedCount = await closed.evaluate(() => document.querySelectorAll('#graph [data-processor]').length);
  check(closedCount === flow.processors.length, 'with the token the closed page draws the flow and goes live');
  check(pageErrors.length === 0, 'no errors in the closed page: ' + pageErrors.join(' | '));
} catch (e) {
  failed = e;
  const shot = env('SCREENSHOT').replace(/\.png$/, '-failed.png');
  await page.screenshot({ path: shot }).catch(() => {});
  console.error('page errors: ' + JSON.stringify(pageErrors));
  console.error('failure screenshot: ' + shot);
} finally {
  await browser.close();
}
if (failed) {
  console.error(String(failed && failed.stack ? failed.stack : failed));
  process.exit(1);
}
