// web-lib.mjs - what the browser tests of the web client (web/) share: a
// real stack (redis, broker, two gateways with HERALD_DEV_LOGIN=1) and
// Debian's Chromium driven by playwright-core, one browser context per
// person (each has its own accessToken cookie), and the page's selectors.
// Screenshots go to $HERALD_TEST_OUT/e2e/screenshots/ (default tests/out/).
//
// Waits are polls on the page's DOM (data-testid selectors); absence is only
// asserted after something that must arrive later has arrived.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Stack, freePort } from '../integration/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHOTS = path.join(process.env.HERALD_TEST_OUT || path.join(ROOT, 'tests/out'), 'e2e', 'screenshots');
export const API_KEY = 'e2e-api-key';
export const T = 10000; // default wait for anything the page must show

// The gateways' ports are picked first: HERALD_ALLOWED_ORIGINS must name
// both origins before they start, so a page served by one gateway may use
// its session cookie on the other (the failover tests).
class WebStack extends Stack {
  constructor(name, ports, opts) {
    super(name, opts);
    this.fixedPorts = ports;
  }
  startGateway(id, port, extraEnv) {
    return super.startGateway(id, port ?? this.fixedPorts[id === 'gw-a' ? 0 : 1], extraEnv);
  }
}

/** A stack and a browser for one test file: start() in before(), stop() in
 * after(). env: more HERALD_* settings for every process of the stack. */
export class WebBench {
  constructor(name, { env = {} } = {}) {
    this.name = name;
    this.env = env;
    this.s = null; // the Stack
    this.browser = null;
    this.contexts = new Set();
  }

  async start() {
    fs.mkdirSync(SHOTS, { recursive: true });
    const ports = [await freePort(), await freePort()];
    this.s = await new WebStack(this.name, ports, {
      graceMs: 0,
      leaseMs: 2000,
      env: {
        HERALD_API_KEY: API_KEY,
        HERALD_DEV_LOGIN: '1',
        HERALD_ALLOWED_ORIGINS: ports.map((p) => `http://127.0.0.1:${p}`).join(','),
        ...this.env,
      },
    }).start();
    this.browser = await chromium.launch({
      executablePath: process.env.HERALD_CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox'],
    });
    return this.s;
  }

  async stop() {
    await this.browser?.close();
    await this.s?.stop();
  }

  // A person: a browser context (own cookies) with one page on gateway gi.
  // Records every WebSocket close the page sees and every uncaught error.
  async person(gi = 0, { query = '', viewport = { width: 1280, height: 800 }, ...ctxOpts } = {}) {
    const ctx = await this.browser.newContext({ viewport, ...ctxOpts });
    this.contexts.add(ctx);
    await ctx.addInitScript(() => {
      window.__wsCloses = [];
      const Native = window.WebSocket;
      window.WebSocket = class extends Native {
        constructor(...args) {
          super(...args);
          this.addEventListener('close', (e) => window.__wsCloses.push({ code: e.code, clean: e.wasClean }));
        }
      };
    });
    return this.open(ctx, gi, query);
  }

  // Another tab of the same person (same context, same cookie).
  tab(page, gi = 0, query = '') {
    return this.open(page.context(), gi, query);
  }

  async open(ctx, gi, query) {
    const page = await ctx.newPage();
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e.message));
    await page.goto(`${this.s.gateways[gi].url}/${query}`);
    await connState(page, 'online');
    return page;
  }

  async closeAll() {
    for (const ctx of this.contexts) await ctx.close();
    this.contexts.clear();
  }

  async notify(event, body) {
    const r = await fetch(`${this.s.gateways[1].url}/api/notify/${event}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 202, `${event}: ${await r.text()}`);
  }
}

export const connState = (page, state, timeout = T) =>
  page.locator(`[data-testid=conn-state][data-state=${state}]`).waitFor({ timeout });

// Logs in through the form, with the keyboard, and waits until the page
// knows it is that user (its chat box opens only for a logged-in socket).
export async function login(page, name) {
  await page.getByLabel('Demo login').fill(name);
  await page.getByLabel('Demo login').press('Enter');
  await page.locator('[data-testid=me-name]', { hasText: name }).waitFor({ timeout: T });
  await connState(page, 'online');
  await page.locator('[data-testid=chat-input]:enabled').waitFor({ timeout: T });
  await onlineUser(page, name).waitFor({ timeout: T });
}

export const onlineUser = (page, name) =>
  page.locator(`[data-testid=online-list] [data-testid=online-user][data-username="${name}"]`);

export async function onlineNames(page) {
  return page.locator('[data-testid=online-list] [data-testid=online-user]')
    .evaluateAll((els) => els.map((e) => e.dataset.username).sort());
}

export const shot = (page, name, opts = {}) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), ...opts });

export function noPageErrors(...pages) {
  for (const p of pages) assert.deepEqual(p.errors, [], 'uncaught errors in the page');
}
