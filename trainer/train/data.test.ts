// Config, data loading and objectives (no GPU): errors that name file/row/field, packing, label
// masks from the chat template, truncation counts, and the objectives / schedules against the
// float64 oracle's.
import { describe, it, expect, beforeAll } from 'vitest';
import { parseTrainConfig, validateTrainConfig, TrainConfigError } from './config.ts';
import { parseRows, encodeRows, toItems, emptyStats, pack, encodeConversation, DataRowError, IGNORE_INDEX, type TrainTokenizer } from './data.ts';
import { lmObjective, dpoObjective, orpoObjective, lrMultiplier } from './objective.ts';
import { lossCurveSvg } from './checkpoint.ts';
import { objective as refObjective, lrLambda, type RefBatch } from '../../reference/train.ts';
import { loadTokenizer, type ModelTokenizer } from '../../engine/model/tokenizer.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { Rng } from '../../shaders/lib/random.ts';

let tok: ModelTokenizer;
beforeAll(async () => {
  tok = await loadTokenizer(new LocalDirSource(STORIES_DIR));
});
const base = { base_model: 'm', datasets: [{ path: 'd.jsonl' }] };

describe('train config', () => {
  it('reads YAML and JSON with Axolotl keys and defaults', () => {
    const y = parseTrainConfig('base_model: m\nmethod: sft\ndatasets:\n  - path: a.jsonl\n    type: chat_template\nlora_r: 4\nlora_target_modules: all-linear\n', 'c.yaml');
    expect(y.lora_r).toBe(4);
    expect(y.micro_batch_size).toBe(1);
    const j = parseTrainConfig(JSON.stringify({ ...base, method: 'dpo', dpo_beta: 0.2 }), 'c.json');
    expect(j.dpo_beta).toBe(0.2);
  });
  it('a bad field is an error naming the file and the field', () => {
    expect(() => parseTrainConfig('base_model: m\nmethod: cpt\ndatasets: []\nlora_r: -1\nlearning_rat: 1\n', 'bad.yaml')).toThrowError(/bad\.yaml: invalid training config: .*datasets.*lora_r.*learning_rat|bad\.yaml.*lora_r/);
    try {
      validateTrainConfig({ ...base, method: 'sft', lr_scheduler: 'cosine_restarts' }, 'x.json');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TrainConfigError);
      expect((e as TrainConfigError).code).toBe('invalid_request');
      expect((e as Error).message).toMatch(/x\.json.*lr_scheduler/);
    }
    expect(() => parseTrainConfig('{"base_model":', 'c.json')).toThrowError(/c\.json: not valid JSON/);
    expect(() => parseTrainConfig('base_model: m\nmethod: sft\ndatasets: [{path: d}]\nrl_adapter_ref_model: true\n', 's.yaml')).toThrowError(/s\.yaml: rl_adapter_ref_model, precompute_ref_log_probs and rpo_alpha are dpo settings \(method is sft/);
    expect(parseTrainConfig('base_model: m\nmethod: dpo\ndatasets: [{path: d}]\nrl_adapter_ref_model: true\n', 'd.yaml').rl_adapter_ref_model).toBe(true);
  });
});

