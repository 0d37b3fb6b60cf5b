import '../engine/node.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Runtime } from '../shaders/gpu/runtime.ts';
import { createEngine } from '../engine/api/engine.ts';
const [out, adapter, set, n] = process.argv.slice(2);
const rt = await Runtime.create();
const engine = await createEngine({ device: rt, model: join(out!, 'domain-base'), adapters: { a: adapter! }, lora: { maxRank: 64, maxSlots: 8 } });
const rows = (await readFile(join(out!, 'sets', `${set}.jsonl`), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
for (const r of rows.slice(0, Number(n ?? 3))) {
  const messages = r.messages.filter((m: any) => m.role !== 'assistant');
  const u = await engine.chat.completions.create({ model: 'a', messages, temperature: 0, max_tokens: 60 });
  console.log('WANT', JSON.stringify(r.messages.at(-1).content).slice(0, 100), '\nFREE', JSON.stringify(u.choices[0]!.message.content).slice(0, 100));
}
await engine.destroy(); rt.destroyAll();
