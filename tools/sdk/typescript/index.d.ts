// Types of index.js (hand-written); the API's own types are generated in schema.d.ts.
import type { Client, ClientOptions } from "openapi-fetch";
import type { paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

export interface AuthledgerClientOptions extends ClientOptions {
  /** Sent as `Authorization: Bearer …`: an API key, a scoped token or an end user's JWT. */
  apiKey?: string;
}

/** A client for the authledger API at `baseUrl`. */
export declare function createClient(options?: AuthledgerClientOptions): Client<paths>;

export default createClient;
