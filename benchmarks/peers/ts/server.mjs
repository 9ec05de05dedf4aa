// The official MCP TypeScript SDK serving tollgate's four tools (simple equivalents), for the
// MCP throughput comparison in ../../run-mcp.sh.
//
// Stateless streamable HTTP with JSON answers, as the SDK documents it: a new McpServer and a
// new StreamableHTTPServerTransport({sessionIdGenerator: undefined, enableJsonResponse: true})
// for every request, on node:http. Only public SDK APIs are used.
//
//   PORT=8001 node server.mjs
import http from "node:http";
import os from "node:os";
import { randomUUID } from "node:crypto";

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

const PORT = Number(process.env.PORT ?? 8001);
const HOST = process.env.HOST ?? "127.0.0.1";
const INSTANCE_ID = process.env.INSTANCE_ID ?? randomUUID();
const STARTED = Date.now();

const FACTS = {
  "app service scaling":
    "App Service scales out by adding instances behind its front ends; stateless servers scale best.",
  "deployment slots":
    "Deployment slots are live apps with their own host names; a swap warms the target slot first.",
  "semantic caching":
    "A semantic cache serves a stored answer when a new prompt means the same as a cached one.",
  "token limits":
    "A token budget caps the tokens each subscription may spend per minute; over it the gateway answers 429.",
  mcp: "MCP (Model Context Protocol) lets a model call tools that a server describes with JSON schemas.",
};

// Schemas are built once; each request only registers them on its own server.
const echoInput = { message: z.string().describe("The text to send back.") };
const echoOutput = { message: z.string(), length: z.number(), instance_id: z.string() };
const whoamiOutput = {
  instance_id: z.string(),
  hostname: z.string(),
  pid: z.number(),
  uptime_seconds: z.number(),
  served_at: z.string(),
};
const factInput = { topic: z.string().describe("The topic to look up.") };
const factOutput = {
  found: z.boolean(),
  topic: z.string(),
  fact: z.string().optional(),
  instance_id: z.string(),
};
const summarizeInput = {
  text: z.string().optional(),
  topic: z.string().optional(),
  max_sentences: z.number().int().optional(),
};
const summarizeOutput = { summary: z.string(), sentences: z.array(z.string()), instance_id: z.string() };

function structured(value) {
  return { content: [{ type: "text", text: JSON.stringify(value) }], structuredContent: value };
}

function buildServer() {
  const server = new McpServer({ name: "peer-ts", version: "0.1.0" });
  server.registerTool(
    "whoami",
    { description: "Identify the serving instance.", inputSchema: {}, outputSchema: whoamiOutput },
    async () =>
      structured({
        instance_id: INSTANCE_ID,
        hostname: os.hostname(),
        pid: process.pid,
        uptime_seconds: (Date.now() - STARTED) / 1000,
        served_at: new Date().toISOString(),
      }),
  );
  server.registerTool(
    "echo",
    { description: "Return the message unchanged.", inputSchema: echoInput, outputSchema: echoOutput },
    async ({ message }) =>
      structured({ message, length: [...message].length, instance_id: INSTANCE_ID }),
  );
  server.registerTool(
    "lookup_fact",
    { description: "Look up a short fact.", inputSchema: factInput, outputSchema: factOutput },
    async ({ topic }) => {
      const key = topic.trim().toLowerCase();
      const fact = FACTS[key];
      return structured(
        fact === undefined
          ? { found: false, topic, instance_id: INSTANCE_ID }
          : { found: true, topic: key, fact, instance_id: INSTANCE_ID },
      );
    },
  );
  server.registerTool(
    "summarize",
    { description: "Summarize text or a topic.", inputSchema: summarizeInput, outputSchema: summarizeOutput },
    async ({ text, topic, max_sentences }) => {
      const source = text ?? FACTS[(topic ?? "").trim().toLowerCase()] ?? "";
      if (source === "") {
        return { content: [{ type: "text", text: "Give text or a known topic." }], isError: true };
      }
      const sentences = source.split(/(?<=[.!?])\s+/).slice(0, Math.max(1, max_sentences ?? 3));
      return structured({ summary: sentences.join(" "), sentences, instance_id: INSTANCE_ID });
    },
  );
  return server;
}

function reply(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

const httpServer = http.createServer(async (req, res) => {
  const path = (req.url ?? "").split("?")[0];
  if (req.method === "GET" && path === "/health") return reply(res, 200, { status: "healthy" });
  if (path !== "/mcp") return reply(res, 404, { error: "not found" });
  if (req.method !== "POST") {
    return reply(res, 405, { jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed." }, id: null });
  }
  let body;
  try {
    body = await readJson(req);
  } catch {
    return reply(res, 400, { jsonrpc: "2.0", error: { code: -32700, message: "Parse error" }, id: null });
  }
  const server = buildServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => {
    transport.close();
    server.close();
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  } catch (error) {
    if (!res.headersSent) {
      reply(res, 500, { jsonrpc: "2.0", error: { code: -32603, message: String(error) }, id: null });
    }
  }
});

httpServer.keepAliveTimeout = 65_000;
httpServer.listen(PORT, HOST, () => {
  console.log(`peer-ts (MCP TypeScript SDK) listening on http://${HOST}:${PORT}/mcp`);
});
