// A real OpenID Connect provider for Gantry's sign-in tests: panva's certified oidc-provider, its built-in
// development sign-in pages (any login name signs in as that person). Who is in which group is read from
// GROUPS_FILE at every sign-in, so a test changes a person's groups between two sign-ins.
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, GROUPS_FILE.
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

function groupsOf(id) {
  const all = JSON.parse(readFileSync(process.env.GROUPS_FILE, "utf8"));
  return all[id] ?? [];
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_post",
    },
  ],
  pkce: { required: () => true },
  scopes: ["openid", "email", "profile", "groups"],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["preferred_username", "name"],
    groups: ["groups"],
  },
  conformIdTokenClaims: false, // the claims asked for with the scopes come in the ID token too
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: `${id}@example.com`,
      email_verified: true,
      preferred_username: id,
      name: id,
      groups: groupsOf(id),
    }),
  }),
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["gantry-test-cookie-key"] },
  ttl: { Session: 60, Interaction: 300, Grant: 60 },
});
provider.proxy = false;
provider.listen(port, "127.0.0.1", () => console.log(`oidc provider ready at ${issuer}`));
