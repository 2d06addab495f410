// The dashboard of `orbit serve` in a real browser: Debian's chromium driven
// by playwright-core, pages scanned by axe-core. Run by
// crates/orbit-server/tests/dashboard.rs (which starts orbit serve, the MCP
// servers and this script, with Node 22 from target/test-deps/npm-client);
// installed by scripts/install-test-deps.sh (`npm ci` here).
//
// A plain node script: one line per check, `ok N - ...`; on the first
// failure `not ok - ...` with the reason, a screenshot of every open page
// (FAILED-*.png) and exit status 1. Its last line on success is
// `N passed, 0 failed`.
//
// Inputs, from the environment:
//   ORBIT_URL        http://127.0.0.1:PORT of `orbit serve`
//   OWNER_TOKEN      a token of the workspace's owner (olivia)
//   WORKSPACE        the workspace's slug (team-a); it starts with its owner as only member
//   EVERYTHING_URL   streamable HTTP URL of @modelcontextprotocol/server-everything
//   EVIL_URL         streamable HTTP URL of tests/fixtures/evil-description-server.mjs
//   CHROMIUM         the chromium executable
//   SCREENSHOT_DIR   where the PNGs go, one per page, named by page
//   COMPONENT_PATH   a .wasm component making host calls (the `ops` test guest)
//   COMPONENT_INPUT  its input (optional; the default is a script for `ops`)
//   SECOND_WORKSPACE, SECOND_TOKEN  (optional) another workspace of the owner's
//                    and a token for it, for the workspace switcher
//
// Tokens and the credential value are never printed: every message goes
// through redact().

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';

// ---- Inputs -----------------------------------------------------------------

function env(name, { optional = false } = {}) {
    const value = process.env[name];
    if (!value && !optional) {
        console.error(`dashboard.spec: the environment variable ${name} is not set`);
        process.exit(2);
    }
    return value;
}

const ORBIT = env('ORBIT_URL').replace(/\/$/, '');
const OWNER_TOKEN = env('OWNER_TOKEN');
const WS = env('WORKSPACE');
const EVERYTHING_URL = env('EVERYTHING_URL');
const EVIL_URL = env('EVIL_URL');
const CHROMIUM = env('CHROMIUM');
const SCREENSHOT_DIR = env('SCREENSHOT_DIR');
const COMPONENT_PATH = env('COMPONENT_PATH');
// For the `ops` guest: five host calls (storage put/get, cache set/increment,
// a storage get of a missing key: a not-found span) and one log line (kept
// as a line, not a span).
const LOG_LINE = 'dashboard test log line';
const COMPONENT_INPUT =
    env('COMPONENT_INPUT', { optional: true }) ??
    JSON.stringify([
        { op: 'put', key: 'dashboard/a', value: 'hello' },
        { op: 'get', key: 'dashboard/a' },
        { op: 'cache_set', key: 'dashboard-c', value: 'v', ttl_ms: 60000 },
        { op: 'incr', key: 'dashboard-n' },
        { op: 'log', level: 'info', message: LOG_LINE },
        { op: 'get', key: 'dashboard/missing' },
    ]);
const SECOND_WS = env('SECOND_WORKSPACE', { optional: true });
const SECOND_TOKEN = env('SECOND_TOKEN', { optional: true });

const OWNER = 'olivia';
const RITA = 'rita';
const EVIL_DESCRIPTION = '<img src=x onerror=alert(1)>';
const CREDENTIAL = { name: 'EXAMPLE_API_KEY', value: 'sk-dashboard-secret-value-0001', host: 'https://api.example.com' };
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const W = `/w/${WS}`;
const SECTIONS = {
    Overview: W,
    Servers: `${W}/servers`,
    Credentials: `${W}/secrets`,
    Members: `${W}/members`,
    Tokens: `${W}/tokens`,
    Runs: `${W}/runs`,
    Audit: `${W}/audit`,
    Jobs: `${W}/jobs`,
};

// Secret strings that no page may show (rita's token is added once issued;
// only the page that issues it may show it, once).
const secrets = new Set([OWNER_TOKEN, CREDENTIAL.value, ...(SECOND_TOKEN ? [SECOND_TOKEN] : [])]);

function redact(text) {
    let out = String(text);
    for (const s of secrets) out = out.split(s).join('orb_[REDACTED]');
    return out;
}

// ---- Reporting ----------------------------------------------------------------

let passed = 0;
let browser;
let lastPage;
const openPages = new Set();

async function step(name, fn) {
    try {
        await fn();
    } catch (err) {
        await fail(name, err);
    }
    passed += 1;
    console.log(`ok ${passed} - ${name}`);
}

