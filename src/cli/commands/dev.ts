import { spawn, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { REGIONS } from "../../core/regions.ts";
import { ENROLLMENT_TTL_SECONDS } from "../../protocol/enrollment.ts";
import type { Coordinator } from "../../coordinator/main.ts";
import { readLogin, saveLogin, tandemHome } from "../context.ts";
import { parseIntOption, withJson } from "./common.ts";
import { listenAddress, listeningOn } from "./coordinator.ts";
import { untilSignal } from "./signals.ts";

const TANDEM_BIN = fileURLToPath(new URL("../../../bin/tandem.js", import.meta.url));

interface DevOptions {
  host: string;
  port: number;
  workers: number;
  region: string;
  json?: boolean;
}

/**
 * `tandem dev`: a whole network on one machine — a coordinator on SQLite in this process and N
 * workers as real child processes (each with its own device key), spread over a region's zones.
 */
export function registerDevCommand(program: Command): void {
  withJson(
    program
      .command("dev")
      .description("run a local network: coordinator on SQLite + local workers"),
  )
    .option(
      "--host <host>",
      "coordinator address (0.0.0.0: every address, for workers on other machines)",
      "127.0.0.1",
    )
    .option("--port <port>", "coordinator port", parseIntOption("--port"), 7400)
    .option("--workers <n>", "local workers to start", parseIntOption("--workers"), 3)
    .option("--region <region>", "region of the local workers", "eu-west")
    .action(async (options: DevOptions) => {
      const region = REGIONS.find((r) => r.id === options.region);
      if (region === undefined)
        throw new Error(
          `unknown region ${options.region}; one of ${REGIONS.map((r) => r.id).join(", ")}`,
        );
      const home = join(tandemHome(), "dev");
      const { SMALL_PROOF_POLICY } = await import("../../coordinator/config.ts");
      const { startCoordinator } = await import("../../coordinator/main.ts");
      const coordinator = await startCoordinator({
        home,
        host: options.host,
        port: options.port,
        logLevel: "warn",
        faucet: true,
        // Local workers prove on this machine (no GPU, or a fixture one): small proofs.
        proof: SMALL_PROOF_POLICY,
        // Spot checks of idle nodes every few minutes rather than hourly, so they can be seen.
        proofIntervalMs: 120_000,
        // Unstaked TDM can be withdrawn after 30 seconds rather than 14 days.
        stake: { cooldownMs: 30_000 },
        // A machine that cannot isolate (not root, a tool missing) still runs a dev network; its
        // workers say which parts they could not set up.
        jobNetworks: "optional",
      });
      const apiKey = await devAccountKey(coordinator, home);
      if ((await readLogin()) === undefined) await saveLogin({ url: coordinator.url, apiKey });

      // Each worker enrolls with its own single-use token: no worker process gets the API key.
      const devAccount = await coordinator.accounts.authenticate(apiKey);
      if (devAccount === undefined) throw new Error("the dev account's key was refused");
      const workers = [];
      for (let i = 0; i < options.workers; i++) {
        const zone = region.zones[i % region.zones.length]!;
        const { token } = await coordinator.enrollment.issue(
          devAccount.accountId,
          ENROLLMENT_TTL_SECONDS.default * 1000,
          Date.now(),
        );
        workers.push(
          spawnWorker(`w${i + 1}`, {
            url: coordinator.url,
            enrollmentToken: token,
            region: region.id,
            zone,
            home: join(home, "workers", `w${i + 1}`),
          }),
        );
      }
      await waitForWorkers(coordinator, options.workers);

      const summary = {
        url: coordinator.url,
        listen: listenAddress(options.host, coordinator.url),
        explorerUrl: `${coordinator.url}/`,
        apiKey,
        adminKeyFile: join(home, "admin.key"),
        workers: workers.map((w) => ({ name: w.name, zone: w.zone, pid: w.child.pid ?? null })),
      };
      if (options.json) process.stdout.write(JSON.stringify(summary) + "\n");
      else {
        process.stdout.write(
          [
            "",
            "Tandem dev network is up.",
            `  explorer:   ${summary.explorerUrl}`,
            `  API:        ${coordinator.url}/v1   (OpenAPI at ${coordinator.url}/v1/openapi.json)`,
            `  listening:  ${listeningOn(options.host, coordinator.url)}`,
            `  API key:    ${apiKey}   (consumer + supplier)`,
            `  admin key:  ${summary.adminKeyFile}`,
            // Each worker's PID, to stop one (`kill -9 <pid>`) and watch its node go offline.
            ...summary.workers.map(
              (w, i) =>
                `  ${i === 0 ? "workers:   " : "           "} ${w.name} (${w.zone}) pid ${w.pid ?? "?"}`,
            ),
            "",
            "Try:  npm run tandem -- nodes list",
            `      TANDEM_API_KEY=${apiKey} npm run tandem -- account show`,
            "Ctrl-C stops everything.",
            "",
          ].join("\n"),
        );
      }

      await untilSignal();
      await Promise.all(workers.map((w) => stopChild(w.child)));
      await coordinator.close();
    });
}

/** The dev account (consumer + supplier): reused across restarts so the workers keep their nodes. */
async function devAccountKey(coordinator: Coordinator, home: string): Promise<string> {
  const path = join(home, "dev.key");
  const saved = await readFile(path, "utf8").then(
    (text) => text.trim(),
    () => undefined,
  );
  if (saved !== undefined && (await coordinator.accounts.authenticate(saved)) !== undefined)
    return saved;
  const { apiKey } = await coordinator.accounts.createAccount(["consumer", "supplier"], Date.now());
  await writeFile(path, apiKey + "\n", { mode: 0o600 });
  return apiKey;
}

function spawnWorker(
  name: string,
  w: { url: string; enrollmentToken: string; region: string; zone: string; home: string },
) {
  const env: NodeJS.ProcessEnv = { ...process.env, TANDEM_URL: w.url };
  env.TANDEM_ENROLL_TOKEN = w.enrollmentToken;
  delete env.TANDEM_API_KEY;
  const child = spawn(
    process.execPath,
    [
      TANDEM_BIN,
      "worker",
      "start",
      "--region",
      w.region,
      "--zone",
      w.zone,
      "--home",
      w.home,
      "--allow-unsandboxed",
      // The coordinator is in this process: on `--host <an address of this machine>` its URL is
      // not loopback, yet the traffic never leaves this machine.
      "--insecure",
    ],
    {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  // Workers log JSON lines to stderr; show only what needs attention.
  createInterface({ input: child.stderr }).on("line", (line) => {
    if (!/"message":"(registered|connected|job runtime|job [^"]* limits: [^"]*)"/.test(line))
      process.stderr.write(`[${name}] ${line}\n`);
  });
  child.on("exit", (code, signal) => {
    if (signal !== "SIGTERM" && code !== 0)
      process.stderr.write(`[${name}] worker exited (${signal ?? `code ${code}`})\n`);
  });
  return { name, zone: w.zone, child };
}

async function waitForWorkers(coordinator: Coordinator, count: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (coordinator.gateway.connectedWorkers < count) {
    if (Date.now() > deadline)
      throw new Error(
        `only ${coordinator.gateway.connectedWorkers} of ${count} workers connected within 60 s`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
