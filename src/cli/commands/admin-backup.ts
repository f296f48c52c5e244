import { access, chmod, rename, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { tandemHome } from "../context.ts";
import { printJson } from "../output.ts";
import { withJson } from "./common.ts";

interface BackupOptions {
  to: string;
  home?: string;
  json?: boolean;
}

/** A refused backup, with the stable code `--json` prints; nothing was written. */
class BackupError extends Error {
  constructor(
    readonly code: "NO_DATABASE" | "BACKUP_EXISTS",
    message: string,
  ) {
    super(message);
    this.name = "BackupError";
  }
}

/**
 * `tandem admin backup --to FILE`: a copy of this machine's coordinator database (SQLite) taken
 * while the coordinator runs. `VACUUM INTO` writes one consistent snapshot (a single read
 * transaction: writers go on meanwhile; SQLite's page-by-page backup API would restart each time
 * the coordinator wrote) and compacts it. Written beside the target and renamed when complete and
 * checked, so a copy at FILE is whole; mode 0600 (it holds hashed keys and the ledger).
 */
export function addAdminBackupCommand(admin: Command): void {
  withJson(
    admin
      .command("backup")
      .description(
        "copy this machine's coordinator database (SQLite) while it runs; PostgreSQL: pg_dump",
      ),
  )
    .requiredOption("--to <file>", "the copy to write (must not exist yet)")
    .option("--home <dir>", "the coordinator's state dir (default $TANDEM_HOME)")
    .action(async (options: BackupOptions) => {
      const source = join(options.home ?? tandemHome(), "coordinator.db");
      const target = resolve(options.to);
      const exists = (path: string) =>
        access(path).then(
          () => true,
          () => false,
        );
      if (!(await exists(source)))
        throw new BackupError(
          "NO_DATABASE",
          `no coordinator database at ${source} (give --home; a coordinator on PostgreSQL is backed up with pg_dump)`,
        );
      if (await exists(target)) throw new BackupError("BACKUP_EXISTS", `${target} exists already`);
      const startedMs = Date.now();
      const partial = `${target}.partial-${process.pid}`;
      const { default: Sqlite } = await import("better-sqlite3");
      try {
        const db = new Sqlite(source, { fileMustExist: true });
        try {
          db.pragma("busy_timeout = 10000");
          db.prepare("VACUUM INTO ?").run(partial);
        } finally {
          db.close();
        }
        const copy = new Sqlite(partial, { readonly: true, fileMustExist: true });
        try {
          const check = copy.pragma("quick_check", { simple: true });
          if (check !== "ok") throw new Error(`the copy failed its check: ${String(check)}`);
        } finally {
          copy.close();
        }
        await chmod(partial, 0o600);
        await rename(partial, target);
      } finally {
        await rm(partial, { force: true });
      }
      const result = {
        source,
        path: target,
        bytes: (await stat(target)).size,
        tookMs: Date.now() - startedMs,
      };
      if (options.json) printJson(result);
      else
        process.stdout.write(
          `backed up ${source} to ${target} (${(result.bytes / 1_048_576).toFixed(1)} MiB in ${(result.tookMs / 1000).toFixed(1)} s)\n`,
        );
    });
}
