/* Drives the Sluice console in headless Chromium (puppeteer-core) against a
 * running gateway set up by tests/integration/test_console.py, and checks
 * what each page shows against the admin API. Environment: SLUICE_ADMIN
 * (http://host:port), SLUICE_TOKEN, IN_URL (the gateway's http_server input;
 * route feed is /feed, to stdout), ERP_URL and CRM_URL (the test partners:
 * POST /_fix makes one answer 200, GET /_received lists delivered ids),
 * ORDER_IDS (route orders' three dead-lettered messages, in the order posted) and
 * BAD_ID (the last of them), SHOTS_DIR, CHROMIUM.
 * Exits non-zero with the failed check on the first failure. */
'use strict';

const path = require('path');
const puppeteer = require('puppeteer-core');

const ADMIN = process.env.SLUICE_ADMIN;
const TOKEN = process.env.SLUICE_TOKEN;
const BAD_ID = process.env.BAD_ID;
const ORDER_IDS = (process.env.ORDER_IDS || '').split(',');
const SHOTS = process.env.SHOTS_DIR;
const WAIT = { timeout: 30000 };

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('  ok: ' + what);
}

async function apiGet(p) {
  const r = await fetch(ADMIN + p, { headers: { Authorization: 'Bearer ' + TOKEN } });
  if (!r.ok) throw new Error(`GET ${p}: ${r.status}`);
  return r.json();
}

