/* The Sluice console: a single page app over the admin API. Hash routes
 * pick the page; /metrics is sampled every 2 s for the per-route rates and
 * charts; the admin token (when the gateway has one) is asked for once and
 * kept in sessionStorage. Fields the page does not know are ignored. */
'use strict';

const TOKEN_KEY = 'sluice.token';
const SAMPLE_MS = 2000;
const HISTORY = 150; /* samples kept: 5 minutes at 2 s */

const state = {
  samples: [], /* {t, routes: {name: {in, out}}} */
  timer: null,
  page: null,
  dlqSelected: null,
  dlqRerun: false, /* the dead letters page's "Re-run from the original" box */
  gen: 0, /* renders started: a slower, older one must not replace a newer page */
};

/* ---- helpers ---------------------------------------------------------- */

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick') e.addEventListener('click', v);
    else if (k === 'text') e.textContent = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) {
    if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

/* Replaces box's children with kids (arrays flattened, nulls skipped). */
function fill(box, ...kids) {
  box.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined));
}

function table(headers, rows, attrs) {
  return el('table', attrs,
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows));
}

function setStatus(text, isError) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.className = 'status' + (isError ? ' error' : '');
}

function fmtRate(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + '/s';
}

function fmtTime(ms) {
  return typeof ms === 'number' ? new Date(ms).toISOString().replace('T', ' ').replace('Z', '') : '';
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (e) {
    return String(text);
  }
}

/* ---- API -------------------------------------------------------------- */

class AuthError extends Error {}

async function api(path, opts) {
  const o = Object.assign({ headers: {} }, opts || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) o.headers.Authorization = 'Bearer ' + token;
  const r = await fetch(path, o);
  if (r.status === 401 || r.status === 403) {
    showLogin(r.status === 403 ? 'That token is wrong.' : '');
    throw new AuthError('the admin API wants its token');
  }
  const text = await r.text();
  let body = text;
  if ((r.headers.get('content-type') || '').startsWith('application/json')) {
    try { body = JSON.parse(text); } catch (e) { /* keep the text */ }
  }
  if (!r.ok) {
    const detail = body && body.detail ? body.detail : text;
    throw new Error(`${o.method || 'GET'} ${path}: ${r.status} ${detail}`);
  }
  return body;
}

function post(path, obj) {
  const opts = { method: 'POST' };
  if (obj !== undefined) {
    opts.body = JSON.stringify(obj);
    opts.headers = { 'Content-Type': 'application/json' };
  }
  return api(path, opts);
}

/* ---- login ------------------------------------------------------------ */

function showLogin(message) {
  document.getElementById('login').classList.remove('hidden');
  document.getElementById('page').classList.add('hidden');
  document.getElementById('login-error').textContent = message || '';
  stopSampling();
}

function hideLogin() {
  document.getElementById('login').classList.add('hidden');
  document.getElementById('page').classList.remove('hidden');
}

document.getElementById('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value.trim());
  document.getElementById('token').value = '';
  start();
});

document.getElementById('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin('');
});

/* ---- metrics sampling ------------------------------------------------- */

/* Sums the samples of the per-route counters in Prometheus text. */
function parseCounters(text) {
  const routes = {};
  const re = /^(sluice_messages_in_total|sluice_messages_out_total)\{([^}]*)\}\s+(\S+)/;
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const rm = /route="((?:[^"\\]|\\.)*)"/.exec(m[2]);
    if (!rm) continue;
    const r = routes[rm[1]] || (routes[rm[1]] = { in: 0, out: 0 });
    r[m[1] === 'sluice_messages_in_total' ? 'in' : 'out'] += Number(m[3]);
  }
  return routes;
}

async function sample() {
  try {
    const text = await api('/metrics');
    state.samples.push({ t: Date.now(), routes: parseCounters(text) });
    if (state.samples.length > HISTORY) state.samples.shift();
    if (state.page && state.page.onSample) state.page.onSample();
  } catch (e) {
    if (!(e instanceof AuthError)) setStatus('metrics: ' + e.message, true);
  }
}

function startSampling() {
  if (state.timer) return;
  sample();
  state.timer = setInterval(sample, SAMPLE_MS);
}

function stopSampling() {
  clearInterval(state.timer);
  state.timer = null;
}

