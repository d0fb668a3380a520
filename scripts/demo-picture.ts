// npx tsx scripts/demo-picture.ts: writes assets/demo.png, the picture `vlmkit demo` asks about (the shapes
// generator's scene for DEMO_SEED, src/cli/demo.ts). Run once; test/builtin/demo.test.ts checks that the committed
// file still is that scene.
import { DEMO_IMAGE, renderDemoPicture } from '../src/cli/demo.js';
import { writePng } from '../src/eval/draw.js';

writePng(DEMO_IMAGE, renderDemoPicture());
console.log(`wrote ${DEMO_IMAGE}`);
