// A real OpenID provider (panva/oidc-provider, OpenID Certified) for the authentication tests.
//
//   node provider.mjs --port 0 --clients clients.json [--port-file PATH] [--extra-key JWK]
//
// --extra-key publishes one more public key (the tests' own, kid "test-minter") so that tests
// can mint tokens with a trusted signature but bad claims; the provider never signs with it.
//
// Machine clients get JWT access tokens from the client credentials grant, laid out as Keycloak
// lays them out (preferred_username, realm_access.roles, resource_access.<client>.roles, groups,
// sid). People sign in with the device authorization grant (`agent-platform login`): public
// clients listed under "device_clients", accounts under "users" (roles and tenants as for
// clients), and the provider's development login and consent pages (any password), which the
// tests drive over HTTP as a browser would. Test-only control routes, on loopback only:
//   POST /__test/rotate[?drop=1]   new signing keys (the old ones stay published unless drop=1)
//   POST /__test/outage?down=1|0   the JWKS and discovery endpoints answer 503 while down
//   POST /__test/stats             how often the JWKS was fetched
import { randomUUID, generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import Provider from "oidc-provider";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const config = JSON.parse(readFileSync(args.clients, "utf8"));
const audience = config.audience;
const clientClaims = Object.fromEntries(config.clients.map((c) => [c.client_id, c]));
const users = Object.fromEntries((config.users || []).map((u) => [u.username, u]));
const deviceClients = (config.device_clients || []).map((c) => ({
  client_id: c.client_id,
  grant_types: ["urn:ietf:params:oauth:grant-type:device_code"],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: "none",
}));

function newKeys(generation) {
  const make = (type, options, alg) => {
    const { privateKey } = generateKeyPairSync(type, options);
    return { ...privateKey.export({ format: "jwk" }), kid: `${alg}-${generation}`, alg, use: "sig" };
  };
  return [
    make("rsa", { modulusLength: 2048 }, "RS256"),
    make("rsa", { modulusLength: 2048 }, "PS256"),
    make("ec", { namedCurve: "P-256" }, "ES256"),
  ];
}

let generation = 1;
let keys = newKeys(generation);
const extra = args["extra-key"] ? JSON.parse(readFileSync(args["extra-key"], "utf8")) : null;
let outage = false;
let jwksRequests = 0;
let current;

function build(issuer) {
  const provider = new Provider(issuer, {
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_post",
    })).concat(deviceClients),
    jwks: { keys },
    findAccount: async (ctx, id) =>
      users[id] ? { accountId: id, claims: async () => ({ sub: id, preferred_username: id }) } : undefined,
    features: {
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      devInteractions: { enabled: deviceClients.length > 0 },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => ({
          scope: "agents",
          audience,
          accessTokenTTL: (clientClaims[client.clientId] || {}).ttl || 600,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: (clientClaims[client.clientId] || {}).alg || "RS256" } },
        }),
      },
    },
    extraTokenClaims: async (ctx, token) => {
      const c = token.accountId ? users[token.accountId] || {} : clientClaims[token.clientId];
      const claims = {
        preferred_username: c.username || token.accountId || token.clientId,
        realm_access: { roles: c.realm_roles || [] },
        resource_access: { [audience]: { roles: c.client_roles || [] } },
        groups: c.groups || [],
        azp: token.clientId,
      };
      if (c.tenants) claims.tenants = c.tenants;
      claims.sid = c.sid === "per-token" ? randomUUID() : c.sid || undefined;
      return claims;
    },
  });
  provider.proxy = false;
  return provider.callback();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname === "/jwks") {
    jwksRequests += 1;
    if (extra && !outage) {
      // the provider's own keys plus the tests' public key
      const { d, p, q, dp, dq, qi, ...pub } = extra;
      const own = keys.map(({ d, p, q, dp, dq, qi, ...k }) => k);
      res.writeHead(200, { "content-type": "application/jwk-set+json" });
      res.end(JSON.stringify({ keys: [...own, pub] }));
      return;
    }
  }
  if (url.pathname.startsWith("/__test/") && req.method === "POST") {
    if (url.pathname === "/__test/rotate") {
      generation += 1;
      const fresh = newKeys(generation);
      keys = url.searchParams.get("drop") === "1" ? fresh : [...fresh, ...keys];
      current = build(issuerOf());
    } else if (url.pathname === "/__test/outage") {
      outage = url.searchParams.get("down") === "1";
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ generation, kids: keys.map((k) => k.kid), outage, jwksRequests }));
    return;
  }
  if (outage && (url.pathname === "/jwks" || url.pathname.startsWith("/.well-known/"))) {
    res.writeHead(503);
    res.end();
    return;
  }
  current(req, res);
});

function issuerOf() {
  return `http://127.0.0.1:${server.address().port}`;
}

server.listen(Number(args.port || 0), "127.0.0.1", () => {
  current = build(issuerOf());
  if (args["port-file"]) writeFileSync(args["port-file"], String(server.address().port));
  console.log(`oidc provider listening on ${issuerOf()}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
