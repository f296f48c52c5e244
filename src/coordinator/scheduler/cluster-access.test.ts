import assert from "node:assert/strict";
import { it } from "node:test";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { authorizeCluster, type ClusterAction } from "./cluster-access.ts";

const cluster = { id: "clu_1", accountId: "acct_owner" };
const ACTIONS: ClusterAction[] = ["view", "terminate", "extend", "seal-secrets", "submit-task"];

function allowed(actor: { accountId: string; admin: boolean }): ClusterAction[] {
  return ACTIONS.filter((action) => {
    try {
      authorizeCluster(cluster, actor, action);
      return true;
    } catch (error) {
      assert.ok(error instanceof TandemError);
      assert.equal(error.code, ErrorCode.NOT_FOUND, "someone else's cluster does not exist");
      return false;
    }
  });
}

it("lets the owner do anything, an admin look and stop, and nobody else even see it", () => {
  assert.deepEqual(allowed({ accountId: "acct_owner", admin: false }), ACTIONS);
  assert.deepEqual(allowed({ accountId: "acct_owner", admin: true }), ACTIONS);
  assert.deepEqual(allowed({ accountId: "acct_ops", admin: true }), ["view", "terminate"]);
  assert.deepEqual(allowed({ accountId: "acct_other", admin: false }), []);
});