/* Rates (messages/s) of route between consecutive samples: [{t, in, out}]. */
function rates(route) {
  const out = [];
  for (let i = 1; i < state.samples.length; i++) {
    const a = state.samples[i - 1], b = state.samples[i];
    const ra = a.routes[route], rb = b.routes[route];
    if (!ra || !rb) continue;
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    out.push({ t: b.t, in: Math.max(0, (rb.in - ra.in) / dt), out: Math.max(0, (rb.out - ra.out) / dt) });
  }
  return out;
}

function drawChart(canvas, series) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, pad = 4;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = '#f6f8fa';
  ctx.fillRect(0, 0, w, h);
  const max = Math.max(1, ...series.map((p) => Math.max(p.in, p.out)));
  const span = HISTORY * SAMPLE_MS;
  const now = Date.now();
  const x = (t) => w - ((now - t) / span) * w;
  const y = (v) => h - pad - (v / max) * (h - 2 * pad - 12);
  for (const [key, color] of [['in', '#0969da'], ['out', '#1a7f37']]) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    series.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p[key])) : ctx.moveTo(x(p.t), y(p[key]))));
    ctx.stroke();
  }
  ctx.fillStyle = '#57606a';
  ctx.font = '10px sans-serif';
  ctx.fillText(`max ${fmtRate(max)} · last 5 min · in blue, out green`, 4, 10);
}

/* ---- pages ------------------------------------------------------------ */

async function routesPage(root) {
  const list = await api('/v1/routes');
  const details = await Promise.all((list.routes || []).map((r) => api('/v1/routes/' + encodeURIComponent(r.name))));
  const cards = details.map((d, i) => routeCard(list.routes[i], d));
  fill(root, el('h1', {}, 'Routes'), cards.length ? cards : el('p', {}, 'No routes.'));
  return {
    async onSample() {
      await refreshRoutes(root);
      for (const r of list.routes) {
        const c = root.querySelector(`[data-route="${CSS.escape(r.name)}"]`);
        if (!c) continue;
        const rs = rates(r.name), last = rs[rs.length - 1];
        c.querySelector('[data-field="rate-in"]').textContent = fmtRate(last && last.in);
        c.querySelector('[data-field="rate-out"]').textContent = fmtRate(last && last.out);
        drawChart(c.querySelector('canvas'), rs);
      }
    },
  };
}

/* Updates the routes page's state, lag and partition cells in place (the
 * rewind field keeps what is typed in it). */
async function refreshRoutes(root) {
  let list;
  try {
    list = await api('/v1/routes');
  } catch (e) {
    return;
  }
  for (const r of list.routes || []) {
    const c = root.querySelector(`[data-route="${CSS.escape(r.name)}"]`);
    if (!c) continue;
    const badge = c.querySelector('[data-field="state"]');
    badge.textContent = r.paused ? 'paused' : 'running';
    badge.className = 'badge ' + (r.paused ? 'warn' : 'ok');
    c.querySelector('[data-field="total-lag"]').textContent = r.lag;
    let d;
    try {
      d = await api('/v1/routes/' + encodeURIComponent(r.name));
    } catch (e) {
      continue;
    }
    for (const p of d.partitions || []) {
      const row = c.querySelector(`tr[data-partition="${p.partition}"]`);
      if (!row) continue;
      const cells = row.children;
      [p.partition, p.lag, p.committed, p.end_offset, p.paused ? 'paused' : 'running', p.attempts, p.last_error || '']
        .forEach((v, i) => { if (cells[i]) cells[i].textContent = v; });
    }
  }
}