async function fail(name, err) {
    console.log(`not ok - ${name}`);
    console.log(redact(err?.stack ?? err).replace(/^/gm, '    '));
    if (lastPage && !lastPage.isClosed()) {
        console.log(`    page: ${redact(lastPage.url())}`);
        const text = await lastPage
            .locator('main')
            .first()
            .innerText({ timeout: 2000 })
            .catch(() => lastPage.content().catch(() => '(no content)'));
        console.log(`    its <main> text:\n${redact(text.slice(0, 3000)).replace(/^/gm, '      | ')}`);
    }
    let i = 0;
    for (const page of openPages) {
        if (page.isClosed()) continue;
        const file = path.join(SCREENSHOT_DIR, `FAILED-${++i}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5000 }).catch(() => {});
        console.log(`    screenshot of ${redact(page.url())}: ${file}`);
    }
    await browser?.close().catch(() => {});
    console.log(`${passed} passed, 1 failed`);
    process.exit(1);
}

// The whole script stops by itself.
setTimeout(() => fail('the whole run', new Error('timed out after 8 minutes')), 8 * 60_000).unref();

// ---- Instrumented browser contexts --------------------------------------------

// Whatever a page does that the dashboard must never do: a JavaScript dialog
// (an injected script ran), an uncaught error in dashboard.js, a script or
// style the page's own CSP refused (the page carries inline code).
const incidents = [];

function instrument(page, who) {
    openPages.add(page);
    page.on('close', () => openPages.delete(page));
    page.on('dialog', async (dialog) => {
        incidents.push(`${who}: a ${dialog.type()} dialog opened (${dialog.message()}) on ${page.url()}`);
        await dialog.dismiss().catch(() => {});
    });
    page.on('pageerror', (err) => incidents.push(`${who}: uncaught error on ${page.url()}: ${err.message}`));
    page.on('console', (msg) => {
        if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
            incidents.push(`${who}: CSP violation on ${page.url()}: ${msg.text()}`);
        }
    });
}

function assertNoIncidents() {
    assert.deepEqual(incidents, [], 'no dialog, no uncaught error, no CSP violation');
}

async function newContext(who, options = {}) {
    // No bypassCSP, not even for axe: AxeBuilder injects axe-core through
    // the DevTools protocol (page.evaluate), which the page's CSP does not
    // govern, so every scan runs on the page exactly as served, and a CSP
    // violation of the dashboard's own still shows up above.
    const context = await browser.newContext({ viewport: DESKTOP, ...options });
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(30_000);
    context.on('page', (page) => instrument(page, who));
    const page = await context.newPage();
    return { context, page, who };
}

// ---- Page helpers ---------------------------------------------------------------

const url = (p) => `${ORBIT}${p}`;
const pathOf = (page) => new URL(page.url()).pathname;

const screenshotted = new Map(); // page name -> visits
const scanned = new Set();

// What every page load gets: a screenshot, no secret in the HTML, no inline
// script, an axe scan (once per page name), and no incident.
async function seen(page, name, { allowSecret } = {}) {
    lastPage = page;
    await page.waitForLoadState('load');
    const n = (screenshotted.get(name) ?? 0) + 1;
    screenshotted.set(name, n);
    const file = n === 1 ? name : `${name}-${n}`;
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${file}.png`), fullPage: true });

    const html = await page.content();
    for (const s of secrets) {
        if (s === allowSecret) continue;
        assert(!html.includes(s), `${name}: the page's HTML holds a token or credential value`);
    }
    assert.equal(await page.locator('main').count(), 1, `${name}: exactly one <main>`);
    const inline = await page.evaluate(() => {
        const found = [];
        for (const s of document.querySelectorAll('script')) {
            if (!s.src) found.push('an inline <script>');
            else if (new URL(s.src).pathname !== '/assets/dashboard.js' || new URL(s.src).origin !== location.origin)
                found.push(`a script from ${s.src}`);
        }
        for (const el of document.querySelectorAll('*')) {
            for (const a of el.attributes) if (/^on/i.test(a.name)) found.push(`an ${a.name}= attribute on <${el.localName}>`);
            if ((el.getAttribute('href') ?? '').trim().toLowerCase().startsWith('javascript:'))
                found.push(`a javascript: link`);
        }
        return found;
    });
    assert.deepEqual(inline, [], `${name}: no script but /assets/dashboard.js`);

    if (!scanned.has(name)) {
        scanned.add(name);
        const results = await new AxeBuilder({ page }).analyze();
        const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
        if (bad.length > 0) {
            const lines = bad.flatMap((v) => [
                `${v.impact} ${v.id}: ${v.help} (${v.helpUrl})`,
                ...v.nodes.slice(0, 5).map((n) => `    ${n.target.join(' ')}  ${n.html.slice(0, 160)}`),
            ]);
            assert.fail(`${name}: axe found ${bad.length} serious or critical violation(s):\n${lines.join('\n')}`);
        }
        const minor = results.violations.filter((v) => !bad.includes(v));
        if (minor.length > 0) console.log(`# ${name}: axe, minor/moderate only: ${minor.map((v) => v.id).join(', ')}`);
    }
    assertNoIncidents();
}

async function visit(page, name, p, { status = 200, allowSecret } = {}) {
    lastPage = page;
    const resp = await page.goto(url(p));
    assert.equal(resp.status(), status, `GET ${p}: HTTP status`);
    await seen(page, name, { allowSecret });
    return resp;
}

// Every POST form carries a non-empty hidden `csrf` field.
async function assertCsrfFields(page, name) {
    const forms = await page.$$eval('form', (fs) =>
        fs
            .filter((f) => (f.getAttribute('method') ?? 'get').toLowerCase() === 'post')
            .map((f) => ({
                action: f.getAttribute('action'),
                csrf: f.querySelector('input[type=hidden][name=csrf]')?.value ?? '',
            })),
    );
    assert(forms.length > 0, `${name}: has POST forms (at least Sign out)`);
    for (const f of forms) assert(f.csrf.length > 0, `${name}: the POST form to ${f.action} has a hidden csrf field`);
}

// The chrome of every signed-in page.
async function assertChrome(page, name, { role = 'admin' } = {}) {
    const sections = page.getByRole('navigation', { name: 'Sections', exact: true });
    const links = await sections.getByRole('link').evaluateAll((as) =>
        as.map((a) => [a.textContent.trim(), new URL(a.href).pathname]),
    );
    const expected = Object.entries(SECTIONS).filter(([label]) => role === 'admin' || label !== 'Audit');
    assert.deepEqual(
        [...links].sort(),
        [...expected].sort(),
        `${name}: <nav aria-label="Sections"> links (label, path)`,
    );
    const workspaces = page.getByRole('navigation', { name: 'Workspaces', exact: true });
    const wsLinks = await workspaces
        .getByRole('link')
        .evaluateAll((as) => as.map((a) => [a.textContent.trim(), new URL(a.href).pathname]));
    assert(
        wsLinks.some(([, p]) => p === W),
        `${name}: the Workspaces nav links ${W}: ${JSON.stringify(wsLinks)}`,
    );
    assert(
        wsLinks.some(([label, p]) => label === 'Add workspace' && p === '/signin'),
        `${name}: the Workspaces nav has "Add workspace" to /signin: ${JSON.stringify(wsLinks)}`,
    );
    const signOut = page.locator('form').filter({ has: page.getByRole('button', { name: 'Sign out', exact: true }) });
    assert.equal(await signOut.count(), 1, `${name}: one Sign out button, in a form`);
    await assertCsrfFields(page, name);
}

const table = (page, caption) => page.getByRole('table', { name: caption, exact: true });
const formWith = (scope, button) =>
    scope.locator('form').filter({ has: scope.getByRole('button', { name: button, exact: true }) });
const field = (scope, label) => scope.getByLabel(label, { exact: true });

async function setField(locator, value) {
    const tag = await locator.evaluate((el) => el.localName);
    if (tag === 'select') {
        const options = await locator.locator('option').evaluateAll((os) => os.map((o) => [o.value, o.label]));
        assert(
            options.some(([v, l]) => v === value || l === value),
            `the select offers ${JSON.stringify(value)}; it offers ${JSON.stringify(options.map(([v]) => v))}`,
        );
        await locator.selectOption(value);
    }
    else await locator.fill(value);
}

// Body rows of a table, each as its cells' trimmed texts.
async function rows(tableLocator) {
    return tableLocator.locator('tbody tr').evaluateAll((trs) =>
        trs.map((tr) => [...tr.querySelectorAll('th, td')].map((c) => c.textContent.replace(/\s+/g, ' ').trim())),
    );
}

function rowWithFirstCell(tableLocator, text) {
    const first = tableLocator.page().locator('th:first-child, td:first-child');
    return tableLocator
        .locator('tbody tr')
        .filter({ has: first.filter({ hasText: new RegExp(`^\\s*${reEscape(text)}\\s*$`) }) });
}

