import type { WorkerMessage } from "../protocol/worker-messages.ts";
import { TRUNCATED } from "./jobs/rank-output.ts";

type JobLog = Extract<WorkerMessage, { type: "job-log" }>;

/**
 * Job output waiting for the WebSocket, apart from control messages. The link writes from here
 * only while the socket's own buffer is short (connection.ts), so a heartbeat or a job-exit is
 * never queued behind megabytes of output; and it holds at most `maxBytes` of lines (while the
 * link is slow or down): a message that does not fit is dropped, and the run's next message that
 * does fit is preceded by one `[tandem] output truncated: …` line counting what was lost.
 */
export class LogQueue {
  private readonly queue: Array<{ message: JobLog; bytes: number }> = [];
  private bytes = 0;
  /** Each run ("cluster/rank/attempt") with lines dropped since its last note, and how many. */
  private readonly dropped = new Map<string, { message: JobLog; lines: number }>();

  constructor(private readonly maxBytes: number) {}

  get queuedBytes(): number {
    return this.bytes;
  }

  push(message: JobLog): void {
    const key = `${message.clusterId}/${message.rank}/${message.attempt}`;
    const bytes = message.lines.reduce((sum, line) => sum + line.length + 1, 0);
    const lost = this.dropped.get(key);
    if (this.bytes + bytes + (lost === undefined ? 0 : NOTE_BYTES) > this.maxBytes) {
      this.dropped.set(key, { message, lines: (lost?.lines ?? 0) + message.lines.length });
      return;
    }
    if (lost !== undefined) this.note(key, lost);
    this.queue.push({ message, bytes });
    this.bytes += bytes;
  }

  /**
   * The oldest message, removed from the queue. Once the queue is empty, the notes still owed
   * (runs that sent nothing since their last drop) come out, so a run's log ends with its note.
   */
  shift(): JobLog | undefined {
    if (this.queue.length === 0) for (const [key, lost] of this.dropped) this.note(key, lost);
    const entry = this.queue.shift();
    if (entry === undefined) return undefined;
    this.bytes -= entry.bytes;
    return entry.message;
  }

  private note(key: string, lost: { message: JobLog; lines: number }): void {
    this.dropped.delete(key);
    const text = `${TRUNCATED} ${lost.lines} lines dropped while the link to the coordinator was slow or down`;
    this.queue.push({ message: { ...lost.message, lines: [text] }, bytes: NOTE_BYTES });
    this.bytes += NOTE_BYTES;
  }
}

/** What a note is counted as in the queue, bytes. */
const NOTE_BYTES = 128;
