/**
 * The user side of the coordinator crash tests: a consumer, a supplier and an admin doing real
 * money operations through the API — deposits, deploys, extensions, terminations, withdrawals —
 * one after another, while a killer SIGKILLs the coordinator under them. A request cut by a kill is
 * sent again with the same idempotency key once the coordinator is back (`answered`), as a client
 * should; what each operation was finally answered is kept, to check the database against.
 *
 * Extensions carry no idempotency key (the API takes none for them), so one cut by a kill is not
 * sent again: its outcome is unknown to the client, and the checks hold the database to "one
 * charge per recorded extension" instead.
 */
import assert from "node:assert/strict";
import { TandemApiError, type TandemClient } from "../../src/client/client.ts";
import { ZERO, add, formatMoney, money, units } from "../../src/core/money.ts";
import type { RestartableCoordinator } from "./restartable-coordinator.ts";

export type Operation = "deploy" | "terminate" | "extend" | "deposit" | "withdraw";

const FINAL = new Set(["completed", "failed", "terminated", "expired"]);
/** How often each operation comes up: deploys and terminations most, they move the most money. */
const WEIGHTED: readonly Operation[] = [
  "deploy",
  "deploy",
  "deploy",
  "terminate",
  "terminate",
  "terminate",
  "extend",
  "deposit",
  "withdraw",
];

export interface CrashParties {
  readonly admin: { client: TandemClient; accountId: string };
  readonly consumer: { client: TandemClient; accountId: string };
  readonly supplier: { client: TandemClient; accountId: string };
}

type Answer<T> = { ok: true; value: T } | { ok: false; code: string; message: string };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pick = <T>(items: readonly T[]): T | undefined =>
  items[Math.floor(Math.random() * items.length)];

export class CrashDriver {
  /** `<account>:<key>` as the scheduler stores a deploy key → the cluster answered, or null. */
  readonly deploys = new Map<string, string | null>();
  /** `api:<requestedBy>:<key>` as the wallet stores a movement key → whether it succeeded. */
  readonly movements = new Map<string, boolean>();
  readonly clusters = new Set<string>();
  /** The clusters deployed to run long (settled per minute) rather than to churn. */
  private readonly long = new Set<string>();
  /** How long each cluster's job sleeps, s. */
  private readonly seconds = new Map<string, number>();
  /** Σ deposits and Σ withdrawals the coordinator answered with success. */
  deposited = ZERO;
  withdrawn = ZERO;
  readonly extensions = { answered: 0, refused: 0, cut: 0 };
  /** Requests sent again after a kill cut them. */
  resent = 0;
  /** Answers with a 5xx status: never acceptable (DESIGN §8.4). */
  readonly serverErrors: string[] = [];
  /** Requests under way now, by operation. */
  readonly inFlight = new Map<Operation, number>();
  /** Round-trip times of answered requests by operation, ms (the killer aims inside them). */
  readonly latenciesMs = new Map<Operation, number[]>();
  /** Each answers true once it is done listening. */
  private requestListeners: Array<(operation: Operation | undefined) => boolean> = [];
  private counter = 0;
  private stopping = false;

  constructor(
    private readonly coordinator: RestartableCoordinator,
    private readonly parties: CrashParties,
  ) {}

