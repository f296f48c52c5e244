/**
 * A process that makes one reward block and is meant to be SIGKILLed in the middle of it (the
 * kill -9 test): `node --import tsx reward-block-child.ts <sqlite path | postgres url> <genesis ms>
 * <hour>`. It pays one node per ledger batch and, after each batch, prints `progress <n>` and
 * holds still for 300 ms, its DB transaction open, so a kill lands mid-block.
 */
import { Ledger } from "../../src/coordinator/billing/ledger.ts";
import { RewardBlocks } from "../../src/coordinator/economics/reward-blocks.ts";
import { CoordinatorEvents } from "../../src/coordinator/events.ts";
import { openStore } from "../../src/coordinator/store/database.ts";
import { DEFAULT_EMISSION_SCHEDULE, MS_PER_HOUR } from "../../src/core/emission.ts";
import { DEFAULT_STAKE_MINIMUMS } from "../../src/core/stake.ts";

const [where, genesis, hour] = process.argv.slice(2) as [string, string, string];
const store = await openStore(
  where.startsWith("postgres") ? { kind: "postgres", url: where } : { kind: "sqlite", path: where },
);
const hold = new Int32Array(new SharedArrayBuffer(4));
const blocks = new RewardBlocks(
  store.db,
  new Ledger(store.dialect),
  new CoordinatorEvents(),
  {
    genesisAtMs: Number(genesis),
    schedule: DEFAULT_EMISSION_SCHEDULE,
    minimums: DEFAULT_STAKE_MINIMUMS,
    defaultCommissionBps: 1000,
  },
  {
    maxBlocksPerRun: 1,
    batch: 1,
    onProgress: (_hour, paid) => {
      process.stdout.write(`progress ${paid}\n`);
      Atomics.wait(hold, 0, 0, 300);
    },
  },
);
await blocks.pay(Number(hour), Number(genesis) + (Number(hour) + 1) * MS_PER_HOUR + 1);
process.stdout.write("done\n");
await store.close();
