/**
 * A valid tiny Llama checkpoint written to a temp dir (config.json, model.safetensors,
 * tokenizer.json from stories260k when asked), and the knobs the hostile tests mutate.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { writeSafetensors } from "../../lib/models/safetensors.ts";
import type { DType } from "../../lib/util/dtype.ts";

export interface TinySpec {
  V: number;
  H: number;
  I: number;
  L: number;
  nH: number;
  nKV: number;
  hd: number;
  tied: boolean;
}

export const TINY: TinySpec = { V: 512, H: 32, I: 64, L: 2, nH: 4, nKV: 2, hd: 8, tied: false };

export function tinyConfig(s: TinySpec = TINY): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: s.V,
    hidden_size: s.H,
    intermediate_size: s.I,
    num_hidden_layers: s.L,
    num_attention_heads: s.nH,
    num_key_value_heads: s.nKV,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 256,
    tie_word_embeddings: s.tied,
    hidden_act: "silu",
    torch_dtype: "float32",
    bos_token_id: 1,
    eos_token_id: 2,
  };
}

export interface TinyTensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Uint8Array | Uint16Array | Int32Array;
}

/** The HF tensors of a tiny model, deterministic pseudo-random float32. */
export function tinyTensors(s: TinySpec = TINY, seed = 7): Map<string, TinyTensor> {
  let x = seed >>> 0 || 1;
  const r = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x / 4294967296) * 2 - 1;
  };
  const m = new Map<string, TinyTensor>();
  const add = (n: string, shape: number[], scale: number, base = 0): void => {
    const numel = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(numel);
    for (let i = 0; i < numel; i++) data[i] = base + r() * scale;
    m.set(n, { dtype: "F32", shape, data });
  };
  add("model.embed_tokens.weight", [s.V, s.H], 1);
  for (let l = 0; l < s.L; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [s.H], 0.1, 1);
    add(`${p}post_attention_layernorm.weight`, [s.H], 0.1, 1);
    add(`${p}self_attn.q_proj.weight`, [s.nH * s.hd, s.H], 0.3);
    add(`${p}self_attn.k_proj.weight`, [s.nKV * s.hd, s.H], 0.3);
    add(`${p}self_attn.v_proj.weight`, [s.nKV * s.hd, s.H], 0.3);
    add(`${p}self_attn.o_proj.weight`, [s.H, s.nH * s.hd], 0.3);
    add(`${p}mlp.gate_proj.weight`, [s.I, s.H], 0.3);
    add(`${p}mlp.up_proj.weight`, [s.I, s.H], 0.3);
    add(`${p}mlp.down_proj.weight`, [s.H, s.I], 0.3);
  }
  add("model.norm.weight", [s.H], 0.1, 1);
  if (!s.tied) add("lm_head.weight", [s.V, s.H], 0.5);
  return m;
}

let counter = 0;
const created: string[] = [];
/** A fresh temp dir (removed by {@link removeTempDirs}). */
export function tempDir(prefix = "llmrt-hostile-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}${counter++}-`));
  created.push(dir);
  return dir;
}

/** Removes every temp dir made so far except those in `keep` (the suites make hundreds). */
export function removeTempDirs(keep: readonly string[] = []): void {
  for (const dir of created.splice(0)) {
    if (keep.includes(dir)) created.push(dir);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes a checkpoint dir: config.json (after `editConfig`), model.safetensors (from `tensors`), optional tokenizer. */
export function writeTiny(
  opts: { spec?: TinySpec; config?: (c: Record<string, unknown>) => void; tensors?: (t: Map<string, TinyTensor>) => void; tokenizerFrom?: string } = {},
): string {
  const spec = opts.spec ?? TINY;
  const dir = tempDir();
  const cfg = tinyConfig(spec);
  opts.config?.(cfg);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(cfg));
  const t = tinyTensors(spec);
  opts.tensors?.(t);
  writeSafetensors(path.join(dir, "model.safetensors"), Object.fromEntries(t));
  if (opts.tokenizerFrom) {
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
      const src = path.join(opts.tokenizerFrom, f);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(dir, f));
    }
  }
  return dir;
}
