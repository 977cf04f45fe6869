// Drives the dashboard in headless Chromium for DashboardTests and prints what the page shows as one JSON line.
// It waits and reads; the test asserts. Usage: node drive-dashboard.cjs CONFIG_JSON
'use strict';
const { config, watchdog, launch } = require('./launch.cjs').start('drive-dashboard');

async function main() {
  const browser = await launch();
  const result = { consoleErrors: [], dialogs: [] };
  try {
    const context = await browser.newContext({
      httpCredentials: { username: config.user, password: config.password },
      viewport: { width: 1500, height: 950 },
    });
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    page.on('console', (message) => {
      if (message.type() === 'error') result.consoleErrors.push(`${message.text()} (${message.location().url})`);
    });
    page.on('pageerror', (error) => result.consoleErrors.push(`pageerror: ${error.message}`));
    page.on('dialog', async (dialog) => { result.dialogs.push(dialog.message()); await dialog.dismiss(); });

    const response = await page.goto(`${config.baseUrl}/`);
    result.pageStatus = response.status();
    await page.waitForSelector('#invocations tbody tr[data-id]');
    result.rowsAll = await rowIds(page);

    const hostileCell = page.locator('#invocations td.function', { hasText: config.hostileText });
    result.hostile = {
      textShown: (await hostileCell.count()) > 0 && (await hostileCell.first().textContent()) === config.hostileText,
      injectedElements: await page.locator('#invocations img, #invocations script, select img').count(),
      xss: await page.evaluate(() => window.__xss ?? null),
    };

    // The verdict filter: the table polls again with verdict=intrusion.
    await page.selectOption('#filter-verdict', 'intrusion');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#invocations tbody tr[data-id]')];
      return rows.length > 0 && rows.every((r) => r.classList.contains('verdict-intrusion'));
    });
    result.rowsIntrusion = await rowIds(page);

    // One attack invocation: graph, rule hits, trace.
    await page.click(`#invocations tbody tr[data-id="${config.attackId}"]`);
    await waitForDetail(page, config.attackId);
    result.attack = await readDetail(page);
    // caret 'initial': hiding the caret means a style injected into the page, which its policy refuses.
    await page.screenshot({ path: config.screenshot, caret: 'initial' });
    result.screenshot = config.screenshot;

    // A benign hop of a four-hop trace: the chain with its calls as arrows.
    await page.selectOption('#filter-verdict', '');
    await page.waitForSelector(`#invocations tbody tr[data-id="${config.benignId}"]`);
    await page.click(`#invocations tbody tr[data-id="${config.benignId}"]`);
    await waitForDetail(page, config.benignId);
    result.benign = await readDetail(page);

    // A graph of thousands of nodes, opened from its link: first the neighbourhood of the cause, then everything.
    let started = Date.now();
    await page.goto(`${config.baseUrl}/#inv=${encodeURIComponent(config.largeId)}`);
    await waitForDetail(page, config.largeId);
    const first = await page.locator('#graph').evaluate((g) => ({ drawn: Number(g.dataset.drawn), total: Number(g.dataset.total), highlighted: g.dataset.highlighted }));
    const buttonVisible = await page.locator('#graph-all').isVisible();
    const msFirst = Date.now() - started;
    let all = null;
    let msAll = null;
    if (buttonVisible) {
      started = Date.now();
      await page.click('#graph-all');
      await page.waitForFunction(() => {
        const g = document.getElementById('graph');
        return g.dataset.rendered === 'true' && g.dataset.drawn === g.dataset.total;
      }, null, { timeout: 60000 });
      all = await page.locator('#graph').evaluate((g) => ({ drawn: Number(g.dataset.drawn), total: Number(g.dataset.total) }));
      msAll = Date.now() - started;
    }
    result.large = { first, buttonVisible, msFirst, all, msAll };
  } catch (error) {
    // What the page showed when a wait gave up: enough to tell a broken page from a slow one.
    const page = browser.contexts()[0]?.pages()[0];
    if (page) {
      const failed = config.screenshot.replace(/\.png$/, '-failed.png');
      await page.screenshot({ path: failed, caret: 'initial' }).catch(() => {});
      const shown = await page.evaluate(() => ({
        status: document.getElementById('status')?.textContent,
        summary: document.getElementById('detail-summary')?.textContent,
        graphNote: document.getElementById('graph-note')?.textContent,
        graph: { ...document.getElementById('graph')?.dataset },
        trace: document.getElementById('trace')?.textContent,
        ruleHits: document.getElementById('rule-hits')?.textContent,
      })).catch((e) => String(e));
      error.message += `\npage: ${JSON.stringify(shown)}\nconsole: ${JSON.stringify(result.consoleErrors)}\nscreenshot: ${failed}`;
    }
    throw error;
  } finally {
    await browser.close();
  }
  return result;
}

async function rowIds(page) {
  return page.$$eval('#invocations tbody tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
}

async function waitForDetail(page, id) {
  await page.waitForFunction((expected) => {
    const current = document.querySelector('#trace .hop.current');
    const graph = document.getElementById('graph');
    return graph.dataset.rendered === 'true' && current && current.dataset.id === expected
      && document.querySelector('#rule-hits li') !== null;
  }, id);
}

async function readDetail(page) {
  const graph = page.locator('#graph');
  return {
    title: await page.locator('#detail-title').textContent(),
    graphVisible: await graph.isVisible(),
    highlighted: (await graph.getAttribute('data-highlighted') ?? '').split(',').filter((s) => s !== '').map(Number),
    drawn: Number(await graph.getAttribute('data-drawn')),
    canvases: await graph.locator('canvas').count(),
    note: await page.locator('#graph-note').textContent(),
    ruleHits: await page.$$eval('#rule-hits li.rule-hit', (items) => items.map((li) => ({
      rule: li.dataset.rule,
      explanation: li.querySelector('.explanation')?.textContent ?? '',
      visible: li.getBoundingClientRect().height > 0,
    }))),
    trace: await page.$$eval('#trace li.hop', (items) => items.map((li) => ({
      id: li.dataset.id,
      function: li.querySelector('.hop-function')?.textContent ?? '',
      intrusion: li.classList.contains('verdict-intrusion'),
      current: li.classList.contains('current'),
      arrow: li.querySelector(':scope > .arrow')?.textContent ?? null,
      visible: li.getBoundingClientRect().height > 0,
    }))),
    traceNote: await page.locator('#trace > p').first().textContent(),
    downloads: await page.$$eval('#downloads a', (links) => links.map((a) => a.getAttribute('href'))),
  };
}

main().then((result) => {
  clearTimeout(watchdog);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}, (error) => {
  clearTimeout(watchdog);
  console.error(`drive-dashboard: ${error.message ?? error}\n${error.stack ?? ""}`);
  process.exit(1);
});
