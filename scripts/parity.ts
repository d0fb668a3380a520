// npm run -s parity -- <case.safetensors> --model <dir> [--adapter <dir>] [--images <dir>] [--no-model] [--partial] [--verbose]
// Prints one JSON line; exit 0 when every tensor of the case was compared and matched, 1 when a check failed or
// the input was wrong, 2 on an unexpected error, 3 when nothing failed but some tensors were not compared
// (listed in "unchecked"; --partial accepts that with exit 0).
import { main } from '../src/parity/main.js';

process.exitCode = await main(process.argv.slice(2));
