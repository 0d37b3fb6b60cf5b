// Known facts about the stories260K test model (from its README), shared by tests.
import { fileURLToPath } from 'node:url';

/** Absolute path of ../shared/models/stories260K (relative to the repo root). */
export const STORIES_DIR = fileURLToPath(new URL('../../shared/models/stories260K', import.meta.url));
/** `Once upon a time` with BOS. */
export const STORIES_PROMPT = [1, 403, 407, 261, 378];
/** README: first generated ids (llama2.c run.c, greedy). */
export const STORIES_FIRST_11 = [432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];
/**
 * The whole README sentence is 40 greedy tokens. The tokenizer test checks that prompt +
 * these ids decode to STORIES_TEXT, and they start with STORIES_FIRST_11, so this pins the path.
 */
export const STORIES_GREEDY_40 = [
  432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292,
  411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426,
];
export const STORIES_TEXT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.';
