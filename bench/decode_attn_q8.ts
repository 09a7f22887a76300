/**
 * Decode attention over an FP8 (e4m3) KV cache at batch 1..8, per layer (issue 14, session 9): the fused
 * decode_attention_g4_fp8kv_bf16 (`fp8DecodeAttention`) at several least-keys-per-split, the unfused path it replaces
 * (rope_kv_write_fp8kv + paged_attention_decode_fp8kv + reduce) and the bf16-cache decode_attention_g4_bf16 beside
 * them; llama-3.1-8b's attention shape (32 q / 8 kv heads, hd 128), a CUDA graph of 32 layers' launches (one cache
 * per layer, PDL between the fused launches as in the engine), the engine's graph split geometry for maxSeqLen.
 *
 *   bun bench/decode_attn_q8.ts [--ctx 265,1024,4096] [--batch 1,8] [--min-keys 128,256,512] [--max-seq-len 4128]
 *       [--defines "DA_QFOLD=1;..."] [--sk-defines "DS_MINK=256;DS_MINK=512"]
 *
 * --defines: compile-time variants of decode_attention.cu (`;`-separated, each a `,`-separated define list), each one more
 * fused fp8 column at the first --min-keys (e.g. "DA_QFOLD=0": bf16(decode(q) · s) instead of the default folded scales).
 * --sk-defines: compile-time variants of decode_attention_sk.cu, each one more sk fp8 column (the engine's geometry), e.g.
 * "DS_MINK=512": splits of at least 512 keys (fewer splits, so no cross-block merge, at short contexts).
 * --sk-small: one more sk fp8 column as the engine runs it with fp8DecodeSkSmall (the split argument's 64 least keys, the
 * grid of decodeSkGeometry(maxSeqLen, …, 0, 64)).
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import {
  DECODE_SK_FP8_SMEM,
  DECODE_SK_SMEM,
  decodeSkGeometry,
  decodeSkSplitArg,
  FP8_DECODE_SK_SMALL_SPLIT,
  graphDecodeSplit,
} from "../lib/backends/cuda/attention_choice.ts";
import { CudaDevice } from "../lib/cuda/device.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    ctx: { type: "string" },
    batch: { type: "string" },
    "min-keys": { type: "string" },
    "max-seq-len": { type: "string" },
    defines: { type: "string" },
    "sk-defines": { type: "string" },
    "sk-small": { type: "boolean" },
  },
});
const ctxs = (values.ctx ?? "265,1024,4096").split(",").map(Number);
const batches = (values.batch ?? "1").split(",").map(Number);
const minKeysList = (values["min-keys"] ?? "128,256,512").split(",").map(Number);
const maxSeqLen = Number(values["max-seq-len"] ?? 4128);
const nH = 32, nKV = 8, hd = 128, G = nH / nKV, bs = 32, layers = 32, W = (nH + 2 * nKV) * hd;
const P = "ptr", I = "i32", F = "f32", L = "i64";

const dev = CudaDevice.open(0);
console.log(`GPU ${dev.name}, ${dev.smCount} SMs`);
const sel = (...names: string[]) => ({ options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
using da = loadKernelFile(dev, "decode_attention.cu", sel("decode_attention_g4_fp8kv_bf16_hd128", "decode_attention_g4_bf16_hd128"));
using rope = loadKernelFile(dev, "rope_kv_write.cu", sel("rope_kv_write_fp8kv_bf16"));
using pa = loadKernelFile(dev, "paged_attention.cu", sel("paged_attention_decode_fp8kv_bf16_hd128", "paged_attention_decode_reduce_bf16"));
const fusedSig = [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] as const;
const kFused8 = da.kernel("decode_attention_g4_fp8kv_bf16_hd128", [...fusedSig, P]);
const kFused16 = da.kernel("decode_attention_g4_bf16_hd128", fusedSig);
const variants = (values.defines ?? "").split(";").filter((v) => v).map((v) => {
  const o = sel("decode_attention_g4_fp8kv_bf16_hd128");
  const mod = loadKernelFile(dev, "decode_attention.cu", { options: [...o.options, ...v.split(",").map((d) => `-D${d}`)] });
  return { label: v, mod, k: mod.kernel("decode_attention_g4_fp8kv_bf16_hd128", [...fusedSig, P]) };
});
// decode_attention_sk (the bf16 default over a bf16 cache) and its FP8-KV entry point (fp8DecodeSk, session 10).
using skMod = loadKernelFile(dev, "decode_attention_sk.cu", sel("decode_attention_sk_bf16_hd128", "decode_attention_sk_fp8kv_bf16_hd128"));
const kSk16 = skMod.kernel("decode_attention_sk_bf16_hd128", fusedSig);
const kSk8 = skMod.kernel("decode_attention_sk_fp8kv_bf16_hd128", [...fusedSig, P]);
kSk16.setMaxDynamicSharedMemory(DECODE_SK_SMEM);
kSk8.setMaxDynamicSharedMemory(DECODE_SK_FP8_SMEM);
const skVariants = (values["sk-defines"] ?? "").split(";").filter((v) => v).map((v) => {
  const o = sel("decode_attention_sk_fp8kv_bf16_hd128");
  const mod = loadKernelFile(dev, "decode_attention_sk.cu", { options: [...o.options, ...v.split(",").map((d) => `-D${d}`)] });
  const k = mod.kernel("decode_attention_sk_fp8kv_bf16_hd128", [...fusedSig, P]);
  k.setMaxDynamicSharedMemory(DECODE_SK_FP8_SMEM);
  return { label: v, mod, k };
});
const kRope = rope.kernel("rope_kv_write_fp8kv_bf16", [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I, P]);
const kPa = pa.kernel("paged_attention_decode_fp8kv_bf16_hd128", [P, P, P, P, P, P, P, P, I, I, I, I, I, I, F, I, I, P]);
const kRed = pa.kernel("paged_attention_decode_reduce_bf16", [P, P, P, I, I, I, I]);

const maxB = Math.ceil(maxSeqLen / bs), maxT = Math.max(...batches);
const blocks = maxT * maxB + 1, layerElems = blocks * 2 * bs * nKV * hd;
// One cache per layer (bytes and bf16), random finite contents.
const fill8 = new Uint8Array(layerElems), fill16 = new Uint16Array(layerElems);
let s = 1;
for (let i = 0; i < layerElems; i++) {
  s = (s * 1103515245 + 12345) >>> 0;
  fill8[i] = ((s >>> 16) & 0x80) | (((s >>> 8) % 9) << 3) | ((s >>> 4) & 7); // exponent field ≤ 8: |x| < 4, finite
  fill16[i] = 0x3c00 | ((s >>> 20) & 0x3ff) | ((s & 1) << 15); // bf16 in ±[0.0078, 0.0156)
}
const kv8 = Array.from({ length: layers }, () => {
  const b = dev.alloc(layerElems);
  b.copyFromHost(fill8);
  return b;
});
const kv16 = Array.from({ length: layers }, () => {
  const b = dev.alloc(layerElems * 2);
  b.copyFromHost(fill16);
  return b;
});
const qkvHost = Uint16Array.from({ length: maxT * W }, (_, i) => 0x3c00 | ((i * 2654435761) >>> 22 & 0x3ff));
using qkv = dev.alloc(qkvHost.byteLength);
qkv.copyFromHost(qkvHost);
using qbuf = dev.alloc(maxT * nH * hd * 2);
using out = dev.alloc(maxT * nH * hd * 2);
using pO = dev.alloc(maxT * nH * 64 * hd * 4);
using pML = dev.alloc(maxT * nH * 64 * 2 * 4);
using ctr = dev.alloc(maxT * nKV * 4);
ctr.fill(0);
using tables = dev.alloc(maxT * maxB * 4);
tables.copyFromHost(Int32Array.from({ length: maxT * maxB }, (_, i) => i));
using scales = dev.alloc(layers * 2 * nKV * 4);
scales.copyFromHost(Float32Array.from({ length: layers * 2 * nKV }, () => 0.02));
using inv = dev.alloc(hd / 2 * 8);
inv.copyFromHost(Float64Array.from({ length: hd / 2 }, (_, i) => 1 / 500000 ** ((2 * i) / hd)));
using pos = dev.alloc(maxT * 4);
using starts = dev.alloc((maxT + 1) * 4);
starts.copyFromHost(Int32Array.from({ length: maxT + 1 }, (_, i) => i));
using stream = dev.createStream();
using e0 = dev.createEvent();
using e1 = dev.createEvent();
const scale = 1 / Math.sqrt(hd);

/** Median graph replay time of `body` (32 layers' launches), µs per layer. */
function time(body: (s: typeof stream) => void): number {
  const g = stream.capture(body);
  g.launch(stream);
  stream.synchronize();
  const ts: number[] = [];
  for (let r = 0; r < 9; r++) {
    e0.record(stream);
    g.launch(stream);
    e1.record(stream);
    e1.synchronize();
    ts.push(e1.elapsedSince(e0));
  }
  g.dispose();
  return (ts.sort((a, b) => a - b)[4] * 1e3) / layers;
}

