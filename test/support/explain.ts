import { CompiledQuery, sql, type Kysely } from "kysely";
import type { Database } from "../../src/coordinator/store/schema.ts";

/**
 * The query's plan. PostgreSQL is told to avoid sequential scans and sorts where it has a choice,
 * so that on a few dozen rows it still shows whether an index can deliver the order by itself.
 */
export async function explain(
  db: Kysely<Database>,
  kind: "sqlite" | "postgres",
  query: CompiledQuery,
): Promise<string> {
  if (kind === "sqlite") {
    const { rows } = await db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`explain query plan ${query.sql}`, [...query.parameters]),
    );
    return rows.map((row) => row.detail).join("\n");
  }
  return db.transaction().execute(async (tx) => {
    await sql`set local enable_seqscan = off`.execute(tx);
    await sql`set local enable_sort = off`.execute(tx);
    const { rows } = await tx.executeQuery<{ "QUERY PLAN": string }>(
      CompiledQuery.raw(`explain ${query.sql}`, [...query.parameters]),
    );
    return rows.map((row) => row["QUERY PLAN"]).join("\n");
  });
}
