/**
 * bench/ledger: how fast the ledger writes balanced transactions, through the real billing code
 * and the database guard (triggers), on SQLite (a WAL file, synchronous=NORMAL, as the coordinator
 * opens it) and on a private PostgreSQL server (fsync off, as the tests start it).
 *
 *   node --import tsx bench/ledger/run.ts [--db sqlite|postgres|both] [--ops 20000]
 *        [--concurrency 16] [--leases 10000] [--clock real|fixed]
 *
 * Measured, each op one DB transaction (one business operation) with its idempotency key:
 *   deposit   WalletService.deposit: key lock + replay lookup + balance lock + 2 postings + row
 *   charge    Billing.chargeDeploy of a one-node quote: wallet → escrow + treasury, 4 postings
 * then batched, many ledger transactions per DB transaction:
 *   batched   Ledger.recordMany of wallet → wallet transfers, 500 per DB transaction
 *   settle    one settlement pass over N active leases (N/4 clusters × 4 nodes) in one DB
 *             transaction (Billing.settleLeases): first pass (nothing settled yet), then a second
 *             pass a minute later (each lease's earlier release read back first).
 * `cpuPerS` divides by this process's CPU time instead of wall time (SQLite runs in-process, so
 * it is the figure to read when other work shares the machine); on PostgreSQL `serverCpuS` is the
 * CPU time the private server's processes spent in the same span (from /proc), so client + server
 * CPU is the load-independent cost of a phase.
 * On PostgreSQL the ops run `--concurrency` at a time over the pool; SQLite has one writer.
 * Prints one JSON object on stdout.
 */
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import SQLite from "better-sqlite3";
import { Billing, type SettleInput } from "../../src/coordinator/billing/billing.ts";
import { Leg, walletAccount } from "../../src/coordinator/billing/ledger-accounts.ts";
import { Ledger } from "../../src/coordinator/billing/ledger.ts";
import { ManualRail } from "../../src/coordinator/billing/payment-rail.ts";
import { WalletService } from "../../src/coordinator/billing/wallet.ts";
import { ledgerAudit } from "../../src/coordinator/billing/audit.ts";
import { AccountRegistry } from "../../src/coordinator/registry/accounts.ts";
import { openStore, type Store } from "../../src/coordinator/store/database.ts";
import { DEFAULT_FEE_SCHEDULE } from "../../src/core/fees.ts";
import { money, units } from "../../src/core/money.ts";
import { IdPrefix, newId } from "../../src/protocol/ids.ts";
import { createDatabase, startPostgres } from "../../test/support/postgres.ts";
import { machine, progress, round2 } from "../support/stats.ts";

const { values: args } = parseArgs({
  options: {
    db: { type: "string", default: "both" },
    ops: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "16" },
    leases: { type: "string", default: "10000" },
    clock: { type: "string", default: "real" },
  },
});
const OPS = Number(args.ops);
const LEASES = Number(args.leases);
const NODES_PER_CLUSTER = 4;

interface Rate {
  n: number;
  wallS: number;
  perS: number;
  cpuPerS: number;
  serverCpuS?: number;
}

/** CPU seconds used so far by the PostgreSQL server on `port` and its backends (Linux /proc). */
function serverCpuS(port: string): number {
  const procs = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .flatMap((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
        const own = Number(fields[11]) + Number(fields[12]);
        // cutime + cstime: backends that ended (the pool closes idle ones) count in the parent.
        const ended = Number(fields[13]) + Number(fields[14]);
        return [{ pid, ppid: fields[1], ticks: own, ended, cmdline }];
      } catch {
        return []; // the process ended meanwhile
      }
    });
  const master = procs.find((p) => p.cmdline.join(" ").includes(`-p ${port} `));
  if (master === undefined) return Number.NaN;
  const ticks = procs
    .filter((p) => p.pid === master.pid || p.ppid === master.pid)
    .reduce((total, p) => total + p.ticks, master.ended);
  return ticks / 100; // USER_HZ
}

