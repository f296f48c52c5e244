/**
 * What one rank's output becomes on its way to the coordinator: lines, batched by size and time,
 * capped by rate and in total. The job is never blocked or killed for its output: what exceeds a
 * cap is read and dropped, and the log says so in one `[tandem] output truncated: …` line.
 *
 * Rate: a token bucket of `burstBytes` refilled at `rateBytesPerSec`, shared by stdout and stderr.
 * A line costs its UTF-8 bytes plus LINE_COST_BYTES (what a stored line costs beyond its text), so
 * a flood of empty lines is bounded as well as one of long ones. Once the bucket is dry the rank is
 * throttled: whole chunks are dropped unread (a 160 MB flood is never split into lines) until the
 * bucket holds half a burst again. Then one note counts what was dropped, and output goes on; a
 * sustained flood therefore shows a burst, a note, a burst… (at most one note per half burst of
 * output). A note still owed when the job ends closes its log.
 *
 * Total: once `totalBytes` have been sent the rank's output ends with one note; nothing follows.
 *
 * Pure: time is a parameter, and the caller sends what `write` and `flush` answer (and calls
 * `flush` when `dueAtMs` comes).
 */

/** Caps and batching of one rank's output. */
export interface OutputLimits {
  /** Sustained output a rank may send, bytes per second (default 1 MiB/s). */
  rateBytesPerSec: number;
  /** Output a rank may send at once above its sustained rate, bytes (default 4 MiB). */
  burstBytes: number;
  /** All the output a rank may send, bytes (default 64 MiB); later output is dropped. */
  totalBytes: number;
  /** Longest a line waits in a batch before it is sent, ms (default 200). */
  batchDelayMs: number;
}

export const DEFAULT_OUTPUT_LIMITS: OutputLimits = {
  rateBytesPerSec: 1024 * 1024,
  burstBytes: 4 * 1024 * 1024,
  totalBytes: 64 * 1024 * 1024,
  batchDelayMs: 200,
};

/** What a stored line costs beyond its text (row, index entry), charged to the caps, bytes. */
export const LINE_COST_BYTES = 32;
/** Longest line sent (the protocol's limit): a longer one is cut into pieces this long. */
export const MAX_LINE_CHARS = 8192;
/** Most lines in one batch (the protocol's limit). */
export const BATCH_LINES = 500;
/** A batch this big, bytes, is sent at once (the channel's frame limit is 1 MiB). */
export const BATCH_BYTES = 48 * 1024;
/** Marks every line the worker itself adds to a job's output. */
export const TRUNCATED = "[tandem] output truncated:";

export type OutputStream = "stdout" | "stderr";

/** Lines of one stream, ready to send as one `job-log`. */
export interface OutputBatch {
  stream: OutputStream;
  lines: string[];
}

interface StreamState {
  /** The line begun and not ended yet. */
  partial: string;
  /** When the line begun was begun: it goes out alone only once it has waited a batch delay. */
  partialSinceMs: number;
  /** Output was dropped in the middle of a line: the rest of that line goes too. */
  broken: boolean;
  lines: string[];
  bytes: number;
}

export class RankOutput {
  private tokens: number;
  private refilledAtMs: number;
  private throttled = false;
  private sentBytes = 0;
  private ended = false;
  private dropped = { bytes: 0, sinceMs: 0, stream: "stdout" as OutputStream };
  private firstHeldAtMs: number | undefined;
  /** The stream of the latest note: its batch goes last. */
  private noteStream: OutputStream = "stderr";
  private readonly streams: Record<OutputStream, StreamState> = {
    stdout: { partial: "", partialSinceMs: 0, broken: false, lines: [], bytes: 0 },
    stderr: { partial: "", partialSinceMs: 0, broken: false, lines: [], bytes: 0 },
  };

  constructor(
    private readonly limits: OutputLimits,
    nowMs: number,
  ) {
    this.tokens = limits.burstBytes;
    this.refilledAtMs = nowMs;
  }

  /** When the held lines must be sent (`flush`); undefined when nothing is held. */
  get dueAtMs(): number | undefined {
    return this.firstHeldAtMs === undefined
      ? undefined
      : this.firstHeldAtMs + this.limits.batchDelayMs;
  }

  /**
   * False while output would be dropped unread (throttled, or over the total): the caller may then
   * `discard` it without decoding it.
   */
  accepting(nowMs: number): boolean {
    if (this.ended) return false;
    this.refill(nowMs);
    return !this.throttled || this.tokens >= this.limits.burstBytes / 2;
  }

  /** Output dropped unread while not `accepting`: `bytes` long, ending a line or not. */
  discard(stream: OutputStream, bytes: number, endsLine: boolean, nowMs: number): void {
    const state = this.streams[stream];
    this.drop(stream, state.partial, nowMs);
    state.partial = "";
    if (this.dropped.bytes === 0) this.dropped.sinceMs = nowMs;
    this.dropped.bytes += bytes;
    this.dropped.stream = stream;
    state.broken = !endsLine;
  }