function routeCard(summary, d) {
  const name = summary.name;
  const base = '/v1/routes/' + encodeURIComponent(name);
  const act = (path, body) => async () => {
    try {
      await post(base + path, body);
      setStatus(`${name}: ${path.slice(1)} done`);
      render();
    } catch (e) {
      if (!(e instanceof AuthError)) setStatus(e.message, true);
    }
  };
  const offset = el('input', { type: 'number', min: '0', value: '0', 'data-field': 'rewind-offset', 'aria-label': 'rewind to offset' });
  const rows = (d.partitions || []).map((p) => el('tr', { 'data-partition': p.partition },
    el('td', {}, p.partition), el('td', { 'data-field': 'lag' }, p.lag), el('td', {}, p.committed),
    el('td', {}, p.end_offset), el('td', {}, p.paused ? 'paused' : 'running'), el('td', {}, p.attempts),
    el('td', { class: 'error' }, p.last_error || '')));
  return el('div', { class: 'card', 'data-route': name },
    el('h2', {}, name, ' ', el('span', { class: 'badge ' + (summary.paused ? 'warn' : 'ok'), 'data-field': 'state' },
      summary.paused ? 'paused' : 'running')),
    el('p', { class: 'meta' }, 'from ', d.from || '?', d.path ? ' ' + d.path : '', ' · total lag ',
      el('b', { 'data-field': 'total-lag' }, summary.lag), ' records · rate in ',
      el('b', { 'data-field': 'rate-in' }, '–'), ' · out ', el('b', { 'data-field': 'rate-out' }, '–')),
    el('canvas', { width: 480, height: 90, class: 'chart', 'data-field': 'chart' }),
    table(['partition', 'lag (records)', 'committed', 'end', 'state', 'attempts', 'last error'], rows, { class: 'partitions' }),
    el('div', { class: 'actions' },
      el('button', { type: 'button', 'data-action': 'pause', onclick: act('/pause') }, 'Pause'),
      el('button', { type: 'button', 'data-action': 'resume', onclick: act('/resume') }, 'Resume'),
      el('label', {}, ' rewind to offset ', offset),
      el('button', { type: 'button', 'data-action': 'rewind', onclick: () => act('/rewind', { offset: Number(offset.value) })() }, 'Rewind')));
}

async function breakersPage(root) {
  const b = await api('/v1/breakers');
  const rows = (b.breakers || []).map((x) => el('tr', { 'data-breaker': x.connector },
    el('td', {}, x.connector),
    el('td', {}, el('span', { class: 'badge ' + (x.state === 'closed' ? 'ok' : 'bad'), 'data-field': 'state' }, x.state)),
    el('td', {}, x.calls), el('td', { 'data-field': 'failures' }, x.failures),
    el('td', { 'data-field': 'consecutive' }, x.consecutive_failures), el('td', {}, x.rejected),
    el('td', {}, x.state === 'closed' ? '' : `${Math.round((x.retry_in_ms || 0) / 1000)} s`),
    el('td', {}, el('button', {
      type: 'button', 'data-action': 'reset',
      onclick: async () => {
        try {
          await post('/v1/breakers/' + encodeURIComponent(x.connector) + '/reset');
          setStatus(`breaker ${x.connector} reset`);
          render();
        } catch (e) {
          if (!(e instanceof AuthError)) setStatus(e.message, true);
        }
      },
    }, 'Reset'))));
  fill(root, el('h1', {}, 'Breakers'),
    rows.length ? table(['connector', 'state', 'calls', 'failures (window)', 'consecutive failures', 'rejected', 'probe in', ''], rows, { class: 'breakers' })
      : el('p', {}, 'No connector has a breaker.'));
}

/* Runs a redrive or purge (kind) of route's dead letters with body, says
 * what it did in the status line, and re-renders the page. */
async function dlqAction(route, kind, body) {
  try {
    const r = await post('/v1/dlq/' + encodeURIComponent(route) + '/' + kind, body);
    const done = kind === 'purge' ? `${r.purged} dead letter(s) of ${route} purged`
      : `${r.redriven} dead letter(s) of ${route} redriven` + (body && body.rerun ? ' from the original' : '');
    const notes = [];
    if (r.refused) notes.push(`${r.refused} refused (the route cannot take them back)`);
    if (r.not_pending && r.not_pending.length) notes.push('not pending: ' + r.not_pending.join(', '));
    setStatus(done + (notes.length ? '; ' + notes.join('; ') : ''), notes.length > 0);
    render();
  } catch (e) {
    if (!(e instanceof AuthError)) setStatus(e.message, true);
  }
}

/* A dead letter's state: the API's, or read from its flags (older gateways). */
function deadState(e) {
  return e.state || (e.purged ? 'purged' : e.redriven ? 'redriven' : 'pending');
}

/* Redrive and Purge buttons for one pending dead letter (none otherwise). A
 * redrive re-runs the original when the page's "Re-run" box is ticked; a
 * purge asks first. */
function deadButtons(route, e) {
  if (deadState(e) !== 'pending') return null;
  const stop = (fn) => (ev) => { ev.stopPropagation(); fn(); };
  return el('span', { class: 'row-actions' },
    el('button', {
      type: 'button', 'data-action': 'redrive',
      onclick: stop(() => dlqAction(route, 'redrive', Object.assign({ ids: [e.id] }, state.dlqRerun ? { rerun: true } : {}))),
    }, 'Redrive'),
    el('button', {
      type: 'button', 'data-action': 'purge', class: 'danger',
      onclick: stop(() => {
        if (confirm(`Purge dead letter ${e.id}? It will never be redriven (the record stays in ${route}'s dead letter topic).`)) {
          dlqAction(route, 'purge', { ids: [e.id] });
        }
      }),
    }, 'Purge'));
}

