import type { Kysely } from "kysely";
import type { Database } from "../store/schema.ts";
import { toNumberOrNull } from "../store/rows.ts";

/**
 * The network's genesis time, ms: emission hour 0 begins here (src/core/emission.ts). The
 * configured `genesisAtMs` when given; else when the coordinator first started on this database,
 * which the database records as its first account's creation: the first start makes the first
 * admin before it serves anything (AccountRegistry.bootstrapAdmin). So every restart and every
 * replica on one PostgreSQL database agrees, with no table of its own; `nowMs` only for a database
 * without accounts, which a started coordinator never has.
 */
export async function networkGenesisAt(
  db: Kysely<Database>,
  configuredMs: number | undefined,
  nowMs: number,
): Promise<number> {
  if (configuredMs !== undefined) return configuredMs;
  const first = await db
    .selectFrom("accounts")
    .select((eb) => eb.fn.min("created_at").as("at"))
    .executeTakeFirst();
  return toNumberOrNull(first?.at ?? null) ?? nowMs;
}
