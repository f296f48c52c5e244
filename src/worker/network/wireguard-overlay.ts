/**
 * A rank's half of its cluster's WireGuard overlay (DESIGN.md §3 "job networks", issue 14 item 2).
 *
 * The WireGuard device is born in the host's network namespace, where its encrypted UDP socket
 * stays for its whole life, and is then moved into the rank's namespace, renamed `tandem0` and
 * given the rank's overlay address: the job sees only the clear side. This holds for the kernel
 * module and for wireguard-go alike (measured: a tun device moved to another namespace keeps
 * working, and deleting that namespace or the device ends wireguard-go).
 *
 * Each device is configured under a machine-unique name (`tdm` + 12 hex digits, 15 characters):
 * wireguard-go's control socket is /var/run/wireguard/<name>.sock, one directory for every
 * namespace, so that name, not `tandem0`, addresses the device after the move. The X25519 key pair
 * is made here, in memory; the private key reaches `wg` only through a pipe (never argv, never a
 * file) and is zeroed on `destroy()`. wireguard-go runs in the foreground as the worker's child,
 * under `setpriv --pdeathsig TERM`: its device lives exactly as long as it, and it ends with the
 * worker even when the worker is SIGKILLed.
 *
 * Use, per rank of a lease: `probeWireguard()` once at start (the hardware report's
 * `NetworkCapability.overlay`); on `job-start` with `network.overlay`, `createOverlay` and answer
 * `job-network` with its `publicKey` and `listenPort`; on each `job-peers` for this rank and
 * attempt, `setPeers(message.peers)` (a `PeerListError` is the coordinator's defect: log it, keep
 * the last list); at the rank's end, `destroy()`.
 *
 * Costs measured on a 2-core machine: see bench/RESULTS.md "WireGuard overlay".
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { x25519 } from "@noble/curves/ed25519.js";
import { access, constants, rm, stat } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import {
  OVERLAY_INTERFACE,
  OVERLAY_PREFIX_LENGTH,
  overlayAddressOf,
  type NetworkCapability,
} from "../../protocol/cluster-network.ts";
import { PeerListError, checkPeerList, wireguardConfig } from "./overlay-peers.ts";

/** How a worker builds overlays (`NetworkCapability.overlay`). */
export type WireguardKind = NonNullable<NetworkCapability["overlay"]>;

/** The overlay's MTU: 1500 less WireGuard's 80 bytes of IPv6 + UDP + header overhead. */
export const OVERLAY_MTU = 1420;
/** The UDP ports overlays listen on by default (the worker's `--overlay-ports`). */
export const DEFAULT_OVERLAY_PORTS = { from: 51820, to: 51899 } as const;
const WIREGUARD_RUN_DIR = "/var/run/wireguard";
const NETNS_RUN_DIR = "/var/run/netns";
const START_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 2000;
/** The highest rank the protocol carries (`JobPeersMessage.rank`). */
const MAX_RANK = 4096;

/** Paths of the programs used (defaults: found on PATH). */
export interface WireguardTools {
  wireguardGo?: string;
  wg?: string;
  ip?: string;
}

/** Options of `createOverlay`. */
export interface OverlayOptions {
  /**
   * The rank's network namespace: a path (`/proc/<pid>/ns/net`) or a name in /var/run/netns. A
   * promise of one is awaited only when the device moves, so the namespace and the device can be
   * made at the same time.
   */
  jobNetns: string | PromiseLike<string>;
  /** The rank: the overlay address is `overlayAddressOf(rank)`. */
  rank: number;
  /** UDP ports to listen on, inclusive; the first free one is taken. Default 51820-51899. */
  listenPorts?: { from: number; to: number };
  /** Default "wireguard-go"; "wireguard-kernel" only where `probeWireguard` found the module. */
  kind?: WireguardKind;
  /**
   * The namespace the encrypted UDP lives in (path or name). Default: the worker's own, which is
   * the host's. Tests hand in a namespace that plays a host.
   */
  hostNetns?: string;
  tools?: WireguardTools;
}

