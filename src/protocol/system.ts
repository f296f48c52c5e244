import { z } from "zod";

export const HealthResponse = z.strictObject({
  status: z.literal("ok"),
  version: z.string(),
  protocolVersion: z.number().int(),
  database: z.enum(["sqlite", "postgres"]),
  connectedWorkers: z.number().int(),
});
export type HealthResponse = z.infer<typeof HealthResponse>;
