import type { Command } from "commander";
import type { WalletTransaction } from "../../protocol/wallet.ts";
import { clientFor } from "../context.ts";
import { printFields, printJson, printTable } from "../output.ts";
import { addAdminBackupCommand } from "./admin-backup.ts";
import {
  fetchPages,
  withClientOptions,
  withPaging,
  type ClientOptions,
  type PagingOptions,
} from "./common.ts";

interface MoveOptions extends ClientOptions {
  amount: string;
  currency: string;
  idempotencyKey?: string;
}

/** `tandem wallet …`: balances, history, deposits (admin or faucet) and withdrawals. */
export function registerWalletCommands(program: Command): void {
  const wallet = program.command("wallet").description("your balances and money movements");

  withClientOptions(wallet.command("balance").description("wallet and earnings per currency"))
    .option("--account <id>", "another account's wallet (admin)")
    .action(async (options: ClientOptions & { account?: string }) => {
      const view = await (await clientFor(options)).wallet(options.account);
      if (options.json) return printJson(view);
      process.stdout.write(`account ${view.accountId}\n`);
      printTable(view.balances, [
        ["CURRENCY", (b) => b.currency],
        ["WALLET", (b) => b.wallet],
        ["EARNINGS", (b) => b.earnings],
      ]);
    });

  withPaging(
    withClientOptions(
      wallet
        .command("history")
        .description("your ledger transactions (wallet, earnings, stake positions), newest first"),
    ),
    50,
    500,
  )
    .option("--currency <code>", "TDM | USDC | USD")
    .action(
      async (options: ClientOptions & PagingOptions & { currency?: "TDM" | "USDC" | "USD" }) => {
        const client = await clientFor(options);
        const page = await fetchPages(options, (cursor) =>
          client.walletTransactions({
            limit: options.limit,
            ...(cursor === undefined ? {} : { cursor }),
            ...(options.currency === undefined ? {} : { currency: options.currency }),
          }),
        );
        if (options.json) return printJson(page);
        const rows = page.items.flatMap((t: WalletTransaction) => t.entries.map((e) => ({ t, e })));
        printTable(rows, [
          ["TRANSACTION", ({ t }) => t.id],
          ["TIME", ({ t }) => t.createdAt],
          ["KIND", ({ t }) => t.kind],
          ["BALANCE", ({ e }) => (e.stakeId === undefined ? e.balance : `stake ${e.stakeId}`)],
          ["LEG", ({ e }) => e.leg],
          ["AMOUNT", ({ e }) => `${e.amount} ${e.currency}`],
          ["RATE", ({ t }) => (t.exchange === null ? "-" : exchangeText(t.exchange))],
          ["CLUSTER", ({ t }) => t.clusterId ?? "-"],
          ["REFERENCE", ({ t }) => t.railReference ?? "-"],
        ]);
        if (page.nextCursor !== null)
          process.stdout.write(`\nmore: tandem wallet history --cursor ${page.nextCursor}\n`);
      },
    );

  withClientOptions(
    wallet
      .command("deposit-address")
      .description("where to send USDC or TDM on Solana to fund your wallet (when the rail is on)"),
  )
    .requiredOption("--currency <code>", "USDC | TDM")
    .action(async (options: ClientOptions & { currency: string }) => {
      const view = await (await clientFor(options)).depositAddress(options.currency);
      if (options.json) return printJson(view);
      printFields([
        ["send", `${view.currency} (mint ${view.mint}) on Solana`],
        ["to", view.address],
        ["owner", view.owner],
        ["account", view.accountId],
      ]);
    });

  withClientOptions(
    wallet
      .command("payout-currency")
      .description(
        "the currency your earnings are paid in (converted at the price oracle's rate); " +
          "without an argument, shows it",
      )
      .argument("[currency]", "TDM | USDC | USD, or 'default' for the currency each consumer paid"),
  ).action(async (currency: string | undefined, options: ClientOptions) => {
    const client = await clientFor(options);
    const view =
      currency === undefined
        ? await client.payoutCurrency()
        : await client.setPayoutCurrency(currency === "default" ? null : currency);
    if (options.json) return printJson(view);
    process.stdout.write(
      `payout currency: ${view.currency ?? "default (the currency each consumer paid)"}\n`,
    );
  });

  withIdempotency(
    withClientOptions(
      wallet
        .command("deposit")
        .description(
          "credit a wallet: any account as admin, your own where the faucet is on (tandem dev)",
        ),
    ),
  )
    .option("--account <id>", "whose wallet (admin; default your own)")
    .action(async (options: MoveOptions & { account?: string }) => {
      const client = await clientFor(options);
      const receipt = await client.deposit(
        {
          currency: options.currency,
          amount: options.amount,
          ...(options.account === undefined ? {} : { accountId: options.account }),
        },
        options.idempotencyKey,
      );
      if (options.json) return printJson(receipt);
      printFields([
        ["deposited", `${receipt.amount} ${receipt.currency}`],
        ["account", receipt.accountId],
        ["transaction", receipt.transactionId],
        ["rail", `${receipt.rail} (${receipt.railReference})`],
      ]);
    });

  withIdempotency(
    withClientOptions(
      wallet.command("withdraw").description("pay out from your earnings or wallet"),
    ),
  )
    .option("--from <balance>", "earnings | wallet", "earnings")
    .option("--destination <text>", "where the rail should send it")
    .action(
      async (options: MoveOptions & { from: "earnings" | "wallet"; destination?: string }) => {
        const client = await clientFor(options);
        const receipt = await client.withdraw(
          {
            currency: options.currency,
            amount: options.amount,
            from: options.from,
            ...(options.destination === undefined ? {} : { destination: options.destination }),
          },
          options.idempotencyKey,
        );
        if (options.json) return printJson(receipt);
        printFields([
          ["withdrew", `${receipt.amount} ${receipt.currency} from ${receipt.from}`],
          ["transaction", receipt.transactionId],
          ["rail", `${receipt.rail} (${receipt.railReference})`],
        ]);
      },
    );
}

