/** A column heading: its label, or the label and a class (`num` right-aligns, `hide-sm` hides on phones). */
export type Column = string | { label: string; className: string };

/** A table's header row from its column list. */
export function TableHead({ columns }: { columns: readonly Column[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c) =>
          typeof c === "string" ? (
            <th key={c} scope="col">
              {c}
            </th>
          ) : (
            <th key={c.label} scope="col" className={c.className}>
              {c.label}
            </th>
          ),
        )}
      </tr>
    </thead>
  );
}