async function until(fn, what, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/* page.waitForFunction, failing with what was awaited. */
async function waitShown(page, what, fn) {
  try {
    await page.waitForFunction(fn, WAIT);
  } catch (e) {
    throw new Error(`the page never showed ${what} (${e.message})`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

/* Goes to a hash route and waits until that page has rendered. */
async function open(page, hash, name) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(`#page[data-loaded="${name}"]`, WAIT);
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim());

async function login(page) {
  await page.goto(ADMIN + '/', { waitUntil: 'load' });
  await page.waitForSelector('#login:not(.hidden)', WAIT);
  check(page.url() === ADMIN + '/console/', '/ redirects to /console/');
  await page.type('#token', 'wrong-token');
  await page.click('#login-submit');
  await waitShown(page, 'the wrong-token error', () => document.getElementById('login-error').textContent.includes('wrong'));
  check(true, 'a wrong token is refused on the login form');
  await shot(page, '0-login');
  await page.type('#token', TOKEN);
  await page.click('#login-submit');
  await page.waitForSelector('#page[data-loaded="routes"]', WAIT);
  check(await page.evaluate(() => sessionStorage.getItem('sluice.token')) === TOKEN, 'the token is kept in sessionStorage');
}

/* Posts to route feed every 50 ms for ms milliseconds. */
async function feed(ms) {
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    const r = await fetch(process.env.IN_URL + '/feed', { method: 'POST', body: JSON.stringify({ i }), headers: { 'Content-Type': 'application/json' } });
    if (r.status !== 202) throw new Error('feed: ' + r.status);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/* Counts the pixels of route's chart drawn in the rate lines' colours above
 * its zero line (a rate of 0 draws only on the bottom rows). */
function chartInk(page, route) {
  return page.$eval(`[data-route="${route}"] canvas`, (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height - 10).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 2] > d[i] + 60 || d[i + 1] > d[i] + 60) n++;
    return n;
  });
}

async function routesPage(page) {
  await page.reload({ waitUntil: 'load' }); /* the token survives a reload: no second prompt */
  await page.waitForSelector('#page[data-loaded="routes"]', WAIT);
  for (const name of ['orders', 'audit']) {
    const api = await apiGet('/v1/routes/' + name);
    for (const p of api.partitions) {
      const shown = await text(page, `[data-route="${name}"] tr[data-partition="${p.partition}"] [data-field="lag"]`);
      check(shown === String(p.lag), `route ${name} partition ${p.partition}: page lag ${shown} = API lag ${p.lag}`);
    }
  }
  check(await text(page, '[data-route="audit"] [data-field="total-lag"]') === '1', 'route audit shows its stuck message as lag 1');
  check(await text(page, '[data-route="orders"] [data-field="state"]') === 'running', 'route orders is running');
  /* traffic on route feed while the page samples /metrics every 2 s */
  const feeding = feed(8000);
  await waitShown(page, 'a rate > 0 for route feed', () => parseFloat(document.querySelector('[data-route="feed"] [data-field="rate-in"]').textContent) > 0 &&
    parseFloat(document.querySelector('[data-route="feed"] [data-field="rate-out"]').textContent) > 0);
  check(true, 'route feed shows a rate in and out > 0 from the sampled counters: ' +
    await text(page, '[data-route="feed"] [data-field="rate-in"]'));
  await feeding;
  check(await chartInk(page, 'feed') > 0, 'route feed\'s chart has its rate lines drawn');
  await shot(page, '1-routes');
  await page.click('[data-route="orders"] [data-action="pause"]');
  await until(async () => (await apiGet('/v1/routes')).routes.find((r) => r.name === 'orders').paused, 'orders paused (API)');
  await waitShown(page, 'orders paused', () => document.querySelector('[data-route="orders"] [data-field="state"]').textContent === 'paused');
  check(true, 'pause: the API and the page say paused');
  await shot(page, '1-routes-paused');
  await page.click('[data-route="orders"] [data-action="resume"]');
  await until(async () => !(await apiGet('/v1/routes')).routes.find((r) => r.name === 'orders').paused, 'orders resumed (API)');
  check(true, 'resume: the API says running');
}

async function breakersPage(page) {
  await open(page, '#/breakers', 'breakers');
  const api = await apiGet('/v1/breakers/crm');
  check(api.state === 'open', 'the API says crm is open');
  check(await text(page, '[data-breaker="crm"] [data-field="state"]') === 'open', 'the page says crm is open');
  check(await text(page, '[data-breaker="crm"] [data-field="failures"]') === String(api.failures), `failures shown = API (${api.failures})`);
  await shot(page, '2-breakers-open');
  await fetch(process.env.CRM_URL + '/_fix', { method: 'POST' });
  await page.click('[data-breaker="crm"] [data-action="reset"]');
  await waitShown(page, 'crm closed after Reset', () => document.querySelector('[data-breaker="crm"] [data-field="state"]').textContent === 'closed');
  check((await apiGet('/v1/breakers/crm')).state === 'closed', 'after reset the API says crm is closed');
  await until(async () => (await apiGet('/v1/routes/audit')).partitions[0].lag === 0, 'audit drained after the reset');
  check(true, 'route audit delivered its message after the reset');
  await shot(page, '2-breakers-reset');
}

const received = async (url) => (await fetch(url + '/_received')).json();

/* Orders' three dead letters (ORDER_IDS, as posted; the last is BAD_ID):
 * inspect BAD_ID, redrive it alone by its button (erp gets exactly it, the
 * others stay pending), purge the oldest (the API says purged, erp never gets
 * it), then redrive the rest with "Re-run from the original" ticked. */
async function dlqPage(page) {
  const [purgeId, lastId] = ORDER_IDS;
  check(ORDER_IDS.length === 3 && ORDER_IDS[2] === BAD_ID, 'three dead letters, the last posted is BAD_ID');
  const posts = [];
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().includes('/v1/dlq/')) posts.push([r.url().replace(ADMIN, ''), r.postData()]); });
  await open(page, '#/dlq/orders', 'dlq');
  const api = await apiGet('/v1/dlq/orders');
  check(await text(page, '[data-field="pending"]') === String(api.pending) && api.pending === 3, 'page depth = API pending = 3');
  for (const id of ORDER_IDS) {
    check(await page.$(`tr[data-dlq-id="${id}"] [data-action="redrive"]`) !== null &&
      await page.$(`tr[data-dlq-id="${id}"] [data-action="purge"]`) !== null, `pending ${id} has Redrive and Purge buttons`);
  }
  const row = (id) => `tr[data-dlq-id="${id}"]`;
  const entry = (a, id) => a.entries.find((e) => e.id === id);
  await page.click(row(BAD_ID));
  await page.waitForSelector('[data-field="dlq-error"]', WAIT);
  check((await text(page, '[data-field="dlq-error"]')).includes('422'), 'inspect: the error names the 422');
  check((await text(page, '[data-field="dlq-body"]')).includes('"sku": "A-1"'), 'inspect: the body, pretty-printed');
  check((await text(page, '[data-field="dlq-original-body"]')).includes('"sku": "A-1"'), 'inspect: the original body, pretty-printed');
  const failed = entry(api, BAD_ID).failed_outputs;
  check(failed && await text(page, '[data-field="dlq-failed-outputs"]') === failed, `inspect: failed outputs = API (${failed})`);
  check(await text(page, '[data-field="dlq-detail"] [data-field="state"]') === 'pending', 'inspect: state pending');
  await shot(page, '3-dlq');

  await fetch(process.env.ERP_URL + '/_fix', { method: 'POST' });
  await page.click(`${row(BAD_ID)} [data-action="redrive"]`);
  await waitShown(page, 'depth 2 after redriving one', () => document.querySelector('[data-field="pending"]').textContent === '2');
  check(JSON.stringify(posts.pop()) === JSON.stringify(['/v1/dlq/orders/redrive', JSON.stringify({ ids: [BAD_ID] })]),
    'Redrive on a row posts that one id');
  await until(async () => (await received(process.env.ERP_URL)).includes(BAD_ID), 'erp to receive the redriven message');
  let a = await apiGet('/v1/dlq/orders');
  check(a.pending === 2 && entry(a, BAD_ID).state === 'redriven' && entry(a, purgeId).state === 'pending' &&
    entry(a, lastId).state === 'pending', 'the API: that one redriven, the other two pending');
  check(JSON.stringify(await received(process.env.ERP_URL)) === JSON.stringify([BAD_ID]), 'erp received exactly the redriven one');
  check(await text(page, `${row(BAD_ID)} [data-field="state"]`) === 'redriven' && await page.$(`${row(BAD_ID)} [data-action="redrive"]`) === null,
    'the page marks it redriven, without buttons');
  check((await text(page, '[data-field="dlq-detail"]')).includes('redriven by admin'), 'inspect: who redrove it');
  await shot(page, '3-dlq-redriven-one');

  let asked = '';
  page.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await page.click(`${row(purgeId)} [data-action="purge"]`);
  await waitShown(page, 'depth 1 after the purge', () => document.querySelector('[data-field="pending"]').textContent === '1');
  check(asked.includes(purgeId), 'Purge asks first, naming the entry');
  a = await apiGet('/v1/dlq/orders');
  const p = entry(a, purgeId);
  check(a.pending === 1 && p.state === 'purged' && p.purged_by === 'admin' && typeof p.purged_at === 'number',
    'the API: purged by admin, depth 1');
  check(await text(page, `${row(purgeId)} [data-field="state"]`) === 'purged', 'the page marks it purged');
  await page.click(row(purgeId));
  await waitShown(page, 'the purged entry\'s detail', () => document.querySelector('[data-field="dlq-detail"]').textContent.includes('purged by admin'));
  await shot(page, '3-dlq-purged');

  await page.click('[data-field="rerun"]');
  await page.click('[data-action="redrive-all"]');
  await waitShown(page, 'depth 0 after Redrive all', () => document.querySelector('[data-field="pending"]').textContent === '0');
  check(JSON.stringify(posts.pop()) === JSON.stringify(['/v1/dlq/orders/redrive', JSON.stringify({ rerun: true })]),
    'Redrive all with the box ticked posts {"rerun":true}');
  await until(async () => (await received(process.env.ERP_URL)).includes(lastId), 'erp to receive the re-run message');
  check(JSON.stringify(await received(process.env.ERP_URL)) === JSON.stringify([BAD_ID, lastId]),
    'erp received the two redriven messages and never the purged one');
  a = await apiGet('/v1/dlq/orders');
  check(a.pending === 0 && entry(a, lastId).state === 'redriven' && entry(a, purgeId).state === 'purged', 'the API: depth 0, purged stays purged');
  await shot(page, '3-dlq-done');
}

