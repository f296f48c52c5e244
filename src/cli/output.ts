/** Prints machine-readable JSON (`--json`) or a readable table. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

export type Column<T> = [header: string, cell: (row: T) => string];

/** Plain aligned columns, like `kubectl get`: easy to read and to pipe through `awk`. */
export function formatTable<T>(rows: readonly T[], columns: ReadonlyArray<Column<T>>): string {
  const cells = rows.map((row) => columns.map(([, cell]) => cell(row)));
  const widths = columns.map(([header], i) =>
    Math.max(header.length, ...cells.map((r) => r[i]!.length)),
  );
  const line = (values: readonly string[]) =>
    values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join("  ");
  return [line(columns.map(([h]) => h)), ...cells.map(line)].join("\n") + "\n";
}

export function printTable<T>(rows: readonly T[], columns: ReadonlyArray<Column<T>>): void {
  process.stdout.write(formatTable(rows, columns));
}

/** Key-value lines for one record. */
export function printFields(fields: ReadonlyArray<[string, string]>): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  for (const [key, value] of fields)
    process.stdout.write(`${(key + ":").padEnd(width + 1)} ${value}\n`);
}

export const percent = (ratio: number) => `${(ratio * 100).toFixed(1)}%`;
export const mib = (value: number) =>
  value >= 1024 ? `${(value / 1024).toFixed(1)} GiB` : `${value} MiB`;
