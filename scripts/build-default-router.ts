// Builds the router the project ships (router/default/router.json + router.encoder.onnx): the data
// engine's offline run on the sample domain (trainer/data/samples/harborline), then `route build`
// (router/build.ts) with its defaults. Deterministic for a given data-engine output; rerun when the
// data engine or the router's features/training change:
//   npx tsx scripts/build-default-router.ts
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAll } from '../trainer/data/pipeline.ts';
import { buildRouter } from '../router/build.ts';
import { renderEval } from '../router/cli.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const sample = join(root, 'trainer/data/samples/harborline');
const tokenizer = join(root, '..', 'shared/models/stories260K');
const work = await mkdtemp(join(tmpdir(), 'lorafleet-default-router-'));
try {
  await runAll(sample, { work, quiet: true, tokenizer: existsSync(tokenizer) ? tokenizer : undefined });
  const res = await buildRouter({ data: work, out: join(root, 'router/default/router.json') });
  for (const n of res.notes) console.log(`note: ${n}`);
  console.log(JSON.stringify(res.counts), JSON.stringify(res.fit.thresholds));
  console.log(renderEval(res.evalVal));
  await res.router.dispose();
} finally {
  await rm(work, { recursive: true, force: true });
}
