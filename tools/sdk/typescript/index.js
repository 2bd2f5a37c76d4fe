// The authledger client: openapi-fetch typed by `schema.d.ts`, which openapi-typescript
// generates from schemas/openapi.json (`tools/sdk/generate`). Hand-written; keep it small.
import createFetchClient from "openapi-fetch";

/**
 * A client for the authledger API at `baseUrl`. `apiKey` (an API key `alk_…`, a scoped
 * token or an end user's JWT) is sent as `Authorization: Bearer …` on every call; any other
 * option is openapi-fetch's own.
 */
export function createClient({ apiKey, headers, ...options } = {}) {
  return createFetchClient({
    ...options,
    headers: {
      ...(apiKey === undefined ? {} : { Authorization: `Bearer ${apiKey}` }),
      ...headers,
    },
  });
}

export default createClient;
