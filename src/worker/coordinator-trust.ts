import { readFile } from "node:fs/promises";
import { BlockList, isIP } from "node:net";

/**
 * Why this worker will not talk to its coordinator: a plain-text URL to another machine without
 * `--insecure`, a `--ca-file` it cannot use, or a certificate it does not trust.
 */
export type CoordinatorTrustCode =
  "INSECURE_COORDINATOR" | "CA_FILE_INVALID" | "COORDINATOR_CERT_UNTRUSTED";

export class CoordinatorTrustError extends Error {
  constructor(
    readonly code: CoordinatorTrustCode,
    message: string,
    options?: { cause: unknown },
  ) {
    super(message, options);
    this.name = "CoordinatorTrustError";
  }
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");
LOOPBACK.addSubnet("::ffff:127.0.0.0", 104, "ipv6");

/** Whether a URL's hostname is this machine's loopback (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? "ipv4" : "ipv6");
}

/**
 * Refuses a plain `http://` or `ws://` coordinator on another machine unless `insecure`: the
 * enrollment token, the device's registration, job commands and job output would cross the
 * network readable and forgeable by anyone on the path. Loopback stays allowed (`tandem dev`, a
 * TLS proxy on the same machine).
 */
export function assertSecureCoordinator(coordinatorUrl: string, insecure: boolean): void {
  const url = new URL(coordinatorUrl);
  if (insecure || url.protocol === "https:" || url.protocol === "wss:") return;
  if (isLoopbackHost(url.hostname)) return;
  throw new CoordinatorTrustError(
    "INSECURE_COORDINATOR",
    `refusing plain ${url.protocol}// to ${url.host}, which is not this machine: the enrollment ` +
      "token, registration and job traffic would cross the network unencrypted. Use the " +
      "coordinator's https:// URL (with --ca-file <pem> for a private CA), or give --insecure " +
      "to accept that on a network you trust",
  );
}

/** The coordinator URL as the HTTP URL registration posts to: ws → http, wss → https. */
export function httpUrlOf(coordinatorUrl: string): string {
  const url = new URL(coordinatorUrl);
  if (url.protocol === "ws:") url.protocol = "http:";
  else if (url.protocol === "wss:") url.protocol = "https:";
  return url.href;
}

/** The PEM certificate(s) in `--ca-file`: the only CA this worker then trusts for its coordinator. */
export async function readCoordinatorCa(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new CoordinatorTrustError("CA_FILE_INVALID", `cannot read --ca-file ${path}`, {
      cause: error,
    });
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----"))
    throw new CoordinatorTrustError(
      "CA_FILE_INVALID",
      `--ca-file ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  return text;
}

/** OpenSSL's and Node's codes for a certificate the client does not accept. */
const CERTIFICATE_REFUSALS = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REVOKED",
  "CERT_SIGNATURE_FAILURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Whether a connection failed because the client did not accept the server's certificate. */
export function isCertificateRefusal(error: unknown): boolean {
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return code !== undefined && CERTIFICATE_REFUSALS.has(code);
}

/**
 * A connection error as the supplier can act on it: a refused certificate says which coordinator
 * and how to trust its CA; any other error is returned as it is.
 */
export function explainConnectionError(error: Error, coordinatorUrl: string): Error {
  if (!isCertificateRefusal(error)) return error;
  return new CoordinatorTrustError(
    "COORDINATOR_CERT_UNTRUSTED",
    `the coordinator at ${new URL(coordinatorUrl).host} presented a certificate this worker does ` +
      "not trust: give the CA that signed it with --ca-file <pem> (or NODE_EXTRA_CA_CERTS), or " +
      "check that the URL names the host the certificate is for",
    { cause: error },
  );
}