function stateBadge(s) {
  return el('span', { class: 'badge ' + (s === 'pending' ? 'warn' : s === 'redriven' ? 'ok' : 'muted'), 'data-field': 'state' }, s);
}

function deadRow(route, e, detail) {
  return el('tr', {
    'data-dlq-id': e.id, class: 'clickable',
    onclick: () => { state.dlqSelected = e.id; showDead(detail, route, e); },
  }, el('td', {}, e.offset), el('td', { class: 'mono' }, e.id), el('td', {}, fmtTime(e.timestamp)),
  el('td', {}, e.status), el('td', { class: 'error' }, e.error), el('td', {}, e.attempts),
  el('td', { 'data-field': 'failed' }, e.failed_outputs ? 'outputs ' + e.failed_outputs : e.failed_step ? 'step ' + e.failed_step : ''),
  el('td', {}, stateBadge(deadState(e))), el('td', {}, deadButtons(route, e)));
}

async function dlqPage(root, route) {
  const list = await api('/v1/routes');
  const names = (list.routes || []).map((r) => r.name);
  const current = route || names[0];
  const picker = el('div', { class: 'tabs' }, names.map((n) =>
    el('a', { href: '#/dlq/' + encodeURIComponent(n), class: n === current ? 'active' : '', 'data-dlq-route': n }, n)));
  if (!current) {
    fill(root, el('h1', {}, 'Dead letters'), el('p', {}, 'No routes.'));
    return;
  }
  const d = await api('/v1/dlq/' + encodeURIComponent(current) + '?limit=200');
  const entries = d.entries || [];
  const detail = el('div', { class: 'detail', 'data-field': 'dlq-detail' });
  const rerun = el('input', { type: 'checkbox', 'data-field': 'rerun', checked: state.dlqRerun });
  rerun.addEventListener('change', () => { state.dlqRerun = rerun.checked; });
  const redrive = el('button', {
    type: 'button', 'data-action': 'redrive-all',
    onclick: () => dlqAction(current, 'redrive', state.dlqRerun ? { rerun: true } : undefined),
  }, 'Redrive all pending');
  fill(root, el('h1', {}, 'Dead letters'), picker,
    el('p', { class: 'meta' }, 'topic ', el('code', {}, d.topic || ''), ' · depth ',
      el('b', { 'data-field': 'pending' }, d.pending), ' pending of ', entries.length, ' listed'),
    el('div', { class: 'actions' }, redrive,
      el('label', { title: 'Run the message as it entered the route through all its steps and outputs again, instead of sending the stored copy to the failed outputs only' },
        rerun, ' Re-run from the original (all steps and outputs)')),
    entries.length ? table(['offset', 'id', 'time (UTC)', 'status', 'error', 'attempts', 'failed', 'state', ''],
      entries.map((e) => deadRow(current, e, detail)), { class: 'dlq' })
      : el('p', {}, 'No dead letters.'),
    detail);
  const sel = entries.find((e) => e.id === state.dlqSelected);
  if (sel) showDead(detail, current, sel);
}

/* Headers as [name, value] pairs, from an object, a list of pairs or a list
 * of {name, value}; none for anything else. */
function headerPairs(h) {
  if (Array.isArray(h)) {
    return h.map((x) => (Array.isArray(x) ? [x[0], x[1]] : [x && x.name, x && x.value]));
  }
  return h && typeof h === 'object' ? Object.entries(h) : [];
}

/* Fills box with one dead letter of route: its state (who redrove or purged
 * it, when), what failed, its other fields, headers (when the API gives
 * them; the list gives none today), error, body and original body, and
 * the buttons while pending. */