async function bench(store: Store, concurrency: number, serverPort?: string) {
  const ledger = new Ledger(store.dialect);
  const billing = new Billing(store.db, ledger, DEFAULT_FEE_SCHEDULE);
  const wallet = new WalletService(store.db, ledger, new ManualRail());
  const accounts = new AccountRegistry(store.db);
  const nowMs = Date.now();
  // Each operation's own time, as the coordinator passes it (ids are time-ordered, so the ledger's
  // id indexes grow at their end); `--clock fixed` gives every operation the same instant.
  const now = () => (args.clock === "fixed" ? nowMs : Date.now());
  const users: string[] = [];
  for (let i = 0; i < 64; i++)
    users.push((await accounts.createAccount(["consumer", "supplier"], nowMs)).accountId);

  const timed = async (label: string, n: number, body: () => Promise<void>): Promise<Rate> => {
    const cpu = process.cpuUsage();
    const server = serverPort === undefined ? 0 : serverCpuS(serverPort);
    const start = performance.now();
    await body();
    const wallS = (performance.now() - start) / 1000;
    const used = process.cpuUsage(cpu);
    const rate: Rate = {
      n,
      wallS: round2(wallS),
      perS: round2(n / wallS),
      cpuPerS: round2(n / ((used.user + used.system) / 1e6)),
    };
    if (serverPort !== undefined) rate.serverCpuS = round2(serverCpuS(serverPort) - server);
    progress(`${store.dialect} ${label}: ${JSON.stringify(rate)}`);
    return rate;
  };
  const run = (label: string, n: number, op: (i: number) => Promise<unknown>) =>
    timed(label, n, async () => {
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let i = next++; i < n; i = next++) await op(i);
        }),
      );
    });

  const deposits = await run("deposits", OPS, (i) =>
    wallet.deposit({
      requestedBy: "bench",
      idempotencyKey: `d${i}`,
      accountId: users[i % users.length]!,
      currency: "USDC",
      amount: money("1000"),
      nowMs: now(),
    }),
  );
  const quote = billing.quote({
    currency: "USDC",
    durationMinutes: 60,
    nodes: [{ nodeId: "node_x", pricePerHour: money("0.5") }],
  });
  const charges = await run("charges", OPS, (i) =>
    billing.transaction(async (tx) => {
      const result = await billing.chargeDeploy(tx, {
        clusterId: newId(IdPrefix.cluster),
        consumerAccountId: users[i % users.length]!,
        quote,
        idempotencyKey: `c${i}`,
        nowMs: now(),
      });
      if (!result.ok) throw new Error("bench charge refused");
    }),
  );
  const BATCH = 500;
  // Sequential: every batch touches all 64 wallets, so batches would only queue on their rows.
  const batches = Math.ceil(OPS / BATCH);
  const batch = (b: number) =>
    billing.transaction(async (tx) => {
      await ledger.recordMany(
        tx,
        Array.from({ length: BATCH }, (_, i) => {
          const from = users[(b * BATCH + i) % users.length]!;
          const to = users[(b * BATCH + i + 1) % users.length]!;
          return {
            idempotencyKey: `t${b}-${i}`,
            kind: "withdrawal" as const,
            requestHash: "bench",
            metadata: {},
            response: (id: string) => ({ id }),
            nowMs: now(),
            postings: [
              {
                account: walletAccount(from),
                currency: "USDC" as const,
                amount: units(-1n),
                leg: Leg.TRANSFER,
              },
              {
                account: walletAccount(to),
                currency: "USDC" as const,
                amount: units(1n),
                leg: Leg.TRANSFER,
              },
            ],
          };
        }),
      );
    });
  const batched = await timed("batched transfers", batches, async () => {
    for (let b = 0; b < batches; b++) await batch(b);
  });

  // Settlement: N/4 clusters of 4 nodes, each charged for 10 hours.
  const clusterQuote = billing.quote({
    currency: "USDC",
    durationMinutes: 600,
    nodes: Array.from({ length: NODES_PER_CLUSTER }, (_, i) => ({
      nodeId: `node_${i}`,
      pricePerHour: money("1.234567"),
    })),
  });
  const leases: SettleInput[] = [];
  const clusters = Math.ceil(LEASES / NODES_PER_CLUSTER);
  await run("cluster charges", clusters, async (c) => {
    const clusterId = newId(IdPrefix.cluster);
    await billing.transaction((tx) =>
      billing.chargeDeploy(tx, {
        clusterId,
        consumerAccountId: users[c % users.length]!,
        quote: clusterQuote,
        idempotencyKey: `k${c}`,
        nowMs: now(),
      }),
    );
    for (let i = 0; i < NODES_PER_CLUSTER && leases.length < LEASES; i++)
      leases.push({
        clusterId,
        leaseId: `${clusterId}:${i}`,
        supplierAccountId: users[(c + i + 1) % users.length]!,
        currency: "USDC",
        pricePerHour: money("1.234567"),
        servedMinutes: 0,
        nowMs: now(),
      });
  });
  const pass = (minute: number) =>
    timed(`settlement pass at minute ${minute}`, leases.length, async () => {
      const passMs = now();
      const results = await billing.transaction((tx) =>
        billing.settleLeases(
          tx,
          leases.map((l) => ({ ...l, servedMinutes: minute, nowMs: passMs })),
        ),
      );
      if (!results.every((r) => r.ok && r.transactionId !== null))
        throw new Error("a settlement failed");
    });
  const firstPass = await pass(60);
  const secondPass = await pass(61);

  const auditStart = performance.now();
  const audit = await ledgerAudit(store.db);
  return {
    deposits,
    charges,
    batchedTransfers: {
      ...batched,
      n: batched.n * BATCH,
      perS: round2(batched.perS * BATCH),
      cpuPerS: round2(batched.cpuPerS * BATCH),
    },
    settlementPass: { leases: leases.length, first: firstPass, second: secondPass },
    audit: { ms: round2(performance.now() - auditStart), ok: audit.ok, postings: audit.postings },
  };
}

