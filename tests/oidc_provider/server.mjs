// A real OpenID Connect provider for the tests and the demo: panva's oidc-provider (an
// OpenID Certified implementation) on 127.0.0.1, with what a test needs around it:
//
// - consent without a person: GET /interaction/:uid shows who is asked for (JSON, or a small
//   HTML form for a browser), POST /interaction/:uid signs in as the user it names (any
//   claims: email, email_verified, name, preferred_username, ...) or refuses with an OAuth
//   error (access_denied by default), and the provider redirects back as it always does
//   (code, state and iss per RFC 9207, or error, state and iss);
// - clients registered by RFC 7591 dynamic registration (POST /reg), or given with --client;
// - faults a test switches on and off (PUT/DELETE /_test/faults): a token endpoint that resets
//   the connection, answers an HTTP error or garbage, or is slow; ID tokens with claims set or
//   removed (aud, iss, exp, iat, nonce, ...) and signed by the provider's key, by a foreign key
//   under the provider's kid, or not at all (alg "none").
//
// Usage: node server.mjs --port 9400 [--client '{"client_id": ..., "client_secret": ...,
//        "redirect_uris": [...]}']...   Issuer: http://127.0.0.1:PORT
import * as crypto from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '9400' },
    host: { type: 'string', default: '127.0.0.1' },
    client: { type: 'string', multiple: true, default: [] },
  },
});
const port = Number(args.port);
const issuer = `http://${args.host}:${port}`;

// -- keys: the provider's signing key, and a foreign one for forged signatures --------------

function rsaJwk(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

const signingKey = rsaJwk(crypto.randomBytes(8).toString('hex'));
const foreignKey = rsaJwk(signingKey.kid); // same kid: the JWKS lookup succeeds, the check fails

// -- users: whoever a consent named, with the claims it gave --------------------------------

const users = new Map();

// -- the provider --------------------------------------------------------------------------

const provider = new Provider(issuer, {
  clients: args.client.map((text) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    ...JSON.parse(text),
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'given_name', 'family_name', 'picture', 'locale'],
  },
  // Put the scopes' claims in the ID token, as Google and Keycloak do (the userinfo
  // endpoint, /me, answers them too).
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  // RFC 9700 2.1.1: PKCE for every client; S256 is the only method this provider accepts.
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    revocation: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
  },
  async findAccount(ctx, sub) {
    return { accountId: sub, claims: async () => ({ ...users.get(sub), sub }) };
  },
});

// -- faults --------------------------------------------------------------------------------

const noFaults = () => ({ token_endpoint: null, id_token: null });
let faults = noFaults();

function base64url(data) {
  return Buffer.from(data).toString('base64url');
}

// Rewrite an ID token: claims set or removed, then signed as asked.
function forge(idToken, { set = {}, unset = [], signature = 'provider' }) {
  const [, payloadPart] = idToken.split('.');
  const payload = { ...JSON.parse(Buffer.from(payloadPart, 'base64url').toString()), ...set };
  for (const name of unset) delete payload[name];
  if (signature === 'none') {
    return `${base64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url(JSON.stringify(payload))}.`;
  }
  const key = signature === 'foreign' ? foreignKey : signingKey;
  const header = { alg: 'RS256', typ: 'JWT', kid: key.kid };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  const sig = crypto.sign('sha256', Buffer.from(input), crypto.createPrivateKey({ key, format: 'jwk' }));
  return `${input}.${sig.toString('base64url')}`;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// -- request bodies (Koa has no parser of its own) -----------------------------------------

async function readBody(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString();
  if (!text) return {};
  if (ctx.is('application/json')) return JSON.parse(text);
  return Object.fromEntries(new URLSearchParams(text));
}

// -- the consent step ----------------------------------------------------------------------

const CLAIM_FIELDS = ['email', 'name', 'preferred_username', 'given_name', 'family_name'];

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function consentPage(details) {
  const fields = CLAIM_FIELDS.map((name) => `<label>${name} <input name="${name}"></label><br>`);
  return `<!doctype html><title>Test provider: sign in</title>
<h1>Sign in to ${escapeHtml(details.params.client_id)}</h1>
<p>Scopes: ${escapeHtml(details.params.scope)}</p>
<form method="post" action="/interaction/${escapeHtml(details.uid)}">
<label>sub <input name="sub" required></label><br>
${fields.join('\n')}
<label><input type="checkbox" name="email_verified" value="true"> email verified</label><br>
<button type="submit">Sign in</button>
<button type="submit" name="error" value="access_denied" formnovalidate>Deny</button>
</form>`;
}

function claimsFrom(body) {
  // A JSON body gives {"sub": ..., "claims": {...}}; a form gives one field per claim.
  if (body.claims && typeof body.claims === 'object') return body.claims;
  const claims = {};
  for (const name of CLAIM_FIELDS) if (body[name]) claims[name] = body[name];
  claims.email_verified = body.email_verified === 'true' || body.email_verified === true;
  return claims;
}

async function grantFor(details, sub) {
  const { params, prompt, grantId } = details;
  const grant = (grantId && (await provider.Grant.find(grantId)))
    || new provider.Grant({ accountId: sub, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

async function interaction(ctx) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET') {
    const { uid, prompt, params } = details;
    if (ctx.accepts('json', 'html') === 'json') {
      ctx.body = { uid, prompt: { name: prompt.name, reasons: prompt.reasons }, params };
    } else {
      ctx.type = 'html';
      ctx.body = consentPage(details);
    }
    return;
  }
  const body = await readBody(ctx);
  let result;
  if (body.error) {
    result = { error: body.error, error_description: body.error_description || 'refused at the test provider' };
  } else if (!body.sub) {
    ctx.status = 400;
    ctx.body = { error: 'sub is required' };
    return;
  } else {
    users.set(body.sub, claimsFrom(body));
    result = { login: { accountId: body.sub }, consent: { grantId: await grantFor(details, body.sub) } };
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

async function testControl(ctx) {
  if (ctx.method === 'PUT') {
    faults = { ...noFaults(), ...(await readBody(ctx)) };
  } else if (ctx.method === 'DELETE') {
    faults = noFaults();
  }
  ctx.body = faults;
}

async function tokenEndpoint(ctx, next) {
  const fault = faults.token_endpoint;
  if (fault?.delay) await sleep(fault.delay * 1000);
  if (fault?.mode === 'reset') {
    // A network failure: the connection closes with no answer.
    ctx.respond = false;
    ctx.req.socket.destroy();
    return;
  }
  if (fault?.mode === 'status') {
    ctx.status = fault.status ?? 503;
    ctx.type = fault.content_type ?? 'text/html';
    ctx.body = fault.body ?? '<h1>Service Unavailable</h1>';
    return;
  }
  await next();
  if (faults.id_token && ctx.status === 200 && ctx.body?.id_token) {
    ctx.body = { ...ctx.body, id_token: forge(ctx.body.id_token, faults.id_token) };
  }
}

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/interaction/')) return interaction(ctx);
  if (ctx.path === '/_test/faults') return testControl(ctx);
  if (ctx.path === '/token' && ctx.method === 'POST') return tokenEndpoint(ctx, next);
  return next();
});

const server = provider.listen(port, args.host, () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
server.on('error', (error) => {
  console.error(`cannot listen on ${issuer}: ${error.code ?? error.message}`);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