async function messagePage(page) {
  await open(page, '#/message', 'message');
  await page.type('[data-field="message-id"]', BAD_ID);
  await page.click('[data-action="lookup"]');
  await page.waitForSelector('[data-field="message-state"]', WAIT);
  const api = await apiGet('/v1/messages/' + BAD_ID);
  check(await text(page, '[data-field="message-state"]') === api.state, `message state on the page = API (${api.state})`);
  check(await text(page, 'tr[data-key="route"] td:last-child') === 'orders', 'message route shown');
  await shot(page, '4-message');
  await open(page, '#/message/no-such-id', 'message');
  await page.waitForSelector('[data-field="message-error"]', WAIT);
  check((await text(page, '[data-field="message-error"]')).includes('404'), 'an unknown id says 404');
}

/* Rewinds route audit to offset 0 from its card: crm (fixed by now) gets
 * the message a second time. */
async function rewind(page) {
  await open(page, '#/routes', 'routes');
  const received = async () => (await (await fetch(process.env.CRM_URL + '/_received')).json()).length;
  const before = await received();
  check(before === 1, 'crm has its one message before the rewind');
  const field = '[data-route="audit"] [data-field="rewind-offset"]';
  await page.$eval(field, (e) => { e.value = ''; });
  await page.type(field, '0');
  await page.click('[data-route="audit"] [data-action="rewind"]');
  await until(async () => (await received()) === 2, 'crm to get the message again after the rewind');
  check(true, 'Rewind to offset 0 redelivered audit\'s message to crm');
}

