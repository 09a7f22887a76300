/**
 * The import graph of lib/LAYERS.md (tools/check_layers.ts): every import runs downward, no runtime
 * cycle, no oversized file without a reason. Also checks the checker itself on a made-up tree.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { checkLayers } from "../tools/check_layers.ts";
import { assert, test } from "./harness.ts";

const root = fileURLToPath(new URL("../", import.meta.url).href);

test("layers: every import in lib/, ffi/, bin/ and mod.ts runs downward, with no runtime cycle", () => {
  const v = checkLayers(root);
  assert.deepEqual(v.map((x) => `${x.kind}: ${x.message}`), []);
});

test("layers: the checker finds an upward import, a sibling import, a cycle and a long file", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-layers-"));
  try {
    const put = (rel: string, text: string): void => {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), text);
    };
    put("lib/util/a.ts", 'import { x } from "../executor/b.ts";\nexport const a = x;\n');
    put("lib/executor/b.ts", "export const x = 1;\n");
    put("lib/backends/cpu/c.ts", 'import { y } from "../cuda/d.ts";\nexport const c = y;\n');
    put("lib/backends/cuda/d.ts", "export const y = 2;\n");
    put("lib/ir/e.ts", 'import { f } from "./f.ts";\nexport const e = 1;\n');
    put("lib/ir/f.ts", 'import { e } from "./e.ts";\nexport const f = e;\n');
    put("lib/ir/g.ts", 'import type { f } from "./h.ts";\nexport const g = 1;\n');
    put("lib/ir/h.ts", 'import type { g } from "./g.ts";\nexport const f = 1;\n');
    put("lib/ir/long.ts", "export const z = 0;\n".repeat(500));
    const kinds = checkLayers(dir).map((v) => v.kind).sort();
    assert.deepEqual(kinds, ["cycle", "long", "sibling", "upward"]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
