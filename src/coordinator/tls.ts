import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";

/** The coordinator's certificate and key, PEM, checked to belong together. */
export interface TlsFiles {
  cert: string;
  key: string;
}

/** A `--tls-cert`/`--tls-key` pair the coordinator cannot serve with; it does not start. */
export class TlsConfigError extends Error {
  readonly code = "TLS_CONFIG_INVALID";
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = "TlsConfigError";
  }
}

/**
 * Reads and checks the certificate (chain) and private key the API and the worker channel are
 * served with: both or neither, readable, PEM, and the key the certificate's. Nothing is read
 * when neither is given (plain HTTP).
 */
export async function loadTlsFiles(
  certFile: string | undefined,
  keyFile: string | undefined,
): Promise<TlsFiles | undefined> {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined)
    throw new TlsConfigError("give both --tls-cert and --tls-key, or neither");
  const [cert, key] = await Promise.all([
    readPem(certFile, "--tls-cert"),
    readPem(keyFile, "--tls-key"),
  ]);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new TlsConfigError(`--tls-cert ${certFile} holds no PEM certificate`, { cause: error });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new TlsConfigError(`--tls-key ${keyFile} holds no unencrypted PEM private key`, {
      cause: error,
    });
  }
  if (!certificate.checkPrivateKey(privateKey))
    throw new TlsConfigError(
      `--tls-key ${keyFile} is not the key of the certificate in --tls-cert ${certFile}`,
    );
  return { cert, key };
}

async function readPem(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new TlsConfigError(`cannot read ${flag} ${path}`, { cause: error });
  }
}
