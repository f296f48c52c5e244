/**
 * A real `tandem coordinator` process that a test may SIGKILL at any instant and start again on
 * the same port, home and database, so its workers and clients find it where they left it.
 *
 * While it is down, `whenUp()` answers a promise that settles once the next incarnation answers
 * `/v1/health`: a client whose request died with the process waits on it, then retries.
 */
import { join } from "node:path";
import { TandemClient } from "../../src/client/client.ts";
import { freeLoopbackPort } from "./postgres.ts";
import { spawnTandem, type TandemProcess, SMALL_PROOF_FLAGS } from "./processes.ts";

export interface RestartableCoordinatorOptions {
  /** TANDEM_HOME of every incarnation (admin.key and the SQLite file live here). */
  readonly home: string;
  /** PostgreSQL URL; absent means SQLite in the home. */
  readonly databaseUrl?: string | undefined;
  /** Extra `tandem coordinator` flags (heartbeats and the like). */
  readonly flags: readonly string[];
}

export class RestartableCoordinator {
  private process: TandemProcess | undefined;
  /** stderr lines of every incarnation, oldest first. */
  private readonly stderr: string[] = [];
  private up: Promise<void> = Promise.resolve();
  /** How many incarnations have been SIGKILLed. */
  kills = 0;
  /** How long each restart took, kill to health, ms. */
  private readonly restartsMs: number[] = [];

  private constructor(
    private readonly options: RestartableCoordinatorOptions,
    /** The fixed base URL of every incarnation. */
    readonly url: string,
  ) {}

  /** Starts the first incarnation on a free loopback port. */
  static async start(options: RestartableCoordinatorOptions): Promise<RestartableCoordinator> {
    const port = await freeLoopbackPort();
    const coordinator = new RestartableCoordinator(options, `http://127.0.0.1:${port}`);
    await coordinator.launch(port);
    return coordinator;
  }

  get adminKeyFile(): string {
    return join(this.options.home, "admin.key");
  }

  /** Settles once the coordinator answers `/v1/health` (at once while it is up). */
  whenUp(): Promise<void> {
    return this.up;
  }

  /** SIGKILLs the running incarnation, then starts the next on the same port and waits for it. */
  async killAndRestart(): Promise<void> {
    let markUp!: () => void;
    let markFailed!: (error: unknown) => void;
    this.up = new Promise<void>((resolve, reject) => {
      markUp = resolve;
      markFailed = reject;
    });
    // A restart that fails must fail the waiters too, not leave them hanging.
    this.up.catch(() => undefined);
    const killedAtMs = Date.now();
    try {
      await this.process?.kill("SIGKILL");
      this.stderr.push(...(this.process?.stderr ?? []));
      this.kills += 1;
      await this.launch(Number(new URL(this.url).port));
      this.restartsMs.push(Date.now() - killedAtMs);
      markUp();
    } catch (error) {
      markFailed(error);
      throw error;
    }
  }

  /** The median time from a kill to the next incarnation answering, ms. */
  medianRestartMs(): number | undefined {
    return [...this.restartsMs].sort((a, b) => a - b)[Math.floor(this.restartsMs.length / 2)];
  }

  /** Stops the running incarnation cleanly (SIGTERM). */
  async stop(): Promise<void> {
    await this.process?.kill("SIGTERM");
    this.process = undefined;
  }

  /** Lines every incarnation wrote to stderr that match `pattern`, for a failure message. */
  logged(pattern: RegExp): string[] {
    return [...this.stderr, ...(this.process?.stderr ?? [])].filter((line) => pattern.test(line));
  }

  private async launch(port: number): Promise<void> {
    const { home, databaseUrl, flags } = this.options;
    this.process = spawnTandem(
      [
        "coordinator",
        ...SMALL_PROOF_FLAGS,
        "--port",
        String(port),
        "--json",
        ...(databaseUrl === undefined ? [] : ["--database-url", databaseUrl]),
        ...flags,
      ],
      { TANDEM_HOME: home },
    );
    await this.process.line(/^\{/, 60_000);
    const anonymous = new TandemClient({ baseUrl: this.url, timeoutMs: 5_000 });
    let lastError: unknown;
    const deadlineMs = Date.now() + 60_000;
    for (;;) {
      try {
        await anonymous.health();
        return;
      } catch (error) {
        lastError = error;
      }
      if (Date.now() > deadlineMs)
        throw new Error(`the coordinator on ${this.url} did not answer /v1/health`, {
          cause: lastError,
        });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
