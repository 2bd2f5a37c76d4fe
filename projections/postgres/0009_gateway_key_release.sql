-- A key removed from a gateway stays on record as released: a key once bound to a gateway
-- stays restricted to the gateways that list it (editing a gateway never widens a key).
ALTER TABLE gateway_keys ADD COLUMN released BOOLEAN NOT NULL DEFAULT FALSE;
