/**
 * A real OpenAI-compatible HTTP server on loopback for tests: POST /v1/chat/completions with scripted answers.
 * It answers generation prompts with grounded pairs (plus one ungrounded pair), judge prompts with scores, and
 * can be told to fail: malformed JSON, HTTP 500, or always-malformed for a chunk.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Req {
  kind: 'gen' | 'judge';
  chunkId: string;
  status: number;
}

export interface FakeTeacherOptions {
  delayMs?: number;
  /** per chunk id: scripted misbehaviour for the first calls */
  script?: (chunkId: string, kind: 'gen' | 'judge', nth: number) => 'ok' | 'malformed' | 'error500' | 'badshape' | 'partial';
}

export async function startFakeTeacher(o: FakeTeacherOptions = {}) {
  const requests: Req[] = [];
  const counts = new Map<string, number>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const reply = (status: number, obj: unknown) => {
        setTimeout(() => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(obj));
        }, o.delayMs ?? 0);
      };
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) return reply(404, { error: { message: 'not found' } });
      const msg = JSON.parse(body) as { model: string; messages: { role: string; content: string }[] };
      const sys = msg.messages[0]?.content ?? '';
      const user = msg.messages.find((m) => m.role === 'user')?.content ?? '';
      const chunkId = /Chunk-ID: (\w+)/.exec(user)?.[1] ?? '?';
      const kind = sys.includes('You grade') ? 'judge' : 'gen';
      const k = `${kind}:${chunkId}`;
      const nth = (counts.get(k) ?? 0) + 1;
      counts.set(k, nth);
      const action = o.script?.(chunkId, kind, nth) ?? 'ok';
      requests.push({ kind, chunkId, status: action === 'error500' ? 500 : 200 });
      if (action === 'error500') return reply(500, { error: { message: 'teacher overloaded', type: 'server_error' } });
      let content: string;
      if (action === 'malformed') content = kind === 'gen' ? 'Sure! Here are your pairs: {"pairs": [{"question": "What is' : 'I rate them all 5/5!';
      else if (action === 'badshape') content = '{"pairs": "none"}';
      else if (kind === 'gen') {
        const passage = /"""\n([\s\S]*?)\n"""/.exec(user)?.[1] ?? '';
        const first = passage.split(/(?<=\.)\s/)[0] ?? passage;
        content =
          '```json\n' +
          JSON.stringify({
            pairs: [
              ...(action === 'partial' ? [{ question: 'No evidence given?', answer: 'x' }] : []),
              { question: `What does the passage ${chunkId} say first?`, answer: first, evidence: first.slice(0, 40) },
              { question: `What else is in ${chunkId}?`, answer: 'Something vague.', evidence: first.slice(0, 20) },
              { question: `Invented question for ${chunkId}?`, answer: 'Made up.', evidence: 'this sentence is not in the passage at all' },
            ],
          }) +
          '\n```';
      } else {
        content = JSON.stringify({ ratings: [{ index: 0, score: 5, reason: 'supported' }, { index: 1, score: 2, reason: 'vague' }] });
      }
      reply(200, {
        id: `chatcmpl-${requests.length}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: msg.model,
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 },
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
