// graphql-http's auditServer against a running CRM server: GraphQL over HTTP conformance.
// Usage: node audit.mjs <graphql url> <e-mail> <password>
// Fails on any error, or on more warnings than the issue allows (2).
import { auditServer } from 'graphql-http';

const [url, email, password] = process.argv.slice(2);
const MAX_WARNINGS = 2;

const login = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    query: 'mutation($e:String!,$p:String!){login(email:$e,password:$p){accessToken}}',
    variables: { e: email, p: password },
  }),
});
const token = (await login.json())?.data?.login?.accessToken;
if (!token) {
  console.error('audit: cannot log in');
  process.exit(1);
}

// The API needs a token for everything but `login`: the audit's requests carry one.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn });
const count = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const r of results) {
  count[r.status] += 1;
  if (r.status !== 'ok') {
    let body = '';
    try {
      body = await r.response.text();
    } catch {}
    console.log(`${r.status.toUpperCase()} ${r.id} ${r.name}: ${r.reason}\n    ${r.response.status} ${body.slice(0, 300)}`);
  }
}
console.log(`audit: ${count.ok} ok, ${count.notice} notices, ${count.warn} warnings, ${count.error} errors`);
process.exit(count.error === 0 && count.warn <= MAX_WARNINGS ? 0 : 1);
