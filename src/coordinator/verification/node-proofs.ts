/**
 * The proofs of hardware in flight, one per connected node (the gateway hands each worker
 * connection in as a channel): starts a {@link ProofSession}, relays its messages, arms and clears
 * its deadlines, and records each finished proof through the node lifecycle (one history row with
 * the proof's record; a passed node becomes available as what it proved; a too-fast one is
 * flagged). A proof ends with its channel: a closed connection drops it unrecorded.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Clock } from "../../core/clock.ts";
import type { ProofPolicy } from "../../core/hardware-proof.ts";
import { HardwareReport } from "../../protocol/hardware.ts";
import type {
  CoordinatorMessage,
  ProveCommitMessage,
  ProveRevealMessage,
} from "../../protocol/worker-messages.ts";
import type { NodeLifecycle } from "../registry/node-lifecycle.ts";
import { ProofSession, TOO_FAST_FLAG, type ProofOutcome } from "./proof-session.ts";
import type { z } from "zod";

/** One worker connection, as far as its proof goes. */
export interface ProofChannel {
  readonly nodeId: string;
  send(message: CoordinatorMessage): void;
  /** Ends the connection (the proof could not be recorded: the worker reconnects and is proven again). */
  close(reason: string): void;
}

/** setTimeout's longest delay (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface InFlight {
  channel: ProofChannel;
  session: ProofSession;
  timer: NodeJS.Timeout | undefined;
}

export class NodeProofs {
  private readonly inFlight = new Map<string, InFlight>();

  constructor(
    private readonly deps: { clock: Clock; lifecycle: NodeLifecycle; logger: FastifyBaseLogger },
    private readonly policy: ProofPolicy,
  ) {}

  /** Proofs now in flight. */
  get size(): number {
    return this.inFlight.size;
  }

  /** Whether a proof of the node is under way. */
  inFlightFor(nodeId: string): boolean {
    return this.inFlight.has(nodeId);
  }

  /** Starts proving the devices of `hardwareJson` (the node's stored hardware report). */
  async start(channel: ProofChannel, hardwareJson: string): Promise<void> {
    this.drop(channel.nodeId);
    const parsed = HardwareReport.safeParse(parseJson(hardwareJson));
    if (!parsed.success) {
      this.deps.logger.error({ nodeId: channel.nodeId }, "stored hardware report unreadable");
      return;
    }
    const started = ProofSession.start(parsed.data, this.policy, this.deps.clock);
    if ("outcome" in started) {
      await this.record(channel, started.outcome);
      return;
    }
    const flight: InFlight = { channel, session: started.session, timer: undefined };
    this.inFlight.set(channel.nodeId, flight);
    channel.send(started.session.begin());
    this.arm(flight, started.session.commitDeadlineMs);
  }

  async onCommit(
    channel: ProofChannel,
    message: z.infer<typeof ProveCommitMessage>,
  ): Promise<void> {
    const flight = this.current(channel);
    if (flight === undefined) return this.unasked(channel, message.type, message.proofId);
    clearTimeout(flight.timer);
    const reply = flight.session.onCommit(message);
    if ("type" in reply) {
      channel.send(reply);
      this.arm(flight, flight.session.revealDeadlineMs);
    } else await this.finish(flight, reply);
  }

  async onReveal(
    channel: ProofChannel,
    message: z.infer<typeof ProveRevealMessage>,
  ): Promise<void> {
    const flight = this.current(channel);
    if (flight === undefined) return this.unasked(channel, message.type, message.proofId);
    await this.finish(flight, flight.session.onReveal(message));
  }

  /** Drops the node's proof in flight (its connection closed), unrecorded. */
  drop(nodeId: string, channel?: ProofChannel): void {
    const flight = this.inFlight.get(nodeId);
    if (flight === undefined || (channel !== undefined && flight.channel !== channel)) return;
    clearTimeout(flight.timer);
    this.inFlight.delete(nodeId);
  }

  /** Drops every proof in flight (the coordinator stops). */
  stop(): void {
    for (const nodeId of [...this.inFlight.keys()]) this.drop(nodeId);
  }

  private current(channel: ProofChannel): InFlight | undefined {
    const flight = this.inFlight.get(channel.nodeId);
    return flight?.channel === channel ? flight : undefined;
  }

  private unasked(channel: ProofChannel, type: string, proofId: string): void {
    // No proof in flight on this connection (a late or replayed answer): nothing to judge.
    this.deps.logger.warn({ nodeId: channel.nodeId, type, proofId }, "proof message not asked for");
  }

  private arm(flight: InFlight, ms: number): void {
    flight.timer = setTimeout(
      () => {
        if (this.inFlight.get(flight.channel.nodeId) !== flight) return;
        void this.finish(flight, flight.session.expire());
      },
      Math.min(ms, MAX_TIMER_MS),
    );
    flight.timer.unref();
  }

  private async finish(flight: InFlight, outcome: ProofOutcome): Promise<void> {
    this.drop(flight.channel.nodeId, flight.channel);
    await this.record(flight.channel, outcome);
  }

  private async record(channel: ProofChannel, outcome: ProofOutcome): Promise<void> {
    const { nodeId } = channel;
    const { passed, record, provenModel, tooFast } = outcome;
    try {
      await this.deps.lifecycle.recordVerification(
        nodeId,
        {
          passed,
          detail: { ...record },
          provenModel,
          flag: tooFast ? { flag: TOO_FAST_FLAG, detail: { proofId: record.proofId } } : undefined,
        },
        {
          actor: "coordinator",
          reason: `${passed ? "passed" : "failed"} the proof of hardware: ${record.reason}`,
          nowMs: this.deps.clock.now(),
        },
      );
      this.deps.logger.info({ nodeId, passed, reason: record.reason }, "proof of hardware");
    } catch (error) {
      // Unrecorded: the node stays as it was and is proven again when it reconnects.
      this.deps.logger.error({ err: error, nodeId }, "proof of hardware not recorded");
      channel.close("proof not recorded; reconnect");
    }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