  /** Output read from the job; answers the batches full enough to send now. */
  write(stream: OutputStream, text: string, nowMs: number): OutputBatch[] {
    const state = this.streams[stream];
    const out: OutputBatch[] = [];
    if (!this.accepting(nowMs)) {
      if (!this.ended) this.drop(stream, state.partial + text, nowMs);
      state.partial = "";
      return out;
    }
    if (state.broken) {
      const end = text.indexOf("\n");
      this.drop(stream, end < 0 ? text : text.slice(0, end + 1), nowMs);
      if (end < 0) return out;
      text = text.slice(end + 1);
    }
    if (this.throttled) {
      this.throttled = false;
      this.note(out, stream, this.rateNote(nowMs));
    }
    const pieces = (state.partial + text).split("\n");
    if (pieces.length > 1 || state.partial === "") state.partialSinceMs = nowMs;
    state.partial = pieces.pop() ?? "";
    for (let i = 0; i < pieces.length; i++) {
      if (!this.accept(out, stream, pieces[i] ?? "", nowMs)) {
        this.drop(stream, pieces.slice(i).join("\n") + "\n" + state.partial, nowMs);
        state.partial = "";
        return out;
      }
    }
    while (state.partial.length >= MAX_LINE_CHARS) {
      const line = state.partial.slice(0, MAX_LINE_CHARS);
      state.partial = state.partial.slice(MAX_LINE_CHARS);
      state.partialSinceMs = nowMs;
      if (!this.accept(out, stream, line, nowMs)) {
        this.drop(stream, state.partial, nowMs);
        state.partial = "";
        return out;
      }
    }
    if (state.partial !== "") this.firstHeldAtMs ??= state.partialSinceMs;
    return out;
  }

  /**
   * Everything held, line begun included (for the batch timer). At the job's `end` it adds the
   * note still owed for dropped output, and takes no more output.
   */
  flush(nowMs: number, end = false): OutputBatch[] {
    const out: OutputBatch[] = [];
    if (!this.ended) {
      this.refill(nowMs);
      for (const stream of ["stdout", "stderr"] as const) {
        const state = this.streams[stream];
        const partial = state.partial;
        // A line still being written (a flood's last chunk) waits for its end, or its delay.
        if (!end && nowMs - state.partialSinceMs < this.limits.batchDelayMs) continue;
        state.partial = "";
        if (partial !== "" && !this.accept(out, stream, partial, nowMs))
          this.drop(stream, partial, nowMs);
      }
      if (end && this.dropped.bytes > 0) {
        this.throttled = false;
        this.note(out, this.dropped.stream, this.rateNote(nowMs));
      }
    }
    if (end) this.ended = true;
    const last = this.noteStream;
    this.take(out, last === "stdout" ? "stderr" : "stdout");
    this.take(out, last);
    const waiting = this.ended
      ? []
      : [this.streams.stdout, this.streams.stderr].filter((st) => st.partial !== "");
    this.firstHeldAtMs =
      waiting.length === 0 ? undefined : Math.min(...waiting.map((st) => st.partialSinceMs));
    return out;
  }

  private refill(nowMs: number): void {
    const elapsedMs = Math.max(0, nowMs - this.refilledAtMs);
    this.refilledAtMs = nowMs;
    this.tokens = Math.min(
      this.limits.burstBytes,
      this.tokens + (elapsedMs * this.limits.rateBytesPerSec) / 1000,
    );
  }

  /** Adds a line to its stream's batch if the caps allow it; false once they do not. */
  private accept(out: OutputBatch[], stream: OutputStream, line: string, nowMs: number): boolean {
    if (this.ended || this.throttled) return false;
    const cost = Buffer.byteLength(line) + 1 + LINE_COST_BYTES;
    if (this.sentBytes + cost > this.limits.totalBytes) {
      this.note(
        out,
        stream,
        `${TRUNCATED} this rank reached its output cap of ${size(this.limits.totalBytes)}; ` +
          "the rest of its output is dropped",
      );
      this.ended = true;
      return false;
    }
    if (cost > this.tokens) {
      this.throttled = true;
      return false;
    }
    this.tokens -= cost;
    this.sentBytes += cost;
    this.hold(out, stream, line, cost, nowMs);
    return true;
  }

  /**
   * A line of the worker's own, beyond the caps (one per dropped stretch, or one at the end). The
   * other stream's held lines go first, so a closing note is the log's last line.
   */
  private note(out: OutputBatch[], stream: OutputStream, text: string): void {
    this.take(out, stream === "stdout" ? "stderr" : "stdout");
    this.noteStream = stream;
    this.hold(out, stream, text, Buffer.byteLength(text) + 1 + LINE_COST_BYTES, undefined);
    this.dropped.bytes = 0;
  }

  private hold(
    out: OutputBatch[],
    stream: OutputStream,
    line: string,
    cost: number,
    nowMs: number | undefined,
  ): void {
    const state = this.streams[stream];
    state.lines.push(line);
    state.bytes += cost;
    if (nowMs !== undefined) this.firstHeldAtMs ??= nowMs;
    if (state.lines.length >= BATCH_LINES || state.bytes >= BATCH_BYTES) this.take(out, stream);
  }

  private take(out: OutputBatch[], stream: OutputStream): void {
    const state = this.streams[stream];
    if (state.lines.length === 0) return;
    out.push({ stream, lines: state.lines });
    state.lines = [];
    state.bytes = 0;
  }

  private drop(stream: OutputStream, text: string, nowMs: number): void {
    if (text === "") return;
    if (this.dropped.bytes === 0) this.dropped.sinceMs = nowMs;
    this.dropped.bytes += Buffer.byteLength(text);
    this.dropped.stream = stream;
    this.streams[stream].broken = !text.endsWith("\n");
  }

  private rateNote(nowMs: number): string {
    const seconds = ((nowMs - this.dropped.sinceMs) / 1000).toFixed(1);
    return (
      `${TRUNCATED} ${size(this.dropped.bytes)} dropped over ${seconds} s ` +
      `(a rank may send ${size(this.limits.rateBytesPerSec)}/s, bursts of ` +
      `${size(this.limits.burstBytes)})`
    );
  }
}

/** Bytes for people: "512 B", "1.5 KiB", "64.0 MiB". */
function size(bytes: number): string {
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
