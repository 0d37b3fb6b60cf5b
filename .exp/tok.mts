import '../engine/node.ts';
import { readFile } from 'node:fs/promises';
import { LocalDirSource } from '../engine/model/source.ts';
import { loadTokenizer } from '../engine/model/tokenizer.ts';
import { encodeConversation, IGNORE_INDEX } from '../trainer/train/data.ts';
const [dir, file, n] = process.argv.slice(2);
const tok: any = await loadTokenizer(new LocalDirSource(dir!));
const rows = (await readFile(file!, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
for (const r of rows.slice(0, Number(n ?? 2))) {
  const { tokens, labels } = encodeConversation(tok, r.messages, false);
  const first = labels.findIndex((l: number) => l !== IGNORE_INDEX);
  const gen = tok.encodeChat(r.messages.slice(0, -1), { addGenerationPrompt: true });
  const show = (ids: number[]) => ids.map((t: number) => JSON.stringify(tok.decode([t]))).join(' ');
  console.log('train tail prompt:', show(tokens.slice(first - 4, first)), '| targets:', show(tokens.slice(first, first + 8)));
  console.log('infer tail prompt:', show(gen.slice(-4)), ' same prefix:', JSON.stringify(gen.slice(0, first)) === JSON.stringify(tokens.slice(0, first)), gen.length, first);
}
