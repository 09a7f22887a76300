/**
 * The import-graph check of lib/LAYERS.md: every relative import runs downward (type-only imports
 * included), no runtime import cycle (type-only imports aside), and no source file over ~400
 * lines unless LONG_FILES says why. Run it: `bun tools/check_layers.ts` (exit 1 on a violation);
 * tests/layers.test.ts runs it in CI under Bun and Deno.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** Layers from the bottom up; a file may import its own layer or one listed before it. */
export const LAYERS: readonly (readonly string[])[] = [
  ["lib/util"],
  ["ffi"],
  ["lib/cuda"],
  ["lib/ir"],
  ["lib/backends/cpu", "lib/backends/cuda"], // siblings: neither imports the other
  ["lib/models"],
  ["lib/quantization"],
  ["lib/builder"],
  ["lib/runtime"],
  ["lib/tokenizer"],
  ["lib/executor"],
  ["lib/llmapi"],
  ["lib/serve"],
  ["mod.ts"],
  ["bin"], // the CLI is a user of the public API
];

/** Files allowed over the line limit, each with the reason. */
export const LONG_FILES: Readonly<Record<string, string>> = {
  "lib/models/safetensors.ts": "one format: header parsing, lazy sharded reads and the writer share one set of checks",
  "lib/tokenizer/tokenizer.ts": "transformers' Llama SentencePiece pipeline rebuilt around @huggingface/tokenizers, with its chat-template glue",
  "lib/backends/cuda/gemm.ts": "cuBLASLt descriptors, the heuristic/tuning path and the on-disk timing cache are one owner",
  "lib/backends/cuda/session.ts": "one engine on one GPU: weight upload, arena, graphs per bucket and the step path share private state",
  "ffi/cuda.ts": "one symbol table per native library (STYLE.md): every driver symbol with the C type of each parameter, no logic",
  "lib/executor/executor_loop.ts":
    "the loop itself (submit, abort, shutdown, one step) after the split into admission, step building, results, beams and outputs; the rest is one private state machine",
};

export const MAX_LINES = 420;

export interface Violation {
  readonly kind: "upward" | "sibling" | "cycle" | "long" | "unknown-layer";
  readonly message: string;
}

interface ImportEdge {
  readonly to: string;
  readonly typeOnly: boolean;
}

function layerOf(rel: string): [number, string] | null {
  for (let i = 0; i < LAYERS.length; i++) {
    for (const l of LAYERS[i]) if (rel === l || rel.startsWith(`${l}/`)) return [i, l];
  }
  return null;
}

function sourceFiles(root: string, dir: string, out: string[]): void {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return;
  if (fs.statSync(abs).isFile()) {
    out.push(dir);
    return;
  }
  for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) sourceFiles(root, rel, out);
    else if (/\.(ts|js)$/.test(e.name)) out.push(rel);
  }
}

const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^"';]*?\s+from\s+)?["'](\.{1,2}\/[^"']+)["']/gm;
const DYNAMIC = /(?:import\(|new URL\()\s*["'](\.{1,2}\/[^"']+\.ts)["']/g;

function importsOf(root: string, rel: string): ImportEdge[] {
  const text = fs.readFileSync(path.join(root, rel), "utf8");
  const edges: ImportEdge[] = [];
  for (const m of text.matchAll(IMPORT)) {
    // `import { type A, type B } from` is type-only too.
    const clause = m[0];
    const braces = /\{([^}]*)\}/.exec(clause);
    const allTypes = !!braces && braces[1].split(",").map((s) => s.trim()).filter(Boolean).every((s) => s.startsWith("type ")) &&
      !/import\s+\w+\s*,/.test(clause);
    edges.push({ to: path.normalize(path.join(path.dirname(rel), m[3])), typeOnly: !!m[2] || allTypes });
  }
  for (const m of text.matchAll(DYNAMIC)) edges.push({ to: path.normalize(path.join(path.dirname(rel), m[1])), typeOnly: false });
  return edges;
}

/** Checks the tree at `root`; returns every violation found. */
export function checkLayers(root: string): Violation[] {
  const files: string[] = [];
  for (const group of LAYERS) for (const l of group) sourceFiles(root, l, files);
  const out: Violation[] = [];
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const lf = layerOf(f);
    if (!lf) continue;
    const lines = fs.readFileSync(path.join(root, f), "utf8").split("\n").length;
    if (lines > MAX_LINES && !LONG_FILES[f]) {
      out.push({ kind: "long", message: `${f}: ${lines} lines (limit ${MAX_LINES}; split it or add it to LONG_FILES with the reason)` });
    }
    const runtimeEdges: string[] = [];
    for (const e of importsOf(root, f)) {
      const lt = layerOf(e.to);
      if (!lt) {
        if (!e.to.startsWith("tests/") && !e.to.startsWith("models/")) {
          out.push({ kind: "unknown-layer", message: `${f} imports ${e.to}, which is in no layer` });
        }
        continue;
      }
      if (lt[0] > lf[0]) out.push({ kind: "upward", message: `${f} (${lf[1]}) imports ${e.to} (${lt[1]}), a higher layer` });
      else if (lt[0] === lf[0] && lt[1] !== lf[1]) out.push({ kind: "sibling", message: `${f} (${lf[1]}) imports ${e.to} (${lt[1]}), a sibling layer` });
      if (!e.typeOnly && e.to.endsWith(".ts")) runtimeEdges.push(e.to);
    }
    graph.set(f, runtimeEdges);
  }
  // Runtime cycles: depth-first search with colours.
  const colour = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    colour.set(f, 1);
    stack.push(f);
    for (const t of graph.get(f) ?? []) {
      if (colour.get(t) === 1) out.push({ kind: "cycle", message: `runtime import cycle: ${[...stack.slice(stack.indexOf(t)), t].join(" -> ")}` });
      else if (!colour.has(t)) visit(t);
    }
    stack.pop();
    colour.set(f, 2);
  };
  for (const f of graph.keys()) if (!colour.has(f)) visit(f);
  return out;
}

if (import.meta.main) {
  const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
  const v = checkLayers(root);
  for (const x of v) console.log(`${x.kind}: ${x.message}`);
  console.log(v.length === 0 ? "layers: ok" : `layers: ${v.length} violation(s)`);
  if (v.length) (globalThis as { process?: { exitCode?: number } }).process!.exitCode = 1;
}
