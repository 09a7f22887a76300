/** A free TCP port on 127.0.0.1 for the tensor-parallel link tests (tp_rendezvous, tp_multiprocess). */
import * as net from "node:net";

/** Asks the OS for a free port and releases it (a test then listens there). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}
