import {
  PROOF_ACTIONS,
  ProofRecord,
  type ProofDeviceRecord,
  type ProofVerdict,
} from "../../../src/protocol/proof-record.ts";
import type { HistoryEntry } from "../../../src/protocol/nodes.ts";
import { formatCount } from "../format.ts";

const decimal = new Intl.NumberFormat("en-US", {
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});

const VERDICTS: Record<ProofVerdict, string> = {
  passed: "passed",
  "too-slow": "too slow",
  "too-fast": "too fast",
  inconsistent: "inconsistent timing",
  "wrong-result": "wrong result",
  late: "late",
  missing: "no answer",
  "device-error": "device error",
  "unknown-model": "unknown model",
};

/** The proof a history row records, or undefined when it is another row or an older shape. */
export function proofOf(entry: Pick<HistoryEntry, "action" | "detail">): ProofRecord | undefined {
  if (!PROOF_ACTIONS.has(entry.action)) return undefined;
  const parsed = ProofRecord.safeParse(entry.detail);
  return parsed.success ? parsed.data : undefined;
}

function formatDecimal(value: number | null): string {
  return value === null ? "—" : decimal.format(value);
}

/** "GPU-109e272d…" (the whole UUID in the title); CPU cores as "cpu:0". */
function DeviceName({ device }: { device: string }) {
  if (device.length <= 14) return <span className="mono-soft">{device}</span>;
  return (
    <span className="mono-soft" title={device}>
      {device.slice(0, 12)}…
    </span>
  );
}

function ModelChange({ d }: { d: ProofDeviceRecord }) {
  const claimed = d.claimedModel ?? (d.kind === "cpu" ? "CPU core" : "unknown");
  const proven = d.provenModel ?? (d.kind === "cpu" && d.verdict === "passed" ? "CPU core" : "—");
  return (
    <>
      {claimed} → {proven}
    </>
  );
}

/**
 * A proof of hardware as people read it: its reason, then one row per device (claimed → proven
 * model, the work's size n×k, the worker's and the coordinator's timings, the speed shown and the
 * verdict with its detail).
 */
export function ProofRecordView({ proof }: { proof: ProofRecord }) {
  return (
    <div className="proof" data-testid="proof-record" data-proof-id={proof.proofId}>
      <div className="proof-reason">{proof.reason}</div>
      <div className="table-scroll">
        <table className="table table-compact proof-devices">
          <caption className="visually-hidden">Devices of proof {proof.proofId}</caption>
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">Claimed → proven</th>
              <th scope="col" className="num">
                Size n×k
              </th>
              <th scope="col" className="num">
                Compute ms
              </th>
              <th scope="col" className="num">
                Elapsed ms
              </th>
              <th scope="col" className="num">
                TFLOPS
              </th>
              <th scope="col">Verdict</th>
            </tr>
          </thead>
          <tbody>
            {proof.devices.map((d) => (
              <tr key={d.device} data-device={d.device} data-verdict={d.verdict}>
                <td>
                  <DeviceName device={d.device} />
                </td>
                <td className="nowrap">
                  <ModelChange d={d} />
                </td>
                <td className="num nowrap">
                  {formatCount(d.n)}×{formatCount(d.k)}
                </td>
                <td className="num">{formatDecimal(d.computeMs)}</td>
                <td className="num">{formatDecimal(d.elapsedMs)}</td>
                <td className="num">{formatDecimal(d.tflops)}</td>
                <td>
                  <span className={`verdict verdict-${d.verdict === "passed" ? "ok" : "bad"}`}>
                    {VERDICTS[d.verdict]}
                  </span>
                  {d.detail !== "" && <div className="proof-detail">{d.detail}</div>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