console.log(`llama-3.1-8b attention (32 / 8 heads, hd 128), ${layers} layers per graph, tokens per block ${bs}, maxSeqLen ${maxSeqLen}; µs per layer`);
console.log(
  "| batch | context | graph splits × keys | unfused fp8 (3 launches) | bf16 decode_attention | " +
    minKeysList.map((m) => `fused fp8, ≥ ${m} keys/split`).join(" | ") +
    variants.map((v) => ` | fused fp8 ${v.label}, ≥ ${minKeysList[0]}`).join("") + " | bf16 decode_attention_sk | **sk fp8** |" +
    skVariants.map((v) => ` sk fp8 ${v.label} |`).join("") + (values["sk-small"] ? " sk fp8 fp8DecodeSkSmall |" : ""),
);
console.log(
  "| ---: | ---: | --- | ---: | ---: | " +
    [...minKeysList, ...variants, 0, 0, ...skVariants, ...(values["sk-small"] ? [0] : [])].map(() => "---:").join(" | ") + " |",
);
for (const T of batches) {
  for (const ctx of ctxs) {
    pos.copyFromHost(Int32Array.from({ length: T }, () => ctx - 1));
    const geo = graphDecodeSplit(1, nKV, G, maxSeqLen, "bf16", dev.smCount);
    const grid = [nKV, T, geo.numSplits] as [number, number, number];
    const fusedArgs = (kv: bigint, minKeys: number): (bigint | number)[] => [
      qkv.ptr,
      out.ptr,
      kv,
      pos.ptr,
      starts.ptr,
      tables.ptr,
      inv.ptr,
      1,
      pO.ptr,
      pML.ptr,
      ctr.ptr,
      T,
      T,
      nH,
      nKV,
      bs,
      maxB,
      scale,
      0,
      minKeys,
      0n,
      0n,
    ];
    const unfused = time((st) => {
      for (let l = 0; l < layers; l++) {
        const sc = scales.ptr + BigInt(l * 2 * nKV * 4);
        kRope.launch(T, 128, [qkv.ptr, qbuf.ptr, kv8[l].ptr, pos.ptr, starts.ptr, tables.ptr, inv.ptr, 1, T, T, nH, nKV, hd, bs, maxB, sc], {
          stream: st,
          pdl: l > 0,
        });
        kPa.launch(grid, 128, [
          qbuf.ptr,
          out.ptr,
          kv8[l].ptr,
          pos.ptr,
          starts.ptr,
          tables.ptr,
          pO.ptr,
          pML.ptr,
          T,
          T,
          nH,
          nKV,
          bs,
          maxB,
          scale,
          0,
          geo.splitSize,
          sc,
        ], {
          stream: st,
          pdl: true,
        });
        if (geo.numSplits > 1) kRed.launch([nH, T, 1], hd, [pO.ptr, pML.ptr, out.ptr, T, nH, hd, geo.numSplits], { stream: st, pdl: true });
      }
    });
    const bf16 = time((st) => {
      for (let l = 0; l < layers; l++) kFused16.launch(grid, 128, fusedArgs(kv16[l].ptr, Math.min(geo.splitSize, 128)), { stream: st, pdl: l > 0 });
    });
    const fused = minKeysList.map((m) =>
      time((st) => {
        for (let l = 0; l < layers; l++) {
          kFused8.launch(grid, 128, [...fusedArgs(kv8[l].ptr, m), scales.ptr + BigInt(l * 2 * nKV * 4)], { stream: st, pdl: l > 0 });
        }
      })
    );
    const vs = variants.map((v) =>
      time((st) => {
        for (let l = 0; l < layers; l++) {
          v.k.launch(grid, 128, [...fusedArgs(kv8[l].ptr, minKeysList[0]), scales.ptr + BigInt(l * 2 * nKV * 4)], { stream: st, pdl: l > 0 });
        }
      })
    );
    // The sk kernels with the engine's graph geometry (grid z, split target).
    const skg = decodeSkGeometry(maxSeqLen, nKV, G, dev.smCount);
    const skGrid = [nKV, T, skg.numSplits] as [number, number, number];
    const sk = [false, true].map((q8) =>
      time((st) => {
        for (let l = 0; l < layers; l++) {
          const args = q8 ? [...fusedArgs(kv8[l].ptr, skg.splitSize), scales.ptr + BigInt(l * 2 * nKV * 4)] : fusedArgs(kv16[l].ptr, skg.splitSize);
          (q8 ? kSk8 : kSk16).launch(skGrid, 128, args, { stream: st, pdl: l > 0, sharedMemBytes: q8 ? DECODE_SK_FP8_SMEM : DECODE_SK_SMEM });
        }
      })
    );
    const skv = skVariants.map((v) =>
      time((st) => {
        for (let l = 0; l < layers; l++) {
          v.k.launch(skGrid, 128, [...fusedArgs(kv8[l].ptr, skg.splitSize), scales.ptr + BigInt(l * 2 * nKV * 4)], {
            stream: st,
            pdl: l > 0,
            sharedMemBytes: DECODE_SK_FP8_SMEM,
          });
        }
      })
    );
    // fp8DecodeSkSmall as the engine launches it: the grid for its short splits, 64 least keys in the split argument.
    const sg = decodeSkGeometry(maxSeqLen, nKV, G, dev.smCount, 0, FP8_DECODE_SK_SMALL_SPLIT);
    const small = values["sk-small"]
      ? [time((st) => {
        for (let l = 0; l < layers; l++) {
          const args = [...fusedArgs(kv8[l].ptr, decodeSkSplitArg(sg.splitSize, FP8_DECODE_SK_SMALL_SPLIT)), scales.ptr + BigInt(l * 2 * nKV * 4)];
          kSk8.launch([nKV, T, sg.numSplits], 128, args, { stream: st, pdl: l > 0, sharedMemBytes: DECODE_SK_FP8_SMEM });
        }
      })]
      : [];
    console.log(
      `| ${T} | ${ctx} | ${geo.numSplits} × ${geo.splitSize} | ${unfused.toFixed(2)} | ${bf16.toFixed(2)} | ${
        [...fused, ...vs, ...sk, ...skv, ...small].map((f) => f.toFixed(2)).join(" | ")
      } |`,
    );
  }
}
for (const b of [...kv8, ...kv16]) b.dispose();
for (const v of [...variants, ...skVariants]) v.mod.dispose();
