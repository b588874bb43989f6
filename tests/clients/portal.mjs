// Drives the admin portal in Debian's Chromium (playwright-core, no downloaded browser) through
// the gateway, step by step, with the Rust test (tests/e2e/tests/it/portal.rs) acting in between.
// Protocol: one JSON object per stdout line ({"step": ...}); after a step that says
// "await": true the script reads one line from stdin before going on. Screenshots of every page
// go to PORTAL_ARTIFACTS. Any failed expectation throws: the script exits non-zero with the
// reason on stderr.
//
// Environment: PORTAL_URL (the gateway, http://127.0.0.1:PORT), PORTAL_MASTER_KEY,
// PORTAL_ARTIFACTS (a directory), CHROMIUM (the browser binary, default /usr/bin/chromium).

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const base = required('PORTAL_URL');
const master = required('PORTAL_MASTER_KEY');
const artifacts = required('PORTAL_ARTIFACTS');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const KEY_NAME = 'portal-e2e';
const STEP_MS = 30_000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Reports a step; with `wait`, blocks until the test answers on stdin. */
async function step(name, fields = {}, wait = false) {
  process.stdout.write(`${JSON.stringify({ step: name, await: wait, ...fields })}\n`);
  if (!wait) return;
  const { value, done } = await input.next();
  expect(!done && value.trim() === 'ok', `the test answered ${JSON.stringify(value)} after ${name}`);
}

mkdirSync(artifacts, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'portal-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1400, height: 1000 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
context.setDefaultTimeout(STEP_MS);

const problems = [];
const page = context.pages()[0] ?? (await context.newPage());
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  // A CSP violation or a script error would show here.
  if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
});
page.on('response', async (response) => {
  if (!response.url().startsWith(base)) return;
  const body = await response.body().catch(() => Buffer.alloc(0));
  if (body.includes(master) || JSON.stringify(await response.allHeaders()).includes(master)) {
    problems.push(`the master key came back in ${response.url()}`);
  }
});

