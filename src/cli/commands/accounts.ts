import type { Command } from "commander";
import { cliClient, clientFor, resolveConnection, saveLogin } from "../context.ts";
import { printFields, printJson, printTable } from "../output.ts";
import {
  fetchPages,
  withClientOptions,
  withPaging,
  type ClientOptions,
  type PagingOptions,
} from "./common.ts";

export function registerAccountCommands(program: Command): void {
  withClientOptions(
    program.command("login").description("save an API key (mode 0600) for later commands"),
    { apiKey: false },
  )
    .requiredOption("--api-key <key>", "the key to save")
    .action(async (options: ClientOptions & { apiKey: string }) => {
      const { url } = await resolveConnection(options);
      const me = await cliClient(url, options.apiKey).me();
      const path = await saveLogin({ url, apiKey: options.apiKey });
      if (options.json) return printJson({ ...me, url, savedTo: path });
      process.stdout.write(
        `logged in to ${url} as ${me.accountId} (${me.roles.join(", ")}); key saved to ${path}\n`,
      );
    });

  const account = program.command("account").description("your account");
  withClientOptions(
    account.command("create").description("sign up: creates an account and shows its API key once"),
  )
    .option("--role <role...>", "consumer and/or supplier", ["consumer"])
    .option("--save", "save the new key as this CLI's login")
    .action(
      async (options: ClientOptions & { role: Array<"consumer" | "supplier">; save?: boolean }) => {
        const client = await clientFor(options);
        const created = await client.createAccount({ roles: options.role });
        const savedTo = options.save
          ? await saveLogin({ url: client.baseUrl, apiKey: created.apiKey })
          : undefined;
        if (options.json)
          return printJson({ ...created, ...(savedTo === undefined ? {} : { savedTo }) });
        printFields([
          ["account", created.accountId],
          ["roles", created.roles.join(", ")],
          ["api key", created.apiKey],
        ]);
        process.stdout.write(
          savedTo === undefined
            ? "\nThe key is shown only once: keep it (or run `tandem login --api-key <key>`).\n"
            : `\nsaved to ${savedTo}\n`,
        );
      },
    );

  withClientOptions(
    account.command("show").description("who the current API key belongs to"),
  ).action(async (options: ClientOptions) => {
    const me = await (await clientFor(options)).me();
    if (options.json) return printJson(me);
    printFields([
      ["account", me.accountId],
      ["roles", me.roles.join(", ")],
      ["created", me.createdAt],
    ]);
  });

  const keys = program.command("keys").description("your API keys");
  withClientOptions(
    keys.command("create").description("issue another API key (shown once)"),
  ).action(async (options: ClientOptions) => {
    const key = await (await clientFor(options)).createApiKey();
    if (options.json) return printJson(key);
    printFields([
      ["id", key.apiKeyId],
      ["api key", key.apiKey],
    ]);
  });
  withPaging(
    withClientOptions(
      keys.command("list").description("your API keys (prefixes only), oldest first"),
    ),
    50,
    200,
  ).action(async (options: ClientOptions & PagingOptions) => {
    const client = await clientFor(options);
    const list = await fetchPages(options, (cursor) =>
      client.listApiKeys({ limit: options.limit, ...(cursor === undefined ? {} : { cursor }) }),
    );
    if (options.json) return printJson(list);
    printTable(list.items, [
      ["ID", (k) => k.id],
      ["PREFIX", (k) => k.prefix + "…"],
      ["CREATED", (k) => k.createdAt],
      ["REVOKED", (k) => k.revokedAt ?? "-"],
    ]);
    if (list.nextCursor !== null)
      process.stdout.write(`\nmore: tandem keys list --cursor ${list.nextCursor} (or --all)\n`);
  });
  withClientOptions(
    keys.command("revoke").description("revoke one of your API keys").argument("<id>", "key id"),
  ).action(async (id: string, options: ClientOptions) => {
    const result = await (await clientFor(options)).revokeApiKey(id);
    if (options.json) return printJson(result);
    process.stdout.write(`revoked ${id}\n`);
  });
}

export function registerDeviceCommands(program: Command): void {
  const devices = program.command("devices").description("supplier devices (admin actions)");
  withClientOptions(
    devices
      .command("revoke")
      .description("revoke a device for good (admin): disconnects it and refuses its key")
      .argument("<id>", "device id"),
  )
    .option("--reason <text>", "why, recorded in the node's history")
    .action(async (id: string, options: ClientOptions & { reason?: string }) => {
      const result = await (await clientFor(options)).revokeDevice(id, options.reason);
      if (options.json) return printJson(result);
      process.stdout.write(`revoked ${result.deviceId} at ${result.revokedAt}\n`);
    });
}