function showDead(box, route, e) {
  const s = deadState(e);
  const shown = new Set(['body', 'original_body', 'headers', 'error', 'state', 'failed_outputs', 'failed_step',
    'redriven', 'purged', 'redriven_by', 'redriven_at', 'purged_by', 'purged_at']);
  const fields = Object.entries(e).filter(([k, v]) => !shown.has(k) && typeof v !== 'object')
    .map(([k, v]) => [k, k === 'timestamp' ? fmtTime(v) + ' UTC' : String(v)]);
  const by = e[s + '_by'], at = e[s + '_at'];
  const top = [
    ['state', stateBadge(s), s !== 'pending' && (by || at) ? ` by ${by || '?'} at ${fmtTime(at)} UTC` : null],
    ['failed outputs', el('span', { 'data-field': 'dlq-failed-outputs' }, e.failed_outputs || '–')],
    ['failed step', el('span', { 'data-field': 'dlq-failed-step' }, e.failed_step || '–')],
  ];
  const headers = headerPairs(e.headers);
  const text = (v) => (v === null || v === undefined ? '' : v);
  fill(box, el('h2', {}, 'Dead letter ', el('code', {}, e.id), ' ', deadButtons(route, e)),
    table(['field', 'value'], top.concat(fields).map(([k, ...v]) => el('tr', {}, el('th', {}, k), el('td', {}, v)))),
    el('h3', {}, 'Error'), el('pre', { class: 'error', 'data-field': 'dlq-error' }, e.error || ''),
    headers.length ? [el('h3', {}, 'Headers'),
      table(['name', 'value'], headers.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, String(v)))))] : null,
    el('div', { class: 'bodies' },
      el('div', {}, el('h3', {}, 'Body (as the failed outputs were to get it)'),
        el('pre', { 'data-field': 'dlq-body' }, pretty(text(e.body)))),
      el('div', {}, el('h3', {}, 'Original body (as it entered the route)'),
        e.original_body === null || e.original_body === undefined
          ? el('p', { class: 'meta', 'data-field': 'dlq-original-body' }, 'not kept (an older entry, or not UTF-8)')
          : el('pre', { 'data-field': 'dlq-original-body' }, pretty(e.original_body)))));
}

async function messagePage(root, id) {
  const input = el('input', { type: 'text', value: id || '', placeholder: 'message id', 'data-field': 'message-id', size: 40 });
  const form = el('form', {}, input, ' ', el('button', { type: 'submit', 'data-action': 'lookup' }, 'Look up'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = '#/message/' + encodeURIComponent(input.value.trim());
  });
  const result = el('div', { 'data-field': 'message-result' });
  fill(root, el('h1', {}, 'Message lookup'), form, result);
  if (!id) return;
  try {
    const m = await api('/v1/messages/' + encodeURIComponent(id));
    fill(result, el('h2', {}, el('code', {}, m.id), ' ',
      el('span', { class: 'badge ' + (m.state === 'delivered' ? 'ok' : 'warn'), 'data-field': 'message-state' }, m.state)),
    table(['field', 'value'], Object.entries(m).map(([k, v]) => el('tr', { 'data-key': k },
      el('td', {}, k), el('td', {}, typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))))));
  } catch (e) {
    if (e instanceof AuthError) throw e;
    fill(result, el('p', { class: 'error', 'data-field': 'message-error' }, e.message));
  }
}

/* ---- live tail -------------------------------------------------------- */

const TAIL_ROWS = 200; /* rows kept on the page, newest first */

/* Stops the open tail stream, if any. */
function stopTail() {
  if (state.tail && state.tail.abort) state.tail.abort.abort();
  if (state.tail) state.tail.abort = null;
}

/* One tail event as a table row. */
function tailRow(ev) {
  return el('tr', { 'data-tail-id': ev.id, 'data-event': ev.event },
    el('td', { class: 'mono' }, fmtTime(ev.ts).slice(11)),
    el('td', {}, el('span', { class: 'badge ' + (ev.event === 'delivered' ? 'ok' : 'muted') }, ev.event)),
    el('td', { class: 'mono' }, ev.id),
    el('td', { class: 'mono' }, ev.key === null ? '–' : ev.key),
    el('td', {}, `${ev.partition}/${ev.offset}`),
    el('td', {}, String(ev.size)),
    el('td', { class: 'mono preview', 'data-field': 'tail-preview' }, ev.preview + (ev.truncated ? ' …' : '')));
}

/* Reads the SSE stream of route into the page's table until aborted. */
async function readTail(t, route) {
  const headers = { Accept: 'text/event-stream' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  const r = await fetch('/v1/routes/' + encodeURIComponent(route) + '/tail', { headers, signal: t.abort.signal });
  if (!r.ok) throw new Error(`tail of ${route}: ${r.status}`);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      onTailEvent(t, buf.slice(0, cut));
      buf = buf.slice(cut + 2);
    }
  }
}

