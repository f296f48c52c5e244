/**
 * The bubblewrap command line for one job, and the host layout it is built from.
 *
 * Filesystem the job sees, and why:
 * - `/` is an empty tmpfs remounted read-only at the end: nothing of the host unless listed here.
 * - /usr, and /bin /sbin /lib* (symlinks into /usr on merged-/usr hosts, read-only binds otherwise):
 *   what programs, python3, torch and dask need. /usr is read-only. /opt, /home, /root, /srv,
 *   /var and /run are not there at all.
 * - /etc is built, not bound: passwd, group and nsswitch.conf are generated (the job is user `job`,
 *   uid 1000, home /job); a fixed list of harmless host files is bound read-only when present
 *   (dynamic linker cache, /etc/alternatives — Debian's libblas.so.3 resolves through it — CA
 *   certificates, time zone, python's sitecustomize). Not /etc/shadow, /etc/ssl/private, ssh keys
 *   or the rest: what is not needed is not there, whatever its permissions.
 * - network "none": generated /etc/hosts, no resolv.conf, hostname `tandem-job`.
 *   network "shared": the host's /etc/hosts, /etc/resolv.conf and hostname, because engines such as
 *   gloo resolve the hostname to find the address peers reach them at.
 *   a job namespace: hostname `tandem-job`; generated /etc/hosts (localhost, then the names given,
 *   e.g. `tandem-job` → its overlay address, which gloo advertises) and /etc/resolv.conf with the
 *   host's nameservers minus loopback ones (unreachable from the job's namespace) and those in the
 *   ranges the job may not reach (isolation-rules.ts: a LAN router's DNS would only time out).
 *   When none is left there is no resolv.conf: the job resolves nothing but /etc/hosts.
 * - fresh /proc (only the job's processes: new pid namespace) and /dev (null, zero, random, tty,
 *   pts…); GPU nodes are added one by one with --dev-bind; /tmp and /dev/shm are size-capped tmpfs.
 * - the job dir, read-write, at /job (cwd). Its parent is not there: /job/.. is the tmpfs root.
 *
 * Generated files travel through pipes (--ro-bind-data FD), so nothing is written on the host.
 */
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import net from "node:net";
import { BLOCKED_DESTINATIONS } from "../network/isolation-rules.ts";
import type { JobSpec } from "./job-runtime.ts";

/** The host paths the sandbox is built from; detected once per runtime. */
export interface HostLayout {
  /** /usr and the top-level lib/bin dirs: a symlink (merged /usr) or a directory to bind. */
  systemPaths: ReadonlyArray<{ path: string; symlinkTarget?: string }>;
  /** /etc entries that exist here and are bound read-only. */
  etcBinds: readonly string[];
  hostname: string;
  /** The host's nameservers a job in its own namespace can reach (see the header). */
  nameservers: readonly string[];
}

const SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
const ETC_ALWAYS = [
  "/etc/alternatives",
  "/etc/ld.so.cache",
  "/etc/ld.so.conf",
  "/etc/ld.so.conf.d",
  "/etc/ssl/certs",
  "/etc/ssl/openssl.cnf",
  "/etc/ca-certificates.conf",
  "/etc/localtime",
  "/etc/timezone",
  "/etc/protocols",
  "/etc/services",
  "/etc/mime.types",
  "/etc/os-release",
  "/etc/debian_version",
  "/etc/host.conf",
  "/etc/gai.conf",
  "/etc/libnl",
  "/etc/gnutls",
  "/etc/OpenCL",
];
const ETC_SHARED_NET = ["/etc/hosts", "/etc/resolv.conf"];
export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;
export const SANDBOX_JOB_DIR = "/job";
/** The hostname of a job without the host's network. */
export const ISOLATED_HOSTNAME = "tandem-job";

const blockedForJobs = new net.BlockList();
for (const cidr of BLOCKED_DESTINATIONS) {
  const [address, bits] = cidr.split("/");
  blockedForJobs.addSubnet(address!, Number(bits), "ipv4");
}

/** The IPv4 nameservers of a resolv.conf text that a job namespace can reach. */
export function reachableNameservers(resolvConf: string): string[] {
  return [...resolvConf.matchAll(/^\s*nameserver\s+(\S+)/gm)]
    .map((m) => m[1]!)
    .filter((address) => net.isIPv4(address) && !blockedForJobs.check(address, "ipv4"));
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    (error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw error;
    },
  );
}

