import { CLUSTER_TLS_KEY_NAME } from "../../protocol/cluster-tls.ts";
import { openSecret, SecretOpenError } from "../../protocol/sealed-secrets.ts";
import type { JobStartMessage } from "../../protocol/worker-messages.ts";
import type { JobFile } from "../runtime/job-runtime.ts";
import type { DeviceSecretKey } from "./job-secrets.ts";

/** Where the cluster's TLS files live, relative to the job dir (written before each start). */
export const TLS_DIR = ".tandem/tls";

/** The cluster's engine TLS files as the job sees them (cluster-kinds.ts points engines at them). */
export interface TlsPaths {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * Opens the `job-start`'s TLS key (sealed to this device for this cluster and node) and answers
 * the files to write into the job dir: the CA and the leaf 0644, the key 0600, all owned by the
 * job's user. Undefined when the start carries no TLS. A key that does not open throws an `Error`
 * naming it: the coordinator sealed it to this node's registered key, so it is this node's fault
 * (a start failure), never the consumer's.
 */
export function jobTlsFiles(job: JobStartMessage, key: DeviceSecretKey): JobFile[] | undefined {
  if (job.tls === undefined) return undefined;
  let pem: string;
  try {
    pem = openSecret(
      key.seed,
      { clusterId: job.clusterId, nodeId: key.nodeId, name: CLUSTER_TLS_KEY_NAME },
      job.tls.key,
    );
  } catch (error) {
    if (!(error instanceof SecretOpenError)) throw error;
    throw new Error("the cluster's TLS key does not open on this device", { cause: error });
  }
  return [
    { path: `${TLS_DIR}/ca.pem`, content: job.tls.caCert, mode: 0o644 },
    { path: `${TLS_DIR}/cert.pem`, content: job.tls.cert, mode: 0o644 },
    { path: `${TLS_DIR}/key.pem`, content: pem, mode: 0o600 },
  ];
}

/** The TLS files' paths inside the job, whose job dir it sees at `jobDirInside`. */
export function tlsPaths(jobDirInside: string): TlsPaths {
  const dir = `${jobDirInside}/${TLS_DIR}`;
  return { caFile: `${dir}/ca.pem`, certFile: `${dir}/cert.pem`, keyFile: `${dir}/key.pem` };
}
