import { sql, type ColumnDefinitionBuilder } from "kysely";
import type { Dialect } from "../database.ts";

/**
 * Column types that differ between the dialects: ids compare byte-wise on PostgreSQL too (so
 * cursors sort the same everywhere), and auto-increment keys are spelled differently.
 */
export function dialectTypes(dialect: Dialect) {
  return {
    id: dialect === "postgres" ? sql`text collate "C"` : sql`text`,
    serial: dialect === "postgres" ? sql`bigserial` : sql`integer`,
    serialPk: (c: ColumnDefinitionBuilder) =>
      dialect === "postgres" ? c.primaryKey() : c.primaryKey().autoIncrement(),
  };
}
