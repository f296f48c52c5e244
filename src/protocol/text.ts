import { z } from "zod";

/**
 * Free text from a person or a machine (a CPU model, a revocation reason, a script): any Unicode
 * except control characters other than tab and line breaks. PostgreSQL cannot store NUL at all,
 * and the others only corrupt logs, terminals and the explorer.
 */
export function freeText(maxLength: number) {
  return z
    .string()
    .max(maxLength)
    .regex(/^(?:[^\p{Cc}]|[\t\n\r])*$/u, "control characters are not allowed");
}

/** A lower-case identifier from one of our catalogs: a region, a zone, a GPU model id. */
export function slug(maxLength = 64) {
  return z
    .string()
    .max(maxLength)
    .regex(/^[a-z0-9][a-z0-9-]*$/, "expected a lower-case id (a-z, 0-9, -)");
}