/** A rank's overlay device, configured and up in its namespace. */
export interface Overlay {
  /** This rank's WireGuard public key (for `job-network`). */
  readonly publicKey: string;
  /** The UDP port WireGuard listens on, in the host namespace (for `job-network`). */
  readonly listenPort: number;
  /** The machine-unique device name its configuration is addressed by. */
  readonly deviceName: string;
  /**
   * Applies a complete peer list (`job-peers`): peers absent from it are removed. A list that does
   * not verify (`checkPeerList`) throws `PeerListError` and changes nothing. Calls apply in order.
   */
  setPeers(peers: unknown): Promise<void>;
  /**
   * Resolves true once a handshake with the peer of `publicKey` has completed, false after
   * `timeoutMs`: a packet sent before both sides know each other's key is dropped, and TCP sends
   * its first SYN again only a second later.
   */
  handshaken(publicKey: string, timeoutMs: number): Promise<boolean>;
  /** Removes the device, its process and control socket, and forgets the key. Idempotent. */
  destroy(): Promise<void>;
}

/** The overlay could not be set up or configured; `details.step` says where. */
export class OverlayError extends TandemError {
  constructor(step: string, message: string, cause?: unknown) {
    super(ErrorCode.INTERNAL, `overlay ${step}: ${message}`, {
      details: { step },
      ...(cause === undefined ? {} : { cause }),
    });
    this.name = "OverlayError";
  }
}

interface Exec {
  code: number | null;
  output: string;
}

/**
 * Runs argv (inside `netns` when given), feeding `stdin`; never throws for a non-zero exit. With
 * `stdin`, argv reads it from a real pipe (`cat |`): `wg` opens /dev/stdin by path, which fails on
 * the socket Node gives a child for stdin.
 */
function exec(
  argv: readonly string[],
  opts: { netns?: string; stdin?: Buffer } = {},
): Promise<Exec> {
  const piped = opts.stdin === undefined ? argv : ["sh", "-c", 'cat | "$@"', "sh", ...argv];
  const full = opts.netns === undefined ? piped : ["nsenter", `--net=${opts.netns}`, ...piped];
  return new Promise((resolve) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.stdin);
    child.on("error", (error) => resolve({ code: null, output: error.message }));
    child.on("close", (code) =>
      resolve({ code, output: Buffer.concat(chunks).toString("utf8").trim().slice(-500) }),
    );
  });
}

async function mustExec(
  step: string,
  argv: readonly string[],
  opts: { netns?: string; stdin?: Buffer } = {},
): Promise<string> {
  const r = await exec(argv, opts);
  if (r.code !== 0)
    throw new OverlayError(step, `${argv.join(" ")}: ${r.output || `exit ${r.code}`}`);
  return r.output;
}

/** A namespace reference as a path nsenter and `ip link set netns` accept. */
export function netnsPath(ref: string): string {
  if (ref.includes("/")) return ref;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(ref) || ref === "." || ref === "..")
    throw new OverlayError("namespace", `not a namespace name: ${JSON.stringify(ref)}`);
  return `${NETNS_RUN_DIR}/${ref}`;
}

