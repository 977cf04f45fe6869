// Bundles the dashboard into dist/: app.js (our code, cytoscape and dagre in one file), app.css, index.html.
// faasmon embeds dist/ as resources, so the page needs nothing from outside the host.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await build({
  entryPoints: [join(here, 'src', 'app.js')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  format: 'iife',
  minify: true,
  target: ['es2020'],
  legalComments: 'linked',
  logLevel: 'warning',
});
for (const name of ['index.html', 'app.css', 'favicon.svg']) await copyFile(join(here, 'src', name), join(dist, name));