  /**
   * Resolves with `operation` once its next request goes out, or undefined after `timeoutMs` or
   * once the driver stops.
   */
  nextRequest(operation: Operation, timeoutMs: number): Promise<Operation | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.requestListeners = this.requestListeners.filter((l) => l !== listener);
        resolve(undefined);
      }, timeoutMs);
      const listener = (sent: Operation | undefined) => {
        if (sent !== undefined && sent !== operation) return false;
        clearTimeout(timer);
        resolve(sent);
        return true;
      };
      this.requestListeners.push(listener);
    });
  }

  /** The median round trip of `operation`'s answered requests so far, ms. */
  medianLatencyMs(operation: Operation): number | undefined {
    const sorted = [...(this.latenciesMs.get(operation) ?? [])].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  /** Runs random operations until `stop()`; rejects with the first broken expectation. */
  async run(): Promise<void> {
    try {
      while (!this.stopping) {
        await this.operations[pick(WEIGHTED)!]();
        await sleep(50 + Math.random() * 200);
      }
    } finally {
      this.stopping = true;
      for (const listener of this.requestListeners.splice(0)) listener(undefined);
    }
  }

  stop(): void {
    this.stopping = true;
  }

  get stopped(): boolean {
    return this.stopping;
  }

  /** Sends `call` until the coordinator answers; a request cut by a kill goes again, same key. */
  async answered<T>(
    operation: Operation | undefined,
    call: () => Promise<T>,
    options: { resend: boolean } = { resend: true },
  ): Promise<Answer<T>> {
    for (let attempt = 1; ; attempt++) {
      await this.coordinator.whenUp();
      const sentAtMs = Date.now();
      if (operation !== undefined) {
        this.inFlight.set(operation, (this.inFlight.get(operation) ?? 0) + 1);
        this.requestListeners = this.requestListeners.filter((listener) => !listener(operation));
      }
      try {
        const value = await call();
        if (operation !== undefined) {
          const latencies = this.latenciesMs.get(operation) ?? [];
          latencies.push(Date.now() - sentAtMs);
          this.latenciesMs.set(operation, latencies);
        }
        return { ok: true, value };
      } catch (error) {
        if (error instanceof TandemApiError) {
          if (error.status >= 500)
            this.serverErrors.push(`${operation ?? "read"}: ${error.code} ${error.message}`);
          return { ok: false, code: error.code, message: error.message };
        }
        if (!options.resend) return { ok: false, code: "CUT", message: String(error) };
        if (attempt >= 20) throw error;
        if (operation !== undefined) this.resent += 1;
      } finally {
        if (operation !== undefined)
          this.inFlight.set(operation, this.inFlight.get(operation)! - 1);
      }
    }
  }

  /** A read, sent again until answered; a refusal is a test failure. */
  async read<T>(call: () => Promise<T>): Promise<T> {
    const answer = await this.answered(undefined, call);
    if (!answer.ok) throw new Error(`a read was refused: ${answer.code} ${answer.message}`);
    return answer.value;
  }

  /**
   * Ends every cluster still up (a termination ends it exactly once, however often asked).
   * Answers how many were in each status before that ("ran, …" once they had run), and how many
   * short jobs ran but never reported their exit (lost while the coordinator was down).
   */
  async endAll(): Promise<{ statuses: Record<string, number>; exitsLost: number }> {
    const { consumer } = this.parties;
    const statuses: Record<string, number> = {};
    let exitsLost = 0;
    for (const id of this.clusters) {
      const view = await this.read(() => consumer.client.getCluster(id));
      const running = view.events.find((e) => e.type === "running");
      const status = `${running === undefined ? "" : "ran, "}${view.status}`;
      statuses[status] = (statuses[status] ?? 0) + 1;
      const seconds = this.seconds.get(id) ?? 0;
      const end = view.endedAt === null ? Date.now() : Date.parse(view.endedAt);
      if (
        running !== undefined &&
        seconds < 60 &&
        !view.events.some((e) => e.type === "rank-exited") &&
        end - Date.parse(running.at) > (seconds + 3) * 1000
      )
        exitsLost += 1;
      if (FINAL.has(view.status)) continue;
      const ended = await this.read(() => consumer.client.terminateCluster(id));
      assert.ok(FINAL.has(ended.status), `${id} is ${ended.status} after terminate`);
    }
    return { statuses, exitsLost };
  }

  private async liveClusters() {
    const views = await this.read(() => this.parties.consumer.client.listClusters());
    return views.items.filter((c) => !FINAL.has(c.status));
  }

  /**
   * Each operation does what the run calls for at the moment, or nothing; `now` asks for its
   * request whatever the moment (a short deploy, a termination of any cluster up).
   */
  readonly operations: Record<Operation, (now?: boolean) => Promise<void>> = {
    deploy: async (now = false) => {
      const { consumer } = this.parties;
      // Two long clusters of one node (and maybe a standby) live across kills and are settled per
      // minute; the remaining nodes churn through short ones, completed or terminated early.
      const live = await this.liveClusters();
      const long = !now && live.filter((c) => this.long.has(c.id)).length < 2;
      if (!now && !long && live.length >= 3) return;
      const key = `deploy-${++this.counter}`;
      const seconds = long || Math.random() < 0.2 ? 600 : 2 + Math.floor(Math.random() * 4);
      // Drawn once: a resend must be the same request, or its key is refused as reused.
      const request = {
        kind: "batch" as const,
        gpuModel: "cpu",
        nodes: long ? 1 : 1 + Math.floor(Math.random() * 2),
        ...(Math.random() < 0.3 ? { shadow: 1 } : {}),
        hours: 1,
        command: ["sh", "-c", `sleep ${seconds}`],
      };
      const answer = await this.answered("deploy", () =>
        consumer.client.deployCluster(request, key),
      );
      this.deploys.set(`${consumer.accountId}:${key}`, answer.ok ? answer.value.id : null);
      if (answer.ok) {
        this.clusters.add(answer.value.id);
        this.seconds.set(answer.value.id, seconds);
        if (long) this.long.add(answer.value.id);
      } else
        assert.ok(
          answer.code === "NO_CAPACITY" || answer.code === "INSUFFICIENT_FUNDS",
          `deploy ${key}: ${answer.code} ${answer.message}`,
        );
    },

    terminate: async (now = false) => {
      const live = await this.liveClusters();
      // Long clusters after a minute and a half (a settled minute or two); short ones mostly once
      // their job had time to finish, now and then early (mid-deploy, mid-run).
      const due = live.filter((c) => {
        const ageMs = Date.now() - Date.parse(c.createdAt);
        if (this.long.has(c.id)) return ageMs > 90_000;
        return now || Math.random() < (ageMs > 6_000 ? 0.6 : 0.15);
      });
      // Asked for now with no short cluster up: one that has ended (answered, nothing changes).
      const ended = [...this.clusters].filter((id) => !live.some((c) => c.id === id));
      const target = pick(due)?.id ?? (now ? pick(ended) : undefined);
      if (target === undefined) return;
      const client = this.parties.consumer.client;
      const answer = await this.answered("terminate", () => client.terminateCluster(target));
      assert.ok(answer.ok, `terminate ${target}: ${answer.ok ? "" : answer.message}`);
      assert.ok(FINAL.has(answer.value.status), `${target} is ${answer.value.status}`);
    },

    extend: async () => {
      const target = pick((await this.liveClusters()).filter((c) => c.status === "running"));
      if (target === undefined) return;
      const client = this.parties.consumer.client;
      const answer = await this.answered("extend", () => client.extendCluster(target.id, 1), {
        resend: false,
      });
      if (answer.ok) this.extensions.answered += 1;
      else if (answer.code === "CUT") this.extensions.cut += 1;
      else {
        // The cluster ended meanwhile, or withdrawals left the wallet short.
        assert.ok(
          answer.code === "INVALID_TRANSITION" || answer.code === "INSUFFICIENT_FUNDS",
          `extend: ${answer.code} ${answer.message}`,
        );
        this.extensions.refused += 1;
      }
    },

    deposit: async () => {
      const { admin, consumer } = this.parties;
      const key = `deposit-${++this.counter}`;
      const amount = units(1_000_000n + BigInt(Math.floor(Math.random() * 20_000_000)));
      const answer = await this.answered("deposit", () =>
        admin.client.deposit(
          { accountId: consumer.accountId, currency: "USDC", amount: formatMoney(amount) },
          key,
        ),
      );
      assert.ok(answer.ok, `deposit ${key}: ${answer.ok ? "" : answer.message}`);
      assert.equal(answer.value.amount, formatMoney(amount));
      this.movements.set(`api:${admin.accountId}:${key}`, true);
      this.deposited = add(this.deposited, amount);
    },

    withdraw: async () => {
      const key = `withdrawal-${++this.counter}`;
      const fromEarnings = Math.random() < 0.6;
      const payer = fromEarnings ? this.parties.supplier : this.parties.consumer;
      const balance = (await this.read(() => payer.client.wallet())).balances.find(
        (b) => b.currency === "USDC",
      );
      const available = money((fromEarnings ? balance?.earnings : balance?.wallet) ?? "0");
      // Half of it, or now and then a unit more than all of it (refused: nothing moves).
      const amount = units(Math.random() < 0.15 ? available + 1n : available / 2n);
      if (amount <= 0n) return;
      const answer = await this.answered("withdraw", () =>
        payer.client.withdraw(
          {
            currency: "USDC",
            amount: formatMoney(amount),
            from: fromEarnings ? "earnings" : "wallet",
          },
          key,
        ),
      );
      if (!answer.ok)
        assert.equal(answer.code, "INSUFFICIENT_FUNDS", `withdraw ${key}: ${answer.message}`);
      this.movements.set(`api:${payer.accountId}:${key}`, answer.ok);
      if (answer.ok) this.withdrawn = add(this.withdrawn, amount);
    },
  };
}