/**
 * How loaded the machine is right now: MACHINE-NOTES.md measured 10k plain inserts in one SQLite
 * transaction at ≈ 7 ms on an idle machine; a larger figure here scales every figure below.
 */
function calibrationMs(): number {
  const database = new SQLite(":memory:");
  database.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)");
  const insert = database.prepare("INSERT INTO t (a, b) VALUES (?, ?)");
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const start = performance.now();
    database.transaction(() => {
      for (let i = 0; i < 10_000; i++) insert.run(`x${i}`, i);
    })();
    times.push(performance.now() - start);
  }
  database.close();
  return round2(Math.min(...times));
}

const result: Record<string, unknown> = {
  machine: machine(),
  ops: OPS,
  calibration: { plainInserts10kMs: calibrationMs(), idleMachineMs: 7 },
};
progress(`load average at start: ${loadavg().map(round2).join(" ")}`);
if (args.db === "sqlite" || args.db === "both") {
  const dir = await mkdtemp(join(tmpdir(), "tandem-bench-ledger-"));
  const store = await openStore({ kind: "sqlite", path: join(dir, "coordinator.db") });
  try {
    result.sqlite = await bench(store, 1);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}
if (args.db === "postgres" || args.db === "both") {
  const server = await startPostgres();
  try {
    const url = await createDatabase(server.url, "bench_ledger");
    const store = await openStore({ kind: "postgres", url });
    try {
      result.postgres = {
        concurrency: Number(args.concurrency),
        ...(await bench(store, Number(args.concurrency), new URL(server.url).port)),
      };
    } finally {
      await store.close();
    }
  } finally {
    await server.stop();
  }
}
result.loadAvgAtEnd = loadavg().map(round2);
result.calibrationAtEnd = calibrationMs();
process.stdout.write(JSON.stringify(result, null, 2) + "\n");
