// What both dashboard drivers share: the config from argv, playwright-core from the dashboard package, a watchdog that
// ends a stuck run with exit code 3, and Chromium launched headless.
'use strict';
const { createRequire } = require('node:module');
const path = require('node:path');

function start(name) {
  const config = JSON.parse(process.argv[2]);
  // playwright-core is a devDependency of the dashboard package, not of this folder.
  const { chromium } = createRequire(path.join(config.dashboardDir, 'package.json'))('playwright-core');
  const watchdog = setTimeout(() => {
    console.error(`${name}: gave up after ${config.timeoutMs} ms`);
    process.exit(3);
  }, config.timeoutMs);
  const launch = () => chromium.launch({
    executablePath: config.chromium,
    headless: true,
    // Root in CI: Chromium's sandbox needs an unprivileged user; /dev/shm is small in containers.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    timeout: 60000,
  });
  return { config, watchdog, launch };
}

module.exports = { start };
