import { client } from "../api.ts";
import { Meter } from "../components/meter.tsx";
import { Empty, Loaded } from "../components/states.tsx";
import { TableHead, type Column } from "../components/table-head.tsx";
import { formatCount } from "../format.ts";
import { useRefreshOnLiveChanges } from "../live.tsx";
import { Link } from "../router.tsx";
import { useAsync } from "../use-async.ts";

const COLUMNS: Column[] = [
  "Region / zone",
  { label: "Nodes online", className: "num" },
  { label: "Nodes", className: "num" },
  { label: "GPUs verified", className: "num" },
  { label: "GPUs online", className: "num" },
  { label: "GPUs", className: "num" },
  { label: "Share online", className: "bar-cell hide-sm" },
];

/** Where the network is: nodes and GPUs per region and zone (GPUs verified of those online). */
export function RegionsPage() {
  const board = useAsync(() => client.networkRegions(), "regions");
  useRefreshOnLiveChanges(board.reload, 5000);
  return (
    <>
      <h1 tabIndex={-1}>Regions</h1>
      <Loaded state={board} what="regions">
        {(b) =>
          b.regions.every((r) => r.nodes === 0) ? (
            <Empty>
              No nodes yet. Start one with <code>tandem worker start --region … --zone …</code>.
            </Empty>
          ) : (
            <div className="table-scroll">
              <table className="table" data-testid="regions-table">
                <TableHead columns={COLUMNS} />
                {b.regions
                  .filter((r) => r.nodes > 0)
                  .map((r) => (
                    <tbody key={r.id} data-region={r.id}>
                      <tr>
                        <th scope="rowgroup">
                          <Link to={`/nodes?region=${r.id}`}>{r.name}</Link>{" "}
                          <span className="card-detail">{r.id}</span>
                        </th>
                        <Counts {...r} />
                      </tr>
                      {r.zones.map((z) => (
                        <tr key={z.id} data-zone={z.id}>
                          <th scope="row" className="indent">
                            <Link to={`/nodes?zone=${z.id}`}>{z.id}</Link>
                          </th>
                          <Counts {...z} />
                        </tr>
                      ))}
                    </tbody>
                  ))}
              </table>
            </div>
          )
        }
      </Loaded>
    </>
  );
}

function Counts(c: {
  nodes: number;
  online: number;
  gpus: number;
  gpusOnline: number;
  gpusVerified: number;
}) {
  return (
    <>
      <td className="num">{formatCount(c.online)}</td>
      <td className="num">{formatCount(c.nodes)}</td>
      <td className="num">{formatCount(c.gpusVerified)}</td>
      <td className="num">{formatCount(c.gpusOnline)}</td>
      <td className="num">{formatCount(c.gpus)}</td>
      <td className="bar-cell hide-sm">
        <Meter fraction={c.nodes === 0 ? 0 : c.online / c.nodes} />
      </td>
    </>
  );
}
