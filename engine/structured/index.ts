// Structured output: constraints per request (JSON schema, any JSON, regex, EBNF, choice, tool
// calls) compiled by XGrammar over the model's vocabulary, one matcher per running request, and
// the bitmask the GPU sampling kernels apply (see README.md in this folder).
export * from './constraint.ts';
export * from './grammar.ts';
export * from './request.ts';
export { GrammarEngineError } from './xgrammar.ts';
