// Tokenizer: @huggingface/tokenizers over tokenizer.json + tokenizer_config.json, a streaming
// detokenizer, chat templates (@huggingface/jinja) and generation_config.json.
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { z } from 'zod';
import type { ModelSource } from './source.ts';

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface GenerationConfig {
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  doSample: boolean;
  temperature: number | null;
  topP: number | null;
  topK: number | null;
  maxNewTokens: number | null;
  repetitionPenalty: number | null;
}

const idOrIds = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullable().optional();
const genSchema = z
  .object({
    bos_token_id: z.number().int().nonnegative().nullable().optional(),
    eos_token_id: idOrIds,
    pad_token_id: z.number().int().nonnegative().nullable().optional(),
    do_sample: z.boolean().optional(),
    temperature: z.number().nonnegative().nullable().optional(),
    top_p: z.number().min(0).max(1).nullable().optional(),
    top_k: z.number().int().nonnegative().nullable().optional(),
    max_new_tokens: z.number().int().positive().nullable().optional(),
    repetition_penalty: z.number().positive().nullable().optional(),
  })
  .passthrough();

/** Parse generation_config.json (missing fields → null / false / []). */
export function parseGenerationConfig(json: unknown, fileName = 'generation_config.json'): GenerationConfig {
  const r = genSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`${fileName}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  const g = r.data;
  const eos = g.eos_token_id;
  return {
    bosTokenId: g.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? [...eos] : [eos],
    padTokenId: g.pad_token_id ?? null,
    doSample: g.do_sample ?? false,
    temperature: g.temperature ?? null,
    topP: g.top_p ?? null,
    topK: g.top_k ?? null,
    maxNewTokens: g.max_new_tokens ?? null,
    repetitionPenalty: g.repetition_penalty ?? null,
  };
}

type TokenizerConfigJson = Record<string, unknown> & { chat_template?: unknown };

function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** Pick the template string from tokenizer_config's chat_template (string, [{name, template}] or {name: template}). */
function pickTemplate(t: unknown, name = 'default'): string | null {
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const e = t.find((x) => x && (x as { name?: string }).name === name) ?? t[0];
    return e && typeof (e as { template?: unknown }).template === 'string' ? (e as { template: string }).template : null;
  }
  if (t && typeof t === 'object') {
    const r = t as Record<string, unknown>;
    const v = r[name] ?? Object.values(r)[0];
    return typeof v === 'string' ? v : null;
  }
  return null;
}

export interface SpecialTokens {
  bos: number | null;
  eos: number | null;
  unk: number | null;
  pad: number | null;
  /** Every token marked special in tokenizer.json's added_tokens. */
  all: number[];
}

export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  /** Extra variables for the template (tools, documents, enable_thinking, …). */
  extra?: Record<string, unknown>;
}

export class ModelTokenizer {
  readonly tok: Tokenizer;
  /** tokenizer.json as loaded (the grammar engine reads the vocabulary's decoder from it). */
  readonly json: object;
  readonly config: TokenizerConfigJson;
  readonly special: SpecialTokens;
  /** EOS ids to stop on: generation_config's list ∪ tokenizer eos. */
  readonly eosTokenIds: number[];
  readonly generation: GenerationConfig | null;
  /** The chat template in use, or null (base model: see applyChatTemplate). */
  readonly chatTemplate: string | null;
  private compiled: Template | null = null;

  constructor(
    tokenizerJson: object,
    tokenizerConfig: TokenizerConfigJson = {},
    opts: { generationConfig?: GenerationConfig | null; chatTemplate?: string | null } = {},
  ) {
    this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    this.json = tokenizerJson;
    this.config = tokenizerConfig;
    const id = (key: string) => {
      const s = tokenString(tokenizerConfig[key]);
      return s === null ? null : (this.tok.token_to_id(s) ?? null);
    };
    const added = ((tokenizerJson as { added_tokens?: { id: number; special?: boolean }[] }).added_tokens ?? []).filter((t) => t.special).map((t) => t.id);
    this.special = { bos: id('bos_token'), eos: id('eos_token'), unk: id('unk_token'), pad: id('pad_token'), all: added };
    this.generation = opts.generationConfig ?? null;
    const eos = new Set<number>(this.generation?.eosTokenIds ?? []);
    if (this.special.eos !== null) eos.add(this.special.eos);
    this.eosTokenIds = [...eos];
    this.chatTemplate = opts.chatTemplate !== undefined ? opts.chatTemplate : pickTemplate(tokenizerConfig.chat_template);
  }

  /** Token ids; special tokens (BOS) added the way the tokenizer's post-processor adds them. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.tok.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? true });
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }
  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  isEos(id: number): boolean {
    return this.eosTokenIds.includes(id);
  }

  /**
   * Render messages to a prompt string.
   *
   * With a chat template (tokenizer_config.json `chat_template`, or a chat_template.jinja
   * file): rendered with @huggingface/jinja, given messages, add_generation_prompt, the
   * special token strings (bos_token, eos_token, …) and `extra`.
   *
   * Fallback for a base model with no template: the message contents joined with "\n\n"
   * (roles dropped). add_generation_prompt opens the assistant turn with that same blank line, so
   * what the model generates (and what the trainer's assistant-only loss covers) starts at the
   * answer itself: a constrained decoder that must begin with a label or `<tool_call>` then sees
   * exactly the context the adapter was trained on. A lone message is the exception: it is a plain
   * completion prompt (nothing appended), and encodeChat adds BOS through the normal
   * post-processor, so a one-message "chat" equals plain completion.
   */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null) {
      const text = messages.map((m) => m.content).join('\n\n');
      return opts.addGenerationPrompt && messages.length > 1 ? `${text}\n\n` : text;
    }
    this.compiled ??= new Template(this.chatTemplate);
    const specials: Record<string, string> = {};
    for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const s = tokenString(this.config[k]);
      if (s !== null) specials[k] = s;
    }
    return this.compiled.render({ ...specials, ...opts.extra, messages, add_generation_prompt: opts.addGenerationPrompt ?? false });
  }

  /**
   * Chat → ids. A templated prompt already contains its special tokens, so it is encoded
   * without adding more (as HF apply_chat_template(tokenize=True) does); the fallback adds BOS.
   */
  encodeChat(messages: ChatMessage[], opts: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: this.chatTemplate === null });
  }

  /** A streaming detokenizer; pass the prompt ids as context so spacing at the join is right. */
  stream(context: number[] = []): StreamingDetokenizer {
    return new StreamingDetokenizer(this, context);
  }
}

/**
 * Incremental detokenizer (the prefix/read-offset scheme of HF text-generation-inference):
 * after each token it decodes a short window of recent tokens twice — up to the last emitted
 * token and up to the new one — and emits the difference, but only when the new text does not
 * end in U+FFFD, i.e. no partial UTF-8 sequence from byte-fallback pieces is pending.
 * Decoding a window (not single tokens) keeps SentencePiece "▁" spacing and Strip decoders right.
 */
export class StreamingDetokenizer {
  private ids: number[];
  private prefix: number;
  private read: number;

  constructor(
    private readonly t: ModelTokenizer,
    context: number[] = [],
  ) {
    this.ids = [...context];
    this.read = this.ids.length;
    this.prefix = Math.max(0, this.read - 6);
  }

  private dec(a: number, b: number): string {
    return this.t.decode(this.ids.slice(a, b), { skipSpecialTokens: true });
  }

  /** Add one token; returns the newly complete text ('' if none yet). */
  push(id: number): string {
    this.ids.push(id);
    const before = this.dec(this.prefix, this.read);
    const after = this.dec(this.prefix, this.ids.length);
    if (after.length > before.length && !after.endsWith('\uFFFD') && after.startsWith(before)) {
      const out = after.slice(before.length);
      this.prefix = this.read;
      this.read = this.ids.length;
      return out;
    }
    // If the window decode is not an extension (rare decoder effects) wait for more tokens,
    // unless too many are pending: then emit what is stable.
    if (this.ids.length - this.read > 8 && !after.endsWith('\uFFFD')) {
      const out = after.startsWith(before) ? after.slice(before.length) : after.slice(commonPrefix(before, after));
      this.prefix = this.read;
      this.read = this.ids.length;
      return out;
    }
    return '';
  }

  /** End of stream: whatever is pending (may contain U+FFFD for a cut-off byte sequence). */
  flush(): string {
    const before = this.dec(this.prefix, this.read);
    const after = this.dec(this.prefix, this.ids.length);
    this.prefix = this.read = this.ids.length;
    return after.length > before.length ? after.slice(before.length) : '';
  }
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * Load tokenizer.json (required), tokenizer_config.json, generation_config.json and
 * chat_template.jinja (each optional) from a model source.
 */
export async function loadTokenizer(source: ModelSource): Promise<ModelTokenizer> {
  if (!(await source.exists('tokenizer.json'))) throw new Error(`${source.name}/tokenizer.json: not found`);
  const tj = (await source.readJson('tokenizer.json')) as object;
  const tc = (await source.exists('tokenizer_config.json')) ? ((await source.readJson('tokenizer_config.json')) as TokenizerConfigJson) : {};
  const gen = (await source.exists('generation_config.json'))
    ? parseGenerationConfig(await source.readJson('generation_config.json'), `${source.name}/generation_config.json`)
    : null;
  let chatTemplate: string | null | undefined;
  if (await source.exists('chat_template.jinja')) chatTemplate = new TextDecoder().decode(await source.readBytes('chat_template.jinja'));
  return new ModelTokenizer(tj, tc, { generationConfig: gen, chatTemplate });
}