describe('data loading', () => {
  it('a bad row names file, row and field', () => {
    const cfg = validateTrainConfig({ ...base, method: 'sft' });
    const rows = parseRows('{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n\n{"messages":[{"role":"boss","content":"x"}]}\n', 'd.jsonl');
    expect(() => encodeRows(rows, { path: 'd.jsonl' }, 'd.jsonl', cfg, tok, emptyStats())).toThrowError(/d\.jsonl: row 3: .*messages\.0\.role/);
    expect(() => parseRows('{"text": 1}\n{oops\n', 'e.jsonl')).toThrowError(DataRowError);
    expect(() => parseRows('{"text": 1}\n{oops\n', 'e.jsonl')).toThrowError(/e\.jsonl: row 2: not valid JSON/);
    const c2 = validateTrainConfig({ ...base, method: 'cpt' });
    expect(() => encodeRows(parseRows('{"text": 5}\n', 'f.jsonl'), { path: 'f' }, 'f.jsonl', c2, tok, emptyStats())).toThrowError(/f\.jsonl: row 1: not a completion \("text"\) row: text/);
    expect(() => encodeRows(parseRows('{"input_ids":[1,2],"labels":[1]}\n', 'p.jsonl'), { path: 'p' }, 'p.jsonl', c2, tok, emptyStats())).toThrowError(/p\.jsonl: row 1: labels has 1 entries, input_ids 2/);
  });

  it('cpt: BOS + text + EOS, long documents split, packed blocks with document starts and no target at a start', () => {
    const cfg = validateTrainConfig({ ...base, method: 'cpt', sequence_len: 20 });
    const text = ['Once upon a time there was a cat.', 'The dog ran. It was happy and it ran and ran and ran all day long in the sun.', 'Hi.'].map((t) => JSON.stringify({ text: t })).join('\n');
    const st = emptyStats();
    const ex = encodeRows(parseRows(text, 'c.jsonl'), { path: 'c' }, 'c.jsonl', cfg, tok, st);
    const items = toItems(ex, cfg, st);
    if (items.kind !== 'lm') throw new Error('kind');
    for (const s of items.items) {
      expect(s.tokens.length).toBeLessThanOrEqual(20);
      expect(s.labels.length).toBe(s.tokens.length);
      for (const d of s.docStarts) expect(s.labels[d]).toBe(IGNORE_INDEX);
    }
    expect(items.items.some((s) => s.docStarts.length > 1)).toBe(true); // documents share blocks
    const all = items.items.flatMap((s) => s.tokens);
    expect(all.filter((t) => t === tok.special.eos).length).toBe(3); // one EOS per document
    expect(st.tokens).toBe(all.length);
  });

  it('pack keeps order and never exceeds the block', () => {
    const it0 = (n: number) => ({ tokens: Array.from({ length: n }, (_, i) => i + 5), labels: Array.from({ length: n }, (_, i) => i + 5) });
    const p = pack([it0(5), it0(4), it0(6), it0(2)], 10, true);
    expect(p.map((s) => s.docStarts)).toEqual([[0, 5], [0, 6]]);
    expect(p.map((s) => s.tokens.length)).toEqual([9, 8]);
    expect(p[1]!.labels[6]).toBe(IGNORE_INDEX);
  });

  it('sft: loss on assistant tokens only (plain template + EOS for a base model)', () => {
    const msgs = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Where is the cat?' }, { role: 'assistant' as const, content: 'On the mat.' }];
    const { tokens, labels } = encodeConversation(tok as TrainTokenizer, msgs, false);
    const first = labels.findIndex((l) => l !== IGNORE_INDEX);
    expect(first).toBeGreaterThan(3);
    expect(labels.at(-1)).toBe(tok.special.eos);
    const answer = tok.decode(tokens.slice(first));
    expect(answer.trim()).toBe('On the mat.');
    expect(labels.slice(first)).toEqual(tokens.slice(first));
    // the prompt part is exactly what the engine renders for the same messages (+ the answer)
    expect(tokens.slice(0, first)).toEqual(tok.encodeChat(msgs.slice(0, 2), { addGenerationPrompt: true }).slice(0, first));
    const all = encodeConversation(tok as TrainTokenizer, msgs, true);
    expect(all.labels).toEqual(all.tokens);
  });

  it('preference rows: text, messages and pretokenized; over-long rows truncated or dropped with a count', () => {
    const cfg = validateTrainConfig({ ...base, method: 'dpo', sequence_len: 24 });
    const rows = [
      { system: 'S', prompt: 'Where is the cat?', chosen: 'On the mat.', rejected: 'In the sky.' },
      { chosen: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }], rejected: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Go away' }] },
      { prompt_input_ids: [1, 5, 6], chosen_input_ids: [7, 8], rejected_input_ids: [9] },
      { prompt: 'a '.repeat(40), chosen: 'b', rejected: 'c' },
    ].map((r) => JSON.stringify(r)).join('\n');
    const st = emptyStats();
    const ex = encodeRows(parseRows(rows, 'p.jsonl'), { path: 'p' }, 'p.jsonl', cfg, tok, st);
    if (ex.kind !== 'pref') throw new Error('kind');
    expect(ex.rows.length).toBe(3);
    expect(st.dropped).toBe(1); // the long prompt left no completion token
    const p3 = ex.rows[2]!;
    expect(p3.chosen.tokens).toEqual([1, 5, 6, 7, 8]);
    expect(p3.chosen.labels).toEqual([-100, -100, -100, 7, 8]);
    expect(p3.rejected.labels).toEqual([-100, -100, -100, 9]);
    const p1 = ex.rows[0]!;
    const n = p1.chosen.labels.findIndex((l) => l !== -100);
    expect(p1.chosen.tokens.slice(0, n)).toEqual(p1.rejected.tokens.slice(0, n)); // shared prompt
    expect(tok.decode(p1.chosen.tokens.slice(n)).trim()).toBe('On the mat.');
    const raise = validateTrainConfig({ ...base, method: 'sft', sequence_len: 8, excess_length_strategy: 'raise' });
    expect(() => encodeRows(parseRows('{"input_ids":[1,2,3,4,5,6,7,8,9]}', 'r.jsonl'), { path: 'r' }, 'r.jsonl', raise, tok, emptyStats())).toThrowError(/r\.jsonl: row 1: 9 tokens > sequence_len 8/);
    const trunc = validateTrainConfig({ ...base, method: 'sft', sequence_len: 8 });
    const st2 = emptyStats();
    const e2 = encodeRows(parseRows('{"input_ids":[1,2,3,4,5,6,7,8,9]}', 'r.jsonl'), { path: 'r' }, 'r.jsonl', trunc, tok, st2);
    expect(st2.truncated).toBe(1);
    expect(e2.kind === 'lm' && e2.rows[0]!.tokens.length).toBe(8);
  });
});

