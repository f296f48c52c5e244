import { execFile } from "node:child_process";
import type { Engine } from "../../protocol/hardware.ts";

/** The Python engines and the modules each one needs (the dask kind runs `distributed`'s CLIs). */
export const PYTHON_ENGINES: ReadonlyArray<{ engine: Engine; modules: readonly string[] }> = [
  { engine: "torch", modules: ["torch"] },
  { engine: "dask", modules: ["dask", "distributed"] },
  { engine: "ray", modules: ["ray"] },
];

/**
 * One Python process that prints, as a JSON list, which of the modules in argv it can find.
 * `find_spec` locates a module without running it: importing torch takes seconds (and touches
 * the GPUs), finding it takes milliseconds.
 */
const FIND_MODULES = [
  "import importlib.util, json, sys",
  "def found(m):",
  "    try:",
  "        return importlib.util.find_spec(m) is not None",
  "    except Exception:",
  "        return False",
  "print(json.dumps([m for m in sys.argv[1:] if found(m)]))",
].join("\n");

export interface ProbeEnginesOptions {
  /** The interpreter jobs run with (the worker's `python`). */
  python: string;
  /** Whether the worker has a usable container runtime (podman). */
  podman: boolean;
  /** Limit for the Python process, ms. Default 5000. */
  timeoutMs?: number;
  /** Receives why Python could not be asked; the report then lists no Python engine. */
  onWarning?: (message: string) => void;
}

/** Which engines this worker can run, Python's asked once and bounded in time. */
export async function probeEngines(opts: ProbeEnginesOptions): Promise<Engine[]> {
  const modules = [...new Set(PYTHON_ENGINES.flatMap((e) => e.modules))];
  const found = await findModules(opts.python, modules, opts.timeoutMs ?? 5000).catch(
    (error: unknown) => {
      opts.onWarning?.(
        `${opts.python} could not be asked for engines: ${error instanceof Error ? error.message : String(error)}`,
      );
      return new Set<string>();
    },
  );
  const engines = PYTHON_ENGINES.filter((e) => e.modules.every((m) => found.has(m))).map(
    (e) => e.engine,
  );
  return opts.podman ? [...engines, "podman"] : engines;
}

function findModules(python: string, modules: string[], timeoutMs: number): Promise<Set<string>> {
  return new Promise((resolve, reject) => {
    execFile(
      python,
      ["-I", "-c", FIND_MODULES, ...modules],
      { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024 },
      (error, stdout) => {
        if (error !== null) {
          const why = error.killed
            ? `no answer in ${timeoutMs} ms`
            : (error.message.split("\n")[0] ?? "failed");
          return reject(new Error(why, { cause: error }));
        }
        try {
          const list: unknown = JSON.parse(stdout.trim().split("\n").at(-1) ?? "");
          if (!Array.isArray(list)) throw new Error("expected a JSON list");
          resolve(new Set(list.filter((m): m is string => modules.includes(m as string))));
        } catch (parseError) {
          reject(
            new Error(`unexpected answer ${JSON.stringify(stdout.slice(0, 200))}`, {
              cause: parseError,
            }),
          );
        }
      },
    );
  });
}
