// The gateway's admin portal: a small single-page app over the admin JSON API (/admin/v1).
// The session lives in an HttpOnly cookie the script never sees; the CSRF token the sign-in
// returns is kept in memory only (a reload asks /admin/session for it again). Nothing is put in
// localStorage, sessionStorage or the URL. Every API error is shown in the message banner.

const state = { csrf: null, keys: [] };

// ---------- DOM helpers (text only: data never becomes markup) ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

const $ = (selector) => document.querySelector(selector);

function showMessage(text, kind) {
  const box = $('#message');
  box.textContent = text;
  box.className = kind;
  box.hidden = false;
  box.setAttribute('data-testid', kind === 'error' ? 'error' : 'notice');
}
const showError = (text) => showMessage(text, 'error');
const showInfo = (text) => showMessage(text, 'info');
function clearMessage() {
  const box = $('#message');
  box.hidden = true;
  box.textContent = '';
}

/** Runs an event handler, showing any failure instead of losing it. */
function guarded(fn) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    try {
      await fn(event);
    } catch (e) {
      showError(e.message || String(e));
    }
  };
}

// ---------- formatting ----------

const fmtInt = (n) => (n ?? 0).toLocaleString('en-US');
function fmtUsd(x) {
  const v = Number(x ?? 0);
  if (v === 0) return '$0.00';
  if (Math.abs(v) < 0.01) return `$${v.toFixed(6)}`;
  return `$${v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}
const fmtTime = (t) => (t ? t.replace('T', ' ').replace(/\.\d+Z$/, ' UTC').replace(/Z$/, ' UTC') : '—');
const limit = (n) => (n ? fmtInt(n) : 'unlimited');
const isoDay = (d) => d.toISOString().slice(0, 10);
const tokensOf = (c) => (c.input_tokens || 0) + (c.output_tokens || 0) + (c.cache_read_tokens || 0) + (c.cache_write_tokens || 0);
const badge = (text, kind = text) => h('span', { class: `badge ${kind}` }, text.replace('_', ' '));

// ---------- API ----------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body, { quiet401 = false } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && state.csrf) headers['x-csrf-token'] = state.csrf;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, `The gateway could not be reached: ${e.message}`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const reason = data?.error?.message || `${response.status} ${response.statusText || 'error'}`;
    const requestId = data?.request_id || response.headers.get('request-id');
    const message = `${reason}${requestId ? ` (request ${requestId})` : ''}`;
    if (response.status === 401 && !quiet401 && state.csrf) {
      state.csrf = null;
      showLogin();
      showError(`You are signed out: ${message}`);
    }
    throw new ApiError(response.status, message);
  }
  return data;
}

// ---------- shell: sign-in, navigation ----------

function showLogin() {
  $('#nav').hidden = true;
  $('#sign-out').hidden = true;
  $('#view').hidden = true;
  $('#view').replaceChildren();
  $('#login').hidden = false;
  $('#master-key').focus();
}

function showApp() {
  $('#login').hidden = true;
  $('#nav').hidden = false;
  $('#sign-out').hidden = false;
  $('#view').hidden = false;
}

const pages = { keys: keysPage, usage: usagePage, budgets: budgetsPage, pricing: pricingPage, models: modelsPage };

async function route() {
  if (!state.csrf) return;
  const name = location.hash.replace(/^#\/?/, '').split('?')[0] || 'keys';
  const page = pages[name] ? name : 'keys';
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('active', link.dataset.page === page);
  }
  document.title = `${$(`#nav a[data-page="${page}"]`).textContent} · Gateway admin`;
  const view = $('#view');
  view.dataset.page = page;
  view.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  try {
    await pages[page](view);
    view.setAttribute('data-ready', page);
  } catch (e) {
    view.replaceChildren(h('p', { class: 'empty' }, 'This page could not be loaded.'));
    showError(e.message);
  }
}

async function signIn(event) {
  event.preventDefault();
  const input = $('#master-key');
  const key = input.value.trim();
  input.value = '';
  if (!key) {
    showError('Enter the master key.');
    return;
  }
  try {
    const session = await api('POST', '/admin/login', { master_key: key }, { quiet401: true });
    state.csrf = session.csrf_token;
    clearMessage();
    showApp();
    if (!location.hash || location.hash === '#/login') location.hash = '#/keys';
    else await route();
  } catch (e) {
    showError(`Sign-in failed: ${e.message}`);
  }
}

async function signOut() {
  try {
    await api('POST', '/admin/logout');
  } finally {
    state.csrf = null;
    showLogin();
    showInfo('Signed out.');
  }
}

async function boot() {
  $('#login-form').addEventListener('submit', signIn);
  $('#sign-out').addEventListener('click', guarded(signOut));
  window.addEventListener('hashchange', () => {
    clearMessage();
    route();
  });
  try {
    const session = await api('GET', '/admin/session', undefined, { quiet401: true });
    state.csrf = session.csrf_token;
    showApp();
    await route();
  } catch (e) {
    showLogin();
    if (e.status !== 401) showError(e.message);
  }
}

// ---------- dialogs ----------

/** A modal with `body`; resolves true when confirmed. */
function openDialog(title, body, okLabel = 'OK', danger = false) {
  const dialog = $('#dialog');
  $('#dialog-title').textContent = title;
  $('#dialog-body').replaceChildren(body);
  const ok = $('#dialog-ok');
  ok.textContent = okLabel;
  ok.className = danger ? 'danger' : '';
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

const confirmDialog = (title, text, okLabel, danger = true) => openDialog(title, h('p', {}, text), okLabel, danger);

// ---------- keys ----------

function keyFields(key = {}) {
  const tier = key.tier || 'default';
  const ttl = key.cache_ttl || '';
  const option = (value, label, selected) => h('option', { value, selected: value === selected }, label);
  return h('div', { class: 'grid form-fields' },
    h('label', {}, 'Name', h('input', { name: 'name', required: true, maxlength: 200, value: key.name ?? '' })),
    h('label', {}, 'Owner', h('input', { name: 'owner', value: key.owner ?? '' })),
    h('label', {}, 'Requests / minute (0 = unlimited)', h('input', { name: 'rpm', type: 'number', min: 0, value: key.requests_per_minute ?? 0 })),
    h('label', {}, 'Tokens / minute (0 = unlimited)', h('input', { name: 'tpm', type: 'number', min: 0, value: key.tokens_per_minute ?? 0 })),
    h('label', {}, 'Service tier', h('select', { name: 'tier' }, ['default', 'flex', 'priority', 'reserved'].map((t) => option(t, t, tier)))),
    h('label', {}, 'Monthly budget (USD, empty = none)', h('input', { name: 'budget', type: 'number', min: 0, step: 'any', value: key.monthly_budget_usd ?? '' })),
    h('label', {}, 'Allowed models (comma-separated, empty = all)', h('input', { name: 'models', value: (key.allowed_models || []).join(', ') })),
    h('label', {}, 'Prompt-cache TTL', h('select', { name: 'cache_ttl' }, option('', 'client decides', ttl), option('5m', '5 minutes', ttl), option('1h', '1 hour', ttl))),
  );
}

/** The settings in `container`; on edit, emptied optional fields become null (cleared). */
function readKeyFields(container, forEdit) {
  const value = (name) => container.querySelector(`[name="${name}"]`).value.trim();
  const cleared = forEdit ? null : undefined;
  const models = value('models').split(',').map((m) => m.trim()).filter(Boolean);
  const budget = value('budget');
  return {
    name: value('name'),
    owner: value('owner') || cleared,
    requests_per_minute: Number(value('rpm') || 0),
    tokens_per_minute: Number(value('tpm') || 0),
    tier: value('tier'),
    monthly_budget_usd: budget === '' ? cleared : Number(budget),
    allowed_models: models.length ? models : cleared,
    cache_ttl: value('cache_ttl') || cleared,
  };
}

function secretCard(title, secret) {
  const code = h('code', { 'data-testid': 'secret-value' }, secret);
  const card = h('div', { class: 'card secret', 'data-testid': 'new-secret' },
    h('h2', {}, title),
    h('p', {}, 'Copy this secret now. It is shown only this once: the gateway keeps just its hash.'),
    code,
    h('div', { class: 'row' },
      h('button', { type: 'button', onclick: guarded(async () => {
        await navigator.clipboard.writeText(secret);
        showInfo('Secret copied to the clipboard.');
      }) }, 'Copy'),
      h('button', { type: 'button', class: 'secondary', onclick: () => card.remove() }, 'Done, hide it')));
  return card;
}

async function keysPage(view) {
  const table = h('div', { class: 'card' });
  const secretSlot = h('div', { id: 'secret-slot' });
  const form = h('form', { class: 'grid', 'data-testid': 'create-key' }, [...keyFields().childNodes], h('button', { type: 'submit' }, 'Create key'));
  form.addEventListener('submit', guarded(async () => {
    const created = await api('POST', '/admin/v1/keys', readKeyFields(form, false));
    form.reset();
    secretSlot.replaceChildren(secretCard(`New key "${created.key.name}" (${created.key.id})`, created.secret));
    showInfo(`Key ${created.key.name} created.`);
    await renderKeys(table, secretSlot);
  }));
  view.replaceChildren(
    h('div', { class: 'card' }, h('h1', {}, 'API keys'), h('h2', {}, 'Create a key'), form),
    secretSlot,
    table);
  await renderKeys(table, secretSlot);
}

async function renderKeys(container, secretSlot) {
  const { data } = await api('GET', '/admin/v1/keys');
  state.keys = data;
  const rerender = () => renderKeys(container, secretSlot);
  const action = (label, fn, cls = 'secondary small') => h('button', { type: 'button', class: cls, onclick: guarded(fn) }, label);
  const rows = data.map((key) => h('tr', { 'data-key-id': key.id },
    h('td', {}, h('strong', {}, key.name), h('div', { class: 'mono muted' }, key.id), key.owner ? h('div', { class: 'small muted' }, key.owner) : null),
    h('td', { class: 'mono' }, `${key.key_prefix}…`),
    h('td', { 'data-testid': 'status' }, badge(key.status)),
    h('td', {}, key.tier),
    h('td', { class: 'num' }, `${limit(key.requests_per_minute)} rpm`, h('br'), `${limit(key.tokens_per_minute)} tpm`),
    h('td', { class: 'num' }, key.monthly_budget_usd == null ? '—' : fmtUsd(key.monthly_budget_usd)),
    h('td', { class: 'small' }, key.allowed_models ? key.allowed_models.join(', ') : 'all'),
    h('td', { class: 'small' }, fmtTime(key.last_used_at)),
    h('td', { class: 'small' }, fmtTime(key.created_at)),
    h('td', { class: 'actions' },
      action('Edit', async () => {
        const fields = keyFields(key);
        if (!(await openDialog(`Edit ${key.name}`, fields, 'Save', false))) return;
        await api('PATCH', `/admin/v1/keys/${encodeURIComponent(key.id)}`, readKeyFields(fields, true));
        showInfo(`Key ${key.name} updated.`);
        await rerender();
      }),
      key.status === 'disabled'
        ? action('Enable', async () => {
          await api('POST', `/admin/v1/keys/${encodeURIComponent(key.id)}/enable`);
          showInfo(`Key ${key.name} enabled.`);
          await rerender();
        })
        : action('Disable', async () => {
          await api('POST', `/admin/v1/keys/${encodeURIComponent(key.id)}/disable`);
          showInfo(`Key ${key.name} disabled: it is refused everywhere within 15 s.`);
          await rerender();
        }),
      action('Rotate', async () => {
        if (!(await confirmDialog(`Rotate ${key.name}?`, 'The current secret stops working at once; a new one is shown once.', 'Rotate'))) return;
        const rotated = await api('POST', `/admin/v1/keys/${encodeURIComponent(key.id)}/rotate`);
        secretSlot.replaceChildren(secretCard(`New secret for "${key.name}" (${key.id})`, rotated.secret));
        await rerender();
      }),
      action('Delete', async () => {
        if (!(await confirmDialog(`Delete ${key.name}?`, 'The key stops working and cannot be restored. Its usage history is kept.', 'Delete'))) return;
        await api('DELETE', `/admin/v1/keys/${encodeURIComponent(key.id)}`);
        showInfo(`Key ${key.name} deleted.`);
        await rerender();
      }, 'danger small'))));
  container.replaceChildren(
    h('h2', {}, `Keys (${data.length})`),
    data.length
      ? h('table', { 'data-testid': 'keys-table' },
        h('thead', {}, h('tr', {}, ['Name', 'Key', 'Status', 'Tier', 'Limits', 'Budget', 'Models', 'Last used', 'Created', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, rows))
      : h('p', { class: 'empty' }, 'No keys yet. Create one above.'));
}

// ---------- usage ----------

const usageFilters = (() => {
  const today = new Date();
  const first = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1));
  const from = new Date(today.getTime() - 29 * 86400000);
  return { from: isoDay(from < first ? from : first), to: isoDay(today), key: '', model: '', metric: 'requests' };
})();

const metrics = {
  requests: { label: 'Requests', value: (c) => c.requests || 0, fmt: fmtInt },
  tokens: { label: 'Tokens (incl. cache)', value: tokensOf, fmt: fmtInt },
  cost: { label: 'Cost (USD)', value: (c) => c.cost_usd || 0, fmt: fmtUsd },
};

function niceCeiling(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** An SVG bar chart of one metric per day, days without traffic drawn as zero. */
function dayChart(rows, from, to, metric) {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  const days = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86400000) days.push(isoDay(new Date(t)));
  const values = days.map((d) => metrics[metric].value(byDay.get(d) || {}));
  const width = 960, height = 240, left = 70, right = 10, top = 12, bottom = 36;
  const max = niceCeiling(Math.max(...values, 0));
  const plotW = width - left - right, plotH = height - top - bottom;
  const slot = plotW / Math.max(days.length, 1);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${metrics[metric].label} per day`, 'data-testid': 'usage-chart' });
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    svg.append(s('line', { class: 'grid', x1: left, x2: width - right, y1: y, y2: y }));
    svg.append(s('text', { x: left - 6, y: y + 4, 'text-anchor': 'end' }, metrics[metric].fmt((max * i) / 4)));
  }
  const every = Math.ceil(days.length / 12);
  days.forEach((day, i) => {
    const v = values[i];
    const barH = (plotH * v) / max;
    const x = left + i * slot + slot * 0.15;
    const bar = s('rect', { class: 'bar', x, y: top + plotH - barH, width: Math.max(slot * 0.7, 1), height: Math.max(barH, v > 0 ? 1 : 0), 'data-day': day, 'data-value': v });
    bar.append(s('title', {}, `${day}: ${metrics[metric].fmt(v)}`));
    svg.append(bar);
    if (i % every === 0) svg.append(s('text', { x: left + i * slot + slot / 2, y: height - bottom + 16, 'text-anchor': 'middle' }, day.slice(5)));
  });
  svg.append(s('line', { class: 'axis', x1: left, x2: width - right, y1: top + plotH, y2: top + plotH }));
  return svg;
}