function withIdempotency(command: Command): Command {
  return command
    .requiredOption("--amount <amount>", 'decimal amount, up to 6 decimals, e.g. "1000" or "12.5"')
    .requiredOption("--currency <code>", "TDM | USDC | USD")
    .option(
      "--idempotency-key <key>",
      "retry-safe key: the same key never moves money twice (default: a fresh one)",
    );
}

/** `tandem admin ledger-audit`: the ledger's invariants, from the postings; exit code 1 if broken. */
export function registerAdminCommands(program: Command): void {
  const admin = program.command("admin").description("operator commands");
  addAdminBackupCommand(admin);
  withClientOptions(
    admin
      .command("ledger-audit")
      .description(
        "per currency: deposits, withdrawals, burned, Σ balances; unbalanced transactions",
      ),
  ).action(async (options: ClientOptions) => {
    const audit = await (await clientFor(options)).ledgerAudit();
    if (!audit.ok) process.exitCode = 1;
    if (options.json) return printJson(audit);
    printTable(audit.currencies, [
      ["CURRENCY", (c) => c.currency],
      ["DEPOSITS", (c) => c.deposits],
      ["WITHDRAWALS", (c) => c.withdrawals],
      ["BURNED", (c) => c.burned],
      ["TREASURY", (c) => c.treasury],
      ["EXCHANGE", (c) => c.exchange],
      ["BALANCES", (c) => c.balances],
      ["CONSERVED", (c) => (c.conserved ? "yes" : "NO")],
    ]);
    printFields([
      ["transactions", String(audit.transactions)],
      ["postings", String(audit.postings)],
      ["unbalanced", String(audit.unbalancedTransactions)],
      ["negative balances", String(audit.negativeBalances)],
      ["cache mismatches", String(audit.cacheMismatches)],
      [
        "TDM supply",
        `${audit.supply.totalSupply} of ${audit.supply.maxSupply}` +
          (audit.supply.problems.length === 0 ? "" : ` (${audit.supply.problems.join("; ")})`),
      ],
      ["ledger", audit.ok ? "OK" : "BROKEN"],
    ]);
  });
}

/** `tandem cluster costs ID`, for the `cluster` command group to add. */
export function addClusterCostsCommand(cluster: Command): void {
  withClientOptions(
    cluster
      .command("costs")
      .description("what a cluster cost: charged, served, paid out, fees, burned, refunded")
      .argument("<id>", "cluster id"),
  ).action(async (id: string, options: ClientOptions) => {
    const costs = await (await clientFor(options)).clusterCosts(id);
    if (options.json) return printJson(costs);
    const c = costs.currency;
    printFields([
      ["cluster", costs.clusterId],
      ["charged", `${costs.charged} ${c}`],
      ["  rental", `${costs.rental} ${c}`],
      ["  reservation fee", `${costs.consumerFees.reservation} ${c}`],
      ["  payment fee", `${costs.consumerFees.payment} ${c}`],
      ["served", `${costs.served} ${c}`],
      ["  paid out", `${costs.paidOut} ${c}`],
      ["  supplier fees", `${costs.supplierFees} ${c}`],
      ["  burned", `${costs.burned} ${c}`],
      ["refunded", `${costs.refunded} ${c}`],
      ["in escrow", `${costs.escrow} ${c}`],
      ...costs.payouts.map((p): [string, string] => [
        "supplier earnings",
        `${p.amount} ${p.currency}${p.rate === null ? "" : ` at ${p.rate} ${p.currency}/${c}`}`,
      ]),
    ]);
  });
}

function exchangeText(e: NonNullable<WalletTransaction["exchange"]>): string {
  return `${e.rate} ${e.to}/${e.from}`;
}
