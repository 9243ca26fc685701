// Drives Debian's headless Chromium through the hub's web UI (started by
// crates/host/keyway/tests/hub_web.rs or examples/hub_web_figures.rs,
// which pass the house in KEYWAY_WEB_* variables). Prints one line per
// step; exits non-zero on the first failure.
// With KEYWAY_WEB_FIGURES=N (> 0) it then loads each main page N times with
// the cache disabled and prints the median bytes transferred (CDP
// Network.loadingFinished encodedDataLength, headers included) and the
// median first-contentful-paint (performance.getEntriesByType('paint')).
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';

// One line to the simulated lock's control socket (its buttons and sensors).
const control = (line) => new Promise((resolve, reject) => {
  const [host, port] = env('KEYWAY_WEB_LOCK_CONTROL').split(':');
  const c = connect({ host, port: Number(port) }, () => c.write(line + '\n'));
  let buf = '';
  c.on('data', (d) => { buf += d; if (buf.includes('\n')) { c.end(); resolve(buf.trim()); } });
  c.on('error', reject);
});

const env = (k) => { const v = process.env[k]; if (v === undefined) throw new Error(`${k} is not set`); return v; };
const URL0 = env('KEYWAY_WEB_URL');
const SHOTS = env('KEYWAY_WEB_SHOTS');
const FIGURES = parseInt(process.env.KEYWAY_WEB_FIGURES || '0', 10);
const log = (s) => console.log(s);

const profile = mkdtempSync(join(tmpdir(), 'keyway-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: env('CHROMIUM'),
  headless: true,
  viewport: { width: 1200, height: 800 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--no-first-run', '--disable-sync'],
});
let failed = false;
try {
  const page = ctx.pages()[0] ?? await ctx.newPage();
  page.setDefaultTimeout(30000);
  const shot = async (name) => { await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true }); log(`screenshot: ${name}.png`); };
  const submit = async (sel) => { await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(sel)]); };
  const text = async (sel) => (await page.locator(sel).first().textContent())?.trim();

  // 1. No session: the login page.
  await page.goto(URL0 + '/');
  if (!page.url().includes('/login')) throw new Error(`expected the login page, got ${page.url()}`);
  await shot('login');
  await page.fill('input[name=token]', 'wrong');
  await submit('button[type=submit]');
  if (!(await page.content()).includes('not this hub')) throw new Error('a wrong token was not refused: ' + page.url() + (await page.content()));
  await page.fill('input[name=token]', env('KEYWAY_WEB_TOKEN'));
  await submit('button[type=submit]');
  if (new URL(page.url()).pathname !== '/') throw new Error(`login went to ${page.url()}`);
  log('logged in');

  // 2. Add the lock by address, pair it with the setup code.
  await page.fill('input[name=name]', 'Front door');
  await page.fill('input[name=address]', env('KEYWAY_WEB_LOCK_ADDR'));
  await page.selectOption('select[name=class]', env('KEYWAY_WEB_CLASS'));
  await submit('form[action="/locks"] button[type=submit]');
  if (!/\/locks\/\d+$/.test(page.url())) throw new Error(`add went to ${page.url()}: ${await page.content()}`);
  const lockPath = new URL(page.url()).pathname;
  await page.fill('input[name=setup_code]', env('KEYWAY_WEB_SETUP_CODE'));
  await submit('form[action$="/pair"] button[type=submit]');
  const v0 = await text('#version');
  if (v0 !== '1.0.0') throw new Error(`after pairing the lock shows version ${v0}: ${await page.content()}`);
  log(`paired: ${v0}`);
  await shot('lock');

  // 3. Consent to 1.1.0 and watch the push (the page reloads itself while it runs).
  //    The bolt is thrown, so the lock postpones the install and the page says why;
  //    the owner withdraws the bolt (the lock's control socket) and the install goes on.
  await submit('button:has-text("Install 1.1.0")');
  for (let i = 0; i < 60 && !/postponed|done/.test(await text('#phase') ?? ''); i++) {
    await page.waitForTimeout(500);
    await page.goto(URL0 + lockPath);
  }
  const phase = await text('#phase');
  log(`push: ${phase}`);
  await shot('lock-progress');
  if (phase === 'postponed') {
    log(`unlock: ${await control('{"cmd":"unlock"}')}`);
  }
  let v = null;
  for (let i = 0; i < 120; i++) {
    v = await text('#version');
    if (v === '1.1.0') break;
    await page.waitForTimeout(500);
    await page.goto(URL0 + lockPath);
    await submit('button:has-text("Refresh status")');
  }
  if (v !== '1.1.0') throw new Error(`the lock never reported 1.1.0 (last ${v}): ${await page.content()}`);
  log(`updated: ${v}`);
  await page.goto(URL0 + lockPath);
  await shot('lock-updated');

  // 4. The release page (from the lock's page), the audit log (fetch it first), import.
  await page.goto(URL0 + '/releases');
  await submit('table a[href^="/releases/"]');
  if (!(await page.content()).includes('CVE-2026-31337')) throw new Error('the release page lacks its CVEs');
  if ((await page.locator('script').count()) !== 0) throw new Error('a script element reached the release page');
  await shot('release');
  await page.goto(URL0 + lockPath);
  await submit('button:has-text("Fetch audit log")');
  if (new URL(page.url()).pathname !== '/audit') throw new Error(`fetch went to ${page.url()}`);
  if (!(await page.content()).includes('intact')) throw new Error(`the audit log is not intact: ${await page.content()}`);
  await shot('audit');
  await page.goto(URL0 + '/import');
  await page.fill('input[name=path]', env('KEYWAY_WEB_BUNDLE'));
  await submit('form[action="/import"] button[type=submit]');
  const summary = await text('#import-summary');
  log(`import: ${summary}`);
  if (!/1 imported, 1 already held, 1 refused/.test(summary)) throw new Error(`import: ${summary}`);
  await shot('import');
  await page.goto(URL0 + '/');
  await shot('locks');

  // 5. Figures.
  if (FIGURES > 0) {
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    let bytes = 0;
    cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; });
    const releasePath = (await page.goto(URL0 + '/releases'), await page.locator('table a[href^="/releases/"]').first().getAttribute('href'));
    const pages = [['locks', '/'], ['lock', lockPath], ['release', releasePath], ['audit', '/audit'], ['import', '/import'], ['login', '/login']];
    const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
    log(`figures: ${FIGURES} loads per page, cache disabled, Chromium ${ctx.browser()?.version() ?? ''}`);
    log('| page | bytes transferred (median) | first contentful paint, ms (median) |');
    log('|---|---:|---:|');
    for (const [name, path] of pages) {
      const bs = [], fcps = [];
      for (let i = 0; i < FIGURES; i++) {
        bytes = 0;
        await page.goto(URL0 + path, { waitUntil: 'load' });
        let fcp;
        for (let t = 0; t < 50 && fcp === undefined; t++) {
          fcp = await page.evaluate(() => performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint')?.startTime);
          if (fcp === undefined) await page.waitForTimeout(20);
        }
        await page.waitForTimeout(50); // let loadingFinished events arrive
        bs.push(bytes); fcps.push(fcp ?? NaN);
      }
      log(`| ${name} | ${median(bs)} | ${median(fcps).toFixed(1)} |`);
    }
  }
} catch (e) {
  failed = true;
  console.error(String(e.stack || e));
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
