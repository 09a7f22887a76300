/** `llmrt tp-worker`: one tensor-parallel rank in its own process, joining rank 0 over `--tp-master`. */
import { runTpWorker } from "../../mod.ts";
import { UsageError } from "../cli/args.ts";
import type { Command } from "../cli/command.ts";
import { modelDir } from "../cli/model.ts";

export const tpWorker: Command = {
  name: "tp-worker",
  summary: "run one tensor-parallel rank that joins rank 0 (--tp-master) from another process or host",
  usage: "--tp-master HOST:PORT --rank R [--model DIR] [options]",
  description: "Rank 0 is the process that serves or generates, started with --tp N --tp-master ADDR:PORT (it listens there);\n" +
    "ranks 1..N-1 each run `llmrt tp-worker --tp-master HOST:PORT --rank R --model DIR` on this or another host, with the\n" +
    "same engine directory (llmrt build --tp N) or the same checkpoint. The rank gets the NCCL unique id and every step\n" +
    "from rank 0 and exits when rank 0 ends the session (0) or goes away (1).",
  options: [
    { name: "model", type: "string", valueName: "DIR", help: "engine directory (llmrt build --tp N) or HF checkpoint (default: the embedded model)" },
    { name: "tp-master", type: "string", valueName: "HOST:PORT", help: "rank 0's address (required)" },
    { name: "rank", type: "int", min: 1, max: 1023, help: "this rank, 1..N-1 (required)" },
    { name: "tp", type: "int", min: 2, max: 1024, valueName: "N", help: "group size expected (checked against rank 0's)" },
    { name: "device", type: "int", min: 0, help: "CUDA device of this rank (default: rank mod the visible device count)" },
    { name: "connect-timeout", type: "number", gt: 0, default: 300, valueName: "SECONDS", help: "how long to keep trying to reach rank 0" },
  ],
  async run({ values }): Promise<number> {
    const master = values["tp-master"] as string | undefined;
    const rank = values.rank as number | undefined;
    if (!master || rank === undefined) throw new UsageError("tp-worker needs --tp-master HOST:PORT and --rank R (see llmrt tp-worker --help)");
    await runTpWorker({
      model: modelDir(values),
      tpMaster: master,
      rank,
      tensorParallelSize: values.tp as number | undefined,
      device: values.device as number | undefined,
      connectTimeoutMs: Math.round((values["connect-timeout"] as number) * 1000),
    }, (line) => console.error(`[llmrt tp-worker] ${line}`));
    return 0;
  },
};
