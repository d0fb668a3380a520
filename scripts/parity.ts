// npm run -s parity -- <case.safetensors> --model <dir> [--adapter <dir>] [--images <dir>] [--no-model] [--verbose]
// Prints one JSON line; exit 0 when every check passed (or nothing was checkable), 1 when a check failed or the
// input was wrong, 2 on an unexpected error.
import { main } from '../src/parity/main.js';

process.exitCode = await main(process.argv.slice(2));
