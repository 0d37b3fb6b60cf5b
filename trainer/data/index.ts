/** trainer/data as a library: every stage is usable on its own. */
export * from './types.ts';
export { loadTokenizer, approxCounter, type TokenCounter } from './tokenizer.ts';
export * from './ingest/index.ts';
export { Chunker, chunkDocs, splitSections, splitBlocks, type ChunkOptions } from './chunk.ts';
export { dedupe, NearDupIndex, MINHASH, shingles, jaccard, minhash, estimateJaccard, candidateProbability, bruteForcePairs } from './dedupe.ts';
export { extractPairs, parseTables } from './synth/extractive.ts';
export { Teacher, PROMPT_VERSION, extractJson, grounded, type TeacherOptions } from './synth/teacher.ts';
export { loadDomain, DomainSchema, corpusEntities, entityRegex, type Domain, type ToolSpec, type LabelSet } from './domain.ts';
export { formatAll, splitRows, rowContent, findEntities, toolSystemPrompt, type FormatOptions, type FormatResult } from './format.ts';
export { Validators, ChatRow, DpoRow, NerEntity, toolCallText } from './rows.ts';
export { renderReport, type Stats } from './report.ts';
export { stageIngest, stageChunk, stageDedupe, stageSynth, stageFormat, runAll } from './pipeline.ts';
export { dataCli } from './cli.ts';
