import type { ChildProcess } from "node:child_process";

/** The next IPC message of `type` from a forked child; rejects if the child exits first. */
export function nextMessage<T>(from: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`child process exited (${code}) before "${type}"`));
    from.once("exit", onExit);
    from.on("message", function listener(message: { type?: string }) {
      if (message.type !== type) return;
      from.off("message", listener);
      from.off("exit", onExit);
      resolve(message as T);
    });
  });
}
