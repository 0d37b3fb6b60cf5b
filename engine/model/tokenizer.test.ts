import { describe, expect, it } from 'vitest';
import { LocalDirSource, MemorySource } from './source.ts';
import { loadTokenizer, ModelTokenizer, parseGenerationConfig } from './tokenizer.ts';
import { STORIES_DIR, STORIES_GREEDY_40, STORIES_PROMPT, STORIES_TEXT, STORIES_FIRST_11 } from '../../tests/fixtures/stories.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const load = () => loadTokenizer(new LocalDirSource(STORIES_DIR));

describe('tokenizer (stories260K)', () => {
  it('encodes the reference prompt with BOS', async () => {
    const t = await load();
    expect(t.encode('Once upon a time')).toEqual(STORIES_PROMPT);
    expect(t.encode('Once upon a time', { addSpecialTokens: false })).toEqual(STORIES_PROMPT.slice(1));
    expect(t.special).toMatchObject({ bos: 1, eos: 2, unk: 0 });
    expect(t.eosTokenIds).toEqual([2]);
    expect(t.generation).toMatchObject({ bosTokenId: 1, eosTokenIds: [2], doSample: false });
  });

  it('decodes the reference greedy ids to the reference text', async () => {
    const t = await load();
    expect(t.decode([...STORIES_PROMPT, ...STORIES_GREEDY_40])).toBe(STORIES_TEXT);
    expect(t.decode([...STORIES_PROMPT, ...STORIES_FIRST_11])).toBe('Once upon a time, there was a little girl named Lily.');
  });

  it('streaming detokenizer: same text as a full decode, token by token', async () => {
    const t = await load();
    const s = t.stream(STORIES_PROMPT);
    const parts = STORIES_GREEDY_40.map((id) => s.push(id));
    parts.push(s.flush());
    expect(STORIES_PROMPT.length).toBe(5);
    expect('Once upon a time' + parts.join('')).toBe(STORIES_TEXT);
    expect(parts[0]).toBe(',');
    expect(parts[1]).toBe(' there');
  });

  it('streaming detokenizer never emits a partial UTF-8 byte sequence', async () => {
    const t = await load();
    const text = 'Lily said “hi” to the café 😀 ok';
    const ids = t.encode(text);
    // byte-fallback pieces are present (the 512-token vocab has no “ or 😀)
    expect(ids.some((i) => /^<0x[0-9A-F]{2}>$/.test(t.idToToken(i) ?? ''))).toBe(true);
    const s = t.stream();
    const parts: string[] = [];
    let empties = 0;
    for (const id of ids) {
      const p = s.push(id);
      if (p === '') empties++;
      expect(p).not.toContain('\uFFFD');
      parts.push(p);
    }
    parts.push(s.flush());
    expect(parts.join('')).toBe(t.decode(ids));
    expect(parts.join('')).toBe(text);
    expect(empties).toBeGreaterThan(3); // waited inside multi-byte characters
  });

  it('base model (no chat template): contents joined with blank lines, BOS added', async () => {
    const t = await load();
    expect(t.chatTemplate).toBeNull();
    const msgs = [{ role: 'user', content: 'Once upon a time' }];
    expect(t.applyChatTemplate(msgs, { addGenerationPrompt: true })).toBe('Once upon a time');
    expect(t.encodeChat(msgs)).toEqual(STORIES_PROMPT);
    expect(t.applyChatTemplate([{ role: 'system', content: 'A' }, { role: 'user', content: 'B' }])).toBe('A\n\nB');
    // the generation prompt opens the assistant turn (a lone message stays a plain completion prompt)
    expect(t.applyChatTemplate([{ role: 'system', content: 'A' }, { role: 'user', content: 'B' }], { addGenerationPrompt: true })).toBe('A\n\nB\n\n');
  });

  it('renders a ChatML template from tokenizer_config and a chat_template.jinja file', async () => {
    const tj = JSON.parse(readFileSync(join(STORIES_DIR, 'tokenizer.json'), 'utf8'));
    const tpl =
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const t = new ModelTokenizer(tj, { bos_token: '<s>', eos_token: '</s>', chat_template: tpl });
    const msgs = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
    expect(t.applyChatTemplate(msgs, { addGenerationPrompt: true })).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    // template using bos_token and raise_exception
    const t2 = new ModelTokenizer(tj, { bos_token: '<s>', chat_template: [{ name: 'default', template: "{{ bos_token }}{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}[{{ m.role }}] {{ m.content }}{% endfor %}" }] });
    expect(t2.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toBe('<s>[user] Hi');
    expect(t2.encodeChat([{ role: 'user', content: 'Hi' }])[0]).toBe(1); // BOS from the template, not doubled
    expect(t2.encodeChat([{ role: 'user', content: 'Hi' }])[1]).not.toBe(1);
    expect(() => t2.applyChatTemplate([{ role: 'tool', content: 'x' }])).toThrow(/no tools/);
    const files = {
      'tokenizer.json': readFileSync(join(STORIES_DIR, 'tokenizer.json')),
      'chat_template.jinja': new TextEncoder().encode('{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}'),
    };
    const t3 = await loadTokenizer(new MemorySource(files));
    expect(t3.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('<user>x');
  });

  it('generation_config parsing', () => {
    expect(parseGenerationConfig({ eos_token_id: [128001, 128009], temperature: 0.6, top_p: 0.9, do_sample: true })).toEqual({
      bosTokenId: null, eosTokenIds: [128001, 128009], padTokenId: null, doSample: true, temperature: 0.6, topP: 0.9, topK: null, maxNewTokens: null, repetitionPenalty: null,
    });
    expect(() => parseGenerationConfig({ top_p: 2 }, 'x/generation_config.json')).toThrow(/^x\/generation_config\.json: top_p:/);
  });
});
