// A Node user's file, type-checked against the packed package under strict,
// noUncheckedIndexedAccess and exactOptionalPropertyTypes (tests/package/package.test.ts).
import { createEngine, LorafleetError, type ChatCompletionChunk, type Engine, type GenerateOptions } from 'lorafleet';

const engine: Engine = await createEngine({ kvBlocks: 16 });
const opts: GenerateOptions = { max_tokens: 8, temperature: 0 };
let text = '';
for await (const t of engine.generate('Once upon a time', opts)) text += t.text;
const r = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 });
const content: string | null | undefined = r.choices[0]?.message.content;
const stream = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], stream: true, max_tokens: 4 });
for await (const c of stream) {
  const chunk: ChatCompletionChunk = c;
  text += chunk.choices[0]?.delta.content ?? '';
}
try {
  await engine.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] });
} catch (e) {
  if (e instanceof LorafleetError) text += e.code;
}
const free: number = engine.metrics().kvFreeBlocks;
console.log(text, content, free, engine.models().join(','));
await engine.destroy();
