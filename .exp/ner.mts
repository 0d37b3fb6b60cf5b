import '../engine/node.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Runtime } from '../shaders/gpu/runtime.ts';
import { createEngine } from '../engine/api/engine.ts';
import { evalNer, nerRegex } from '../cli/pipeline/evaluate.ts';
const [out, adapter] = process.argv.slice(2);
const rt = await Runtime.create();
const engine = await createEngine({ device: rt, model: join(out!, 'domain-base'), adapters: { ner: adapter! }, lora: { maxRank: 64, maxSlots: 8 } });
const rows = (await readFile(join(out!, 'sets', 'ner.val.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
const types = ['ERROR_CODE', 'SERVICE', 'USER', 'TEAM', 'ALERT'];
for (const r of rows.slice(0, 3)) {
  const messages = r.messages.filter((m: any) => m.role !== 'assistant');
  const u = await engine.chat.completions.create({ model: 'ner', messages, temperature: 0, max_tokens: 80 });
  const c = await engine.chat.completions.create({ model: 'ner', messages, temperature: 0, max_tokens: 80, guided_regex: nerRegex(types) });
  console.log('WANT', r.messages.at(-1).content, '\nFREE', JSON.stringify(u.choices[0]!.message.content), '\nCONS', JSON.stringify(c.choices[0]!.message.content));
}
if (process.env.FULL) console.log(JSON.stringify(await evalNer(engine, 'ner', rows, types)));
await engine.destroy();
rt.destroyAll();
