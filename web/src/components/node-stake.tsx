import type { NodeStakeView } from "../../../src/protocol/stakes.ts";
import { client } from "../api.ts";
import { formatCount, formatTdm } from "../format.ts";
import { useRefreshOnSamples } from "../live.tsx";
import { Link } from "../router.tsx";
import { useAsync } from "../use-async.ts";
import { Loaded } from "./states.tsx";

/**
 * A node's stake (`GET /v1/nodes/:id/stake`): active and unbonding TDM, the minimum that makes it
 * eligible for reward blocks, its supplier's commission, its stakers, and what reward blocks paid
 * it in all. The API has no list of the blocks one node earned (`/v1/token/blocks` is by hour
 * only), so the count and the total stand in for it; each block's page lists its nodes.
 */
export function NodeStakePanel({ id }: { id: string }) {
  const stake = useAsync(() => client.nodeStake(id), id);
  // Stakes and reward blocks have no live event of their own: the panel follows the samples.
  useRefreshOnSamples(stake.reload);
  return (
    <section className="panel" aria-labelledby="stake-title">
      <h2 id="stake-title">Stake and rewards</h2>
      <Loaded state={stake} what="the stake">
        {(data) => <NodeStakeFacts stake={data} />}
      </Loaded>
    </section>
  );
}

function NodeStakeFacts({ stake }: { stake: NodeStakeView }) {
  return (
    <dl className="facts" data-testid="node-stake">
      <dt>Active</dt>
      <dd data-testid="stake-active">{formatTdm(stake.active)}</dd>
      <dt>Unbonding</dt>
      <dd data-testid="stake-unbonding">{formatTdm(stake.unbonding)}</dd>
      <dt>Minimum</dt>
      <dd data-testid="stake-eligible">
        <span className="num">{formatTdm(stake.minimum)}</span> ·{" "}
        {stake.eligible ? "met: eligible for rewards" : "not met: no rewards"}
      </dd>
      <dt>Commission</dt>
      <dd data-testid="stake-commission">{stake.commissionPercent} %</dd>
      <dt>Stakers</dt>
      <dd data-testid="stake-stakers">
        {formatCount(stake.stakers)} ({formatCount(stake.positions)} positions)
      </dd>
      <dt>Rewards</dt>
      <dd data-testid="stake-rewards">
        <span className="num">{formatTdm(stake.rewardsEarned)}</span> in{" "}
        {formatCount(stake.rewardedBlocks)} {stake.rewardedBlocks === 1 ? "block" : "blocks"}, of
        which commission <span className="num">{formatTdm(stake.rewardsCommission)}</span> (
        <Link to="/token">reward blocks</Link>)
      </dd>
    </dl>
  );
}
