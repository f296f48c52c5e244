import type { HistoryEntry } from "../../../src/protocol/nodes.ts";
import { formatDateTime } from "../format.ts";
import { Empty } from "./states.tsx";

/** A lease's end as the history records it (`lease-ended`: outcome, slash taken, currency). */
interface LeaseEnd {
  at: string;
  clusterId: string;
  outcome: string;
  slashed: string | null;
  currency: string;
}

function leaseEnds(items: readonly HistoryEntry[]): LeaseEnd[] {
  return items
    .filter((e) => e.action === "lease-ended")
    .map((e) => ({
      at: e.at,
      clusterId: typeof e.detail.clusterId === "string" ? e.detail.clusterId : "",
      outcome: typeof e.detail.outcome === "string" ? e.detail.outcome : "unknown",
      slashed: typeof e.detail.slashed === "string" ? e.detail.slashed : null,
      currency: typeof e.detail.currency === "string" ? e.detail.currency : "",
    }));
}

/** Leases the node served, by outcome, and every slash it took, from its public history. */
export function LeaseSummary({
  items,
  complete,
}: {
  items: readonly HistoryEntry[];
  complete: boolean;
}) {
  const ends = leaseEnds(items);
  if (ends.length === 0) return <Empty>No lease has ended on this node yet.</Empty>;
  const byOutcome = new Map<string, number>();
  for (const e of ends) byOutcome.set(e.outcome, (byOutcome.get(e.outcome) ?? 0) + 1);
  const slashes = ends.filter((e) => e.slashed !== null && /[1-9]/.test(e.slashed));
  return (
    <>
      <dl className="facts" data-testid="lease-outcomes">
        {[...byOutcome].map(([outcome, count]) => (
          <div key={outcome} style={{ display: "contents" }}>
            <dt>{outcome}</dt>
            <dd>{count}</dd>
          </div>
        ))}
      </dl>
      <h3>Slashes</h3>
      {slashes.length === 0 ? (
        <Empty>No slashes.</Empty>
      ) : (
        <ol className="event-list" data-testid="slashes">
          {slashes.map((s) => (
            <li key={`${s.at}-${s.clusterId}`}>
              <time dateTime={s.at}>{formatDateTime(s.at)}</time>
              {s.slashed} {s.currency} — {s.outcome} lease of{" "}
              <span className="mono">{s.clusterId}</span>
            </li>
          ))}
        </ol>
      )}
      {!complete && (
        <p className="card-detail">From the history loaded so far (load more below).</p>
      )}
    </>
  );
}