/** Reads this host's layout: which system paths exist and how, and which /etc files to bind. */
export async function detectHostLayout(hostname: string): Promise<HostLayout> {
  const systemPaths: Array<{ path: string; symlinkTarget?: string }> = [];
  for (const path of SYSTEM_PATHS) {
    const stat = await lstat(path).catch(() => undefined);
    if (stat === undefined) continue;
    if (stat.isSymbolicLink()) systemPaths.push({ path, symlinkTarget: await readlink(path) });
    else if (stat.isDirectory()) systemPaths.push({ path });
  }
  const python = (await readdir("/etc"))
    .filter((e) => /^python3(\.\d+)?$/.test(e))
    .map((e) => `/etc/${e}`);
  const etcBinds: string[] = [];
  for (const path of [...ETC_ALWAYS, ...python, ...ETC_SHARED_NET]) {
    if (await exists(path)) etcBinds.push(path);
  }
  const resolvConf = await readFile("/etc/resolv.conf", "utf8").catch(() => "");
  return { systemPaths, etcBinds, hostname, nameservers: reachableNameservers(resolvConf) };
}

/** Contents of the generated /etc files, by sandbox path. */
export function generatedEtc(
  network: JobSpec["network"],
  nameservers: readonly string[] = [],
): Record<string, string> {
  const files: Record<string, string> = {
    "/etc/passwd":
      "root:x:0:0:root:/:/usr/sbin/nologin\n" +
      `job:x:${SANDBOX_UID}:${SANDBOX_GID}:Tandem job:${SANDBOX_JOB_DIR}:/bin/sh\n` +
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "/etc/group": `root:x:0:\njob:x:${SANDBOX_GID}:\nnogroup:x:65534:\n`,
    "/etc/nsswitch.conf":
      "passwd: files\ngroup: files\nhosts: files dns\nservices: files\nprotocols: files\n",
  };
  if (network === "none") {
    files["/etc/hosts"] = `127.0.0.1 localhost ${ISOLATED_HOSTNAME}\n::1 localhost ip6-localhost\n`;
  } else if (network !== "shared") {
    const hosts = Object.entries(network.hosts ?? {});
    const ownName = hosts.some(([name]) => name === ISOLATED_HOSTNAME)
      ? ""
      : ` ${ISOLATED_HOSTNAME}`;
    files["/etc/hosts"] =
      `127.0.0.1 localhost${ownName}\n` +
      hosts.map(([name, address]) => `${address} ${name}\n`).join("");
    if (nameservers.length > 0)
      files["/etc/resolv.conf"] = nameservers.map((ns) => `nameserver ${ns}\n`).join("");
  }
  return files;
}

/** Everything one bwrap invocation depends on. */
export interface BwrapInvocation {
  layout: HostLayout;
  network: JobSpec["network"];
  env: Record<string, string>;
  jobDir: string;
  devices: readonly string[];
  /** Size cap of /tmp and /dev/shm each, MiB. */
  tmpfsSizeMiB: number;
  /** fd where bwrap reports the sandbox's pids and the command's exit (--json-status-fd). */
  statusFd: number;
  /** fd each generated /etc file is read from, by sandbox path. */
  dataFds: ReadonlyMap<string, number>;
}

/**
 * bwrap's options for one job, without the command: bwrap takes these through `--args FD`, and the
 * command (`-- argv…`) on its real command line.
 */
export function bwrapArgs(inv: BwrapInvocation): string[] {
  const args = [
    "--unshare-all", // user, ipc, pid, net, uts, cgroup (where the kernel allows)
    "--unshare-user",
    "--disable-userns", // the job cannot make nested user namespaces (kernel attack surface)
    // A job namespace is entered before bwrap starts (nsenter): sharing "the" network is sharing it.
    ...(inv.network === "none" ? [] : ["--share-net"]),
    "--die-with-parent",
    "--new-session", // no TIOCSTI into the worker's terminal
    "--uid",
    String(SANDBOX_UID),
    "--gid",
    String(SANDBOX_GID),
    "--hostname",
    inv.network === "shared" ? inv.layout.hostname : ISOLATED_HOSTNAME,
    "--clearenv",
  ];
  for (const [name, value] of Object.entries(inv.env)) args.push("--setenv", name, value);
  for (const p of inv.layout.systemPaths) {
    if (p.symlinkTarget !== undefined) args.push("--symlink", p.symlinkTarget, p.path);
    else args.push("--ro-bind", p.path, p.path);
  }
  args.push("--dir", "/etc");
  for (const path of inv.layout.etcBinds) {
    if (inv.network !== "shared" && ETC_SHARED_NET.includes(path)) continue;
    args.push("--ro-bind", path, path);
  }
  for (const [path, fd] of inv.dataFds)
    args.push("--perms", "0644", "--ro-bind-data", String(fd), path);
  args.push("--proc", "/proc", "--dev", "/dev");
  for (const device of inv.devices) args.push("--dev-bind", device, device);
  const size = String(inv.tmpfsSizeMiB * 1024 * 1024);
  args.push("--size", size, "--tmpfs", "/dev/shm", "--size", size, "--tmpfs", "/tmp");
  args.push("--bind", inv.jobDir, SANDBOX_JOB_DIR, "--chdir", SANDBOX_JOB_DIR);
  args.push("--remount-ro", "/");
  args.push("--json-status-fd", String(inv.statusFd));
  return args;
}