const WG_GO_ENV = { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1", LOG_LEVEL: "error" };

/**
 * What this machine can build overlays with: the kernel module when a WireGuard link can be made
 * (tried in a throwaway namespace, so the host's network is never touched), else wireguard-go
 * when it, `wg`, `setpriv` and a usable /dev/net/tun are present; null otherwise, with the reason
 * (at most 300 characters, as `NetworkCapability.problems` carries it).
 */
export async function probeWireguard(
  tools: WireguardTools = {},
): Promise<{ kind: WireguardKind | null; problem: string | null }> {
  const ip = tools.ip ?? "ip";
  const wg = tools.wg ?? "wg";
  const why = (r: Exec) => (r.output.split("\n").at(-1) ?? "").slice(0, 100);
  const kernel = await exec([
    "unshare",
    "--net",
    ip,
    "link",
    "add",
    "tdmprobe",
    "type",
    "wireguard",
  ]);
  const wgTool = await exec([wg, "--version"]);
  if (wgTool.code !== 0)
    return { kind: null, problem: `wireguard-tools' wg is missing (${why(wgTool)})` };
  if (kernel.code === 0) return { kind: "wireguard-kernel", problem: null };
  const go = await exec([tools.wireguardGo ?? "wireguard-go", "--version"]);
  if (go.code !== 0)
    return {
      kind: null,
      problem: `no WireGuard kernel module (${why(kernel)}) and no wireguard-go (${why(go)})`,
    };
  const setpriv = await exec(["setpriv", "--version"]);
  if (setpriv.code !== 0)
    return { kind: null, problem: `util-linux's setpriv is missing (${why(setpriv)})` };
  try {
    await access("/dev/net/tun", constants.R_OK | constants.W_OK);
  } catch (error) {
    return {
      kind: null,
      problem: `wireguard-go cannot open /dev/net/tun (${String(error).slice(0, 100)})`,
    };
  }
  return { kind: "wireguard-go", problem: null };
}

/**
 * A fresh X25519 pair with @noble/curves, not node:crypto's generateKeyPairSync + a JWK export:
 * Node 20 can deadlock there — the export holds the key's mutex while it allocates, and a garbage
 * collection that finalizes the key's generation job locks the same mutex (seen in CI as a worker
 * frozen for good, its main thread in futex_wait under ExportJWKEdKey → ~KeyGenJob).
 */
function newKeyPair(): { privateKey: Buffer; publicKey: string } {
  const secret = x25519.utils.randomSecretKey();
  return {
    privateKey: Buffer.from(secret),
    publicKey: Buffer.from(x25519.getPublicKey(secret)).toString("base64"),
  };
}

const isSocket = async (file: string): Promise<boolean> => {
  try {
    return (await stat(file)).isSocket();
  } catch {
    return false;
  }
};

/**
 * Creates rank `rank`'s overlay device in its namespace: key pair, device with a free listen port
 * in the host namespace, moved into `jobNetns` as `tandem0` at `overlayAddressOf(rank)/16`, MTU
 * 1420, up, with no peers yet. On any failure everything made so far is removed and an
 * `OverlayError` is thrown.
 */
export async function createOverlay(options: OverlayOptions): Promise<Overlay> {
  const jobNetnsReady = Promise.resolve(options.jobNetns);
  // Awaited only at the move: its failure is handled there, not reported as unhandled before.
  jobNetnsReady.catch(() => undefined);
  const kind = options.kind ?? "wireguard-go";
  const ports = options.listenPorts ?? DEFAULT_OVERLAY_PORTS;
  if (
    !Number.isInteger(ports.from) ||
    !Number.isInteger(ports.to) ||
    ports.from < 1 ||
    ports.to > 65_535 ||
    ports.from > ports.to
  )
    throw new OverlayError("ports", `bad UDP port range ${ports.from}-${ports.to}`);
  if (!Number.isInteger(options.rank) || options.rank < 0 || options.rank > MAX_RANK)
    throw new OverlayError("rank", `no overlay address for rank ${options.rank}`);
  const address = overlayAddressOf(options.rank);
  /** Set before the move; read only once moved. */
  let jobNetns = "";
  const hostNetns = options.hostNetns === undefined ? undefined : netnsPath(options.hostNetns);
  const ip = options.tools?.ip ?? "ip";
  const wg = options.tools?.wg ?? "wg";
  const deviceName = `tdm${randomBytes(6).toString("hex")}`;
  const socketPath = `${WIREGUARD_RUN_DIR}/${deviceName}.sock`;
  const keys = newKeyPair();
  let moved = false;
  let exited: Promise<void> = Promise.resolve();
  let child: ReturnType<typeof spawn> | null = null;
  let stopped = false;

  /** Where `wg` reaches the device: userspace through its socket, the kernel by netlink in place. */
  const wgNetns = (): string | undefined =>
    kind === "wireguard-go" ? undefined : moved ? jobNetns : hostNetns;
  const wgName = (): string =>
    kind === "wireguard-kernel" && moved ? OVERLAY_INTERFACE : deviceName;
  const hostExec = (step: string, argv: string[]) =>
    mustExec(step, argv, hostNetns === undefined ? {} : { netns: hostNetns });

  let destroying: Promise<void> | null = null;
  const destroy = (): Promise<void> =>
    (destroying ??= (async () => {
      keys.privateKey.fill(0);
      // wireguard-go's device lives exactly as long as its process; a kernel one is deleted.
      if (kind === "wireguard-kernel")
        await exec(
          [ip, "link", "del", "dev", moved ? OVERLAY_INTERFACE : deviceName],
          moved ? { netns: jobNetns } : hostNetns === undefined ? {} : { netns: hostNetns },
        );
      if (child !== null && !stopped) {
        child.kill("SIGTERM");
        const killed = await Promise.race([exited.then(() => true), delay(STOP_TIMEOUT_MS, false)]);
        if (!killed) {
          child.kill("SIGKILL");
          await exited;
        }
      }
      await rm(socketPath, { force: true });
    })());

  try {
    if (kind === "wireguard-go") {
      // setpriv: SIGTERM when the worker dies, even by SIGKILL, so no device outlives its owner.
      const argv = [
        "setpriv",
        "--pdeathsig",
        "TERM",
        options.tools?.wireguardGo ?? "wireguard-go",
        "-f",
        deviceName,
      ];
      const full = hostNetns === undefined ? argv : ["nsenter", `--net=${hostNetns}`, ...argv];
      const proc = spawn(full[0]!, full.slice(1), {
        stdio: ["ignore", "ignore", "pipe"],
        env: { ...process.env, ...WG_GO_ENV },
      });
      child = proc;
      let log = "";
      proc.stderr?.on("data", (c: Buffer) => (log = (log + c.toString("utf8")).slice(-500)));
      exited = new Promise((resolve) => {
        proc.on("error", (error) => {
          log += error.message;
          stopped = true;
          resolve();
        });
        proc.on("exit", () => {
          stopped = true;
          resolve();
        });
      });
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (!(await isSocket(socketPath))) {
        if (stopped) throw new OverlayError("start", `wireguard-go ended: ${log.trim()}`);
        if (Date.now() > deadline)
          throw new OverlayError("start", "wireguard-go made no control socket in 5 s");
        await delay(5);
      }
    } else {
      await hostExec("create", [ip, "link", "add", "dev", deviceName, "type", "wireguard"]);
    }

    let listenPort = 0;
    for (let port = ports.from; port <= ports.to && listenPort === 0; port++) {
      const r = await exec(
        [wg, "set", wgName(), "private-key", "/dev/stdin", "listen-port", String(port)],
        {
          stdin: Buffer.from(`${keys.privateKey.toString("base64")}\n`),
          ...(wgNetns() === undefined ? {} : { netns: wgNetns()! }),
        },
      );
      if (r.code === 0) listenPort = port;
      else if (!/in use/i.test(r.output)) throw new OverlayError("key", r.output);
    }
    if (listenPort === 0)
      throw new OverlayError("port", `no free UDP port in ${ports.from}-${ports.to}`);

    jobNetns = netnsPath(await jobNetnsReady);
    // Moved and renamed in one step: where the namespace has a tandem0 already, the device stays
    // in the host namespace under its own name, and nothing of the job's is touched.
    await hostExec("move", [
      ip,
      "link",
      "set",
      "dev",
      deviceName,
      "netns",
      jobNetns,
      "name",
      OVERLAY_INTERFACE,
    ]);
    moved = true;
    await mustExec("address", [ip, "-batch", "-"], {
      netns: jobNetns,
      stdin: Buffer.from(
        [
          `address add ${address}/${OVERLAY_PREFIX_LENGTH} dev ${OVERLAY_INTERFACE}`,
          `link set dev ${OVERLAY_INTERFACE} mtu ${OVERLAY_MTU} up`,
          "",
        ].join("\n"),
      ),
    });

    let applying: Promise<void> = Promise.resolve();
    const setPeers = (peers: unknown): Promise<void> => {
      const run = async () => {
        if (destroying !== null) throw new OverlayError("peers", "the overlay is destroyed");
        const check = checkPeerList(peers, { rank: options.rank, publicKey: keys.publicKey });
        if (!check.ok) throw new PeerListError(check);
        const config = wireguardConfig(
          { privateKey: keys.privateKey.toString("base64"), listenPort },
          check.peers,
        );
        await mustExec("peers", [wg, "syncconf", wgName(), "/dev/stdin"], {
          stdin: Buffer.from(config),
          ...(wgNetns() === undefined ? {} : { netns: wgNetns()! }),
        });
      };
      const result = applying.then(run, run);
      applying = result.catch(() => undefined);
      return result;
    };
    const handshaken = async (publicKey: string, timeoutMs: number): Promise<boolean> => {
      for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await delay(10)) {
        if (destroying !== null) return false;
        const shown = await exec(
          [wg, "show", wgName(), "latest-handshakes"],
          wgNetns() === undefined ? {} : { netns: wgNetns()! },
        );
        const line = shown.output.split("\n").find((l) => l.startsWith(`${publicKey}\t`));
        if (line !== undefined && Number(line.split("\t")[1]) > 0) return true;
      }
      return false;
    };
    return { publicKey: keys.publicKey, listenPort, deviceName, setPeers, handshaken, destroy };
  } catch (error) {
    await destroy();
    throw error;
  }
}
