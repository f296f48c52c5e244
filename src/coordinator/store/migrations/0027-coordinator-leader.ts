import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";

/**
 * The one row that says which coordinator replica leads the singleton loops (settlement, expiry,
 * uptime) and under which term: every new leader adds one to `term`, and each transaction a
 * leader's loop runs first checks that the term is still its own (the fencing token,
 * replicas/leader-fence.ts). Starts at term 0, no holder.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema
    .createTable("coordinator_leader")
    .addColumn("id", "integer", (c) => c.primaryKey())
    .addColumn("term", "bigint", (c) => c.notNull())
    .addColumn("holder", "text")
    .addColumn("elected_at", "bigint")
    .execute();
  await sql`insert into coordinator_leader (id, term) values (1, 0)`.execute(db);
}
