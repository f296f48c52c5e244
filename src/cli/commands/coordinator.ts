import type { Command } from "commander";
import { startCoordinator } from "../../coordinator/main.ts";
import { tandemHome } from "../context.ts";
import { parseIntOption, withJson } from "./common.ts";
import { untilSignal } from "./signals.ts";

interface CoordinatorOptions {
  host: string;
  port: number;
  databaseUrl?: string;
  databasePasswordFile?: string;
  closedSignup?: boolean;
  pricingMode: "catalog" | "market";
  heartbeatIntervalMs?: number;
  missedHeartbeats?: number;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  json?: boolean;
}

export function registerCoordinatorCommand(program: Command): void {
  withJson(
    program
      .command("coordinator")
      .description("run the coordinator: REST API, worker gateway, explorer"),
  )
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port to listen on", parseIntOption("--port"), 7400)
    .option(
      "--database-url <url>",
      "PostgreSQL URL (default: SQLite in $TANDEM_HOME/coordinator.db)",
    )
    .option(
      "--database-password-file <path>",
      "file holding the PostgreSQL password, for a --database-url without one (or set PGPASSWORD)",
    )
    .option("--closed-signup", "only admins may create accounts")
    .option(
      "--pricing-mode <mode>",
      "catalog (one price per GPU model) | market (suppliers set prices)",
      "catalog",
    )
    .option(
      "--heartbeat-interval-ms <ms>",
      "worker heartbeat interval",
      parseIntOption("--heartbeat-interval-ms"),
    )
    .option(
      "--missed-heartbeats <n>",
      "missed heartbeats before a node is offline",
      parseIntOption("--missed-heartbeats"),
    )
    .option("--log-level <level>", "fatal | error | warn | info | debug | trace | silent", "info")
    .action(async (options: CoordinatorOptions) => {
      const home = tandemHome();
      const coordinator = await startCoordinator({
        home,
        host: options.host,
        port: options.port,
        openSignup: !options.closedSignup,
        pricingMode: options.pricingMode,
        logLevel: options.logLevel,
        ...(options.databaseUrl === undefined ? {} : { databaseUrl: options.databaseUrl }),
        ...(options.databasePasswordFile === undefined
          ? {}
          : { databasePasswordFile: options.databasePasswordFile }),
        ...(options.heartbeatIntervalMs === undefined
          ? {}
          : { heartbeatIntervalMs: options.heartbeatIntervalMs }),
        ...(options.missedHeartbeats === undefined
          ? {}
          : { missedHeartbeats: options.missedHeartbeats }),
      });
      const ready = {
        url: coordinator.url,
        home,
        adminKeyFile: coordinator.createdAdminKey === undefined ? null : `${home}/admin.key`,
      };
      process.stdout.write(
        options.json
          ? JSON.stringify(ready) + "\n"
          : `coordinator listening on ${coordinator.url}\n`,
      );
      await untilSignal();
      await coordinator.close();
    });
}
