// A real OpenID Connect provider (panva's certified `oidc-provider`) for Aperture's identity tests.
//
//   node provider.mjs settings.json
//
// The settings file (written by tests/support/oidc.py) names the loopback port, the issuer, one
// confidential client, the accounts and their claims, the token lifetimes and the signing keys.
// Everything the provider does is oidc-provider's own: discovery, JWKS, the authorization
// endpoint with PKCE required, its development login form (devInteractions), the token endpoint,
// refresh tokens and RP-initiated logout. Consent is granted automatically for the one client, so
// a sign-in is: the login form, then straight back to the client.
//
// Test-only control, on the same loopback listener and only with the admin token the settings
// file names (header `x-admin-token`):
//   POST /_test/configure  {partial settings}  merge them and rebuild the provider: new redirect
//                          URIs, lifetimes, refresh policy (`refresh_tokens`: "offline_access",
//                          "always" or "never"; `rotate_refresh_tokens`), or keys (rotation: the first key
//                          signs; keep the old one after it or not). Sessions and grants live in
//                          one process-wide map (SharedMemoryAdapter), so they survive a rebuild.
//   GET  /_test/settings   the settings in force (without private keys).
// `token_endpoint` in the settings replaces the discovery document's token endpoint, so a test
// can put a proxy in front of the real one; the provider itself still serves /token.
//
// Its pages are oidc-provider's own, less the web font they would fetch from the internet.
// One line per request goes to stdout: `<method> <path> <status>`. SIGTERM stops it.

import { readFileSync } from "node:fs";
import * as http from "node:http";

import Provider from "oidc-provider";

const settingsPath = process.argv[2];
if (!settingsPath) {
  console.error("usage: node provider.mjs settings.json");
  process.exit(2);
}
let settings = JSON.parse(readFileSync(settingsPath, "utf-8"));

// The provider's state (sessions, grants, codes, refresh tokens) in one map for the whole process,
// so it outlives a rebuild of the provider by /_test/configure. Entries expire with their tokens.
const store = new Map();

class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  static get(key) {
    const entry = store.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.value;
  }

  static set(key, value, expiresIn) {
    const expiresAt = typeof expiresIn === "number" ? Date.now() + expiresIn * 1000 : undefined;
    store.set(key, { value, expiresAt });
  }

  async upsert(id, payload, expiresIn) {
    SharedMemoryAdapter.set(this.key(id), payload, expiresIn);
    if (this.model === "Session") SharedMemoryAdapter.set(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.grantId) {
      const members = SharedMemoryAdapter.get(`grant:${payload.grantId}`) || [];
      members.push(this.key(id));
      SharedMemoryAdapter.set(`grant:${payload.grantId}`, members);
    }
  }

  async find(id) {
    return SharedMemoryAdapter.get(this.key(id));
  }

  async findByUid(uid) {
    const id = SharedMemoryAdapter.get(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const payload = SharedMemoryAdapter.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of SharedMemoryAdapter.get(`grant:${grantId}`) || []) store.delete(key);
    store.delete(`grant:${grantId}`);
  }
}

function account(id) {
  const entry = settings.accounts[id];
  if (entry === undefined) return undefined;
  return {
    accountId: id,
    async claims() {
      return { sub: id, ...entry };
    },
  };
}

function refreshTokenWanted(client, source) {
  if (!client.grantTypeAllowed("refresh_token")) return false;
  switch (settings.refresh_tokens) {
    case "always":
      return true;
    case "never":
      return false;
    default:
      return source.scopes.has("offline_access");
  }
}

// Consent is not part of these tests: the grant covers whatever the client asked for.
async function grantEverything(ctx) {
  const { provider, client, session, params } = ctx.oidc;
  const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
  const found = grantId ? await provider.Grant.find(grantId) : undefined; // gone once revoked
  const grant = found || new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
  if (params.scope) grant.addOIDCScope(params.scope);
  await grant.save();
  return grant;
}

function build() {
  const client = settings.client;
  const ttl = settings.ttl;
  const provider = new Provider(settings.issuer, {
    adapter: SharedMemoryAdapter,
    clients: [
      {
        client_id: client.client_id,
        client_secret: client.client_secret,
        redirect_uris: client.redirect_uris,
        post_logout_redirect_uris: client.post_logout_redirect_uris,
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: client.token_endpoint_auth_method || "client_secret_basic",
      },
    ],
    jwks: { keys: settings.keys },
    cookies: {
      keys: settings.cookie_keys,
      names: { session: "op_session", interaction: "op_interaction", resume: "op_resume" },
    },
    claims: {
      openid: ["sub"],
      profile: ["name", "preferred_username", "groups"],
      email: ["email", "email_verified"],
      groups: ["groups"],
    },
    scopes: ["openid", "offline_access", "profile", "email", "groups"],
    conformIdTokenClaims: false, // the id_token carries the scopes' claims, not only `sub`
    findAccount: (_ctx, id) => account(id),
    loadExistingGrant: grantEverything,
    issueRefreshToken: async (_ctx, c, source) => refreshTokenWanted(c, source),
    // Rotation: each refresh answers a new refresh token and the used one is spent.
    rotateRefreshToken: () => Boolean(settings.rotate_refresh_tokens),
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true },
    },
    ttl: {
      IdToken: ttl.IdToken,
      AccessToken: ttl.AccessToken,
      RefreshToken: ttl.RefreshToken,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: ttl.Session,
      Grant: ttl.Session,
    },
    clockTolerance: 0,
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === "/.well-known/openid-configuration" && settings.token_endpoint && ctx.body) {
      ctx.body.token_endpoint = settings.token_endpoint;
    }
    // The built-in pages import a web font from the internet; tests stay on loopback.
    if (typeof ctx.body === "string" && ctx.body.includes("@import url(https:")) {
      ctx.body = ctx.body.replace(/@import url\(https:[^)]*\);?/g, "");
    }
  });
  provider.on("server_error", (_ctx, err) => console.error(`server_error: ${err.stack || err}`));
  return provider.callback();
}

let handle = build();

function publicSettings() {
  const shown = structuredClone(settings);
  shown.keys = settings.keys.map(({ kid, kty, alg }) => ({ kid, kty, alg }));
  delete shown.admin_token;
  return shown;
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 1_000_000) throw new Error("body too large");
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf-8") || "{}");
}

async function control(req, res) {
  const reply = (status, body) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (req.headers["x-admin-token"] !== settings.admin_token) return reply(403, { error: "admin token" });
  if (req.method === "GET" && req.url === "/_test/settings") return reply(200, publicSettings());
  if (req.method === "POST" && req.url === "/_test/configure") {
    const previous = settings;
    try {
      const changes = await readJson(req);
      settings = { ...settings, ...changes, ttl: { ...settings.ttl, ...(changes.ttl || {}) } };
      settings.client = { ...previous.client, ...(changes.client || {}) };
      handle = build();
    } catch (err) {
      settings = previous;
      return reply(400, { error: String(err) });
    }
    return reply(200, publicSettings());
  }
  return reply(404, { error: "no such control" });
}

const server = http.createServer((req, res) => {
  res.on("finish", () => console.log(`${req.method} ${req.url.split("?")[0]} ${res.statusCode}`));
  if (req.url.startsWith("/_test/")) {
    control(req, res).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
    return;
  }
  handle(req, res);
});

server.listen(settings.port, "127.0.0.1", () => {
  console.log(`oidc-provider ready at ${settings.issuer}`);
});

process.on("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
