// A real OpenID Provider for the conformance tests (tests/test_sso_conformance.py):
// the certified `oidc-provider` from npm (https://www.npmjs.com/package/oidc-provider),
// configured by one of SETTINGS below, in memory, on 127.0.0.1.
//
//   node conformance/provider.mjs --port 9100 --settings defaults \
//     --client-id app --client-secret s3cret \
//     --redirect-uri http://127.0.0.1:5000/auth/sso/callback \
//     --post-logout-redirect-uri http://127.0.0.1:5000/
//
// It prints one line, `oidc-provider ready at <issuer>`, once it listens. Besides the
// provider's own endpoints, /__conformance/ shows the tests the provider's state:
//   GET  /__conformance/state   the tokens, grants and sessions it holds (ids and owners)
//   GET  /__conformance/events  what happened: sign-ins, token grants, revocations, logouts
//   GET  /__conformance/calls   how many requests each endpoint (path) answered
//   POST /__conformance/reset   forget all of it (the clients and keys stay)

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: options } = parseArgs({
  options: {
    port: { type: 'string' },
    settings: { type: 'string', default: 'defaults' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string' },
    'post-logout-redirect-uri': { type: 'string' },
  },
});

// The people who can sign in (devInteractions' login form: any password).
const ACCOUNTS = {
  ada: { email: 'ada@example.com', email_verified: true, name: 'Ada Lovelace' },
  bob: { email: 'bob@example.com', email_verified: false, name: 'Bob Unverified' },
};

// Each setting is the library's configuration over the defaults below.
const SETTINGS = {
  // The library's own defaults: profile claims only from userinfo when an access token is
  // issued (conformIdTokenClaims, OIDC Core 5.4), and a refresh token only for a grant with
  // `offline_access`, which itself is granted only with prompt=consent (OIDC Core 11).
  defaults: {},
  // Like the big social sign-in providers: the claims in the ID token too, and a refresh
  // token without `offline_access`, a scope the discovery document does not even list.
  social: {
    conformIdTokenClaims: false,
    scopes: ['openid'],
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  },
};

if (!options.port || !(options.settings in SETTINGS)) {
  console.error(`usage: provider.mjs --port N --settings ${Object.keys(SETTINGS).join('|')} ...`);
  process.exit(2);
}

function signingKey(type, parameters, alg) {
  const { privateKey } = generateKeyPairSync(type, parameters);
  return { ...privateKey.export({ format: 'jwk' }), kid: `${alg.toLowerCase()}-key`, use: 'sig', alg };
}

// An in-memory store the tests can look into (the library's own adapter is private).
const store = new Map();
class InspectableAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    store.set(this.key(id), { model: this.model, id, payload, expiresIn });
  }

  async find(id) {
    return store.get(this.key(id))?.payload;
  }

  async findByUid(uid) {
    return [...store.values()].find((e) => e.model === this.model && e.payload.uid === uid)
      ?.payload;
  }

  async findByUserCode(userCode) {
    return [...store.values()].find(
      (e) => e.model === this.model && e.payload.userCode === userCode,
    )?.payload;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of store) {
      if (entry.model === this.model && entry.payload.grantId === grantId) store.delete(key);
    }
  }
}

const port = Number(options.port);
const issuer = `http://127.0.0.1:${port}`;
const client = {
  client_id: options['client-id'],
  client_secret: options['client-secret'],
  redirect_uris: [options['redirect-uri']],
  post_logout_redirect_uris: [options['post-logout-redirect-uri']],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};

const provider = new Provider(issuer, {
  adapter: InspectableAdapter,
  clients: [
    client,
    // The same app registered to receive ES256-signed ID tokens only.
    { ...client, client_id: `${client.client_id}-es256`, id_token_signed_response_alg: 'ES256' },
  ],
  jwks: {
    keys: [
      signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
      signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
    ],
  },
  cookies: {
    keys: [randomBytes(32).toString('hex')],
    // The app is on 127.0.0.1 too (another port, the same cookie jar): names of our own.
    names: { session: 'op_sid', interaction: 'op_interaction', resume: 'op_resume' },
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  // Short enough that the app (which refreshes tokens expiring within two minutes)
  // refreshes at each provider API call: refresh is exercised without waiting.
  ttl: { AccessToken: 90 },
  async findAccount(ctx, sub) {
    const account = ACCOUNTS[sub];
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...account }) };
  },
  ...SETTINGS[options.settings],
});

const events = [];
const calls = {};
function record(name, ctx, extra = {}) {
  events.push({
    event: name,
    client_id: ctx?.oidc?.client?.clientId ?? null,
    grant_type: ctx?.oidc?.params?.grant_type ?? null,
    ...extra,
  });
}
for (const name of ['authorization.success', 'grant.success', 'end_session.success']) {
  provider.on(name, (ctx) => record(name, ctx));
}
provider.on('grant.revoked', (ctx, grantId) => record('grant.revoked', ctx, { grant_id: grantId }));
for (const name of ['authorization.error', 'grant.error', 'end_session.error', 'revocation.error']) {
  provider.on(name, (ctx, error) => record(name, ctx, { error: error.error ?? String(error) }));
}

function state() {
  const entries = [...store.values()].map(({ model, id, payload }) => ({
    model,
    id,
    grant_id: payload.grantId ?? (model === 'Grant' ? id : null),
    account_id: payload.accountId ?? null,
    client_id: payload.clientId ?? null,
    scope: payload.scope ?? null,
  }));
  return { issuer, settings: options.settings, entries };
}

function control(req, res) {
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && req.url === '/__conformance/state') return send(200, state());
  if (req.method === 'GET' && req.url === '/__conformance/events') return send(200, events);
  if (req.method === 'GET' && req.url === '/__conformance/calls') return send(200, calls);
  if (req.method === 'POST' && req.url === '/__conformance/reset') {
    store.clear();
    events.length = 0;
    for (const path of Object.keys(calls)) delete calls[path];
    return send(200, {});
  }
  return send(404, { error: 'not_found' });
}

const callback = provider.callback();
const server = createServer((req, res) => {
  if (req.url.startsWith('/__conformance/')) return control(req, res);
  const { pathname } = new URL(req.url, issuer);
  calls[pathname] = (calls[pathname] ?? 0) + 1;
  return callback(req, res);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ready at ${issuer} (settings: ${options.settings})`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0)); // in memory: nothing to save
}
