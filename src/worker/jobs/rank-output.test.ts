import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BATCH_LINES,
  LINE_COST_BYTES,
  MAX_LINE_CHARS,
  RankOutput,
  TRUNCATED,
  type OutputBatch,
  type OutputLimits,
} from "./rank-output.ts";

const KiB = 1024;
const limits: OutputLimits = {
  rateBytesPerSec: 10 * KiB,
  burstBytes: 20 * KiB,
  totalBytes: 1024 * KiB,
  batchDelayMs: 200,
};
/** A line that costs exactly 1 KiB against the caps. */
const line = (i: number) => String(i).padStart(KiB - 1 - LINE_COST_BYTES, "x");
const lines = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => line(from + i) + "\n").join("");
const texts = (batches: OutputBatch[]) => batches.flatMap((b) => b.lines);

describe("rank output", () => {
  it("holds lines until the batch delay, then sends them in one batch", () => {
    const output = new RankOutput(limits, 0);
    assert.deepEqual(output.write("stdout", "a\nb\nhalf", 10), []);
    assert.equal(output.dueAtMs, 210);
    assert.deepEqual(output.write("stdout", " line\n", 50), []);
    assert.deepEqual(output.flush(210), [{ stream: "stdout", lines: ["a", "b", "half line"] }]);
    assert.equal(output.dueAtMs, undefined);
  });

  it("sends a line begun alone only once it has waited the batch delay, not a flood's last chunk", () => {
    const output = new RankOutput({ ...limits, burstBytes: 1024 * KiB }, 0);
    output.write("stdout", "a\nhalf", 0);
    output.write("stdout", " and more\nnew", 150);
    assert.equal(output.dueAtMs, 200);
    assert.deepEqual(texts(output.flush(200)), ["a", "half and more"]);
    assert.equal(output.dueAtMs, 350, "the line begun at 150 ms waits until 350 ms");
    assert.deepEqual(texts(output.flush(350)), ["new"]);
    assert.equal(output.dueAtMs, undefined);
  });

  it("sends a batch at once when it is full, and cuts lines longer than the protocol allows", () => {
    const output = new RankOutput({ ...limits, burstBytes: 1024 * KiB }, 0);
    const sent = output.write("stderr", "y\n".repeat(BATCH_LINES + 3), 0);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.lines.length, BATCH_LINES);
    assert.equal(output.flush(1).flatMap((b) => b.lines).length, 3);
    output.write("stdout", "z".repeat(MAX_LINE_CHARS * 2 + 5), 2);
    assert.deepEqual(
      texts(output.flush(202)).map((l) => l.length),
      [MAX_LINE_CHARS, MAX_LINE_CHARS, 5],
    );
  });

  it("drops output over the rate once the burst is spent, and says so in one line when it resumes", () => {
    // Dropped bytes are the job's own (992 a line here), without the per-line cost.
    const output = new RankOutput(limits, 0);
    const burst = texts([...output.write("stdout", lines(0, 30), 0), ...output.flush(0)]);
    assert.equal(burst.length, 20, "the burst is 20 lines of 1 KiB");
    // Throttled: dropped until half a burst (10 KiB) has come back, one second at 10 KiB/s.
    assert.deepEqual(output.write("stdout", lines(100, 5), 500), []);
    assert.deepEqual(output.write("stdout", lines(200, 5), 999), []);
    const resumed = texts([...output.write("stdout", lines(300, 3), 1000), ...output.flush(1000)]);
    assert.equal(resumed.length, 4);
    assert.match(
      resumed[0] ?? "",
      /^\[tandem\] output truncated: 19\.4 KiB dropped over 1\.0 s \(a rank may send 10\.0 KiB\/s, bursts of 20\.0 KiB\)$/,
    );
    assert.deepEqual(resumed.slice(1), [line(300), line(301), line(302)]);
  });

  it("a sustained flood gives a burst, then one note per half burst of output", () => {
    const output = new RankOutput(limits, 0);
    const sent: string[] = [];
    for (let ms = 0; ms <= 10_000; ms += 10)
      sent.push(...texts(output.write("stdout", lines(ms * 1000, 64), ms)));
    sent.push(...texts(output.flush(10_000, true)));
    const notes = sent.filter((l) => l.startsWith(TRUNCATED));
    const bytes = sent.length - notes.length;
    assert.ok(bytes <= 20 + 10 * 10, `${bytes} KiB sent: at most a burst and 10 s at 10 KiB/s`);
    assert.ok(notes.length <= 11, `${notes.length} notes`);
    assert.ok(sent.at(-1)?.startsWith(TRUNCATED), "the log ends with the note still owed");
  });

  it("ends a rank's output with one note at its total cap, and sends nothing after", () => {
    const output = new RankOutput({ ...limits, burstBytes: 1024 * KiB, totalBytes: 8 * KiB }, 0);
    const sent = texts([...output.write("stdout", lines(0, 20), 0), ...output.flush(0)]);
    assert.deepEqual(sent.slice(0, 8), [0, 1, 2, 3, 4, 5, 6, 7].map(line));
    assert.equal(sent.length, 9);
    assert.equal(
      sent[8],
      `${TRUNCATED} this rank reached its output cap of 8.0 KiB; the rest of its output is dropped`,
    );
    assert.deepEqual(output.write("stderr", "more\n", 5000), []);
    assert.deepEqual(output.flush(6000, true), []);
  });

  it("shares the caps between stdout and stderr, and sends the closing note last", () => {
    const output = new RankOutput(limits, 0);
    output.write("stderr", lines(0, 15), 0);
    output.write("stdout", lines(15, 15), 0);
    const end = output.flush(100, true);
    const all = texts(end);
    assert.equal(all.filter((l) => !l.startsWith(TRUNCATED)).length, 20);
    assert.equal(end.at(-1)?.stream, "stdout");
    assert.ok(all.at(-1)?.startsWith(`${TRUNCATED} 9.7 KiB dropped over 0.1 s`), all.at(-1));
    assert.deepEqual(output.write("stdout", "late\n", 200), []);
  });

  it("never sends the part of a line a drop has cut, whether read or discarded unread", () => {
    const output = new RankOutput(limits, 0);
    output.write("stdout", lines(0, 25).slice(0, -500), 0);
    assert.equal(output.accepting(100), false);
    output.discard("stdout", 4096, false, 100);
    assert.equal(output.accepting(1000), true);
    const sent = texts([
      ...output.write("stdout", "rest of a cut line\nwhole\n", 1000),
      ...output.flush(1000),
    ]);
    assert.equal(sent.length, 20 + 2);
    assert.match(sent[20] ?? "", /^\[tandem\] output truncated: /);
    assert.equal(sent[21], "whole");
    assert.ok(sent.slice(0, 20).every((l, i) => l === line(i)));
  });

  it("a job within its caps is passed through untouched, partial last line included", () => {
    const output = new RankOutput(limits, 0);
    const sent = [
      ...output.write("stdout", "one\ntw", 0),
      ...output.write("stdout", "o\nthree", 1),
      ...output.flush(2, true),
    ];
    assert.deepEqual(sent, [{ stream: "stdout", lines: ["one", "two", "three"] }]);
  });
});