function reEscape(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// Submits a GET filter form: its submit button, or Enter in `input`.
async function submitGet(page, form, input) {
    const button = form.locator('button[type=submit], button:not([type]), input[type=submit]');
    if ((await button.count()) > 0) await Promise.all([page.waitForNavigation(), button.first().click()]);
    else await Promise.all([page.waitForNavigation(), input.press('Enter')]);
}

// Clicks `button` and waits for the page the browser ends on. Returns the
// POST's own response and the final one. A successful change is answered
// with a redirect to a GET (POST-redirect-GET) unless `redirect` is false.
async function submit(page, button, { redirect = true } = {}) {
    lastPage = page;
    const [final] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
    let req = final.request();
    while (req.redirectedFrom()) req = req.redirectedFrom();
    assert.equal(req.method(), 'POST', 'the button submits a POST');
    const post = await req.response();
    // No form the test fills in as its user may be refused as forged.
    if (post.status() === 403) {
        const body = (await post.text().catch(() => '')).replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
        assert.fail(`POST ${new URL(req.url()).pathname} was refused with 403: ${body.slice(0, 300)}`);
    }
    if (redirect) {
        assert(
            [302, 303].includes(post.status()),
            `POST ${new URL(req.url()).pathname}: expected a redirect to a GET (303), got ${post.status()}`,
        );
    }
    return { post, final };
}

async function expectSuccess(page, what) {
    const alerts = await page.locator('p[role="alert"]').allInnerTexts();
    assert.deepEqual(alerts, [], `${what}: no error message`);
    const status = page.locator('p[role="status"]');
    assert((await status.count()) > 0, `${what}: a <p role="status"> message`);
    return (await status.allInnerTexts()).join(' ');
}

async function expectError(page, what) {
    const alert = page.locator('p[role="alert"]');
    assert((await alert.count()) > 0, `${what}: a <p role="alert"> message`);
    assert.equal(await page.locator('p[role="status"]').count(), 0, `${what}: no success message`);
    return (await alert.allInnerTexts()).join(' ');
}

// A button whose accessible name starts with `label`: a per-row button may
// say more to a screen reader ("Revoke token 0190... of rita") as long as
// its visible label comes first (WCAG 2.5.3, label in name).
const rowButton = (scope, label) => scope.getByRole('button', { name: new RegExp(`^${reEscape(label)}\\b`) });

async function noButton(page, name, what) {
    assert.equal(await rowButton(page, name).count(), 0, `${what}: no "${name}" button`);
}

// ---- The REST API, as an agent would call it --------------------------------------

async function api(method, p, { token = OWNER_TOKEN, json, body, headers = {} } = {}) {
    const init = { method, headers: { authorization: `Bearer ${token}`, ...headers } };
    if (json !== undefined) {
        init.body = JSON.stringify(json);
        init.headers['content-type'] = 'application/json';
    } else if (body !== undefined) {
        init.body = body;
    }
    const resp = await fetch(url(`/api/v1/workspaces/${WS}${p}`), init);
    const text = await resp.text();
    let value;
    try {
        value = JSON.parse(text);
    } catch {
        value = text;
    }
    return { status: resp.status, body: value };
}

// One tool call through the workspace's MCP gateway (streamable HTTP,
// answers as JSON or as an SSE stream), so the audit has a tool call.
async function gatewayToolCall(name, args) {
    const endpoint = url(`/ws/${WS}/mcp`);
    let session;
    const rpc = async (message) => {
        const headers = {
            authorization: `Bearer ${OWNER_TOKEN}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
        };
        if (session) {
            headers['mcp-session-id'] = session;
            headers['mcp-protocol-version'] = '2025-06-18';
        }
        const resp = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify(message) });
        session ??= resp.headers.get('mcp-session-id') ?? undefined;
        const text = await resp.text();
        assert(resp.ok, `gateway ${message.method}: HTTP ${resp.status}: ${text.slice(0, 300)}`);
        if (message.id === undefined) return undefined;
        const messages = (resp.headers.get('content-type') ?? '').includes('text/event-stream')
            ? text
                  .split('\n')
                  .filter((l) => l.startsWith('data:'))
                  .map((l) => l.slice(5).trim())
                  .filter((d) => d.length > 0)
                  .map((d) => JSON.parse(d))
            : [JSON.parse(text)];
        const reply = messages.find((m) => m.id === message.id);
        assert(reply && !reply.error, `gateway ${message.method}: ${JSON.stringify(reply ?? messages).slice(0, 300)}`);
        return reply.result;
    };
    await rpc({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'dashboard-test', version: '1' } },
    });
    await rpc({ jsonrpc: '2.0', method: 'notifications/initialized' });
    const result = await rpc({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: args } });
    if (session) {
        await fetch(endpoint, {
            method: 'DELETE',
            headers: { authorization: `Bearer ${OWNER_TOKEN}`, 'mcp-session-id': session },
        }).catch(() => {});
    }
    return result;
}

// ---- The scenarios ------------------------------------------------------------------

await fs.mkdir(SCREENSHOT_DIR, { recursive: true });
browser = await chromium.launch({
    executablePath: CHROMIUM,
    // The browser loads only this test's own loopback server; root (CI) cannot
    // use chromium's sandbox, and containers have a small /dev/shm.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
console.log(`# chromium ${browser.version()}, ${ORBIT}, workspace ${WS}`);

const owner = await newContext('olivia');
await owner.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ORBIT });
const o = owner.page;

let inviteForm; // { action, fields } of the owner's Invite form, for forged posts
let installForm;
let ritaToken;
let ritaTokenId;
let runId;
let spans;

await step('the sign-in page: a password field labelled Token and a Sign in button', async () => {
    await visit(o, 'signin', '/signin');
    const token = field(o, 'Token');
    assert.equal(await token.getAttribute('type'), 'password', 'the Token field is type=password');
    assert.equal(await token.getAttribute('name'), 'token', 'the Token field is named token');
    assert.equal(await o.getByRole('button', { name: 'Sign in', exact: true }).count(), 1, 'a Sign in button');
    // A signed-out visitor gets the sign-in page, not a workspace.
    await o.goto(url(W));
    assert.equal(pathOf(o), '/signin', `GET ${W} while signed out lands on /signin`);
});

await step('an unknown token is refused on the sign-in page with an alert, not echoed', async () => {
    const unknown = `orb_${'A'.repeat(43)}`;
    secrets.add(unknown);
    await o.goto(url('/signin'));
    await field(o, 'Token').fill(unknown);
    const { final } = await submit(o, o.getByRole('button', { name: 'Sign in', exact: true }), { redirect: false });
    assert.equal(pathOf(o), '/signin', 'still on /signin');
    assert(final.status() < 500, `no server error (${final.status()})`);
    await expectError(o, 'unknown token');
    await seen(o, 'signin-refused');
});

await step('the owner signs in and lands on the overview', async () => {
    await o.goto(url('/signin'));
    await field(o, 'Token').fill(OWNER_TOKEN);
    await submit(o, o.getByRole('button', { name: 'Sign in', exact: true }));
    assert.equal(pathOf(o), W, 'redirected to the overview');
    await seen(o, 'overview');
    await assertChrome(o, 'overview');
});

await step('the overview counts: 1 member, 0 servers, 0 tools', async () => {
    for (const [id, expected] of [['overview-members', '1'], ['overview-servers', '0'], ['overview-tools', '0']]) {
        const text = (await o.locator(`#${id}`).innerText()).trim();
        assert.match(text, /^\d+$/, `#${id} holds a number`);
        assert.equal(text, expected, `#${id}`);
    }
});

await step("security headers: CSP has script-src 'self' and frame-ancestors 'none'", async () => {
    const resp = await o.goto(url(W));
    const csp = resp.headers()['content-security-policy'];
    assert(csp, 'a content-security-policy header');
    const directives = Object.fromEntries(
        csp
            .split(';')
            .map((d) => d.trim().split(/\s+/))
            .filter((d) => d[0])
            .map(([k, ...v]) => [k.toLowerCase(), v]),
    );
    assert.deepEqual(directives['script-src'], ["'self'"], `script-src is exactly 'self': ${csp}`);
    assert.deepEqual(directives['frame-ancestors'], ["'none'"], `frame-ancestors 'none': ${csp}`);
    const others = Object.entries(resp.headers())
        .filter(([k]) => /^(x-content-type-options|referrer-policy|cache-control|x-frame-options)$/.test(k))
        .map(([k, v]) => `${k}: ${v}`);
    console.log(`# other headers: ${others.join('; ') || '(none)'}`);
});

await step('the session cookie is HttpOnly and SameSite=Strict', async () => {
    const cookies = await owner.context.cookies(ORBIT);
    assert(cookies.length > 0, 'signed in, the browser holds a cookie');
    for (const c of cookies) {
        assert.equal(c.httpOnly, true, `cookie ${c.name} is HttpOnly`);
        assert.equal(c.sameSite, 'Strict', `cookie ${c.name} is SameSite=Strict`);
    }
    console.log(`# cookies: ${cookies.map((c) => `${c.name} (path ${c.path}, secure ${c.secure})`).join(', ')}`);
});

await step('servers: install server-everything by URL through the form', async () => {
    await visit(o, 'servers', `${W}/servers`);
    await assertChrome(o, 'servers');
    assert((await o.getByText('Install a server').count()) > 0, 'an "Install a server" form title');
    const form = formWith(o, 'Install');
    assert.equal(await form.count(), 1, 'one form with an Install button');
    installForm = await form.evaluate((f) => ({
        action: new URL(f.getAttribute('action') ?? location.href, location.href).href,
        hidden: [...f.querySelectorAll('input[type=hidden]')].map((i) => [i.name, i.value]),
    }));
    installForm.names = {
        name: await field(form, 'Name').getAttribute('name'),
        url: await field(form, 'URL').getAttribute('name'),
    };
    assert.equal(await field(form, 'Headers').evaluate((e) => e.localName), 'textarea', 'Headers is a textarea');
    assert.equal(await field(form, 'Unprefixed').getAttribute('type'), 'checkbox', 'Unprefixed is a checkbox');
    await field(form, 'Name').fill('everything');
    await field(form, 'URL').fill(EVERYTHING_URL);
    await submit(o, form.getByRole('button', { name: 'Install', exact: true }));
    await expectSuccess(o, 'install everything');
    await seen(o, 'servers-installed');
    const servers = await rows(table(o, 'MCP servers'));
    assert(servers.some((r) => r[0] === 'everything'), `a row for everything: ${JSON.stringify(servers)}`);
    const tools = await rows(table(o, 'Tools'));
    assert(
        tools.some((r) => r[0] === 'everything__echo' && r[1] === 'everything'),
        `the Tools table lists everything__echo from everything: ${JSON.stringify(tools.slice(0, 5))}`,
    );
    const row = rowWithFirstCell(table(o, 'MCP servers'), 'everything');
    for (const b of ['Disable', 'Refresh', 'Remove']) {
        assert.equal(await rowButton(row, b).count(), 1, `the row has a ${b} button`);
    }
    const { body } = await api('GET', '/servers');
    assert(body.servers.some((s) => s.name === 'everything' && s.enabled), 'the API lists everything, enabled');
});

await step('credentials: set a credential; its value is never shown back', async () => {
    await visit(o, 'credentials', `${W}/secrets`);
    await assertChrome(o, 'credentials');
    const form = formWith(o, 'Save credential');
    assert.equal(await form.count(), 1, 'a form with a Save credential button');
    assert.equal(await field(form, 'Value').getAttribute('type'), 'password', 'Value is type=password');
    assert.equal(await field(form, 'Header').inputValue(), 'Authorization', 'Header defaults to Authorization');
    assert.equal(await field(form, 'Template').inputValue(), 'Bearer {}', 'Template defaults to Bearer {}');
    await field(form, 'Name').fill(CREDENTIAL.name);
    await field(form, 'Value').fill(CREDENTIAL.value);
    await field(form, 'Hosts').fill(CREDENTIAL.host);
    await submit(o, form.getByRole('button', { name: 'Save credential', exact: true }));
    await expectSuccess(o, 'save credential');
    await seen(o, 'credentials-saved');
    const list = await rows(table(o, 'Credentials'));
    const row = list.find((r) => r[0] === CREDENTIAL.name);
    assert(row, `a row for ${CREDENTIAL.name}: ${JSON.stringify(list)}`);
    assert(row.join(' ').includes('api.example.com'), `its hosts are shown: ${JSON.stringify(row)}`);
    assert(row.join(' ').includes(OWNER), `added by ${OWNER}: ${JSON.stringify(row)}`);
    assert(!row.join(' ').includes('orphaned'), 'not orphaned');
    assert.equal(await field(formWith(o, 'Save credential'), 'Value').inputValue(), '', 'the Value field is empty again');
    const { body } = await api('GET', '/secrets');
    assert(body.secrets.some((s) => s.name === CREDENTIAL.name), 'the API lists the credential');
});

await step('members: a form without its csrf field is refused with 403', async () => {
    await visit(o, 'members', `${W}/members`);
    await assertChrome(o, 'members');
    const form = formWith(o, 'Invite');
    assert.equal(await form.count(), 1, 'a form with an Invite button');
    inviteForm = await form.evaluate((f) => ({
        action: new URL(f.getAttribute('action') ?? location.href, location.href).href,
        hidden: [...f.querySelectorAll('input[type=hidden]')].map((i) => [i.name, i.value]),
    }));
    inviteForm.names = {
        handle: await field(form, 'Handle').getAttribute('name'),
        role: await field(form, 'Role').getAttribute('name'),
    };
    const others = Object.fromEntries(inviteForm.hidden.filter(([n]) => n !== 'csrf'));
    const fields = { ...others, [inviteForm.names.handle]: 'csrf-victim', [inviteForm.names.role]: 'admin' };
    for (const [label, csrf] of [['without csrf', undefined], ['with a forged csrf', 'forged-token']]) {
        const resp = await owner.context.request.post(inviteForm.action, {
            form: csrf === undefined ? fields : { ...fields, csrf },
            maxRedirects: 0,
            failOnStatusCode: false,
        });
        assert.equal(resp.status(), 403, `POST ${new URL(inviteForm.action).pathname} ${label}`);
    }
    const { body } = await api('GET', '/members');
    assert(!body.members.some((m) => m.user === 'csrf-victim'), 'nobody was invited');
});

await step('members: the first invite warns of a team workspace; invite rita as read-only', async () => {
    await visit(o, 'members', `${W}/members`);
    const form = formWith(o, 'Invite');
    const warning = o.locator('main p.warning');
    assert.equal(await warning.count(), 1, 'the Invite form shows a <p class="warning">');
    assert.match(await warning.innerText(), /team workspace/, 'the warning speaks of a team workspace');
    const roles = await field(form, 'Role').locator('option').allInnerTexts();
    assert.deepEqual(roles.map((r) => r.trim()), ['read-only', 'member', 'admin', 'owner'], 'Role options');
    await field(form, 'Handle').fill(RITA);
    await field(form, 'Role').selectOption('read-only');
    await submit(o, form.getByRole('button', { name: 'Invite', exact: true }));
    await expectSuccess(o, 'invite rita');
    await seen(o, 'members-invited');
    const list = await rows(table(o, 'Members'));
    const rita = list.find((r) => r[0] === RITA);
    assert(rita && rita.includes('read-only'), `rita is listed as read-only: ${JSON.stringify(list)}`);
    assert.equal(
        await o.locator('main p.warning').filter({ hasText: 'team workspace' }).count(),
        0,
        'with two members the warning is gone',
    );
    const { body } = await api('GET', '/members');
    assert(body.members.some((m) => m.user === RITA && m.role === 'read-only'), 'the API has rita as read-only');
});

await step('tokens: the owner issues rita a token; it is shown once, and Copy copies it', async () => {
    await visit(o, 'tokens', `${W}/tokens`);
    await assertChrome(o, 'tokens');
    const form = formWith(o, 'Issue token');
    assert.equal(await form.count(), 1, 'a form with an Issue token button');
    assert.equal(await field(form, 'Member').inputValue(), OWNER, 'Member defaults to yourself');
    assert.equal(await field(form, 'Role').inputValue(), '', "Role defaults to empty (the member's role)");
    await field(form, 'Member').fill(RITA);
    await field(form, 'Agent name').fill('browser-test');
    await field(form, 'Expires in').fill('30d');
    // The new token may be shown by the POST's own response (200) or after a redirect.
    await submit(o, form.getByRole('button', { name: 'Issue token', exact: true }), { redirect: false });
    const output = o.locator('output#new-token');
    assert.equal(await output.count(), 1, 'the page shows <output id="new-token">');
    ritaToken = (await output.innerText()).trim();
    assert.match(ritaToken, /^orb_[A-Za-z0-9_-]{20,}$/, 'it holds a token');
    secrets.add(ritaToken);
    await seen(o, 'tokens-issued', { allowSecret: ritaToken });
    await o.getByRole('button', { name: 'Copy', exact: true }).click();
    let copied = '';
    for (let i = 0; i < 20 && copied !== ritaToken; i++) {
        copied = await o.evaluate(() => navigator.clipboard.readText()).catch(() => '');
        if (copied !== ritaToken) await o.waitForTimeout(100);
    }
    assert(copied === ritaToken, 'Copy puts the token on the clipboard');
    assertNoIncidents();

    const { body } = await api('GET', '/tokens');
    const ritas = body.tokens.filter((t) => t.user === RITA);
    assert.equal(ritas.length, 1, 'the API lists one token of rita');
    assert.equal(ritas[0].role, 'read-only', "rita's token has her role");
    assert.match(ritas[0].created_by, /^olivia\b/, 'issued by olivia (through her token)');
    ritaTokenId = ritas[0].id;
});

await step('tokens: never shown again; the table lists it for rita', async () => {
    await visit(o, 'tokens', `${W}/tokens`); // the secrets check: rita's token is not in the HTML
    assert.equal(await o.locator('output#new-token').count(), 0, 'no <output id="new-token"> on a later visit');
    const list = await rows(table(o, 'Tokens'));
    const row = list.find((r) => r.join(' ').includes(ritaTokenId));
    assert(row, `a row for rita's token ${ritaTokenId}: ${JSON.stringify(list)}`);
    assert(row.includes(RITA) && row.includes('browser-test'), `its member and agent: ${JSON.stringify(row)}`);
});

await step('runs: a component submitted through the API shows on the Runs page', async () => {
    const wasm = await fs.readFile(COMPONENT_PATH);
    const up = await api('POST', '/components', { body: wasm, headers: { 'content-type': 'application/wasm' } });
    assert.equal(up.status, 201, `POST /components: ${JSON.stringify(up.body)}`);
    const run = await api('POST', '/runs', { json: { digest: up.body.digest, input: COMPONENT_INPUT } });
    assert.equal(run.status, 200, `POST /runs: ${JSON.stringify(run.body)}`);
    assert.equal(run.body.status, 'succeeded', `the run succeeded: ${JSON.stringify(run.body)}`);
    runId = run.body.run_id;
    const detail = await api('GET', `/runs/${runId}`);
    spans = detail.body.spans;
    assert(spans.length >= 2, `the run has spans: ${spans.length}`);

    await visit(o, 'runs', `${W}/runs`);
    await assertChrome(o, 'runs');
    const link = table(o, 'Runs').locator(`a[href$="/w/${WS}/runs/${runId}"]`);
    assert.equal(await link.count(), 1, `the Runs table links the run ${runId}`);
    await Promise.all([o.waitForNavigation(), link.click()]);
    assert.equal(pathOf(o), `${W}/runs/${runId}`, 'the link opens the run page');
});

await step('run page: status, fuel, memory, duration, logs, and one waterfall bar per span', async () => {
    await seen(o, 'run');
    await assertChrome(o, 'run');
    const terms = (await o.locator('dl dt').allInnerTexts()).map((t) => t.trim().toLowerCase());
    for (const t of ['status', 'fuel', 'memory', 'duration']) {
        assert(terms.some((x) => x.includes(t)), `the <dl> has a ${t} term: ${JSON.stringify(terms)}`);
    }
    assert((await o.locator('dl dd').allInnerTexts()).some((d) => d.includes('succeeded')), 'the status succeeded');
    if (!env('COMPONENT_INPUT', { optional: true })) {
        assert((await o.locator('pre').allInnerTexts()).some((p) => p.includes(LOG_LINE)), 'the log line in a <pre>');
    }
    const svg = o.locator('svg[role="img"][aria-label="Span waterfall"]');
    assert.equal(await svg.count(), 1, 'one <svg role="img" aria-label="Span waterfall">');
    const bars = await svg
        .locator('rect.span')
        .evaluateAll((rs) => rs.map((r) => [r.getAttribute('data-primitive'), r.getAttribute('data-outcome')]));
    assert.equal(bars.length, spans.length, `rect.span count == spans.length of GET /runs/${runId}`);
    const fromApi = spans.map((s) => [s.primitive, s.outcome]);
    assert.deepEqual([...bars].sort(), [...fromApi].sort(), 'each bar has its span’s data-primitive and data-outcome');
    const spanRows = await rows(table(o, 'Spans'));
    assert.equal(spanRows.length, spans.length, 'one row per span in the Spans table');
});

await step('runs: the filter form filters by member', async () => {
    await visit(o, 'runs', `${W}/runs`);
    const filter = o.locator('form').filter({ has: field(o, 'Member') });
    assert.equal(await filter.count(), 1, 'a filter form with a Member field');
    for (const label of ['Status', 'Since']) assert.equal(await field(filter, label).count(), 1, `a ${label} field`);
    for (const [who, listed] of [[OWNER, true], [RITA, false]]) {
        await setField(field(filter, 'Member'), who);
        await submitGet(o, filter, field(filter, 'Member'));
        const n = await table(o, 'Runs').locator(`a[href$="/runs/${runId}"]`).count();
        assert.equal(n, listed ? 1 : 0, `Member=${who}: the run is ${listed ? '' : 'not '}listed`);
    }
    // The Status filter offers the statuses runs have (the API's), such as this run's.
    await setField(field(filter, 'Member'), '');
    await setField(field(filter, 'Status'), 'succeeded');
    await submitGet(o, filter, field(filter, 'Since'));
    assert.equal(
        await table(o, 'Runs').locator(`a[href$="/runs/${runId}"]`).count(),
        1,
        'Status=succeeded: the run is listed',
    );
    await seen(o, 'runs-filtered');
});

await step('servers: the evil server’s tool description is shown as text, never run', async () => {
    await visit(o, 'servers', `${W}/servers`);
    const form = formWith(o, 'Install');
    await field(form, 'Name').fill('evil');
    await field(form, 'URL').fill(EVIL_URL);
    await submit(o, form.getByRole('button', { name: 'Install', exact: true }));
    await expectSuccess(o, 'install evil');
    await o.waitForTimeout(500); // an injected onerror/onload would have fired by now
    await seen(o, 'servers-evil');
    const text = o.getByText(EVIL_DESCRIPTION, { exact: true });
    assert((await text.count()) >= 1, 'the description is on the page as text');
    await text.first().waitFor({ state: 'visible' });
    const tools = await rows(table(o, 'Tools'));
    const row = tools.find((r) => r[0] === 'evil__harmless');
    assert(row, `the Tools table lists evil__harmless: ${JSON.stringify(tools.map((r) => r[0]))}`);
    assert(row.includes(EVIL_DESCRIPTION), `its Description cell is the literal text: ${JSON.stringify(row)}`);
    // Its annotations, the HTML title among them, are text too.
    const annotations = row.find((cell) => cell.includes('readOnlyHint'));
    assert(annotations && annotations.includes('title: <svg onload=alert(2)>') && annotations.includes('readOnlyHint: true'),
        `its Annotations cell lists title and readOnlyHint as text: ${JSON.stringify(row)}`);
    assert.equal(await o.locator('img[src="x"]').count(), 0, 'no img[src=x] element');
    assert.equal(await o.locator('svg[onload]').count(), 0, 'no svg[onload] element (the title annotation)');
    assertNoIncidents();
});

await step('servers: Disable, Enable and Refresh a server', async () => {
    const servers = () => table(o, 'MCP servers');
    await submit(o, rowButton(rowWithFirstCell(servers(), 'evil'), 'Disable'));
    await expectSuccess(o, 'disable evil');
    let listed = await api('GET', '/servers');
    assert.equal(listed.body.servers.find((s) => s.name === 'evil')?.enabled, false, 'the API has evil disabled');
    await seen(o, 'servers-disabled');
    await submit(o, rowButton(rowWithFirstCell(servers(), 'evil'), 'Enable'));
    await expectSuccess(o, 'enable evil');
    listed = await api('GET', '/servers');
    assert.equal(listed.body.servers.find((s) => s.name === 'evil')?.enabled, true, 'the API has evil enabled again');
    await submit(o, rowButton(rowWithFirstCell(servers(), 'evil'), 'Refresh'));
    await expectSuccess(o, 'refresh evil');
});

await step('servers: the Tool policy form denies a tool', async () => {
    const form = formWith(o, 'Set policy');
    assert.equal(await form.count(), 1, 'a form with a Set policy button');
    assert.equal(
        await field(form, 'Open to read-only members').getAttribute('type'),
        'checkbox',
        '"Open to read-only members" is a checkbox',
    );
    const options = (await field(form, 'Rule').locator('option').allInnerTexts()).map((x) => x.trim());
    for (const rule of ['allow', 'deny', 'clear']) assert(options.includes(rule), `Rule offers ${rule}: ${options}`);
    await field(form, 'Target').fill('evil/harmless');
    await field(form, 'Rule').selectOption('deny');
    await submit(o, form.getByRole('button', { name: 'Set policy', exact: true }));
    await expectSuccess(o, 'set policy');
    const { body } = await api('GET', '/servers');
    assert.equal(body.rules['evil/harmless'], 'deny', `the API has the rule: ${JSON.stringify(body.rules)}`);
});

await step('a tool call through the MCP gateway (for the audit)', async () => {
    const result = await gatewayToolCall('everything__echo', { message: 'from the dashboard test' });
    assert(JSON.stringify(result).includes('from the dashboard test'), 'echo answered');
});

// ---- rita, read-only, in a second browser context ---------------------------------

const rita = await newContext('rita');
const r = rita.page;

await step('rita signs in with her token in a second browser', async () => {
    await r.goto(url('/signin'));
    await field(r, 'Token').fill(ritaToken);
    await submit(r, r.getByRole('button', { name: 'Sign in', exact: true }));
    assert.equal(pathOf(r), W, 'rita lands on the overview');
    await seen(r, 'rita-overview');
    await assertChrome(r, 'rita-overview', { role: 'read-only' });
});

await step('rita sees servers and tools but no Install, Remove, Disable or policy form', async () => {
    await visit(r, 'rita-servers', `${W}/servers`);
    const tools = await rows(table(r, 'Tools'));
    assert(tools.some((t) => t[0] === 'everything__echo'), 'rita sees the tools');
    const servers = await rows(table(r, 'MCP servers'));
    assert(servers.some((s) => s[0] === 'everything'), 'rita sees the servers');
    for (const b of ['Install', 'Remove', 'Disable', 'Enable', 'Refresh', 'Set policy']) await noButton(r, b, 'rita');
});

await step('rita sees the members but no Invite form, no Change role, no Remove', async () => {
    await visit(r, 'rita-members', `${W}/members`);
    const list = await rows(table(r, 'Members'));
    assert(list.some((m) => m[0] === OWNER) && list.some((m) => m[0] === RITA), 'both members are listed');
    for (const b of ['Invite', 'Change role', 'Remove member']) await noButton(r, b, 'rita');
    assert.equal(await r.getByRole('link', { name: 'Remove', exact: true }).count(), 0, 'no Remove link');
});

await step('rita sees the credentials but cannot set, delete or reassign one', async () => {
    await visit(r, 'rita-credentials', `${W}/secrets`);
    const list = await rows(table(r, 'Credentials'));
    assert(list.some((c) => c[0] === CREDENTIAL.name), 'the credential is listed (never its value)');
    for (const b of ['Save credential', 'Delete', 'Reassign']) await noButton(r, b, 'rita');
});

await step('rita sees only her own tokens', async () => {
    await visit(r, 'rita-tokens', `${W}/tokens`);
    const list = await rows(table(r, 'Tokens'));
    assert(list.length >= 1, 'her token is listed');
    assert(list.every((t) => !t.includes(OWNER) || t.includes(RITA)), `no token of olivia's: ${JSON.stringify(list)}`);
});

await step("rita does not see olivia's run", async () => {
    await visit(r, 'rita-runs', `${W}/runs`);
    assert.equal(await r.locator(`a[href$="/runs/${runId}"]`).count(), 0, "olivia's run is not listed");
    const resp = await r.goto(url(`${W}/runs/${runId}`));
    assert([403, 404].includes(resp.status()), `GET the run page: 403 or 404, got ${resp.status()}`);
    assert.equal(await r.locator('svg[aria-label="Span waterfall"]').count(), 0, 'no waterfall');
});

await step('rita has no Audit: the page is refused', async () => {
    const resp = await r.goto(url(`${W}/audit`));
    assert([403, 404].includes(resp.status()), `GET ${W}/audit: 403 or 404, got ${resp.status()}`);
    assert.equal(await table(r, 'Audit events').count(), 0, 'no audit table');
    await seen(r, 'rita-audit-refused');
});

await step('rita sees the jobs page', async () => {
    await visit(r, 'rita-jobs', `${W}/jobs`);
    assert.equal(await table(r, 'Jobs').count(), 1, 'a Jobs table');
});

// A form rita is not shown, posted from her own page with her own csrf value.
async function forgedPost(form, values) {
    await r.goto(url(W));
    const csrf = await r.locator('input[name=csrf]').first().inputValue();
    const fields = [...form.hidden.filter(([n]) => n !== 'csrf'), ['csrf', csrf], ...Object.entries(values)];
    const [final] = await Promise.all([
        r.waitForNavigation({ waitUntil: 'load' }),
        r.evaluate(
            ({ action, fields }) => {
                const f = document.createElement('form');
                f.method = 'post';
                f.action = action;
                for (const [name, value] of fields) {
                    const i = document.createElement('input');
                    i.type = 'hidden';
                    i.name = name;
                    i.value = value;
                    f.append(i);
                }
                document.body.append(f);
                f.submit();
            },
            { action: form.action, fields },
        ),
    ]);
    let req = final.request();
    while (req.redirectedFrom()) req = req.redirectedFrom();
    return { post: await req.response(), final };
}

await step('rita posting the Invite form directly is refused with an error', async () => {
    const { post } = await forgedPost(inviteForm, {
        [inviteForm.names.handle]: 'mallory',
        [inviteForm.names.role]: 'owner',
    });
    assert(post.status() === 403 || [302, 303].includes(post.status()), `POST: 403 (or a redirect), got ${post.status()}`);
    await expectError(r, 'rita invites mallory');
    await seen(r, 'rita-invite-refused');
    const { body } = await api('GET', '/members');
    assert(!body.members.some((m) => m.user === 'mallory'), 'mallory was not added');
});

await step('rita posting the Install form directly is refused with an error', async () => {
    const { post } = await forgedPost(installForm, {
        [installForm.names.name]: 'sneaky',
        [installForm.names.url]: EVERYTHING_URL,
    });
    assert(post.status() === 403 || [302, 303].includes(post.status()), `POST: 403 (or a redirect), got ${post.status()}`);
    await expectError(r, 'rita installs a server');
    const { body } = await api('GET', '/servers');
    assert(!body.servers.some((s) => s.name === 'sneaky'), 'no server was installed');
    await r.goto(url(W)); // rita's page, where she clicks next once her token is revoked
    assert.equal(pathOf(r), W, 'rita is still signed in');
});

// ---- Back to the owner ----------------------------------------------------------------

await step("removing rita: the confirmation page lists the token it will revoke", async () => {
    await visit(o, 'members', `${W}/members`);
    const link = rowWithFirstCell(table(o, 'Members'), RITA).getByRole('link', { name: 'Remove', exact: true });
    assert.equal(await link.count(), 1, "rita's row has a Remove link");
    assert.equal(
        new URL(await link.evaluate((a) => a.href)).pathname,
        `${W}/members/${RITA}/remove`,
        'it goes to the confirmation page',
    );
    await Promise.all([o.waitForNavigation(), link.click()]);
    await seen(o, 'member-remove');
    await assertChrome(o, 'member-remove');
    const text = await o.locator('main').innerText();
    assert(text.includes(ritaTokenId), `the page lists rita's token ${ritaTokenId}`);
    assert.equal(await o.getByRole('button', { name: 'Remove member', exact: true }).count(), 1, 'a Remove member button');
    // Not pressed: rita stays, for the revocation below.
});

await step("the owner revokes rita's token", async () => {
    await visit(o, 'tokens', `${W}/tokens`);
    const row = table(o, 'Tokens').locator('tbody tr').filter({ hasText: ritaTokenId });
    assert.equal(await row.count(), 1, "one row for rita's token");
    await submit(o, rowButton(row, 'Revoke'));
    await expectSuccess(o, 'revoke');
    await seen(o, 'tokens-revoked');
    const { body } = await api('GET', '/tokens');
    assert(body.tokens.find((t) => t.id === ritaTokenId)?.revoked_at_ms, 'the API has the token revoked');
});

await step("rita's next click signs her out: /signin?ended=1 with an alert", async () => {
    // rita's page is still her overview, loaded before the revocation.
    const link = r
        .getByRole('navigation', { name: 'Sections', exact: true })
        .getByRole('link', { name: 'Servers', exact: true });
    await Promise.all([r.waitForNavigation({ waitUntil: 'load' }), link.click()]);
    const here = new URL(r.url());
    assert.equal(here.pathname, '/signin', 'she lands on /signin');
    assert.equal(here.searchParams.get('ended'), '1', 'with ?ended=1');
    const alert = await expectError(r, 'ended');
    assert.match(alert, /signed out/, 'the alert says she was signed out');
    await seen(r, 'signin-ended');
});

await step('a revoked token cannot sign in again', async () => {
    await r.goto(url('/signin'));
    await field(r, 'Token').fill(ritaToken);
    await submit(r, r.getByRole('button', { name: 'Sign in', exact: true }), { redirect: false });
    assert.equal(pathOf(r), '/signin', 'still on /signin');
    await expectError(r, 'revoked token');
});

await rita.context.close();

await step('audit: member added, token issued and revoked, servers installed, credential set', async () => {
    await visit(o, 'audit', `${W}/audit`);
    await assertChrome(o, 'audit');
    const events = await rows(table(o, 'Audit events'));
    const expected = [
        ['member added', /member\.add\b|member added/i, RITA],
        ['token issued', /token\.issue\b|token issued/i, null],
        ['token revoked', /token\.revoke\b|token revoked/i, null],
        ['server installed', /server\.install\b|server installed/i, 'everything'],
        ['server installed', /server\.install\b|server installed/i, 'evil'],
        ['credential set', /credential\.(create|set)\b|credential (set|created|added)/i, CREDENTIAL.name],
        ['policy rule', /policy\.rule\b|policy/i, 'evil/harmless'],
        ['tool call', /tool-call|tool call/i, 'echo'],
    ];
    for (const [what, kind, target] of expected) {
        const found = events.some((e) => kind.test(e.join(' ')) && (!target || e.join(' ').includes(target)));
        assert(found, `an event "${what}"${target ? ` about ${target}` : ''} in: ${JSON.stringify(events.slice(0, 30))}`);
    }
    const chart = o.locator('svg[role="img"][aria-label="Tool-call latency"]');
    assert.equal(await chart.count(), 1, 'a <svg role="img" aria-label="Tool-call latency"> chart');
    const refused = events.filter((e) => /permission-denied|denied|refused/i.test(e.join(' ')));
    console.log(`# audit: ${events.length} rows, ${refused.length} of them refusals (rita's forged posts)`);
});

await step('audit: the filter form filters by server', async () => {
    const filter = o.locator('form').filter({ has: field(o, 'Server') });
    assert.equal(await filter.count(), 1, 'a filter form with a Server field');
    for (const label of ['Member', 'Tool', 'Outcome', 'Since']) {
        assert.equal(await field(filter, label).count(), 1, `a ${label} field`);
    }
    await setField(field(filter, 'Server'), 'everything');
    await submitGet(o, filter, field(filter, 'Server'));
    const events = await rows(table(o, 'Audit events'));
    assert(events.length >= 1, 'the echo call is listed');
    assert(events.every((e) => e.join(' ').includes('everything')), `every row is about everything: ${JSON.stringify(events)}`);
    assert(!events.some((e) => /member\.add|member added/i.test(e.join(' '))), 'no member event');
    await seen(o, 'audit-filtered');
});

await step('jobs: the Jobs and Queue tables', async () => {
    await visit(o, 'jobs', `${W}/jobs`);
    await assertChrome(o, 'jobs');
    assert.equal(await table(o, 'Jobs').count(), 1, 'a table captioned Jobs');
    assert.equal(await table(o, 'Queue').count(), 1, 'a table captioned Queue');
});

await step('the overview counts match the API: 2 members, 2 servers, their tools', async () => {
    await visit(o, 'overview', W);
    const members = (await api('GET', '/members')).body.members.length;
    const servers = (await api('GET', '/servers')).body.servers.length;
    const tools = (await api('GET', '/tools')).body.tools.length;
    assert.equal(members, 2);
    assert.equal(servers, 2);
    for (const [id, expected] of [['overview-members', members], ['overview-servers', servers], ['overview-tools', tools]]) {
        assert.equal(
            (await o.locator(`#${id}`).innerText()).trim(),
            String(expected),
            `#${id} (the API's count: for tools, the rows of the Tools table on the Servers page, GET /tools)`,
        );
    }
});

await step('the overview on a phone (390x844): no horizontal scroll', async () => {
    const phone = await newContext('olivia-phone', {
        viewport: PHONE,
        isMobile: true,
        hasTouch: true,
        deviceScaleFactor: 2,
        storageState: await owner.context.storageState(),
    });
    await visit(phone.page, 'overview-phone', W);
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    assert(width <= PHONE.width, `document.documentElement.scrollWidth ${width} <= ${PHONE.width}`);
    await phone.context.close();
});

if (SECOND_WS && SECOND_TOKEN) {
    await step('Add workspace: sign in to a second workspace; the switcher lists both', async () => {
        await o.goto(url(W));
        const add = o.getByRole('navigation', { name: 'Workspaces', exact: true }).getByRole('link', { name: 'Add workspace', exact: true });
        await Promise.all([o.waitForNavigation(), add.click()]);
        assert.equal(pathOf(o), '/signin', 'Add workspace opens /signin');
        await field(o, 'Token').fill(SECOND_TOKEN);
        await submit(o, o.getByRole('button', { name: 'Sign in', exact: true }));
        assert.equal(pathOf(o), `/w/${SECOND_WS}`, 'lands on the second workspace');
        await seen(o, 'overview-second');
        const links = await o
            .getByRole('navigation', { name: 'Workspaces', exact: true })
            .getByRole('link')
            .evaluateAll((as) => as.map((a) => new URL(a.href).pathname));
        assert(links.includes(W) && links.includes(`/w/${SECOND_WS}`), `both workspaces are linked: ${links}`);
        await Promise.all([
            o.waitForNavigation(),
            o.getByRole('navigation', { name: 'Workspaces', exact: true }).locator(`a[href$="${W}"]`).first().click(),
        ]);
        assert.equal(pathOf(o), W, 'back in the first workspace, still signed in');
    });
} else {
    console.log('# SECOND_WORKSPACE/SECOND_TOKEN not given: the workspace switcher is not checked');
}

await step("members: change rita's role to member", async () => {
    await visit(o, 'members', `${W}/members`);
    const row = rowWithFirstCell(table(o, 'Members'), RITA);
    await setField(field(row, 'Role'), 'member');
    await submit(o, rowButton(row, 'Change role'));
    await expectSuccess(o, 'change role');
    const { body } = await api('GET', '/members');
    assert.equal(body.members.find((m) => m.user === RITA)?.role, 'member', 'the API has rita as member');
});

await step('servers: Remove the evil server; its tool is gone', async () => {
    await visit(o, 'servers', `${W}/servers`);
    await submit(o, rowButton(rowWithFirstCell(table(o, 'MCP servers'), 'evil'), 'Remove'));
    await expectSuccess(o, 'remove evil');
    const tools = await rows(table(o, 'Tools'));
    assert(!tools.some((t) => t[0] === 'evil__harmless'), 'evil__harmless is gone');
    const { body } = await api('GET', '/servers');
    assert(!body.servers.some((s) => s.name === 'evil'), 'the API has no evil server');
});

await step('credentials: Delete the credential', async () => {
    await visit(o, 'credentials', `${W}/secrets`);
    const row = rowWithFirstCell(table(o, 'Credentials'), CREDENTIAL.name);
    await submit(o, rowButton(row, 'Delete'));
    await expectSuccess(o, 'delete credential');
    const { body } = await api('GET', '/secrets');
    assert(!body.secrets.some((s) => s.name === CREDENTIAL.name), 'the API has no such credential');
});

await step('Sign out ends the session', async () => {
    await o.goto(url(W));
    await submit(o, o.getByRole('button', { name: 'Sign out', exact: true }));
    await o.goto(url(W));
    assert.equal(pathOf(o), '/signin', `after signing out, ${W} lands on /signin`);
});

await step('the whole run: no dialog, no uncaught error, no CSP violation', async () => {
    assertNoIncidents();
});

await browser.close();
console.log(`# screenshots in ${SCREENSHOT_DIR}`);
console.log(`${passed} passed, 0 failed`);
