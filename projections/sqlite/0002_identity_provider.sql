-- The identity provider of each workspace (end users authenticate with its JWTs).
ALTER TABLE workspaces ADD COLUMN idp_issuer TEXT;
ALTER TABLE workspaces ADD COLUMN idp_audience TEXT;
ALTER TABLE workspaces ADD COLUMN idp_jwks_url TEXT;
