// The contract between the continuous-batching scheduler and the model runner.
// Each step the scheduler picks a set of sequences and, for each, a segment of tokens to
// run: a (chunk of a) prompt for sequences in prefill, or the one last sampled token for
// sequences in decode. Segments of different sequences, adapters and sampling settings share
// one forward pass (one GPU step).

import type { SampleParams } from '../../shaders/sample/sample.ts';

export interface StepSegment {
  seqId: number;
  /** Token ids to run this step (prefill chunk, or [lastToken] in decode). */
  tokens: number[];
  /** Absolute position of tokens[0] in the sequence (= tokens already in the KV cache). */
  startPos: number;
  /** Adapter name, or null for the base model. */
  adapter: string | null;
  /** Sampling for the token after this segment; null for a prefill chunk that is not the last. */
  sample: SampleParams | null;
  /** Every token of the sequence so far (prompt + generated), for the repetition penalty. */
  history: ReadonlyArray<number>;
  /** Return the float32 logits of this segment's last position (tests, logprobs). */
  wantLogits?: boolean;
  /**
   * Grammar mask of the token sampled after this segment (u32 [ceil(V/32)], bit t set = token t
   * allowed), from the request's TokenConstraint; absent: unconstrained.
   */
  mask?: Uint32Array | null;
}

/**
 * A request's output constraint (engine/structured: an XGrammar matcher). The scheduler asks it
 * for the next token's mask before each sampling step, advances it on the sampled token at
 * commit, rolls it back when tokens it accepted are not kept, and frees it when the request ends.
 */
export interface TokenConstraint {
  /** Tokens accepted so far. */
  readonly accepted: number;
  /** Mask of the next token (u32 [ceil(V/32)], bit set = allowed), or null when nothing is masked. */
  nextMask(): Promise<Uint32Array | null> | Uint32Array | null;
  /** Advances on a sampled token; false when the constraint rejects it. */
  accept(token: number): boolean;
  /** Forgets the last n accepted tokens. */
  rollback(n: number): void;
  /** Releases the matcher (idempotent). */
  free(): void;
}

export interface StepBatch {
  segments: StepSegment[];
}

export interface SegmentResult {
  seqId: number;
  /** Sampled token id when the segment had `sample`, else null. */
  token: number | null;
  logits?: Float32Array;
}

/**
 * Runs one step. Before calling, the scheduler has reserved KV pages for every segment's
 * tokens in the paged cache (startPos .. startPos + tokens.length - 1).
 */
export interface StepRunner {
  runStep(batch: StepBatch): Promise<SegmentResult[]>;
}
