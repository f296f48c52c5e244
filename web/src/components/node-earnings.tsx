import type { NodeEarnings, NodeEarningsFigures } from "../../../src/protocol/nodes.ts";
import { Empty } from "./states.tsx";

const ROWS: ReadonlyArray<[keyof NodeEarningsFigures, string]> = [
  ["served", "Served (gross)"],
  ["paidOut", "Paid to the supplier"],
  ["supplierFees", "Network fee"],
  ["burned", "Burned"],
  ["slashed", "Slashed"],
];

/** What the node earned per currency, last 30 days beside all time (from the ledger). */
export function NodeEarningsTable({ earnings }: { earnings: NodeEarnings }) {
  if (earnings.currencies.length === 0)
    return <Empty>This node has not earned anything yet.</Empty>;
  return (
    <div className="table-scroll">
      <table className="table table-compact" data-testid="earnings-table">
        <caption className="visually-hidden">Earnings per currency</caption>
        <thead>
          <tr>
            <th scope="col">Currency</th>
            <th scope="col">Figure</th>
            <th scope="col" className="num">
              Last 30 days
            </th>
            <th scope="col" className="num">
              All time
            </th>
          </tr>
        </thead>
        <tbody>
          {earnings.currencies.flatMap((c) =>
            ROWS.map(([key, label], i) => (
              <tr key={`${c.currency}-${key}`} data-testid={`earnings-${c.currency}-${key}`}>
                {i === 0 && (
                  <th scope="rowgroup" rowSpan={ROWS.length}>
                    {c.currency}
                  </th>
                )}
                <th scope="row">{label}</th>
                <td className="num">{c.last30d[key]}</td>
                <td className="num">{c.allTime[key]}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </div>
  );
}
