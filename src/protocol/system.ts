import { z } from "zod";

export const HealthResponse = z.strictObject({
  status: z.literal("ok"),
  version: z.string(),
  protocolVersion: z.number().int(),
  database: z.enum(["sqlite", "postgres"]),
  connectedWorkers: z.number().int(),
  /** This coordinator replica: its id for this run, and whether it leads the singleton loops. */
  replica: z.strictObject({
    id: z.string(),
    leader: z.boolean(),
    /** The term it leads under (PostgreSQL); null while it follows, or on SQLite (one process). */
    term: z.number().int().nullable(),
  }),
});
export type HealthResponse = z.infer<typeof HealthResponse>;
