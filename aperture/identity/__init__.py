"""Built-in OpenID Connect sign-in (`--oidc-issuer`), free of any web framework.

`discovery` reads the provider's metadata, `keys` its signing keys, `id_tokens` verifies what it
issues, `cookies` seals what a browser carries between requests, `flow` runs the authorization-code
flow, and `relying_party` ties them into the one object the web layer calls. Nothing is kept on the
server between requests: every instance sharing the deployment's key can finish a sign-in another
one began. HTTP calls go through a `transport.Transport` the web layer supplies.
"""