/* Handles one SSE event block ("event: X\ndata: {...}"). */
function onTailEvent(t, block) {
  let name = 'message', data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) name = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  if (!data) return; /* a ping */
  const d = JSON.parse(data);
  if (name === 'hello') {
    t.stateEl.textContent = 'live';
  } else if (name === 'dropped') {
    t.droppedEl.textContent = String(d.dropped);
  } else if (name === 'accepted' || name === 'delivered') {
    t.rows.prepend(tailRow(d));
    while (t.rows.children.length > TAIL_ROWS) t.rows.lastChild.remove();
    t.countEl.textContent = String(++t.count);
  }
}

/* Opens the stream (the page is live) and shows how it ended. */
function openTail(t, route) {
  t.abort = new AbortController();
  t.stateEl.textContent = 'connecting';
  const mine = t.abort;
  readTail(t, route).then(() => { if (t.abort === mine) t.stateEl.textContent = 'ended'; })
    .catch((e) => {
      if (t.abort !== mine || e.name === 'AbortError') return;
      t.stateEl.textContent = 'error';
      setStatus(e.message, true);
    });
}

async function tailPage(root, route) {
  const list = await api('/v1/routes');
  const names = (list.routes || []).map((r) => r.name);
  const current = route || names[0];
  const picker = el('div', { class: 'tabs' }, names.map((n) =>
    el('a', { href: '#/tail/' + encodeURIComponent(n), class: n === current ? 'active' : '', 'data-tail-route': n }, n)));
  if (!current) {
    fill(root, el('h1', {}, 'Live tail'), el('p', {}, 'No routes.'));
    return;
  }
  const t = state.tail = { abort: null, paused: false, count: 0 };
  t.stateEl = el('b', { 'data-field': 'tail-state' }, 'connecting');
  t.droppedEl = el('b', { 'data-field': 'tail-dropped' }, '0');
  t.countEl = el('b', { 'data-field': 'tail-count' }, '0');
  t.rows = el('tbody', { 'data-field': 'tail-rows' });
  const pause = el('button', { type: 'button', 'data-action': 'tail-pause' }, 'Pause');
  pause.addEventListener('click', () => {
    t.paused = !t.paused;
    pause.textContent = t.paused ? 'Resume' : 'Pause';
    if (t.paused) {
      stopTail();
      t.stateEl.textContent = 'paused';
    } else {
      openTail(t, current);
    }
  });
  fill(root, el('h1', {}, 'Live tail'), picker,
    el('p', { class: 'meta' }, 'route ', el('code', {}, current), ' · ', t.stateEl, ' · ', t.countEl,
      ' events shown · ', t.droppedEl, ' dropped (this page fell behind)'),
    el('div', { class: 'actions' }, pause,
      el('span', { class: 'meta' }, 'Messages as they are accepted and delivered; bodies cut at 256 bytes. Paused: nothing is received.')),
    el('table', { class: 'tail' },
      el('thead', {}, el('tr', {}, ['time (UTC)', 'event', 'id', 'key', 'partition/offset', 'bytes', 'body'].map((h) => el('th', {}, h)))),
      t.rows));
  openTail(t, current);
}

/* ---- router ----------------------------------------------------------- */

const PAGES = { routes: routesPage, breakers: breakersPage, dlq: dlqPage, message: messagePage, tail: tailPage };

async function render() {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const name = PAGES[parts[0]] ? parts[0] : 'routes';
  const arg = parts[1] ? decodeURIComponent(parts.slice(1).join('/')) : undefined;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.nav === name);
  const root = document.getElementById('page');
  const gen = ++state.gen;
  stopTail(); /* a page change (or a re-render) ends the stream it had */
  const box = el('div', {}); /* shown only if no newer render started meanwhile */
  try {
    const page = (await PAGES[name](box, arg)) || null;
    if (gen !== state.gen) return;
    root.replaceChildren(box);
    state.page = page;
    if (page && page.onSample) page.onSample();
    root.dataset.loaded = name;
    document.getElementById('logout').classList.toggle('hidden', !sessionStorage.getItem(TOKEN_KEY));
  } catch (e) {
    if (!(e instanceof AuthError)) setStatus(e.message, true);
  }
}

async function start() {
  try {
    await api('/v1/routes'); /* asks for the token when one is needed */
  } catch (e) {
    if (!(e instanceof AuthError)) setStatus(e.message, true);
    return;
  }
  hideLogin();
  setStatus('');
  startSampling();
  render();
}

window.addEventListener('hashchange', () => {
  document.getElementById('page').dataset.loaded = '';
  render();
});
start();