async function shot(name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

async function open(hashPage) {
  await page.goto(`${base}/admin/#/${hashPage}`);
  await page.locator(`#view[data-ready="${hashPage}"]`).waitFor();
}

/** Waits for the hash page to finish rendering after an in-app navigation. */
async function go(hashPage) {
  await page.evaluate((p) => { document.querySelector('#view').removeAttribute('data-ready'); location.hash = `#/${p}`; }, hashPage);
  await page.locator(`#view[data-ready="${hashPage}"]`).waitFor();
}

const message = () => page.locator('#message');

try {
  // 1. The sign-in page; a wrong key is refused with a visible message.
  await page.goto(`${base}/admin/`);
  await page.locator('#login').waitFor({ state: 'visible' });
  await shot('01-sign-in');
  await page.fill('#master-key', 'sk-gw-this-is-not-the-master-key');
  await page.click('#login-form button[type=submit]');
  await message().filter({ hasText: 'invalid master key' }).waitFor();
  expect(await page.locator('#login').isVisible(), 'still on the sign-in page');

  // 2. Sign in: an HttpOnly, SameSite=Strict cookie on /admin, and no key anywhere in the browser.
  await page.fill('#master-key', master);
  await page.click('#login-form button[type=submit]');
  await page.locator('#view[data-ready="keys"]').waitFor();
  const cookies = await context.cookies(`${base}/admin/`);
  const session = cookies.find((c) => c.name === 'gw_admin_session');
  expect(session, `a session cookie (${JSON.stringify(cookies.map((c) => c.name))})`);
  expect(session.httpOnly && session.sameSite === 'Strict' && session.path === '/admin', `cookie flags ${JSON.stringify(session)}`);
  const browserState = await page.evaluate(() => ({
    local: localStorage.length, sessionStore: sessionStorage.length, cookie: document.cookie, url: location.href,
    field: document.querySelector('#master-key').value,
  }));
  expect(browserState.local === 0 && browserState.sessionStore === 0, 'nothing in web storage');
  expect(!browserState.cookie.includes('gw_admin_session'), 'the session cookie is invisible to scripts');
  expect(!browserState.url.includes(master) && browserState.field === '', 'the key is in neither the URL nor the form');
  await step('signed_in', { cookie: { httpOnly: session.httpOnly, sameSite: session.sameSite, path: session.path, secure: session.secure } });

  // 3. Create a key: the secret is shown once.
  const form = page.locator('[data-testid="create-key"]');
  await form.locator('[name="name"]').fill(KEY_NAME);
  await form.locator('[name="owner"]').fill('e2e');
  await form.locator('button[type=submit]').click();
  const secret = (await page.locator('[data-testid="secret-value"]').textContent()).trim();
  expect(secret.startsWith('sk-gw-'), `a secret was shown (${secret.slice(0, 8)}…)`);
  const row = page.locator('tr', { hasText: KEY_NAME });
  await row.waitFor();
  const keyId = await row.getAttribute('data-key-id');
  await shot('02-key-created');

  // 4. A reload keeps the session but never shows the secret again.
  await page.reload();
  await page.locator('#view[data-ready="keys"]').waitFor();
  expect((await page.locator('[data-testid="secret-value"]').count()) === 0, 'no secret card after a reload');
  expect(!(await page.content()).includes(secret), 'the secret is nowhere in the page after a reload');
  await shot('03-keys');
  await step('key_created', { key_id: keyId, secret }, true);

  // 5. The SDK's request shows up in the usage page (usage is written asynchronously: refresh).
  await go('usage');
  const filters = page.locator('[data-testid="usage-filters"]');
  await filters.locator('[name="key"]').selectOption(keyId);
  let requests = 0;
  const deadline = Date.now() + STEP_MS;
  while (Date.now() < deadline) {
    await filters.locator('button[type=submit]').click();
    await page.locator('[data-testid="total-requests"]').waitFor();
    requests = Number((await page.locator('[data-testid="total-requests"] .value').textContent()).replace(/,/g, ''));
    if (requests >= 1) break;
    await page.waitForTimeout(500);
  }
  expect(requests >= 1, 'the request appears in the usage totals');
  await page.locator('[data-testid="key-requests"] tbody tr').first().waitFor();
  const byModel = await page.locator('[data-testid="usage-by-model"]').textContent();
  const inputTokens = Number((await page.locator('[data-testid="total-input"] .value').textContent()).replace(/,/g, ''));
  const bars = await page.locator('[data-testid="usage-chart"] rect.bar').count();
  await shot('04-usage');
  await step('usage_seen', { requests, input_tokens: inputTokens, by_model: byModel, chart_bars: bars });

  // 6. Edit the key's limits and budget; the budgets page lists it.
  await go('keys');
  await page.locator(`tr[data-key-id="${keyId}"] button`, { hasText: 'Edit' }).click();
  const dialog = page.locator('#dialog');
  await dialog.locator('[name="budget"]').fill('5');
  await dialog.locator('[name="rpm"]').fill('600');
  await dialog.locator('#dialog-ok').click();
  await page.locator(`tr[data-key-id="${keyId}"]`, { hasText: '$5.00' }).waitFor();
  await page.locator(`tr[data-key-id="${keyId}"]`, { hasText: '600 rpm' }).waitFor();
  await go('budgets');
  const budgetRow = page.locator(`[data-testid="budgets-table"] tr[data-key-id="${keyId}"]`);
  await budgetRow.waitFor();
  const budgetState = (await budgetRow.locator('[data-testid="budget-state"]').textContent()).trim();
  await shot('05-budgets');

  // 7. Pricing: set a price; it is listed as an operator price.
  await go('pricing');
  const price = page.locator('[data-testid="price-form"]');
  await price.locator('[name="model"]').fill('e2e-model');
  await price.locator('[name="input"]').fill('1.5');
  await price.locator('[name="output"]').fill('7');
  await price.locator('button[type=submit]').click();
  await page.locator('[data-testid="prices-table"] tr[data-model="e2e-model"]', { hasText: 'operator' }).waitFor();
  await shot('06-pricing');

  // 8. Model mapping: the built-in defaults are visible; a mapping is saved; a bad one is an
  //    error message from the API, not a blank page.
  await go('models');
  const builtins = await page.locator('[data-testid="builtin-models"] tbody tr').count();
  expect(builtins >= 5, `built-in defaults listed (${builtins})`);
  // The undated names clients send too are shown beside their canonical model.
  const sonnetAliases = await page.locator('[data-testid="builtin-models"] tr[data-model="claude-sonnet-4-5-20250929"] [data-testid="aliases"]').textContent();
  const mapping = page.locator('[data-testid="model-form"]');
  await mapping.locator('[name="key"]').fill('e2e-alias');
  await mapping.locator('[name="bedrock_id"]').fill('us.anthropic.claude-sonnet-4-5-20250929-v1:0');
  await mapping.locator('button[type=submit]').click();
  await page.locator('[data-testid="models-table"] tr[data-model="e2e-alias"]').waitFor();
  await shot('07-models');
  await mapping.locator('[name="key"]').fill('e2e-broken');
  await mapping.locator('[name="bedrock_id"]').fill('us.anthropic.claude-sonnet-4-5-20250929-v1:0');
  await mapping.locator('[name="extra"]').fill('{"no_such_field": 1}');
  await mapping.locator('button[type=submit]').click();
  await message().filter({ hasText: 'invalid model entry' }).waitFor();
  const errorText = await message().textContent();
  expect(await page.locator('[data-testid="model-form"]').isVisible(), 'the page stays usable after an error');
  await shot('08-api-error');
  await step('pages_checked', { budget_state: budgetState, builtin_models: builtins, sonnet_aliases: sonnetAliases, error_message: errorText });

  // 9. Disable the key.
  await go('keys');
  await page.locator(`tr[data-key-id="${keyId}"] button`, { hasText: 'Disable' }).click();
  await page.locator(`tr[data-key-id="${keyId}"] [data-testid="status"]`, { hasText: 'disabled' }).waitFor();
  await shot('09-key-disabled');
  await step('key_disabled', { key_id: keyId }, true);

  // 10. Rotate (confirmed in the dialog): a new secret, shown once; delete a spare key.
  await page.locator(`tr[data-key-id="${keyId}"] button`, { hasText: 'Rotate' }).click();
  await page.locator('#dialog[open]').waitFor();
  await shot('10-rotate-confirm');
  await page.locator('#dialog-ok').click();
  const rotated = (await page.locator('[data-testid="secret-value"]').textContent()).trim();
  expect(rotated.startsWith('sk-gw-') && rotated !== secret, 'rotation showed a new secret');
  await form.locator('[name="name"]').fill('portal-e2e-spare');
  await form.locator('button[type=submit]').click();
  const spare = page.locator('tr', { hasText: 'portal-e2e-spare' });
  await spare.waitFor();
  await spare.locator('button', { hasText: 'Delete' }).click();
  await page.locator('#dialog-ok').click();
  await spare.waitFor({ state: 'detached' });
  await step('rotated', { secret: rotated });

  // 11. Sign out: back to the sign-in page, the cookie gone; the test then replays the old one.
  const before = (await context.cookies(`${base}/admin/`)).find((c) => c.name === 'gw_admin_session').value;
  await page.click('#sign-out');
  await page.locator('#login').waitFor({ state: 'visible' });
  await message().filter({ hasText: 'Signed out' }).waitFor();
  const after = (await context.cookies(`${base}/admin/`)).find((c) => c.name === 'gw_admin_session');
  expect(!after || after.value === '', 'the browser dropped the session cookie');
  await shot('11-signed-out');
  await page.reload();
  await page.locator('#login').waitFor({ state: 'visible' });
  expect(problems.length === 0, `no browser problems: ${problems.join('; ')}`);
  await step('signed_out', { old_session: before }, true);
} catch (error) {
  await shot('failure').catch(() => {});
  process.stderr.write(`portal.mjs: ${error.stack || error}\nbrowser problems: ${problems.join('; ')}\n`);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  process.stdin.destroy();
}