/* Posts obj to route feed and returns the message id. */
async function postFeed(obj) {
  const r = await fetch(process.env.IN_URL + '/feed', { method: 'POST', body: JSON.stringify(obj), headers: { 'Content-Type': 'application/json' } });
  if (r.status !== 202) throw new Error('feed: ' + r.status);
  return (await r.json()).id;
}

const tailShows = (page, id) => page.$(`tr[data-tail-id="${id}"]`).then((e) => e !== null);

async function waitTailRow(page, id, event) {
  try {
    await page.waitForFunction((i, ev) => !!document.querySelector(`tr[data-tail-id="${i}"][data-event="${ev}"]`), WAIT, id, event);
  } catch (e) {
    throw new Error(`the tail never showed ${event} ${id} (${e.message})`);
  }
}

/* The live tail of route feed: a message posted now shows up accepted and
 * delivered with its body; while paused nothing arrives (a message posted
 * and delivered meanwhile never shows); after Resume new ones do again. */
async function tailPage(page) {
  await open(page, '#/tail/feed', 'tail');
  await waitShown(page, 'the tail live', () => document.querySelector('[data-field="tail-state"]').textContent === 'live');
  const first = await postFeed({ tail: 'first-in-the-tail' });
  await waitTailRow(page, first, 'accepted');
  await waitTailRow(page, first, 'delivered');
  const row = `tr[data-tail-id="${first}"][data-event="delivered"]`;
  check((await text(page, `${row} [data-field="tail-preview"]`)) === '{"tail":"first-in-the-tail"}', 'the tail shows the posted body');
  const api = await apiGet('/v1/messages/' + first);
  check((await text(page, `${row} td:nth-child(5)`)) === `${api.partition}/${api.offset}`, `partition/offset shown = API (${api.partition}/${api.offset})`);
  await shot(page, '5-tail');

  await page.click('[data-action="tail-pause"]');
  await waitShown(page, 'the tail paused', () => document.querySelector('[data-field="tail-state"]').textContent === 'paused');
  const rows = await page.$$eval('[data-field="tail-rows"] tr', (r) => r.length);
  const during = await postFeed({ tail: 'posted-while-paused' });
  await until(async () => (await apiGet('/v1/messages/' + during)).state === 'delivered', 'the paused-time message delivered');
  check(!(await tailShows(page, during)) && (await page.$$eval('[data-field="tail-rows"] tr', (r) => r.length)) === rows,
    'paused: a message delivered meanwhile is not shown, no row added');
  check((await text(page, '[data-action="tail-pause"]')) === 'Resume', 'the button now says Resume');
  await shot(page, '5-tail-paused');

  await page.click('[data-action="tail-pause"]');
  await waitShown(page, 'the tail live again', () => document.querySelector('[data-field="tail-state"]').textContent === 'live');
  const after = await postFeed({ tail: 'after-resume' });
  await waitTailRow(page, after, 'delivered');
  check(!(await tailShows(page, during)), 'after Resume: new messages show, the one from the pause never does');
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--window-size=1000,800'],
    defaultViewport: { width: 1000, height: 800 },
  });
  const errors = [];
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await login(page);
    await routesPage(page);
    await breakersPage(page);
    await dlqPage(page);
    await messagePage(page);
    await rewind(page);
    await tailPage(page);
    check(errors.length === 0, 'no script errors on any page: ' + errors.join('; '));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
