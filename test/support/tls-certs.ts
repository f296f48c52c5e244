/**
 * A private certificate authority and a server certificate it signed, made with the `openssl` CLI
 * in a directory of the test's (ECDSA P-256, valid one day): what a supplier without a public
 * certificate would make, and what `--ca-file` and `NODE_EXTRA_CA_CERTS` are for.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestCertificates {
  /** The CA's certificate (PEM): what clients are told to trust. */
  caFile: string;
  /** The server's certificate (PEM), for `--tls-cert`. */
  certFile: string;
  /** Its private key (PEM), for `--tls-key`. */
  keyFile: string;
  /** A second key that is not the certificate's, for mismatch cases. */
  otherKeyFile: string;
}

const EC_KEY = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

/** A CA and a certificate for `ips` (subject alternative names), written under `dir`. */
export async function makeTestCertificates(
  dir: string,
  ips: readonly string[],
): Promise<TestCertificates> {
  const path = (name: string) => join(dir, name);
  // Arguments split on spaces: the temp dir's paths hold none.
  const openssl = (args: string) => run("openssl", args.split(" "));
  const selfSigned = (name: string) =>
    openssl(
      `req -x509 ${EC_KEY} -days 1 -subj /CN=${name} -keyout ${path(`${name}.key`)} -out ${path(`${name}.pem`)}`,
    );
  await selfSigned("ca");
  await openssl(
    `req ${EC_KEY} -subj /CN=coordinator -keyout ${path("server.key")} -out ${path("server.csr")}`,
  );
  await writeFile(
    path("server.ext"),
    `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(",")}\n` + "extendedKeyUsage=serverAuth\n",
  );
  await openssl(
    `x509 -req -in ${path("server.csr")} -days 1 -CA ${path("ca.pem")} -CAkey ${path("ca.key")} ` +
      `-CAcreateserial -extfile ${path("server.ext")} -out ${path("server.pem")}`,
  );
  await selfSigned("other");
  return {
    caFile: path("ca.pem"),
    certFile: path("server.pem"),
    keyFile: path("server.key"),
    otherKeyFile: path("other.key"),
  };
}
