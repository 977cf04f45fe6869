// Opens one invocation of a real `faasmon serve` in headless Chromium, waits for its graph, rule hits and trace,
// saves a screenshot and prints what the page shows as one JSON line. Usage: node drive-real.cjs CONFIG_JSON
'use strict';
const { config, watchdog, launch } = require('./launch.cjs').start('drive-real');

async function main() {
  const browser = await launch();
  const result = { consoleErrors: [] };
  try {
    const context = await browser.newContext({
      httpCredentials: { username: config.user, password: config.password },
      viewport: { width: 1500, height: 950 },
    });
    const page = await context.newPage();
    page.setDefaultTimeout(30000);
    page.on('console', (m) => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => result.consoleErrors.push(`pageerror: ${e.message}`));
    const response = await page.goto(`${config.baseUrl}/#inv=${encodeURIComponent(config.id)}`);
    result.pageStatus = response.status();
    await page.waitForSelector('#invocations tbody tr[data-id]');
    result.rows = await page.$$eval('#invocations tbody tr[data-id]', (rows) => rows.length);
    await page.waitForFunction((expected) => {
      const current = document.querySelector('#trace .hop.current');
      const graph = document.getElementById('graph');
      return graph.dataset.rendered === 'true' && current && current.dataset.id === expected
        && document.querySelector('#rule-hits li') !== null;
    }, config.id);
    const graph = page.locator('#graph');
    result.highlighted = (await graph.getAttribute('data-highlighted') ?? '').split(',').filter((s) => s !== '').map(Number);
    result.drawn = Number(await graph.getAttribute('data-drawn'));
    result.rules = await page.$$eval('#rule-hits li.rule-hit', (items) => items.map((li) => ({
      rule: li.dataset.rule, explanation: li.querySelector('.explanation')?.textContent ?? '' })));
    result.trace = await page.$$eval('#trace li.hop', (items) => items.map((li) => ({
      id: li.dataset.id, intrusion: li.classList.contains('verdict-intrusion') })));
    if (config.snapshots) {
      await page.waitForSelector('#snapshots li.snapshot');
      result.snapshots = await page.$$eval('#snapshots li.snapshot', (items) => items.map((li) => ({
        instance: li.dataset.instance, links: [...li.querySelectorAll('a')].map((a) => a.getAttribute('href')) })));
    }
    await page.screenshot({ path: config.screenshot, caret: 'initial', fullPage: true });
  } finally {
    await browser.close();
  }
  return result;
}

main().then((result) => {
  clearTimeout(watchdog);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}, (error) => {
  clearTimeout(watchdog);
  console.error(`drive-real: ${error.message ?? error}`);
  process.exit(1);
});