describe('objectives and schedules = the float64 oracle', () => {
  const rng = new Rng(4);
  const rowLp = () => Float64Array.from({ length: 2 + rng.int(5) }, () => -rng.range(0.05, 4));
  const asRef = (a: Float64Array) => Float64Array.from([NaN, ...a]); // the oracle keeps ignored positions as NaN
  it('lm, dpo, orpo: loss, metrics and ∂loss/∂logp', () => {
    const lp = [rowLp(), rowLp(), rowLp(), rowLp()];
    const rf = [rowLp(), rowLp(), rowLp(), rowLp()];
    const dummy = { tokens: [], labels: [] };
    const pairs = [{ chosen: dummy, rejected: dummy }, { chosen: dummy, rejected: dummy }];
    const cases: Array<[ReturnType<typeof lmObjective>, RefBatch, Float64Array[] | undefined]> = [
      [lmObjective(lp), { kind: 'lm', rows: [dummy, dummy, dummy, dummy] }, undefined],
      [dpoObjective(lp, rf, 0.3), { kind: 'dpo', beta: 0.3, pairs }, rf],
      [orpoObjective(lp, 0.25), { kind: 'orpo', alpha: 0.25, pairs }, undefined],
    ];
    for (const [got, batch, ref] of cases) {
      const want = refObjective(batch, lp.map(asRef), ref?.map(asRef));
      expect(got.loss).toBeCloseTo(want.loss, 12);
      got.weights.forEach((w, i) => w.forEach((v, j) => expect(v).toBeCloseTo(want.weights[i]![j + 1]!, 12)));
      for (const k of ['rewards/margins', 'rewards/accuracies']) if (k in want.metrics) expect(got.metrics[k]).toBeCloseTo(want.metrics[k]!, 12);
    }
  });
  it('schedules', () => {
    for (const kind of ['constant', 'linear', 'cosine'] as const) for (let s = 0; s < 12; s++) expect(lrMultiplier(kind, s, 3, 10)).toBeCloseTo(lrLambda(kind, s, 3, 10), 14);
  });
  it('loss curve is an SVG with both series', () => {
    const svg = lossCurveSvg([[1, 3], [2, 2.5], [3, 2]], [[3, 2.2]]);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<path/g)!.length).toBe(2);
  });
});
