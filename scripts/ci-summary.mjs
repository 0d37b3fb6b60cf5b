// Prints the closing CI line "N passed, N failed" from vitest's JSON report plus the static
// checks (generated shaders up to date, type-check), and exits non-zero on any failure.
import { readFileSync, existsSync } from 'node:fs';

const [file, staticPass = '0', staticFail = '0', testRc = '0'] = process.argv.slice(2);
let passed = Number(staticPass);
let failed = Number(staticFail);
let skipped = 0;
if (existsSync(file)) {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed += r.numPassedTests ?? 0;
  failed += (r.numFailedTests ?? 0);
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  // A test file that failed to load has no tests in the counts: count it as a failure.
  for (const s of r.testResults ?? []) {
    if (s.status === 'failed' && (!s.assertionResults || s.assertionResults.length === 0)) {
      console.log(`failed to run: ${s.name}: ${String(s.message ?? '').split('\n')[0]}`);
      failed += 1;
    }
  }
} else {
  console.log('no test report was written');
  failed += 1;
}
if (Number(testRc) !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
