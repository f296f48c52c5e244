// The network `bench/cli-start` lists, in a process of its own (its test helpers load node:test,
// whose report would mix into the benchmark's JSON): a coordinator on SQLite whose `nodes` are
// simulated workers over real WebSockets. IPC: posts `{ url }` once up, closes on "stop" or when
// the benchmark goes.
import { openTestStore, startTestCoordinator } from "../../test/support/coordinator.ts";
import { simulatedNetwork } from "../../test/support/simulated-network.ts";

const cleanups: Array<() => unknown> = [];
const network = await simulatedNetwork(
  {
    kind: "sqlite",
    startCoordinator: (opts = {}) => startTestCoordinator({ ...opts, database: "sqlite" }),
    openStore: () => openTestStore("sqlite"),
  },
  { after: (fn) => cleanups.unshift(fn) },
  Number(process.argv[2]),
);
process.send?.({ url: network.net.url });
const stop = async () => {
  for (const cleanup of cleanups) await cleanup();
  process.exit(0);
};
// "stop", or the benchmark gone (its IPC channel closed): never outlive it.
process.once("message", () => void stop());
process.once("disconnect", () => void stop());
