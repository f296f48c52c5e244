import type { ModelPrice } from "../../../src/protocol/network.ts";
import { client } from "../api.ts";
import { Empty, Loaded } from "../components/states.tsx";
import { TableHead, type Column } from "../components/table-head.tsx";
import { formatCount } from "../format.ts";
import { useRefreshOnLiveChanges } from "../live.tsx";
import { Link } from "../router.tsx";
import { useAsync } from "../use-async.ts";

const COLUMNS: Column[] = [
  "GPU model",
  { label: "Network price / GPU-h", className: "num" },
  { label: "Available", className: "num" },
  { label: "Hyperscaler / GPU-h", className: "num" },
  { label: "You save", className: "num" },
];

/** "62 %" saved against the reference, from two 6-decimal USD strings. */
function saving(price: string, reference: string): string {
  const p = Number(price);
  const r = Number(reference);
  return r > 0 ? `${Math.round((1 - p / r) * 100)} %` : "—";
}

/** Prices per GPU model, next to what a hyperscaler charges for the same card. */
export function PricesPage() {
  const board = useAsync(() => client.networkPrices(), "prices");
  useRefreshOnLiveChanges(board.reload, 5000);
  return (
    <>
      <h1 tabIndex={-1}>Prices</h1>
      <Loaded state={board} what="prices">
        {(b) => (
          <>
            <p className="subtitle">
              US dollars per GPU-hour. Pricing mode: <strong>{b.pricingMode}</strong>
              {b.pricingMode === "market"
                ? " — suppliers set their own prices; lowest and median over available nodes."
                : " — one network price per GPU model."}{" "}
              CPU-only nodes: {b.cpuNodePerHour} per node-hour.
            </p>
            {b.models.every((m) => m.availableNodes === 0) && (
              <Empty>No GPU is available right now: prices apply once nodes come online.</Empty>
            )}
            <div className="table-scroll">
              <table className="table" data-testid="prices-table">
                <TableHead columns={COLUMNS} />
                <tbody>
                  {b.models.map((m) => (
                    <PriceRow key={m.model} m={m} />
                  ))}
                </tbody>
              </table>
            </div>
            <p className="card-detail">
              Hyperscaler figures are on-demand list prices per GPU-hour (instance price ÷ GPUs),
              kept by hand with their source; cards no hyperscaler rents show —.
            </p>
          </>
        )}
      </Loaded>
    </>
  );
}

function PriceRow({ m }: { m: ModelPrice }) {
  const price = m.market === null ? m.catalogPerGpuHour : m.market.medianPerGpuHour;
  return (
    <tr data-model={m.model}>
      <th scope="row">
        <Link to={`/nodes?gpuModel=${encodeURIComponent(m.model)}&status=available`}>
          {m.model}
        </Link>
        <div className="card-detail">{m.name}</div>
      </th>
      <td className="num" data-testid="price">
        {m.market === null ? (
          m.catalogPerGpuHour
        ) : (
          <>
            {m.market.medianPerGpuHour} median
            <div className="card-detail">
              from {m.market.minPerGpuHour} · catalog {m.catalogPerGpuHour}
            </div>
          </>
        )}
      </td>
      <td className="num" data-testid="available">
        {formatCount(m.availableGpus)} GPUs
        <div className="card-detail">{formatCount(m.availableNodes)} nodes</div>
      </td>
      <td className="num">
        {m.reference === null ? (
          "—"
        ) : (
          <span title={m.reference.source}>
            {m.reference.perGpuHour}
            <div className="card-detail">
              {m.reference.provider} {m.reference.instance}
            </div>
          </span>
        )}
      </td>
      <td className="num">{m.reference === null ? "—" : saving(price, m.reference.perGpuHour)}</td>
    </tr>
  );
}