function countersTable(rows, firstLabel, firstCell, testid) {
  if (!rows.length) return h('p', { class: 'empty' }, 'No usage in this range.');
  const num = (v) => h('td', { class: 'num' }, fmtInt(v));
  return h('table', { 'data-testid': testid },
    h('thead', {}, h('tr', {}, h('th', {}, firstLabel), ['Requests', 'Input', 'Output', 'Cache read', 'Cache write', 'Cost'].map((c) => h('th', { class: 'num' }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {},
      h('td', {}, firstCell(r)), num(r.requests), num(r.input_tokens), num(r.output_tokens), num(r.cache_read_tokens), num(r.cache_write_tokens),
      h('td', { class: 'num' }, fmtUsd(r.cost_usd))))));
}

async function usagePage(view) {
  const f = usageFilters;
  const { data: keys } = await api('GET', '/admin/v1/keys');
  state.keys = keys;
  const names = new Map(keys.map((k) => [k.id, k.name]));
  const input = (name, type, value) => h('input', { name, type, value });
  const keySelect = h('select', { name: 'key' }, h('option', { value: '' }, 'All keys'),
    keys.map((k) => h('option', { value: k.id, selected: k.id === f.key }, `${k.name} (${k.id})`)));
  const metricSelect = h('select', { name: 'metric' }, Object.entries(metrics).map(([k, m]) => h('option', { value: k, selected: k === f.metric }, m.label)));
  const toolbar = h('form', { class: 'toolbar', 'data-testid': 'usage-filters' },
    h('label', {}, 'From', input('from', 'date', f.from)),
    h('label', {}, 'To', input('to', 'date', f.to)),
    h('label', {}, 'Key', keySelect),
    h('label', {}, 'Model', input('model', 'text', f.model)),
    h('label', {}, 'Chart', metricSelect),
    h('button', { type: 'submit' }, 'Refresh'));
  const results = h('div', {});
  toolbar.addEventListener('submit', guarded(async () => {
    for (const name of ['from', 'to', 'key', 'model', 'metric']) f[name] = toolbar.querySelector(`[name="${name}"]`).value.trim();
    await renderUsage(results, names);
  }));
  metricSelect.addEventListener('change', guarded(async () => {
    f.metric = metricSelect.value;
    await renderUsage(results, names);
  }));
  view.replaceChildren(h('div', { class: 'card' }, h('h1', {}, 'Usage'), toolbar), results);
  await renderUsage(results, names);
}

async function renderUsage(container, names) {
  const f = usageFilters;
  const query = (groupBy) => {
    const q = new URLSearchParams({ from: f.from, to: f.to, group_by: groupBy });
    if (f.key) q.set('key_id', f.key);
    if (f.model) q.set('model', f.model);
    return `/admin/v1/usage?${q}`;
  };
  const [byDay, byKey, byModel] = await Promise.all(['day', 'key', 'model'].map((g) => api('GET', query(g))));
  const t = byDay.totals;
  const total = (label, value, testid) => h('div', { class: 'total', 'data-testid': testid }, h('div', { class: 'small muted' }, label), h('div', { class: 'value' }, value));
  const keyCell = (r) => h('span', {}, names.get(r.key_id) || r.key_id, ' ', h('span', { class: 'mono muted small' }, r.key_id));
  const parts = [
    h('div', { class: 'card' },
      h('h2', {}, `${byDay.from} to ${byDay.to}`),
      h('div', { class: 'totals' },
        total('Requests', fmtInt(t.requests), 'total-requests'),
        total('Input tokens', fmtInt(t.input_tokens), 'total-input'),
        total('Output tokens', fmtInt(t.output_tokens), 'total-output'),
        total('Cache read tokens', fmtInt(t.cache_read_tokens), 'total-cache-read'),
        // 1-hour writes cost 2x input, 5-minute ones 1.25x: the split explains the cost.
        total('Cache write tokens', `${fmtInt(t.cache_write_tokens)}${t.cache_write_1h_tokens ? ` (1h: ${fmtInt(t.cache_write_1h_tokens)})` : ''}`, 'total-cache-write'),
        total('Cost', fmtUsd(t.cost_usd), 'total-cost'))),
    h('div', { class: 'card chart' }, h('h2', {}, `${metrics[f.metric].label} per day (UTC)`), dayChart(byDay.data, byDay.from, byDay.to, f.metric)),
    h('div', { class: 'columns' },
      h('div', { class: 'card' }, h('h2', {}, 'By key'), countersTable(byKey.data, 'Key', keyCell, 'usage-by-key')),
      h('div', { class: 'card' }, h('h2', {}, 'By model'), countersTable(byModel.data, 'Model', (r) => r.model, 'usage-by-model'))),
    h('div', { class: 'card' }, h('h2', {}, 'By day'), countersTable([...byDay.data].reverse(), 'Day', (r) => r.day, 'usage-by-day')),
  ];
  if (f.key) {
    const q = new URLSearchParams({ from: f.from, to: f.to, limit: '50' });
    const recent = await api('GET', `/admin/v1/keys/${encodeURIComponent(f.key)}/requests?${q}`);
    parts.push(h('div', { class: 'card' }, h('h2', {}, `Latest requests of ${names.get(f.key) || f.key}`),
      recent.data.length
        ? h('table', { 'data-testid': 'key-requests' },
          h('thead', {}, h('tr', {}, ['Time', 'Request', 'Model', 'Status', 'Input', 'Output', 'Cache read', 'Latency', 'Cost'].map((c) => h('th', {}, c)))),
          h('tbody', {}, recent.data.map((r) => h('tr', {},
            h('td', { class: 'small' }, fmtTime(r.time)), h('td', { class: 'mono' }, r.request_id), h('td', {}, r.requested_model),
            h('td', {}, r.status), h('td', { class: 'num' }, fmtInt(r.input_tokens)), h('td', { class: 'num' }, fmtInt(r.output_tokens)),
            h('td', { class: 'num' }, fmtInt(r.cache_read_tokens)), h('td', { class: 'num' }, `${fmtInt(r.latency_ms)} ms`), h('td', { class: 'num' }, fmtUsd(r.cost_usd))))))
        : h('p', { class: 'empty' }, 'No requests in this range.')));
  }
  container.replaceChildren(...parts);
}

// ---------- budgets ----------

async function budgetsPage(view) {
  const budgets = await api('GET', '/admin/v1/budgets');
  const over = budgets.data.filter((r) => r.state === 'over').length;
  const near = budgets.data.filter((r) => r.state === 'near').length;
  const rows = budgets.data.map((r) => h('tr', { 'data-key-id': r.key_id },
    h('td', {}, h('strong', {}, r.name), h('div', { class: 'mono muted' }, r.key_id)),
    h('td', {}, r.owner || '—'),
    h('td', {}, badge(r.status)),
    h('td', { 'data-testid': 'budget-state' }, badge(r.state)),
    h('td', { class: 'num' }, fmtUsd(r.spent_usd)),
    h('td', { class: 'num' }, fmtUsd(r.budget_usd)),
    h('td', { class: 'num' }, fmtUsd(r.remaining_usd)),
    h('td', {}, h('meter', { min: 0, max: 1, low: budgets.near, high: 0.999, optimum: 0, value: Math.min(r.used, 1) }), ` ${(r.used * 100).toFixed(1)} %`),
    h('td', { class: 'num' }, fmtInt(r.requests))));
  view.replaceChildren(h('div', { class: 'card' },
    h('h1', {}, `Budgets for ${budgets.month} (UTC)`),
    h('p', { class: 'muted' }, `${over} over, ${near} near (at ${Math.round(budgets.near * 100)} % or more). Keys over budget are refused until the month ends or the budget is raised on the Keys page.`),
    budgets.data.length
      ? h('table', { 'data-testid': 'budgets-table' },
        h('thead', {}, h('tr', {}, ['Key', 'Owner', 'Status', 'Budget state', 'Spent', 'Budget', 'Remaining', 'Used', 'Requests'].map((c) => h('th', {}, c)))),
        h('tbody', {}, rows))
      : h('p', { class: 'empty' }, 'No key has a monthly budget. Set one when creating or editing a key.')));
}

// ---------- pricing ----------

async function pricingPage(view) {
  const pricing = await api('GET', '/admin/v1/pricing');
  const field = (name, label, required = false) => h('label', {}, label, h('input', { name, type: 'number', min: 0, step: 'any', required }));
  const form = h('form', { class: 'grid', 'data-testid': 'price-form' },
    h('label', {}, 'Model (name, Bedrock id or part of one)', h('input', { name: 'model', required: true })),
    field('input', 'Input $/MTok', true), field('output', 'Output $/MTok', true),
    field('cache_read', 'Cache read $/MTok (default 0.1x input)'),
    field('cache_write_5m', 'Cache write 5m $/MTok (default 1.25x)'),
    field('cache_write_1h', 'Cache write 1h $/MTok (default 2x)'),
    h('button', { type: 'submit' }, 'Save price'));
  const value = (name) => form.querySelector(`[name="${name}"]`).value.trim();
  form.addEventListener('submit', guarded(async () => {
    const body = { input: Number(value('input')), output: Number(value('output')) };
    for (const name of ['cache_read', 'cache_write_5m', 'cache_write_1h']) if (value(name) !== '') body[name] = Number(value(name));
    const model = value('model');
    await api('PUT', `/admin/v1/pricing/${encodeURIComponent(model)}`, body);
    showInfo(`Price for ${model} saved.`);
    await pricingPage(view);
  }));
  const fill = (p) => {
    for (const name of ['model', 'input', 'output', 'cache_read', 'cache_write_5m', 'cache_write_1h']) form.querySelector(`[name="${name}"]`).value = p[name];
    form.scrollIntoView({ behavior: 'instant', block: 'start' });
  };
  const price = (v) => h('td', { class: 'num' }, `$${Number(v).toLocaleString('en-US', { maximumFractionDigits: 6 })}`);
  const rows = pricing.data.map((p) => h('tr', { 'data-model': p.model },
    h('td', { class: 'mono' }, p.model), price(p.input), price(p.output), price(p.cache_read), price(p.cache_write_5m), price(p.cache_write_1h),
    h('td', {}, badge(p.source === 'table' ? 'operator' : 'built-in', p.source === 'table' ? 'active' : 'disabled')),
    h('td', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary small', onclick: () => fill(p) }, p.source === 'table' ? 'Edit' : 'Override'),
      p.source === 'table'
        ? h('button', { type: 'button', class: 'danger small', onclick: guarded(async () => {
          if (!(await confirmDialog(`Delete the price for ${p.model}?`, 'Requests fall back to a built-in price if one matches, else they are recorded unpriced.', 'Delete'))) return;
          await api('DELETE', `/admin/v1/pricing/${encodeURIComponent(p.model)}`);
          showInfo(`Price for ${p.model} deleted.`);
          await pricingPage(view);
        }) }, 'Delete')
        : null)));
  const m = pricing.tier_multipliers;
  view.replaceChildren(
    h('div', { class: 'card' }, h('h1', {}, 'Pricing'), h('p', { class: 'muted' }, 'USD per million tokens. Operator prices win over built-in list prices; the first match of exact id, exact name, then the longest contained entry is used.'), form),
    h('div', { class: 'card' },
      h('h2', {}, 'Prices in force'),
      h('p', { class: 'small muted' }, `Tier multipliers: default ×${m.default}, flex ×${m.flex}, priority ×${m.priority}, reserved ×${m.reserved}`),
      h('table', { 'data-testid': 'prices-table' },
        h('thead', {}, h('tr', {}, ['Model', 'Input', 'Output', 'Cache read', 'Cache write 5m', 'Cache write 1h', 'Source', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, rows))));
}

// ---------- model mapping ----------

const ENTRY_FIELDS = ['key', 'bedrock_id', 'backend', 'display_name', 'listed', 'max_output_tokens'];

async function modelsPage(view) {
  const models = await api('GET', '/admin/v1/models');
  const form = h('form', { class: 'grid', 'data-testid': 'model-form' },
    h('label', {}, 'Model name clients send', h('input', { name: 'key', required: true })),
    h('label', {}, 'Bedrock model id, inference profile or ARN', h('input', { name: 'bedrock_id', required: true })),
    h('label', {}, 'Bedrock API', h('select', { name: 'backend' }, h('option', { value: '' }, 'by family (default)'), h('option', { value: 'invoke' }, 'InvokeModel (Claude)'), h('option', { value: 'converse' }, 'Converse'))),
    h('label', {}, 'Display name', h('input', { name: 'display_name' })),
    h('label', {}, 'Max output tokens', h('input', { name: 'max_output_tokens', type: 'number', min: 1 })),
    h('label', { class: 'check' }, h('input', { name: 'listed', type: 'checkbox', checked: true }), 'Listed in /v1/models'),
    h('label', {}, 'Other fields (JSON object, e.g. capabilities)', h('textarea', { name: 'extra', placeholder: '{"capabilities": {"thinking": "budget"}}' })),
    h('button', { type: 'submit' }, 'Save mapping'));
  const el = (name) => form.querySelector(`[name="${name}"]`);
  form.addEventListener('submit', guarded(async () => {
    let entry = {};
    const extra = el('extra').value.trim();
    if (extra) {
      try {
        entry = JSON.parse(extra);
      } catch (e) {
        throw new Error(`Other fields: not valid JSON (${e.message})`);
      }
      if (typeof entry !== 'object' || Array.isArray(entry) || entry === null) throw new Error('Other fields: must be a JSON object');
    }
    const key = el('key').value.trim();
    entry.bedrock_id = el('bedrock_id').value.trim();
    entry.listed = el('listed').checked;
    if (el('backend').value) entry.backend = el('backend').value;
    if (el('display_name').value.trim()) entry.display_name = el('display_name').value.trim();
    if (el('max_output_tokens').value) entry.max_output_tokens = Number(el('max_output_tokens').value);
    await api('PUT', `/admin/v1/models/${encodeURIComponent(key)}`, entry);
    showInfo(`Mapping for ${key} saved; every replica uses it within 30 s.`);
    await modelsPage(view);
  }));
  const fill = (key, entry) => {
    form.reset();
    el('key').value = key;
    el('bedrock_id').value = entry.bedrock_id || '';
    el('backend').value = entry.backend || '';
    el('display_name').value = entry.display_name || '';
    el('max_output_tokens').value = entry.max_output_tokens || '';
    el('listed').checked = entry.listed !== false;
    const extra = Object.fromEntries(Object.entries(entry).filter(([k]) => !ENTRY_FIELDS.includes(k)));
    el('extra').value = Object.keys(extra).length ? JSON.stringify(extra, null, 2) : '';
    form.scrollIntoView({ behavior: 'instant', block: 'start' });
  };
  const stored = models.data.map((m) => h('tr', { 'data-model': m.key },
    h('td', { class: 'mono' }, m.key), h('td', { class: 'mono' }, m.entry.bedrock_id), h('td', {}, m.entry.backend || 'by family'),
    h('td', {}, m.entry.display_name || '—'), h('td', {}, m.entry.listed === false ? 'no' : 'yes'), h('td', { class: 'small' }, fmtTime(m.updated_at)),
    h('td', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary small', onclick: () => fill(m.key, m.entry) }, 'Edit'),
      h('button', { type: 'button', class: 'danger small', onclick: guarded(async () => {
        if (!(await confirmDialog(`Delete the mapping for ${m.key}?`, 'Clients sending this name fall back to the built-in table (or get 404).', 'Delete'))) return;
        await api('DELETE', `/admin/v1/models/${encodeURIComponent(m.key)}`);
        showInfo(`Mapping for ${m.key} deleted.`);
        await modelsPage(view);
      }) }, 'Delete'))));
  const overridden = new Set(models.data.map((m) => m.key));
  const builtin = (models.builtin || []).map((b) => h('tr', { 'data-model': b.key },
    h('td', { class: 'mono' }, b.key, overridden.has(b.key) ? h('span', {}, ' ', badge('overridden', 'near')) : null),
    // Unlisted names clients may also send (`claude-sonnet-4-5`): same model, not in /v1/models.
    h('td', { class: 'mono small', 'data-testid': 'aliases' }, (b.aliases || []).length ? b.aliases.join(', ') : '—'),
    h('td', { class: 'mono' }, b.bedrock_id), h('td', {}, b.family), h('td', {}, b.backend), h('td', {}, b.display_name),
    h('td', { class: 'num' }, b.max_output_tokens ? fmtInt(b.max_output_tokens) : '—'),
    h('td', { class: 'actions' }, h('button', { type: 'button', class: 'secondary small', onclick: () => fill(b.key, { bedrock_id: b.bedrock_id, display_name: b.display_name }) }, 'Override'))));
  view.replaceChildren(
    h('div', { class: 'card' }, h('h1', {}, 'Model mapping'), h('p', { class: 'muted' }, 'Stored entries map a model name to Bedrock and take precedence over the built-in defaults below.'), form),
    h('div', { class: 'card' }, h('h2', {}, `Stored mappings (${models.data.length})`),
      models.data.length
        ? h('table', { 'data-testid': 'models-table' },
          h('thead', {}, h('tr', {}, ['Name', 'Bedrock id', 'API', 'Display name', 'Listed', 'Updated', ''].map((c) => h('th', {}, c)))),
          h('tbody', {}, stored))
        : h('p', { class: 'empty' }, 'None: every name resolves through the built-in defaults.')),
    h('div', { class: 'card' }, h('h2', {}, `Built-in defaults (${(models.builtin || []).length}, read-only)`),
      h('table', { 'data-testid': 'builtin-models' },
        h('thead', {}, h('tr', {}, ['Name', 'Aliases', 'Bedrock id', 'Family', 'API', 'Display name', 'Max output', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, builtin))));
}

boot();
