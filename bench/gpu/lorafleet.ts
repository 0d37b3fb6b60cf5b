// The `lorafleet` command as one bundle entry for bench/gpu (bin/lorafleet.mjs runs the sources
// through tsx instead; the device machine gets an esbuild bundle and no node_modules).
import { main } from '../../cli/main.ts';

process.exit(await main(process.argv.slice(2)));
